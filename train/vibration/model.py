"""The dense autoencoder: its builder, its fit, and its anomaly score per window.

Keras is passed in (``keras_utils.tf_setup``) so importing this module never imports TensorFlow.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from edgewise.edge.apps.vibration import reconstruction_error

from .config import VibrationConfig

__all__ = ["build_autoencoder", "fit_autoencoder", "keras_predict", "model_scores"]

Predict = Callable[[np.ndarray], np.ndarray]


def build_autoencoder(keras: Any, dim: int, hidden: tuple[int, ...] = (64, 16)) -> Any:
    """A dense autoencoder: dim -> hidden... -> bottleneck -> ...hidden -> dim (linear out)."""
    inp = keras.Input((dim,), name="features")
    h = inp
    for i, u in enumerate(hidden):
        h = keras.layers.Dense(u, activation="relu", name=f"enc{i}")(h)
    for i, u in enumerate(reversed(hidden[:-1])):
        h = keras.layers.Dense(u, activation="relu", name=f"dec{i}")(h)
    out = keras.layers.Dense(dim, name="reconstruction")(h)
    return keras.Model(inp, out, name="vibration_autoencoder")


def fit_autoencoder(
    keras: Any, ztr: np.ndarray, zva: np.ndarray | None, cfg: VibrationConfig, quiet: bool, desc: str
) -> tuple[Any, dict[str, list[float]]]:
    """Fit the autoencoder on standardized normal windows; ``zva`` None (fold models) fits without
    validation. Returns the model and its loss history."""
    from ..keras_utils import EpochProgress

    model = build_autoencoder(keras, ztr.shape[1], cfg.hidden)
    model.compile(optimizer=keras.optimizers.Adam(2e-3), loss="mse")
    hist = model.fit(
        ztr,
        ztr,
        validation_data=None if zva is None else (zva, zva),
        epochs=cfg.epochs,
        batch_size=cfg.batch,
        shuffle=True,
        verbose=0,
        callbacks=[EpochProgress(cfg.epochs, quiet=quiet, desc=desc)],
    )
    return model, {k: [float(v) for v in vs] for k, vs in hist.history.items()}


def keras_predict(model: Any) -> Predict:
    """A Keras model as a plain ``predict(x)``, like the edge runtimes' models."""
    return lambda x: model.predict(x, verbose=0)


def model_scores(predict: Predict, z: np.ndarray, chunk: int = 256) -> np.ndarray:
    """Reconstruction error per window (the device's score), ``chunk`` windows per call."""
    if len(z) == 0:
        return np.empty(0)
    rec = np.concatenate([np.asarray(predict(z[i : i + chunk])) for i in range(0, len(z), chunk)])
    return reconstruction_error(z, rec)
