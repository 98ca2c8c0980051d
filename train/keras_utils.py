"""Small Keras helpers shared by the trainers: quiet TensorFlow, seeding, threads, progress."""

from __future__ import annotations

import os
from typing import Any

__all__ = ["tf_setup", "EpochProgress", "history_dict"]


def tf_setup(seed: int = 0, threads: int | None = None) -> Any:
    """Import TensorFlow quietly, seed everything, cap threads; returns the keras module."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    import keras
    import tensorflow as tf

    if threads:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:  # already initialised in this process
            pass
    keras.utils.set_random_seed(seed)
    return keras


def EpochProgress(epochs: int, quiet: bool = False, desc: str = "train") -> Any:  # noqa: N802
    """A Keras callback printing one line per epoch with the logged metrics."""
    import keras

    from edgewise.edge.progress import log

    class _CB(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            items = " ".join(f"{k}={v:.4f}" for k, v in (logs or {}).items())
            log(f"{desc} epoch {epoch + 1}/{epochs} {items}", quiet=quiet)

    return _CB()


def history_dict(history: Any) -> dict[str, list[float]]:
    return {k: [float(v) for v in vals] for k, vals in history.history.items()}
