"""Import TensorFlow quietly: the one place the workstation rooms (converters, train) do it.

It lives in ``converters``, the lowest room that needs TensorFlow, so that ``edgewise convert``
and every trainer (``train.keras_utils`` re-exports it) start TensorFlow the same way.
"""

from __future__ import annotations

import logging
import os
from typing import Any

__all__ = ["import_tensorflow"]


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
