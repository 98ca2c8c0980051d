"""A pretrained embedder file (ONNX, TFLite or Keras) as the converter sees it.

It reads the input tensor's shape (the defaults of the face input contract), adapts an NCHW
network to the NHWC crops the device feeds (a Transpose in front of an ONNX graph, a Permute
layer in front of a Keras model), runs the float reference that parity and calibration use, and
makes the variants each format allows: Keras all six, ONNX float32 and int8 (ONNX Runtime's
quantizer), a TFLite file only itself (int8 needs the source model it was converted from).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .spec import FaceInput

__all__ = ["SUFFIXES", "SourceModel", "open_source"]

SUFFIXES = {".onnx": "onnx", ".tflite": "tflite", ".keras": "keras", ".h5": "keras"}
# ops that mark an ONNX graph as already quantized: it is kept as the int8 variant, not re-quantized
_ONNX_QUANT_OPS = {"QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul", "ConvInteger",
                   "MatMulInteger", "DynamicQuantizeLinear"}


@dataclass(frozen=True)
class _Tensor:
    """The one attribute ``build_bundle`` reads of a Keras tensor."""

    shape: tuple[int | None, ...]


class SourceModel:
    """One pretrained embedder file. ``input_shape`` is the file's own input (NHWC or NCHW);
    after ``adapt`` the model takes NHWC and ``predict``/``inputs``/``outputs`` serve
    ``build_bundle`` as a Keras model would."""

    kind: str = ""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.input_shape: tuple[int | None, ...] = ()
        self.output_shape: tuple[int | None, ...] = ()
        self.precision = "float32"
        self.inputs: list[_Tensor] = []
        self.outputs: list[_Tensor] = []

    def adapt(self, face: FaceInput) -> None:
        """Make the model take NHWC crops (a no-op for NHWC models)."""
        raise NotImplementedError

    def predict(self, x: np.ndarray, verbose: int = 0) -> np.ndarray:
        """Float reference outputs, (n, d)."""
        raise NotImplementedError

    def variants(self) -> tuple[list[str], str]:
        """The variant names this file can give, and a sentence on those it cannot."""
        raise NotImplementedError

    def converter(self) -> Callable[[str, str, np.ndarray], bytes] | None:
        """``build_bundle``'s ``convert`` hook (None: the Keras conversions)."""
        return None

    def check_output(self) -> None:
        """An embedder gives one flat vector per face."""
        if len(self.output_shape) != 2 or self.output_shape[1] is None or self.output_shape[1] < 2:
            raise ValueError(f"{self.path.name}: output shape {self.output_shape} is not one embedding "
                             "vector per face (batch, dim)")


def _shape_of(value_info: Any) -> tuple[int | None, ...]:
    dims = value_info.type.tensor_type.shape.dim
    return tuple(int(d.dim_value) if d.HasField("dim_value") and d.dim_value > 0 else None for d in dims)


class OnnxSource(SourceModel):
    """An ONNX embedder, run in ONNX Runtime."""

    kind = "onnx"

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        try:
            import onnx
        except ImportError:
            raise ValueError("converting an ONNX model needs the onnx package: pip install onnx") from None
        try:
            self.proto = onnx.load(str(path))
        except Exception as e:  # onnx raises DecodeError and others
            raise ValueError(f"{path}: not a loadable ONNX model ({str(e).strip()[:200] or type(e).__name__})"
                             ) from None
        g = self.proto.graph
        init = {t.name for t in g.initializer}
        ins = [i for i in g.input if i.name not in init]
        if len(ins) != 1 or len(g.output) < 1:
            raise ValueError(f"{path}: an embedder takes one input; this graph has {len(ins)}")
        elem = ins[0].type.tensor_type.elem_type
        if elem != onnx.TensorProto.FLOAT:
            raise ValueError(f"{path}: input '{ins[0].name}' is {onnx.TensorProto.DataType.Name(elem)}; "
                             "edgewise feeds float32 crops")
        self.input_shape = _shape_of(ins[0])
        self.output_shape = _shape_of(g.output[0])
        if any(n.op_type in _ONNX_QUANT_OPS for n in g.node):
            self.precision = "int8"
        self._model: Any = None
        self._tmp = tempfile.TemporaryDirectory(prefix="edgewise-face-src-")

    def adapt(self, face: FaceInput) -> None:
        import onnx
        from onnx import helper

        g = self.proto.graph
        init = {t.name for t in g.initializer}
        inp = next(i for i in g.input if i.name not in init)
        if face.source_layout == "NCHW":
            n, c, h, w = inp.type.tensor_type.shape.dim
            dims = [d.dim_param or (d.dim_value if d.dim_value > 0 else "N") for d in (n, h, w, c)]
            new = helper.make_tensor_value_info("input_nhwc", onnx.TensorProto.FLOAT, dims)
            node = helper.make_node("Transpose", ["input_nhwc"], [inp.name], perm=[0, 3, 1, 2],
                                    name="edgewise_nhwc_to_nchw")
            g.node.insert(0, node)
            g.input.remove(inp)
            g.input.insert(0, new)
            onnx.checker.check_model(self.proto)
        self.data = self.proto.SerializeToString()
        f = Path(self._tmp.name, "source.onnx")
        f.write_bytes(self.data)
        from edgewise.edge.backends import open_model

        self._model = open_model(f, threads=1)
        s = face.size
        self.inputs = [_Tensor((None, s, s, face.channels))]
        self.outputs = [_Tensor((None, *self.output_shape[1:]))]
        self.output_shape = tuple(self.predict(np.zeros((1, s, s, face.channels), np.float32)).shape)
        self.outputs = [_Tensor((None, *self.output_shape[1:]))]

    def predict(self, x: np.ndarray, verbose: int = 0) -> np.ndarray:
        return _batched(self._model, x)

    def variants(self) -> tuple[list[str], str]:
        if self.precision == "int8":
            return ["onnx_int8"], ("the ONNX file is already quantized: kept as onnx_int8 (its own "
                                   "reference); no float variant")
        return ["onnx_float32", "onnx_int8"], ("TFLite variants need the Keras source (ONNX -> TFLite is "
                                               "not done here)")

    def converter(self) -> Callable[[str, str, np.ndarray], bytes]:
        from ..onnx import quantize_onnx_int8

        def convert(fmt: str, precision: str, calib: np.ndarray) -> bytes:
            if fmt != "onnx":
                raise ValueError(f"an ONNX source gives no {fmt} variant")
            if precision == "float32" or self.precision == "int8":
                return self.data
            return quantize_onnx_int8(self.data, calib)

        return convert


class TfliteSource(SourceModel):
    """A TFLite embedder, run in LiteRT; kept as it is (its own precision)."""

    kind = "tflite"

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        from edgewise.edge.backends import LiteRTModel

        self._model = LiteRTModel(path, threads=1)
        self.input_shape = self._model.input_shape
        if self._model.input_quantization:
            self.precision = "int8"
        else:
            dtypes = {d for op in self._model.op_types() for d in op["dtypes"]}
            self.precision = ("float16" if "float16" in dtypes
                              else "dynamic" if "int8" in dtypes else "float32")
        self.data = path.read_bytes()

    def adapt(self, face: FaceInput) -> None:
        if face.source_layout != "NHWC":
            raise ValueError(f"{self.path.name}: an NCHW TFLite model cannot be adapted here; convert the "
                             "source model (ONNX or Keras) instead")
        s = face.size
        self.inputs = [_Tensor((None, s, s, face.channels))]
        self.output_shape = tuple(self.predict(np.zeros((1, s, s, face.channels), np.float32)).shape)
        self.outputs = [_Tensor((None, *self.output_shape[1:]))]

    def predict(self, x: np.ndarray, verbose: int = 0) -> np.ndarray:
        return _batched(self._model, x)

    def variants(self) -> tuple[list[str], str]:
        own = f"tflite_{self.precision}"
        if self.precision == "int8":
            return [own], "the TFLite file is already int8: kept as it is (its own reference)"
        return [own], ("int8 needs the source model (Keras or ONNX) the TFLite file was made from: a TFLite "
                       f"{self.precision} model is kept as it is")

    def converter(self) -> Callable[[str, str, np.ndarray], bytes]:
        def convert(fmt: str, precision: str, calib: np.ndarray) -> bytes:
            if (fmt, precision) != ("tflite", self.precision):
                raise ValueError(f"a TFLite {self.precision} source gives no {fmt} {precision} variant")
            return self.data

        return convert


class KerasSource(SourceModel):
    """A Keras embedder: every variant through the converters (TFLite four ways, ONNX two)."""

    kind = "keras"

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        from ..tfenv import import_tensorflow

        import_tensorflow()
        import keras

        keras.utils.set_random_seed(0)  # as ``edgewise convert`` and every trainer seed
        try:
            self.model = keras.models.load_model(path, compile=False)
        except Exception as e:  # Keras raises ValueError, TypeError, OSError for unloadable files
            first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
            raise ValueError(f"{path}: cannot load Keras model ({first})") from None
        if len(self.model.inputs) != 1:
            raise ValueError(f"{path}: an embedder takes one input; this model has {len(self.model.inputs)}")
        self.input_shape = tuple(None if d is None else int(d) for d in self.model.inputs[0].shape)
        self.output_shape = tuple(None if d is None else int(d) for d in self.model.outputs[0].shape)

    def adapt(self, face: FaceInput) -> None:
        import keras

        if face.source_layout == "NCHW":
            s = face.size
            x = keras.Input((s, s, face.channels), name="input_nhwc")
            y = self.model(keras.layers.Permute((3, 1, 2), name="nhwc_to_nchw")(x))
            self.model = keras.Model(x, y, name=f"{self.model.name}_nhwc")
        self.inputs, self.outputs = self.model.inputs, self.model.outputs

    def predict(self, x: np.ndarray, verbose: int = 0) -> np.ndarray:
        return np.asarray(self.model.predict(x, verbose=0, batch_size=64), dtype=np.float32)

    def variants(self) -> tuple[list[str], str]:
        from ..package import ALL_VARIANTS

        return list(ALL_VARIANTS), ""


def _batched(model: Any, x: np.ndarray) -> np.ndarray:
    """Run ``x`` through an edge ``Model`` in the batch size its file fixes (32 when free)."""
    b = model.input_shape[0] or 32
    x = np.asarray(x, dtype=np.float32)
    return np.concatenate([model.predict(x[i : i + b]) for i in range(0, len(x), b)]) if len(x) else x


def open_source(path: str | Path) -> SourceModel:
    """The embedder file by its suffix (.onnx, .tflite, .keras, .h5); ValueError for anything else."""
    p = Path(path)
    kind = SUFFIXES.get(p.suffix.lower())
    if kind is None:
        raise ValueError(f"{p}: expected a .onnx, .tflite, .keras or .h5 embedder")
    if not p.is_file():
        raise ValueError(f"{p}: no such model file")
    src = {"onnx": OnnxSource, "tflite": TfliteSource, "keras": KerasSource}[kind](p)
    return src
