"""Convert a Keras model into every variant, check each against Keras, write one bundle.

``build_bundle`` is the one path from a trained model to the device: TFLite float32,
float16, dynamic range and int8, ONNX float32 and int8; a parity row for each on held-out
samples; the metadata the runtime needs; a small evaluation set (inputs, labels, Keras
outputs) so the bundle can be re-checked anywhere later (``edgewise verify`` on arm64).
"""

from __future__ import annotations

import contextlib
import io
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgewise.edge import progress as progress_mod
from edgewise.edge.backends import open_model
from edgewise.edge.bundle import BundleWriter, Variant, reopen
from edgewise.edge.jsonenc import dumps
from edgewise.edge.progress import log, native_stderr, progress
from edgewise.edge.spec import IDENTITY, Input, Output

from .parity import DEFAULT_TOLERANCES, Decider, Tolerance, compare, parity_markdown

__all__ = ["ALL_VARIANTS", "ConversionSpec", "BuildResult", "Report", "build_bundle"]

# name -> (format, precision)
ALL_VARIANTS: dict[str, tuple[str, str]] = {
    "tflite_float32": ("tflite", "float32"),
    "tflite_float16": ("tflite", "float16"),
    "tflite_dynamic": ("tflite", "dynamic"),
    "tflite_int8": ("tflite", "int8"),
    "onnx_float32": ("onnx", "float32"),
    "onnx_int8": ("onnx", "int8"),
}
EVAL_SAMPLES = 256


@dataclass
class ConversionSpec:
    """What the bundle says about the model, besides the model files themselves.

    ``input`` adds to the derived shape/dtype: layout ("NHWC", "NC", ...), color ("gray",
    "rgb", "bgr", "none") and normalization, which is required (e.g. ``{"scale": 1/255,
    "offset": 0}``; ``None`` for raw inputs, stored as ``{"scale": 1, "offset": 0}``): the
    device applies exactly what is stored and has no default of its own.
    ``config`` carries the application's settings (window length, tile size, ...).
    """

    name: str
    task: str
    app: str = "generic"
    input: dict[str, Any] = field(default_factory=dict)
    output: dict[str, Any] = field(default_factory=dict)
    labels: list[str] = field(default_factory=list)
    thresholds: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    decider: Decider = field(default_factory=Decider)
    tolerances: dict[str, Tolerance] = field(default_factory=lambda: dict(DEFAULT_TOLERANCES))


# what a ``build_bundle(report=...)`` callback returns: report files, metrics for bundle.json
Report = tuple[dict[str, bytes], dict[str, Any]]


@dataclass
class BuildResult:
    path: Path
    parity: list[dict[str, Any]]

    @property
    def flagged(self) -> list[str]:
        return [r["variant"] for r in self.parity if r.get("flagged")]


def _convert(model: Any, fmt: str, precision: str, calib: np.ndarray, onnx_f32: bytes | None):
    from . import onnx as onnx_conv
    from . import tflite as tflite_conv

    if fmt == "tflite":
        return tflite_conv.to_tflite(model, precision, calib)
    if precision == "float32":
        return onnx_conv.to_onnx(model)
    return onnx_conv.quantize_onnx_int8(onnx_f32 or onnx_conv.to_onnx(model), calib)


def build_bundle(
    model: Any,
    out: str | Path,
    spec: ConversionSpec,
    *,
    calib_x: np.ndarray,
    eval_x: np.ndarray,
    eval_y: np.ndarray | None = None,
    variants: list[str] | None = None,
    threads: int = 2,
    zip_path: str | Path | None = None,
    quiet: bool = False,
    report: Callable[[list[dict[str, Any]]], Report] | None = None,
    before_seal: Callable[[BundleWriter], None] | None = None,
    convert: Callable[[str, str, np.ndarray], bytes] | None = None,
) -> BuildResult:
    """Convert ``model`` (Keras) to ``variants`` and write a verified bundle at ``out``.

    ``report(parity_rows)`` returns the trainer's report files (bundle-relative path -> bytes)
    and metrics added to ``bundle.json``. It runs after the parity rows exist and before the
    bundle is sealed, so a bundle is sealed once, complete, with its report.
    ``before_seal(writer)`` runs last, with every variant file written and the metadata filled:
    for what depends on the converted variants themselves (a threshold chosen on the int8 model
    the device runs, per-variant files), which then needs no second seal.
    ``convert(format, precision, calib_x)`` replaces the Keras conversion for a model that is
    already a file (a pretrained ONNX or TFLite embedder): ``model`` then only needs
    ``predict(x, verbose=0)`` and ``inputs[0].shape`` / ``outputs[0].shape``, and the parity
    reference is that source model.
    """
    names = list(variants or ALL_VARIANTS)
    unknown = [n for n in names if n not in ALL_VARIANTS]
    if unknown:
        raise ValueError(f"unknown variants {unknown}; valid: {', '.join(ALL_VARIANTS)}")
    eval_x = np.asarray(eval_x, dtype=np.float32)
    calib_x = np.asarray(calib_x, dtype=np.float32)
    if not np.isfinite(eval_x).all() or not np.isfinite(calib_x).all():
        raise ValueError("calibration or evaluation samples contain NaN or infinite values")
    spec_input = _input_spec(spec)
    ref = np.asarray(model.predict(eval_x, verbose=0), dtype=np.float32)

    w = BundleWriter(out, name=spec.name, task=spec.task, app=spec.app)
    decider = spec.decider
    if decider.kind == "threshold" and decider.threshold is None and "decision" in spec.thresholds:
        decider.threshold = float(spec.thresholds["decision"])
    rows: list[dict[str, Any]] = []
    onnx_f32: bytes | None = None
    in_quant = None
    for name in progress(names, desc="convert", quiet=quiet):
        fmt, precision = ALL_VARIANTS[name]
        t0 = time.monotonic()
        chatter = io.StringIO()  # TF prints its SavedModel signature; keep stdout for --json
        try:
            with contextlib.redirect_stdout(chatter), native_stderr(), warnings.catch_warnings():
                # int8 with float statistics from the representative set, by design (see .tflite)
                if not progress_mod.VERBOSE:
                    warnings.filterwarnings("ignore", message="Statistics for quantized inputs were expected")
                data = (convert(fmt, precision, calib_x) if convert is not None
                        else _convert(model, fmt, precision, calib_x, onnx_f32))
        except Exception:
            sys.stderr.write(chatter.getvalue()[-4000:])
            raise
        seconds = time.monotonic() - t0
        if name == "onnx_float32":
            onnx_f32 = data
        fname = f"model_{precision}.{fmt}"
        path = w.add_bytes(fname, data)
        m = open_model(path, threads=threads)
        step = m.input_shape[0] or 32  # a pretrained file may fix its batch (often to 1)
        outs = np.concatenate([m.predict(eval_x[i : i + step]) for i in range(0, len(eval_x), step)])
        row = compare(name, precision, ref, outs, eval_x, eval_y, decider, spec.tolerances[precision])
        row.update(size_bytes=len(data), convert_seconds=round(seconds, 2))
        if fmt == "tflite" and precision == "int8":
            from .tflite import non_int8_ops

            row["non_int8_ops"] = non_int8_ops(str(path))
            if row["non_int8_ops"]:
                log(f"warning: {name} keeps float ops: {', '.join(row['non_int8_ops'])}", quiet=quiet)
            in_quant = m.input_quantization
        rows.append(row)
        w.add_variant(
            Variant(
                name=name,
                file=fname,
                backend=m.backend,
                precision=precision,
                input_quantization=m.input_quantization,
                output_quantization=m.output_quantization[0],
                parity={k: v for k, v in row.items() if k not in ("variant", "precision")},
                flagged=row["flagged"],
            )
        )
        m.close()

    shape = [None, *[int(d) for d in model.inputs[0].shape[1:]]]
    w.meta["input"] = {"shape": shape, "dtype": "float32", **spec_input}
    if in_quant:
        w.meta["input"]["int8_quantization"] = in_quant
    out_shape = [None, *[int(d) for d in model.outputs[0].shape[1:]]]
    w.meta["output"] = {"shape": out_shape, "dtype": "float32", **spec.output}
    w.meta.update(
        labels=list(spec.labels),
        thresholds=dict(spec.thresholds),
        config=dict(spec.config),
        metrics={**spec.metrics, "parity": {r["variant"]: _brief(r) for r in rows}},
    )
    n = min(len(eval_x), EVAL_SAMPLES)
    _save_npy(w, "eval/x.npy", eval_x[:n])
    _save_npy(w, "eval/keras.npy", ref[:n])
    if eval_y is not None:
        _save_npy(w, "eval/y.npy", np.asarray(eval_y)[:n])
    w.meta["evaluation"] = {
        "samples": n,
        "x": "eval/x.npy",
        "reference": "eval/keras.npy",
        "y": "eval/y.npy" if eval_y is not None else None,
        "decision": decider.kind,
        "score": decider.score,
        "threshold": decider.threshold,
        "metric": decider.name or None,
    }
    w.add_bytes("report/parity.md", parity_markdown(rows).encode())
    w.add_bytes("report/parity.json", dumps(rows, indent=2).encode())
    if report is not None:
        files, metrics = report(rows)
        for rel, data in files.items():
            w.add_bytes(rel, data)
        w.meta["metrics"].update(metrics)
    if before_seal is not None:
        before_seal(w)
    root = w.finish(zip_path)
    return BuildResult(path=root, parity=rows)


def _input_spec(spec: ConversionSpec) -> dict[str, Any]:
    """``spec.input`` with its normalization explicit, checked before any conversion work."""
    if "normalization" not in spec.input:
        raise ValueError(f"{spec.name}: ConversionSpec.input needs 'normalization' "
                         f"(None for raw inputs, stored as {IDENTITY})")
    d = dict(spec.input)
    d["normalization"] = dict(IDENTITY) if d["normalization"] is None else d["normalization"]
    Input.from_json({"shape": [None], "dtype": "float32", **d}, f"bundle '{spec.name}'")
    Output.from_json({"shape": [None], "dtype": "float32", **spec.output}, f"bundle '{spec.name}'")
    return d


def _brief(row: dict[str, Any]) -> dict[str, Any]:
    keys = ("max_abs_diff", "decision_agreement", "metric_variant", "metric_delta", "flagged")
    return {k: row.get(k) for k in keys}


def _save_npy(w: BundleWriter, rel: str, arr: np.ndarray) -> None:
    with tempfile.NamedTemporaryFile(suffix=".npy", delete=False) as f:
        np.save(f, arr)
    w.add_file(rel, f.name)
    Path(f.name).unlink()


def add_report(bundle: str | Path, files: dict[str, bytes], metrics: dict[str, Any]) -> None:
    """Add report files and metrics to an existing bundle and re-seal its checksums."""
    w = reopen(bundle)
    for rel, data in files.items():
        w.add_bytes(rel, data)
    w.meta.setdefault("metrics", {}).update(metrics)
    w.finish()
