"""Keras -> ONNX float32 (tf2onnx) and ONNX int8 (ONNX Runtime static quantization, QDQ).

tf2onnx does not officially support Keras 3: ``from_keras`` is tried with an explicit input
signature, and a traced ``tf.function`` is the fallback; tests round-trip both paths.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["to_onnx", "quantize_onnx_int8", "OPSET"]

OPSET = 17


def _signature(model: Any):
    import tensorflow as tf

    shape = [None, *[int(d) for d in model.inputs[0].shape[1:]]]
    return (tf.TensorSpec(shape, tf.float32, name="input"),)


def to_onnx(model: Any, opset: int = OPSET) -> bytes:
    """Float32 ONNX bytes for a Keras model (single input)."""
    import tensorflow as tf
    import tf2onnx

    spec = _signature(model)
    try:
        proto, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=opset)
    except Exception:  # Keras 3 models that from_keras cannot trace: go through tf.function
        fn = tf.function(lambda x: model(x, training=False), input_signature=spec)
        proto, _ = tf2onnx.convert.from_function(fn, input_signature=spec, opset=opset)
    return proto.SerializeToString()


def quantize_onnx_int8(float_onnx: bytes, calib: np.ndarray, max_calib: int = 200) -> bytes:
    """Static int8 QDQ quantization (per-tensor, MinMax) calibrated on ``calib`` samples.

    Per-tensor, not per-channel: on tf2onnx graphs ORT's per-channel weights agreed with Keras
    on only 93 % of digits decisions against 97 % per-tensor (same model, same calibration).
    """
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    samples = np.asarray(calib, dtype=np.float32)[:max_calib]

    with tempfile.TemporaryDirectory() as td:
        src, pre, dst = Path(td, "f.onnx"), Path(td, "pre.onnx"), Path(td, "q.onnx")
        src.write_bytes(float_onnx)
        try:
            quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        except Exception:  # pre-processing is an optimisation; quantize the raw graph instead
            pre = src
        import onnx

        name = onnx.load(str(pre)).graph.input[0].name

        class Reader(CalibrationDataReader):
            def __init__(self) -> None:
                self.i = 0

            def get_next(self) -> dict[str, np.ndarray] | None:
                if self.i >= len(samples):
                    return None
                self.i += 1
                return {name: samples[self.i - 1 : self.i]}

        quantize_static(
            str(pre),
            str(dst),
            Reader(),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
            per_channel=False,
        )
        return dst.read_bytes()
