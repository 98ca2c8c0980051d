"""Old import path of the named scores: they live in ``edge.evaluate`` now (import them from there).

Kept only while modules still import ``edge.scoring``; it holds no code of its own.
"""

from __future__ import annotations

from .evaluate import SCORES, score_outputs

__all__ = ["SCORES", "score_outputs"]
