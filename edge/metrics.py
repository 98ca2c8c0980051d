"""Small, dependency-free evaluation metrics shared by training, conversion checks and the edge.

numpy only, so the device (and ``edgewise verify`` on arm64) computes the very same figures
as the workstation.

>>> auroc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1]))
0.75
"""

from __future__ import annotations

import numpy as np

__all__ = ["auroc", "roc_curve", "threshold_for_recall", "threshold_for_false_alarm", "percentiles"]


def roc_curve(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False-positive rate, true-positive rate and thresholds; higher score = positive."""
    scores = np.asarray(scores, dtype=np.float64).ravel()
    labels = np.asarray(labels).astype(bool).ravel()
    order = np.argsort(-scores, kind="mergesort")
    s, y = scores[order], labels[order]
    distinct = np.r_[np.nonzero(np.diff(s))[0], y.size - 1]
    tps = np.cumsum(y)[distinct]
    fps = (1 + distinct) - tps
    p, n = max(int(y.sum()), 1), max(int((~y).sum()), 1)
    tpr = np.r_[0.0, tps / p]
    fpr = np.r_[0.0, fps / n]
    thr = np.r_[np.inf, s[distinct]]
    return fpr, tpr, thr


def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (ties count half), NaN when a class is absent."""
    labels = np.asarray(labels).astype(bool).ravel()
    if labels.all() or not labels.any():
        return float("nan")
    fpr, tpr, _ = roc_curve(scores, labels)
    return round(float(np.trapezoid(tpr, fpr)), 12)


def threshold_for_recall(scores: np.ndarray, labels: np.ndarray, recall: float) -> float:
    """The highest threshold (score >= t is positive) that still reaches ``recall``."""
    pos = np.sort(np.asarray(scores, dtype=np.float64)[np.asarray(labels).astype(bool)])
    if pos.size == 0:
        raise ValueError("threshold_for_recall needs at least one positive sample")
    k = int(np.floor((1.0 - recall) * pos.size + 1e-9))
    return float(pos[min(k, pos.size - 1)])


def threshold_for_false_alarm(normal_scores: np.ndarray, rate: float) -> float:
    """The threshold that ``rate`` of normal scores exceed (score > t is an alarm)."""
    s = np.sort(np.asarray(normal_scores, dtype=np.float64).ravel())
    if s.size == 0:
        raise ValueError("threshold_for_false_alarm needs normal scores")
    return float(np.quantile(s, 1.0 - rate, method="higher"))


def percentiles(values_s: list[float] | np.ndarray) -> dict[str, float]:
    """p50/p90/p99/mean/min/max in milliseconds from values in seconds."""
    v = np.asarray(values_s, dtype=np.float64) * 1e3
    if v.size == 0:
        return {"n": 0}
    return {
        "n": int(v.size),
        "p50_ms": float(np.percentile(v, 50)),
        "p90_ms": float(np.percentile(v, 90)),
        "p99_ms": float(np.percentile(v, 99)),
        "mean_ms": float(v.mean()),
        "min_ms": float(v.min()),
        "max_ms": float(v.max()),
    }
