"""Keras -> TFLite in four precisions: float32, float16, dynamic range and full int8.

Full int8 uses a representative dataset drawn from the training data and makes the model's
input and output int8 too, so the device never touches float tensors at the boundary; the
runtime (``edge.backends``) quantizes and dequantizes from the scales stored in the file.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

__all__ = ["TFLITE_PRECISIONS", "to_tflite", "non_int8_ops"]

TFLITE_PRECISIONS = ("float32", "float16", "dynamic", "int8")


def to_tflite(
    model: Any, precision: str, representative: np.ndarray | None = None, max_calib: int = 200,
    *, float_io: bool = False,
) -> bytes:
    """Convert a Keras model; ``representative`` (float samples) is required for int8.

    ``float_io``: int8 inside, float32 input and outputs. For a large input (a camera frame)
    the QUANTIZE op in XNNPACK is cheaper than quantizing in numpy before the call.
    """
    import tensorflow as tf

    if precision not in TFLITE_PRECISIONS:
        raise ValueError(f"precision must be one of {TFLITE_PRECISIONS}, got '{precision}'")
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    if precision == "float16":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.target_spec.supported_types = [tf.float16]
    elif precision == "dynamic":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
    elif precision == "int8":
        if representative is None or len(representative) == 0:
            raise ValueError("int8 conversion needs a representative dataset (calib samples)")
        calib = np.asarray(representative, dtype=np.float32)[:max_calib]

        def gen() -> Iterable[list[np.ndarray]]:
            for i in range(len(calib)):
                yield [calib[i : i + 1]]

        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = gen
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if not float_io:
            conv.inference_input_type = tf.int8
            conv.inference_output_type = tf.int8
    return conv.convert()


_FLOAT_OK = {"QUANTIZE", "DEQUANTIZE"}


def non_int8_ops(path: str) -> list[str]:
    """Names of ops in an int8 model that still compute in float (should be empty)."""
    from edgewise.edge.backends import LiteRTModel

    m = LiteRTModel(path, threads=1)
    bad = sorted(
        {
            op["op"]
            for op in m.op_types(graph=True)
            if op["op"] not in _FLOAT_OK and any(d.startswith("float") for d in op["dtypes"])
        }
    )
    m.close()
    return bad
