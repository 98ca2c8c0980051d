"""Detection vs window length: the autoencoder (Keras float32) and the baseline retrained per length."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from edgewise.edge.progress import log
from edgewise.edge.sources.recordings import Recording

from .config import VibrationConfig
from .evaluate import evaluate_scores
from .fit import fit_window
from .model import keras_predict
from .threshold import normal_threshold

__all__ = ["sweep_window_lengths"]

SWEEP_KEYS = ("auroc_min", "auroc_overall", "recall_min", "far")


def sweep_window_lengths(
    recs: list[Recording], cfg: VibrationConfig, lengths: list[int], quiet: bool = False
) -> list[dict[str, Any]]:
    """Detection vs window length: Keras float32 AE and baseline retrained per length.

    Hops scale with the window (``VibrationConfig.for_window``) so every length sees the same
    stretch of signal; thresholds come from held-out normal scores as in the main run. A length
    the data cannot serve gives a row with its ``error``.
    """
    from ..keras_utils import tf_setup

    keras = tf_setup(cfg.seed, threads=2)
    rows = []
    for L in lengths:
        c = cfg.for_window(L)
        t0 = time.monotonic()
        try:
            r = fit_window(recs, c, True, keras, f"window {L}")
        except ValueError as e:
            rows.append({"window": L, "error": str(e)})
            continue
        oof = r.out_of_fold(c, keras)
        s, b = r.scores(keras_predict(r.model)), r.baseline_scores()
        ae = evaluate_scores(s["test"], s["faults"], normal_threshold(np.r_[s["val"], oof["keras"]],
                                                                      c.target_far, c.threshold_rule))
        base = evaluate_scores(b["test"], b["faults"], normal_threshold(np.r_[b["val"], oof["baseline"]],
                                                                        c.target_far, c.threshold_rule))
        rows.append({
            "window": L,
            "seconds": L / r.data["fs"],
            "normal_test_windows": ae["normal_windows"],
            "autoencoder_keras": {k: ae[k] for k in SWEEP_KEYS},
            "baseline": {k: base[k] for k in SWEEP_KEYS},
            "seconds_to_train": round(time.monotonic() - t0, 1),
        })
        log(
            f"window {L}: AE auroc_min={ae['auroc_min']:.4f} recall_min={ae['recall_min']:.3f} "
            f"far={ae['far']:.3f} | baseline auroc_min={base['auroc_min']:.4f} "
            f"recall_min={base['recall_min']:.3f} far={base['far']:.3f}",
            quiet=quiet,
        )
    return rows
