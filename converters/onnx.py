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

    from edgewise.edge.progress import quiet_loggers

    quiet_loggers(("tf2onnx",))  # its graph optimiser reports every pass at INFO
    spec = _signature(model)
    try:
        proto, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=opset)
    except Exception:  # Keras 3 models that from_keras cannot trace: go through tf.function
        fn = tf.function(lambda x: model(x, training=False), input_signature=spec)
        proto, _ = tf2onnx.convert.from_function(fn, input_signature=spec, opset=opset)
    return proto.SerializeToString()


def quantize_onnx_int8(float_onnx: bytes, calib: np.ndarray, max_calib: int = 200) -> bytes:
    """Static int8 QDQ quantization (per-tensor, MinMax) calibrated on ``calib`` samples.

    uint8 activations with 7-bit int8 weights (``reduce_range``): ONNX Runtime's x86 int8
    kernels on CPUs without VNNI multiply uint8 by int8 with a saturating 16-bit pair sum,
    so full 8-bit weights overflow. On the face embedder, full-range weights gave a minimum
    cosine to Keras of 0.15 over 256 faces (0.99 with reduce_range) and different answers on
    x86 and on arm64. uint8 activations are also the fast path of those kernels (int8
    activations are shifted to uint8 at run time). Per-tensor, not per-channel: per-channel
    weights agreed less with Keras (face min cosine 0.980 against 0.992).
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
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=False,
            reduce_range=True,
        )
        return dst.read_bytes()
