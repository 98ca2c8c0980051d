"""One fit at one window length: features, standardization, autoencoder, baseline, their scores."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from edgewise.edge.apps.vibration import Mahalanobis, robust_z
from edgewise.edge.sources.recordings import Recording

from .config import VibrationConfig
from .data import feature_moments, prepare
from .model import Predict, fit_autoencoder, model_scores
from .threshold import out_of_fold_scores

__all__ = ["WindowFit", "fit_window", "Scores"]

# "train" / "val" / "test" -> scores of the healthy split; "faults" -> {file: scores}
Scores = dict[str, Any]


@dataclass
class WindowFit:
    """What one window length learned: the data it saw, the standardization, both scorers."""

    data: dict[str, Any]  # prepare()
    mean: np.ndarray
    std: np.ndarray
    z: dict[str, np.ndarray]  # standardized healthy splits
    zf: dict[str, np.ndarray]  # standardized fault files
    model: Any  # the Keras autoencoder
    history: dict[str, list[float]]
    baseline: Mahalanobis

    def scores(self, predict: Predict) -> Scores:
        """Reconstruction errors of every healthy split and fault file under ``predict``."""
        return {
            **{k: model_scores(predict, self.z[k]) for k in ("train", "val", "test")},
            "faults": {k: model_scores(predict, v) for k, v in self.zf.items()},
        }

    def baseline_scores(self) -> Scores:
        """Mahalanobis distances of the same windows (the classical indicators)."""
        sets = self.data["sets"]
        return {
            **{k: self.baseline.score(sets[k]["ind"]) for k in ("train", "val", "test")},
            "faults": {k: self.baseline.score(v["ind"]) for k, v in self.data["faults"].items()},
        }

    def out_of_fold(self, cfg: VibrationConfig, keras: Any) -> dict[str, np.ndarray]:
        """Out-of-fold scores of the training split (see ``threshold.out_of_fold_scores``)."""
        return out_of_fold_scores(self.data["sets"]["train"], self.data["fs"], cfg, keras)


def fit_window(recs: list[Recording], cfg: VibrationConfig, quiet: bool, keras: Any, desc: str) -> WindowFit:
    """Prepare, standardize, fit the autoencoder and the baseline for one window length."""
    d = prepare(recs, cfg)
    fc = cfg.features
    mean, std = feature_moments(d["sets"]["train"]["feats"], fc.scale_floor)
    z = {k: robust_z(v["feats"], mean, std, fc.z_cap) for k, v in d["sets"].items()}
    zf = {k: robust_z(v["feats"], mean, std, fc.z_cap) for k, v in d["faults"].items()}
    model, hist = fit_autoencoder(keras, z["train"], z["val"], cfg, quiet, desc)
    # the classical baseline as it is practised: on the recording's own windows (no resampling)
    maha = Mahalanobis().fit(d["sets"]["train"]["ind"][: d["sets"]["train"]["plain"]])
    return WindowFit(d, mean, std, z, zf, model, hist, maha)
