"""Small Keras helpers shared by the trainers: quiet TensorFlow, seeding, threads, progress."""

from __future__ import annotations

from typing import Any

from edgewise.converters.tfenv import import_tensorflow

__all__ = ["tf_setup", "import_tensorflow", "EpochProgress"]


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
