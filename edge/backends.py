"""One ``Model`` interface over LiteRT and ONNX Runtime.

Application code calls ``model.predict(x)`` with float input and gets float output, whatever
the backend or precision: an int8 model's input is quantized and its output dequantized here,
from the scale and zero-point the model file declares (cross-checked against the bundle).
The runtime library is imported inside ``_load`` only, so importing this module is cheap and
never pulls in TensorFlow unless LiteRT itself is missing and TensorFlow is the last resort.

>>> m = open_model("model_int8.tflite", threads=2)   # doctest: +SKIP
>>> m.predict(np.zeros((1, 16), np.float32)).shape  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import numpy as np

from .bundle import Bundle, BundleError
from .progress import native_stderr

__all__ = [
    "Model", "LiteRTModel", "OnnxModel", "open_model", "load_model", "check_tensors", "litert_interpreter",
    "runtime_missing",
]

LITERT_MISSING = "LiteRT not installed: pip install ai-edge-litert (or tflite-runtime on Python <= 3.11)"
ONNX_MISSING = "ONNX Runtime not installed: pip install 'edgewise[onnx]'"


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing, or a module set to None
        return False


def runtime_missing(backend: str) -> str | None:
    """Why ``backend`` cannot run on this machine ("ONNX Runtime not installed: pip ..."), or None.

    Looks the runtime up without importing it, so a report can skip a variant (or a command
    refuse one the user asked for) before any work is done.
    """
    if backend == "onnxruntime":
        return None if _installed("onnxruntime") else ONNX_MISSING
    if backend == "litert":
        found = any(_installed(m) for m in ("ai_edge_litert", "tflite_runtime", "tensorflow"))
        return None if found else LITERT_MISSING
    return None


def litert_interpreter():
    """The LiteRT ``Interpreter`` class: ai-edge-litert, then tflite_runtime, then tf.lite."""
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import Interpreter  # type: ignore[import-not-found]

        return Interpreter
    except ImportError:
        pass
    try:  # last resort, on a workstation only: the device never has TensorFlow
        return importlib.import_module("tensorflow").lite.Interpreter
    except ImportError:
        raise ImportError(LITERT_MISSING) from None


# np.iinfo costs microseconds per call: on the per-frame path that is measurable
_LIMITS = {
    np.dtype(np.int8): (np.float32(-128), np.float32(127)),
    np.dtype(np.uint8): (np.float32(0), np.float32(255)),
}


def _quantize(x: np.ndarray, q: dict[str, Any], dtype: np.dtype) -> np.ndarray:
    """float -> int8/uint8 with the model's scale and zero-point (round half to even, clip).

    Works in place on one float32 temporary: on a small model the boundary conversions cost
    more than the int8 kernels save, so every avoided copy shows in the latency.
    """
    lo, hi = _LIMITS[np.dtype(dtype)]
    v = np.multiply(x, np.float32(1.0 / q["scale"]), dtype=np.float32)
    v += np.float32(q["zero_point"])
    np.rint(v, out=v)
    np.maximum(v, lo, out=v)  # np.clip costs twice as much on small arrays
    np.minimum(v, hi, out=v)
    return v.astype(dtype)


def _dequantize(y: np.ndarray, q: dict[str, Any]) -> np.ndarray:
    v = y.astype(np.float32)
    v -= np.float32(q["zero_point"])
    v *= np.float32(q["scale"])
    return v


class Model(ABC):
    """Float in, float out. Subclasses load one runtime each; ``predict`` handles batches."""

    backend: str = ""

    def __init__(self, path: str | Path, *, threads: int | None = None) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: model file not found")
        self.threads = threads or max(1, (os.cpu_count() or 1))
        self.input_shape: tuple = ()
        self.input_dtype: np.dtype = np.dtype(np.float32)
        self.input_quantization: dict[str, Any] | None = None
        self.output_quantization: list[dict[str, Any] | None] = []
        # every output's shape (None = any) and stored dtype, read once for the load-time check
        self.output_shapes: list[tuple[int | None, ...]] = []
        self.output_dtypes: list[np.dtype] = []
        self._load()
        # the common case (every non-batch dimension fixed) is checked with one tuple compare
        self._fixed_shape = tuple(self.input_shape[1:]) if None not in self.input_shape[1:] else None

    @abstractmethod
    def _load(self) -> None: ...

    @abstractmethod
    def predict_all(self, x: np.ndarray) -> list[np.ndarray]:
        """Run one batch, return every output (dequantized to float32)."""

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Run one batch and return the first output."""
        return self.predict_all(x)[0]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.predict(x)

    def _check_input(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        if x.shape[1:] != self._fixed_shape and (
            x.ndim != len(self.input_shape)
            or any(w is not None and w != g for w, g in zip(self.input_shape[1:], x.shape[1:], strict=False))
        ):
            raise ValueError(
                f"{self.path.name}: input shape {tuple(x.shape)} does not match the model's "
                f"{tuple(self.input_shape)}"
            )
        if x.dtype.kind == "f" and not np.isfinite(x).all():
            raise ValueError(f"{self.path.name}: input contains NaN or infinite values")
        return x

    def close(self) -> None:
        """Release the runtime; a closed model must not be used again."""

    def __enter__(self) -> Model:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LiteRTModel(Model):
    """A ``.tflite`` model in LiteRT, XNNPACK on the CPU with ``threads`` threads."""

    backend = "litert"

    def _load(self) -> None:
        Interpreter = litert_interpreter()
        try:
            # LiteRT announces its XNNPACK delegate from C++ on fd 2 at the first allocation, once
            # per model opened; the line is kept here (``runtime_log``) and shown only with -v
            with native_stderr() as self.runtime_log:
                self._it = Interpreter(model_path=str(self.path), num_threads=self.threads)
                self._it.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ValueError(f"{self.path}: not a loadable TFLite model ({msg})") from None
        inp = self._it.get_input_details()[0]
        self._inp = inp
        self._outs = self._it.get_output_details()
        sig = inp.get("shape_signature", inp["shape"])
        self.input_shape = tuple(None if d == -1 else int(d) for d in sig)
        self.input_dtype = np.dtype(inp["dtype"])
        self.input_quantization = self._qparams(inp)
        self.output_quantization = [self._qparams(o) for o in self._outs]
        self.output_shapes = [tuple(None if d == -1 else int(d) for d in o.get("shape_signature", o["shape"]))
                              for o in self._outs]
        self.output_dtypes = [np.dtype(o["dtype"]) for o in self._outs]
        self._batch = int(inp["shape"][0])

    @staticmethod
    def _qparams(detail: dict) -> dict[str, Any] | None:
        if np.dtype(detail["dtype"]) not in (np.dtype(np.int8), np.dtype(np.uint8)):
            return None
        scale, zp = detail["quantization"]
        return {"scale": float(scale), "zero_point": int(zp), "dtype": np.dtype(detail["dtype"]).name}

    def predict_all(self, x: np.ndarray) -> list[np.ndarray]:
        x = self._check_input(x)
        if x.shape[0] != self._batch:
            self._it.resize_tensor_input(self._inp["index"], list(x.shape))
            self._it.allocate_tensors()
            self._batch = x.shape[0]
            self._outs = self._it.get_output_details()
        if self.input_quantization:
            x = _quantize(x.astype(np.float32), self.input_quantization, self.input_dtype)
        else:
            x = x.astype(self.input_dtype, copy=False)
        self._it.set_tensor(self._inp["index"], x)
        self._it.invoke()
        outs = []
        for o, q in zip(self._outs, self.output_quantization, strict=True):
            y = self._it.get_tensor(o["index"])
            outs.append(_dequantize(y, q) if q else y.astype(np.float32, copy=True))
        return outs

    def op_types(self, graph: bool = False) -> list[dict[str, Any]]:
        """Op names with their tensor dtypes: used to report ops that are not int8.

        ``graph``: the ops as the file holds them, read without the XNNPACK delegate (which
        otherwise stands in for the ops it took as one DELEGATE op with the boundary's dtypes).
        """
        it = self._it
        if graph:
            mod = sys.modules[type(it).__module__]
            resolver = getattr(mod, "OpResolverType", None)
            if resolver is None:
                raise ValueError("this LiteRT has no OpResolverType: cannot list ops without the delegate")
            it = type(it)(model_path=str(self.path), num_threads=1,
                          experimental_op_resolver_type=resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
            it.allocate_tensors()
        tensors = {t["index"]: t for t in it.get_tensor_details()}
        ops = []
        for op in it._get_ops_details():  # noqa: SLF001 - the only public-ish view of ops
            dtypes = [
                np.dtype(tensors[i]["dtype"]).name
                for i in list(op["inputs"]) + list(op["outputs"])
                if i >= 0 and i in tensors
            ]
            outs = [np.dtype(tensors[i]["dtype"]).name for i in op["outputs"] if i >= 0 and i in tensors]
            ops.append({"op": op["op_name"], "dtypes": dtypes, "out_dtypes": outs})
        return ops

    def close(self) -> None:
        self._it = None


class OnnxModel(Model):
    """An ``.onnx`` model in ONNX Runtime on the CPU with ``threads`` intra-op threads."""

    backend = "onnxruntime"

    def _load(self) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise ImportError(ONNX_MISSING) from None
        so = ort.SessionOptions()
        so.intra_op_num_threads = self.threads
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        try:
            self._sess = ort.InferenceSession(
                str(self.path), sess_options=so, providers=["CPUExecutionProvider"]
            )
        except Exception as e:  # onnxruntime raises its own exception types
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ValueError(f"{self.path}: not a loadable ONNX model ({msg})") from None
        inp = self._sess.get_inputs()[0]
        self._in_name = inp.name
        self.input_shape = tuple(d if isinstance(d, int) else None for d in inp.shape)
        types = {"tensor(float)": np.float32, "tensor(int8)": np.int8, "tensor(uint8)": np.uint8,
                 "tensor(float16)": np.float16, "tensor(double)": np.float64, "tensor(int32)": np.int32,
                 "tensor(int64)": np.int64}
        self.input_dtype = np.dtype(types.get(inp.type, np.float32))
        outs = self._sess.get_outputs()
        self.output_quantization = [None for _ in outs]
        self.output_shapes = [tuple(d if isinstance(d, int) else None for d in o.shape) for o in outs]
        self.output_dtypes = [np.dtype(types.get(o.type, np.float32)) for o in outs]

    def predict_all(self, x: np.ndarray) -> list[np.ndarray]:
        x = self._check_input(x).astype(self.input_dtype, copy=False)
        return [np.asarray(y, dtype=np.float32) for y in self._sess.run(None, {self._in_name: x})]

    def close(self) -> None:
        self._sess = None


def open_model(path: str | Path, *, backend: str | None = None, threads: int | None = None) -> Model:
    """Open a model file; the backend follows the file suffix unless named."""
    path = Path(path)
    backend = backend or {".tflite": "litert", ".onnx": "onnxruntime"}.get(path.suffix)
    if backend == "litert":
        return LiteRTModel(path, threads=threads)
    if backend == "onnxruntime":
        return OnnxModel(path, threads=threads)
    raise ValueError(f"{path}: unknown model type '{path.suffix}', expected .tflite or .onnx")


def load_model(bundle: Bundle, variant: str | None = None, *, threads: int | None = None) -> Model:
    """Open a bundle's variant and check its tensors against ``bundle.json`` (``check_tensors``).

    A model file that cannot be opened, or whose tensors disagree with the declared spec, is
    a ``BundleError`` naming the variant, here, once: not an error on every frame.
    """
    v = bundle.variant(variant)
    try:
        model = open_model(bundle.file(v.file), backend=v.backend, threads=threads)
    except (ValueError, FileNotFoundError) as e:
        raise BundleError(f"{bundle.path}: variant '{v.name}': {str(e).splitlines()[0]}") from None
    try:
        check_tensors(model, bundle, v.name)
    except BaseException:
        model.close()
        raise
    return model


def _same_quant(declared: dict[str, Any] | None, actual: dict[str, Any] | None) -> bool:
    if declared is None or actual is None:
        return declared is None and actual is None
    return bool(np.isclose(declared["scale"], actual["scale"], rtol=1e-6)) and (
        declared["zero_point"] == actual["zero_point"])


def _shapes_agree(model: tuple[int | None, ...], declared: tuple[int | None, ...]) -> bool:
    """Same rank, and every non-batch dimension fixed on both sides is equal."""
    return len(model) == len(declared) and all(
        m is None or d is None or m == d for m, d in zip(model[1:], declared[1:], strict=True))


def check_tensors(model: Model, bundle: Bundle, variant: str) -> None:
    """Refuse a model whose tensors disagree with bundle.json: input and output shape, input
    dtype against quantization, output count, and both quantizations the variant declares.

    A different model re-checksummed into a bundle (or a spec edited by hand) would otherwise
    load and then fail, or answer nonsense, on every frame while the service looks healthy.
    """
    v = bundle.variants[variant]
    spec = bundle.spec
    where = f"{bundle.path}: variant '{variant}' ({v.file})"
    if not _shapes_agree(tuple(model.input_shape), spec.input.shape):
        raise BundleError(f"{where}: model input shape {_dims(model.input_shape)} disagrees with "
                          f"input.shape {_dims(spec.input.shape)}")
    if not _same_quant(v.input_quantization, model.input_quantization):
        raise BundleError(f"{where}: input quantization {model.input_quantization} does not match "
                          f"bundle.json {v.input_quantization}")
    if model.input_quantization is None and model.input_dtype != np.dtype(spec.input.dtype):
        raise BundleError(f"{where}: model input dtype {model.input_dtype} disagrees with input.dtype "
                          f"{spec.input.dtype} (and the model declares no quantization)")
    n_out = len(model.output_shapes)
    if n_out != 1:
        raise BundleError(f"{where}: model has {n_out} outputs, bundle.json describes one (output)")
    if not _shapes_agree(model.output_shapes[0], spec.output.shape):
        raise BundleError(f"{where}: model output shape {_dims(model.output_shapes[0])} disagrees with "
                          f"output.shape {_dims(spec.output.shape)}")
    out_q = model.output_quantization[0] if model.output_quantization else None
    if not _same_quant(v.output_quantization, out_q):
        raise BundleError(f"{where}: output quantization {out_q} does not match bundle.json "
                          f"{v.output_quantization}")
    if out_q is None and model.output_dtypes[0].kind != "f":
        raise BundleError(f"{where}: model output dtype {model.output_dtypes[0]} is not a float and has no "
                          f"quantization; output.dtype is {spec.output.dtype}")


def _dims(shape: tuple[int | None, ...] | list[int | None]) -> str:
    return "[" + ", ".join("null" if d is None else str(d) for d in shape) + "]"
