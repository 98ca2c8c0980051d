"""Small Keras helpers shared by the trainers: quiet TensorFlow, seeding, threads, progress."""

from __future__ import annotations

import logging
import os
from typing import Any

__all__ = ["tf_setup", "import_tensorflow", "EpochProgress", "history_dict"]


def import_tensorflow() -> Any:
    """Import TensorFlow without its start-up chatter unless ``-v``; returns the module.

    TensorFlow 2.21 logs its CUDA probe through absl before ``TF_CPP_MIN_LOG_LEVEL`` applies
    ("Could not find cuda drivers", "failed call to cuInit" on every CPU-only machine), so
    native stderr is filtered around the import and the first device query, which is where the
    probe runs. Its Python logger then keeps INFO lines ("Assets written to: /tmp/...") and
    tf.function retracing warnings out of the terminal; real errors still raise.
    """
    from edgewise.edge import progress

    if not progress.VERBOSE:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    with progress.native_stderr():
        import tensorflow as tf

        tf.config.list_physical_devices()
    progress.quiet_loggers()
    # "tensorflow" also logs tf.function retracing at WARNING: routine for small models, not news
    tf.get_logger().setLevel(logging.DEBUG if progress.VERBOSE else logging.ERROR)
    try:
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.DEBUG if progress.VERBOSE else absl_logging.ERROR)
    except ImportError:  # absl comes with TensorFlow; nothing to quiet without it
        pass
    return tf


def tf_setup(seed: int = 0, threads: int | None = None) -> Any:
    """Import TensorFlow quietly, seed everything, cap threads; returns the keras module."""
    tf = import_tensorflow()
    import keras

    if threads:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:  # already initialised in this process
            pass
    keras.utils.set_random_seed(seed)
    return keras


def EpochProgress(epochs: int, quiet: bool = False, desc: str = "train") -> Any:  # noqa: N802
    """A Keras callback drawing one bar over the epochs, the latest logged metrics beside it.

    ``-v`` also prints every epoch as its own line.
    """
    import keras

    from edgewise.edge.progress import Bar

    class _CB(keras.callbacks.Callback):
        def on_train_begin(self, logs: dict | None = None) -> None:
            self.bar = Bar(epochs, f"{desc} epochs", quiet=quiet, verbose_lines=True)

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            self.bar.update(1, **{k: float(v) for k, v in (logs or {}).items()})

        def on_train_end(self, logs: dict | None = None) -> None:
            self.bar.close()

    return _CB()


def history_dict(history: Any) -> dict[str, list[float]]:
    return {k: [float(v) for v in vals] for k, vals in history.history.items()}
