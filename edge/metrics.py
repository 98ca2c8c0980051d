"""Old import path of the metrics: they live in ``edge.evaluate`` now (import them from there).

Kept only while modules still import ``edge.metrics``; it holds no code of its own.
"""

from __future__ import annotations

from .evaluate import auroc, percentiles, roc_curve, threshold_for_false_alarm, threshold_for_recall

__all__ = ["auroc", "roc_curve", "threshold_for_recall", "threshold_for_false_alarm", "percentiles"]
