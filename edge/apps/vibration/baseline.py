"""The classical baseline: squared Mahalanobis distance of a window's indicators to healthy ones.

The autoencoder has to beat something simple and well understood. This is it: the five
indicators of ``features.INDICATORS`` (RMS, peak, crest, kurtosis, skewness), their mean and
inverse covariance fitted on healthy windows only and stored in the bundle
(``config.baseline``), a distance per window. numpy only.

>>> ind = np.random.default_rng(0).normal(size=(200, 5))
>>> m = Mahalanobis().fit(ind)
>>> bool(m.score(ind).mean() < m.score(ind + 3).mean())
True
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .features import EPS, INDICATORS

__all__ = ["Mahalanobis"]


class Mahalanobis:
    """Squared Mahalanobis distance to the normal indicators (numpy).

    ``fit`` on normal windows only; a small ridge keeps the covariance invertible when two
    indicators move together (peak and crest do on a steady signal).
    """

    mean_: np.ndarray
    icov_: np.ndarray

    def __init__(self, ridge: float = 1e-6) -> None:
        self.ridge = ridge

    def fit(self, ind: np.ndarray) -> Mahalanobis:
        ind = np.asarray(ind, dtype=np.float64)
        if ind.ndim != 2 or len(ind) < ind.shape[1] + 1:
            raise ValueError(f"Mahalanobis needs more windows than indicators, got {ind.shape}")
        self.mean_ = ind.mean(axis=0)
        cov = np.cov(ind, rowvar=False)
        cov += np.eye(len(cov)) * self.ridge * max(np.trace(cov) / len(cov), EPS)
        self.icov_ = np.linalg.inv(cov)
        return self

    def score(self, ind: np.ndarray) -> np.ndarray:
        """Distances of a batch of indicator rows (n, 5) -> (n,)."""
        d = np.atleast_2d(np.asarray(ind, dtype=np.float64)) - self.mean_
        return np.einsum("ij,jk,ik->i", d, self.icov_, d)

    def score_one(self, ind: np.ndarray) -> float:
        """The distance of one indicator row, without the batch path's per-call overhead
        (the streaming case: one window at a time on the device)."""
        d = np.asarray(ind, dtype=np.float64).ravel() - self.mean_
        return float(d @ self.icov_ @ d)

    def to_dict(self) -> dict[str, Any]:
        return {"indicators": list(INDICATORS), "mean": self.mean_.tolist(), "icov": self.icov_.tolist()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Mahalanobis:
        """The fitted baseline as stored in ``bundle.json`` (``config.baseline``)."""
        if "mean" not in d or "icov" not in d:
            raise ValueError("baseline lacks 'mean' or 'icov' (not a fitted Mahalanobis baseline?)")
        m = cls()
        m.mean_ = np.asarray(d["mean"], dtype=np.float64)
        m.icov_ = np.asarray(d["icov"], dtype=np.float64)
        return m
