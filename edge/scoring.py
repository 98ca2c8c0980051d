"""Named ways to turn raw model outputs into one score per sample.

A name (not code) is stored in ``bundle.json``, so the converter's parity check, the
benchmark's accuracy-in-the-same-run and the device all score outputs identically.

>>> score_outputs("mse", np.zeros((2, 4)), np.ones((2, 4))).tolist()
[1.0, 1.0]
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["SCORES", "score_outputs"]


def _last(x: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Probability of the last class (binary classifiers: P(positive))."""
    return out.reshape(len(out), -1)[:, -1]


def _max(x: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Largest output (e.g. the worst tile or pixel of an anomaly map)."""
    return out.reshape(len(out), -1).max(axis=1)


def _mse(x: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Mean squared reconstruction error of an autoencoder."""
    d = x.reshape(len(x), -1).astype(np.float64) - out.reshape(len(out), -1)
    return (d * d).mean(axis=1)


SCORES: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "last": _last,
    "max": _max,
    "mse": _mse,
}


def score_outputs(name: str, x: np.ndarray, out: np.ndarray) -> np.ndarray:
    if name not in SCORES:
        raise ValueError(f"unknown score '{name}'; valid: {', '.join(SCORES)}")
    return np.asarray(SCORES[name](np.asarray(x), np.asarray(out)), dtype=np.float64)
