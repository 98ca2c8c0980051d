"""Image scores from tile scores, the operating point and what a threshold implies."""

from __future__ import annotations

from typing import Any

import numpy as np

from edgewise.edge.apps.inspect import TileConfig, image_score, prepare_part
from edgewise.edge.evaluate import threshold_for_false_alarm, threshold_for_recall
from edgewise.edge.sources.files import read_image

from ..data.magnetic_tile import GOOD, Sample

__all__ = ["tile_sets", "image_scores", "operating_point", "at_threshold", "recall_per_kind"]


def tile_sets(samples: list[Sample], tiling: TileConfig) -> list[np.ndarray]:
    """Model-input tiles of every image, through the edge preprocessing (unreadable: error)."""
    return [prepare_part(read_image(s.path, gray=True), tiling)[1] for s in samples]


def image_scores(
    model_fn: Any, tiles: list[np.ndarray], batch: int = 512, top_k: int = 1
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Image score (max, or top-k mean, of the tile scores) and the tile scores of every
    image, in one batched pass."""
    flat = np.concatenate(tiles)
    s = np.concatenate(
        [np.asarray(model_fn(flat[i : i + batch])).reshape(-1) for i in range(0, len(flat), batch)]
    )
    per, k = [], 0
    for t in tiles:
        per.append(s[k : k + len(t)])
        k += len(t)
    return np.array([image_score(p, top_k) for p in per]), per


def operating_point(
    scores: np.ndarray, labels: np.ndarray, recall: float, false_alarm: float = 0.01
) -> dict[str, Any]:
    """Threshold for ``recall`` on these scores and what it implies (precision, false alarms).

    With no defects (good parts only, as in good-only mode) the threshold is set for the
    ``false_alarm`` rate on the good parts instead.
    """
    scores, labels = np.asarray(scores, np.float64), np.asarray(labels).astype(bool)
    if labels.any():
        thr, how = threshold_for_recall(scores, labels, recall), f"recall>={recall}"
    else:
        thr = threshold_for_false_alarm(scores, false_alarm)
        how = f"false_alarm<={false_alarm:g} on good parts (no defects used)"
        thr = float(np.nextafter(thr, np.inf))
    implied = at_threshold(scores, labels, float(thr))
    return {"threshold": float(thr), "rule": how, **implied,
            "recall": implied["recall"] if labels.any() else None}


def at_threshold(scores: np.ndarray, labels: np.ndarray, thr: float) -> dict[str, Any]:
    """Recall, precision, false alarms and the confusion counts of ``scores >= thr``."""
    labels = np.asarray(labels).astype(bool)
    pred = np.asarray(scores) >= thr
    tp, fp = int((pred & labels).sum()), int((pred & ~labels).sum())
    fn, tn = int((~pred & labels).sum()), int((~pred & ~labels).sum())
    return {
        "threshold": thr,
        "recall": tp / max(tp + fn, 1),
        "precision": tp / (tp + fp) if tp + fp else None,
        "false_alarm_rate": fp / max(fp + tn, 1),
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
    }


def recall_per_kind(scores: np.ndarray, kinds: list[str], thr: float) -> dict[str, float]:
    """Share of each defect kind at/above the threshold (for good parts: share passed)."""
    out = {}
    for k in sorted(set(kinds), key=lambda k: (k != GOOD, k)):
        idx = [i for i, kk in enumerate(kinds) if kk == k]
        s = np.asarray(scores)[idx]
        out[k] = float((s < thr).mean() if k == GOOD else (s >= thr).mean())
    return out

