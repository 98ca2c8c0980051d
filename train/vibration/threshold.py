"""The operating point: alarm thresholds from held-out normal scores for a target false-alarm rate.

Only normal windows the scorer never trained on set a threshold: the validation split, plus
(``threshold_folds`` >= 2) the training split scored out of fold by models fitted on other
blocks in time. Test windows never do.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgewise.edge.apps.vibration import Mahalanobis, robust_z
from edgewise.edge.apps.vibration.commission import normal_threshold  # one rule, trainer and device

from .config import VibrationConfig
from .data import feature_moments
from .model import fit_autoencoder, keras_predict, model_scores

__all__ = ["normal_threshold", "time_folds", "out_of_fold_scores"]


def time_folds(t: np.ndarray, win_s: float, k: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(held-out, fit) masks over windows starting at times ``t`` (s), ``k`` blocks in time.

    Fit windows share no sample with any held-out window: overlapping windows next to the
    block are dropped from the fit set rather than leaking the held-out signal.
    """
    edges = np.linspace(t.min(), t.max(), k + 1)
    edges[-1] = np.inf
    folds = []
    for i in range(k):
        held = (t >= edges[i]) & (t < edges[i + 1])
        if held.any():
            lo, hi = t[held].min(), t[held].max() + win_s
            folds.append((held, (t + win_s <= lo) | (t >= hi)))
        else:
            folds.append((held, np.zeros_like(held)))
    return folds


def out_of_fold_scores(
    train_set: dict[str, Any], fs: float, cfg: VibrationConfig, keras: Any
) -> dict[str, np.ndarray]:
    """Scores of the training split's windows by models that never saw them (folds in time).

    The threshold needs the tail of normal scores, and the validation split alone is about a
    second of signal (~80 strongly overlapping windows). Cutting the training split
    (``train_set``: its feats, ind and window start times t) into ``cfg.threshold_folds``
    blocks in time, fitting the autoencoder and the baseline on the other blocks (no window
    sharing a sample with the held-out block) and scoring the block triples the held-out
    normal scores the threshold is fitted on. The fold models are slightly weaker than the
    final one (less data), so their scores err on the high side: fewer false alarms, never a
    test window seen. Empty arrays when folds are off or too small.
    """
    k = cfg.threshold_folds
    feats, ind, t = train_set["feats"], train_set["ind"], train_set["t"]
    win_s = cfg.window / fs
    out: dict[str, list[np.ndarray]] = {"keras": [], "baseline": []}
    if k >= 2:
        for i, (held, fit) in enumerate(time_folds(t, win_s, k)):
            # a fold model fitted on less than a third of the training windows (long windows,
            # where the no-shared-sample gaps eat the split) is not representative: skip it
            if not held.any() or fit.sum() < max(8, len(t) / 3):
                continue
            fc = cfg.features
            mean, std = feature_moments(feats[fit], fc.scale_floor)
            keras.utils.set_random_seed(cfg.seed + 1 + i)
            zfit = robust_z(feats[fit], mean, std, fc.z_cap)
            m, _ = fit_autoencoder(keras, zfit, None, cfg, True, f"fold {i + 1}")
            out["keras"].append(model_scores(keras_predict(m), robust_z(feats[held], mean, std, fc.z_cap)))
            plain = np.arange(len(t)) < train_set.get("plain", len(t))  # baseline: unresampled windows
            out["baseline"].append(Mahalanobis().fit(ind[fit & plain]).score(ind[held & plain]))
    return {key: np.concatenate(v) if v else np.empty(0) for key, v in out.items()}
