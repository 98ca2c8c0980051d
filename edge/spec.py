"""``BundleSpec``: the typed, validated form of ``bundle.json``.

Everything that changes what a model means (input size, colour order, normalization,
quantization, labels, thresholds) is read from here and nowhere else: no application keeps
a default of its own, so the device runs the model that was evaluated. Unknown keys are
refused with one line naming the key, so a typo in a hand-edited bundle cannot silently
fall back to a default.

>>> spec = BundleSpec.from_json(json.loads(Path("b.bundle/bundle.json").read_text()))  # doctest: +SKIP
>>> x = spec.input.normalization.apply(pixels)                   # doctest: +SKIP
>>> spec.thresholds.for_variant("tflite_int8")                   # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

__all__ = [
    "SCHEMA_VERSION", "BACKENDS", "PRECISIONS", "COLORS", "BundleError", "BundleSpec", "Input", "Output",
    "Normalization", "Thresholds", "Evaluation", "Variant", "FileEntry", "IDENTITY",
]

SCHEMA_VERSION = 1
BACKENDS = ("litert", "onnxruntime")
PRECISIONS = ("float32", "float16", "dynamic", "int8")
COLORS = ("gray", "rgb", "bgr", "none")
# Raw inputs, written explicitly: a bundle always says how its input is scaled.
IDENTITY = {"scale": 1.0, "offset": 0.0}


class BundleError(ValueError):
    """A bundle that cannot be trusted: missing, truncated or tampered file, bad JSON."""


def _check_keys(d: Mapping[str, Any], known: tuple[str, ...], where: str, what: str,
                required: tuple[str, ...] = (), label: str | None = None) -> None:
    """Refuse a missing ``required`` key (named as ``label``, default ``what``) or any unknown key."""
    for key in required:
        if key not in d:
            raise BundleError(f"{where}: {label or what} lacks '{key}'")
    unknown = [k for k in d if k not in known]
    if unknown:
        raise BundleError(f"{where}: unknown key '{unknown[0]}' in {what}; known: {', '.join(known)}")


def _obj(d: Any, where: str, what: str) -> Mapping[str, Any]:
    if not isinstance(d, Mapping):
        raise BundleError(f"{where}: {what} must be an object")
    return d


def _number(v: Any, where: str, what: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v):
        raise BundleError(f"{where}: {what} must be a finite number, got {v!r}")
    return float(v)


def _numbers(v: Any, where: str, what: str) -> float | tuple[float, ...]:
    if isinstance(v, (list, tuple)):
        return tuple(_number(x, where, what) for x in v)
    return _number(v, where, what)


@dataclass(frozen=True)
class Normalization:
    """How raw values become model input: ``x * scale + offset``, then ``(x - mean) / std``.

    Images use ``scale``/``offset`` (e.g. 1/255 and 0, or 1/127.5 and -1); feature vectors
    use per-feature ``mean``/``std``. ``of`` says what was standardized (documentation only).
    """

    scale: float = 1.0
    offset: float = 0.0
    mean: float | tuple[float, ...] | None = None
    std: float | tuple[float, ...] | None = None
    of: str | None = None

    KEYS = ("scale", "offset", "mean", "std", "of")

    @classmethod
    def from_json(cls, d: Any, where: str = "bundle.json") -> Normalization:
        d = _obj(d, where, "input.normalization")
        _check_keys(d, cls.KEYS, where, "input.normalization")
        if "scale" not in d and "mean" not in d:
            raise BundleError(f"{where}: input.normalization needs 'scale' (and 'offset') or 'mean' and "
                              f"'std'; raw inputs say {IDENTITY}")
        if ("mean" in d) != ("std" in d):
            raise BundleError(f"{where}: input.normalization needs both 'mean' and 'std'")
        scale = _number(d.get("scale", 1.0), where, "input.normalization.scale")
        if scale == 0:
            raise BundleError(f"{where}: input.normalization.scale must not be 0")
        std = None if d.get("std") is None else _numbers(d["std"], where, "input.normalization.std")
        if std is not None and np.any(np.asarray(std) == 0):
            raise BundleError(f"{where}: input.normalization.std must not contain 0")
        return cls(
            scale=scale,
            offset=_number(d.get("offset", 0.0), where, "input.normalization.offset"),
            mean=None if d.get("mean") is None else _numbers(d["mean"], where, "input.normalization.mean"),
            std=std,
            of=d.get("of"),
        )

    @cached_property
    def _f32(self) -> tuple[np.float32, np.float32, np.ndarray | None, np.ndarray | None]:
        mean = None if self.mean is None else np.asarray(self.mean, np.float32)
        std = None if self.std is None else np.asarray(self.std, np.float32)
        return np.float32(self.scale), np.float32(self.offset), mean, std

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Raw values (pixels 0..255, features) -> float32 model input. Integer input is
        computed in float32, float input in its own precision, then rounded to float32."""
        x = np.asarray(x)
        if x.dtype.kind != "f":
            x = x.astype(np.float32)
        scale, offset, mean, std = self._f32
        if self.scale != 1.0 or self.offset != 0.0:
            x = x * scale + offset
        if mean is not None:
            x = (x - mean) / std
        return x.astype(np.float32, copy=False)

    def invert(self, x: np.ndarray) -> np.ndarray:
        """Model input -> raw values, in float64 (e.g. stored evaluation inputs back to pixels)."""
        x = np.asarray(x, np.float64)
        if self.mean is not None:
            x = x * np.asarray(self.std, np.float64) + np.asarray(self.mean, np.float64)
        return (x - self.offset) / self.scale

    def to_json(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.KEYS if getattr(self, k) is not None}
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def _shape(v: Any, where: str, what: str) -> tuple[int | None, ...]:
    if not isinstance(v, (list, tuple)) or not all(d is None or (isinstance(d, int) and d > 0) for d in v):
        raise BundleError(f"{where}: {what}.shape must be a list of positive integers (null: any), got {v!r}")
    return tuple(v)


@dataclass(frozen=True)
class Input:
    """What the model takes: ``shape`` (batch first, ``None`` = any), ``dtype``, ``layout``
    ("NHWC", "NC"), ``color`` (gray, rgb, bgr, none), ``normalization`` (required),
    ``quantization`` (an int8 variant's input scale/zero-point, as stored under
    ``int8_quantization``) and ``tile`` (inspection: the tile side the model sees)."""

    shape: tuple[int | None, ...]
    dtype: str
    normalization: Normalization
    layout: str | None = None
    color: str | None = None
    quantization: dict[str, Any] | None = None
    tile: int | None = None

    KEYS = ("shape", "dtype", "layout", "color", "normalization", "int8_quantization", "tile")

    @classmethod
    def from_json(cls, d: Any, where: str = "bundle.json") -> Input:
        d = _obj(d, where, "input")
        _check_keys(d, cls.KEYS, where, "input", required=("shape", "dtype"), label="input spec")
        if "normalization" not in d:
            raise BundleError(f"{where}: input spec lacks 'normalization' (raw inputs say {IDENTITY})")
        color = d.get("color")
        if color is not None and color not in COLORS:
            raise BundleError(f"{where}: input.color '{color}' is not one of {', '.join(COLORS)}")
        return cls(
            shape=_shape(d["shape"], where, "input"),
            dtype=str(d["dtype"]),
            normalization=Normalization.from_json(d["normalization"], where),
            layout=d.get("layout"),
            color=color,
            quantization=d.get("int8_quantization"),
            tile=d.get("tile"),
        )

    @property
    def hwc(self) -> tuple[int, int, int]:
        """(height, width, channels) of an NHWC image input."""
        if len(self.shape) != 4 or None in self.shape[1:]:
            raise BundleError(f"input shape {list(self.shape)} is not a fixed-size NHWC image")
        _, h, w, c = self.shape
        return int(h), int(w), int(c)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Output:
    """What the model gives: ``shape``, ``dtype``, ``kind`` (probabilities, logit, distance,
    embedding, reconstruction), ``meaning`` (prose), ``score`` (a name from ``edge.evaluate.SCORES``)
    and ``head`` (inspection's nearest-good head: kind, size, per-variant bank files)."""

    shape: tuple[int | None, ...]
    dtype: str
    kind: str | None = None
    meaning: str | None = None
    score: str | None = None
    head: dict[str, Any] | None = None

    KEYS = ("shape", "dtype", "kind", "meaning", "score", "head")

    @classmethod
    def from_json(cls, d: Any, where: str = "bundle.json") -> Output:
        d = _obj(d, where, "output")
        _check_keys(d, cls.KEYS, where, "output", required=("shape", "dtype"), label="output spec")
        return cls(shape=_shape(d["shape"], where, "output"), dtype=str(d["dtype"]), kind=d.get("kind"),
                   meaning=d.get("meaning"), score=d.get("score"), head=d.get("head"))


@dataclass(frozen=True)
class Thresholds:
    """Decision thresholds: ``decision`` (bundle-wide), ``per_variant`` (calibrated on each
    variant's own scores, which quantization shifts) and app-specific ``values`` (face's
    ``unknown``/``unknown_by_tta``, vibration's ``baseline``, calibration targets)."""

    decision: float | None = None
    per_variant: dict[str, float] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)
    where: str = field(default="bundle.json", compare=False, repr=False)

    @classmethod
    def from_json(cls, d: Any, where: str = "bundle.json") -> Thresholds:
        d = dict(_obj(d or {}, where, "thresholds"))
        dec = d.pop("decision", None)
        per = _obj(d.pop("per_variant", None) or {}, where, "thresholds.per_variant")
        return cls(
            decision=None if dec is None else _number(dec, where, "thresholds.decision"),
            per_variant={k: _number(v, where, f"thresholds.per_variant.{k}") for k, v in per.items()},
            values=d,
            where=where,
        )

    def for_variant(self, variant: str) -> float:
        """The decision threshold calibrated for ``variant``, else the bundle-wide one."""
        if variant in self.per_variant:
            return self.per_variant[variant]
        if self.decision is None:
            raise BundleError(f"{self.where}: thresholds has no 'decision' (nor per_variant '{variant}')")
        return self.decision

    def get(self, key: str, default: Any = None) -> Any:
        """An app-specific threshold value (``unknown``, ``baseline``, ``far_target``, ...)."""
        return self.values.get(key, default)


@dataclass(frozen=True)
class Evaluation:
    """The stored evaluation set (``eval/x.npy``, Keras outputs, labels) and its decision rule:
    ``decision`` (argmax, threshold, none), ``score`` (a name from ``edge.evaluate.SCORES``),
    ``threshold`` and ``metric`` (accuracy, auroc, pair_auroc, ...)."""

    samples: int
    x: str
    reference: str
    y: str | None = None
    decision: str = "argmax"
    score: str = "last"
    threshold: float | None = None
    metric: str | None = None

    KEYS = ("samples", "x", "reference", "y", "decision", "score", "threshold", "metric")

    @classmethod
    def from_json(cls, d: Any, where: str = "bundle.json") -> Evaluation:
        d = _obj(d, where, "evaluation")
        _check_keys(d, cls.KEYS, where, "evaluation", required=("samples", "x", "reference"))
        thr = d.get("threshold")
        return cls(samples=int(d["samples"]), x=d["x"], reference=d["reference"], y=d.get("y"),
                   decision=d.get("decision", "argmax"), score=d.get("score", "last"),
                   threshold=None if thr is None else _number(thr, where, "evaluation.threshold"),
                   metric=d.get("metric"))


@dataclass(frozen=True)
class Variant:
    """One converted model inside a bundle, e.g. ``tflite_int8``."""

    name: str
    file: str
    backend: str
    precision: str
    input_quantization: dict[str, Any] | None = None
    output_quantization: dict[str, Any] | None = None
    parity: dict[str, Any] = field(default_factory=dict)
    flagged: bool = False

    KEYS = ("file", "backend", "precision", "input_quantization", "output_quantization", "parity", "flagged")

    @classmethod
    def from_json(cls, name: str, d: Any, where: str) -> Variant:
        if not isinstance(d, Mapping):
            raise BundleError(f"{where}: variant '{name}' must be an object")
        for key in ("file", "backend", "precision"):
            if not isinstance(d.get(key), str):
                raise BundleError(f"{where}: variant '{name}' lacks string field '{key}'")
        _check_keys(d, cls.KEYS, where, f"variant '{name}'")
        if d["backend"] not in BACKENDS:
            raise BundleError(
                f"{where}: variant '{name}' has backend '{d['backend']}', expected one of {BACKENDS}"
            )
        if d["precision"] not in PRECISIONS:
            raise BundleError(
                f"{where}: variant '{name}' has precision '{d['precision']}', expected one of {PRECISIONS}"
            )
        return cls(name=name, file=d["file"], backend=d["backend"], precision=d["precision"],
                   input_quantization=d.get("input_quantization"),
                   output_quantization=d.get("output_quantization"),
                   parity=dict(d.get("parity") or {}), flagged=bool(d.get("flagged", False)))

    def to_json(self) -> dict[str, Any]:
        """The ``variants`` entry in bundle.json (its name is the key)."""
        return {k: getattr(self, k) for k in self.KEYS}


@dataclass(frozen=True)
class FileEntry:
    """Size and sha256 of one file in the bundle, checked before anything runs."""

    sha256: str
    size: int


_REQUIRED: dict[str, type] = {
    "schema_version": int, "name": str, "task": str, "app": str, "created": str, "edgewise_version": str,
    "input": dict, "output": dict, "variants": dict, "files": dict,
}
_OPTIONAL: dict[str, type] = {"labels": list, "thresholds": dict, "config": dict, "metrics": dict,
                              "evaluation": dict}


@dataclass(frozen=True)
class BundleSpec:
    """The whole of ``bundle.json``, validated. ``config`` holds the application's settings
    (window length, tiling, alarm debounce) as written by its trainer; ``metrics`` what
    training and conversion measured."""

    schema_version: int
    name: str
    task: str
    app: str
    created: str
    edgewise_version: str
    input: Input
    output: Output
    variants: dict[str, Variant]
    files: dict[str, FileEntry]
    labels: tuple[str, ...] = ()
    thresholds: Thresholds = field(default_factory=Thresholds)
    config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    evaluation: Evaluation | None = None

    @classmethod
    def from_json(cls, meta: Any, where: str = "bundle.json") -> BundleSpec:
        """Validate a parsed ``bundle.json``; raises ``BundleError`` naming the first problem."""
        if not isinstance(meta, Mapping):
            raise BundleError(f"{where}: top level must be an object")
        for key, typ in _REQUIRED.items():
            if key not in meta:
                raise BundleError(f"{where}: required field '{key}' is missing")
            if not isinstance(meta[key], typ) or (typ is int and isinstance(meta[key], bool)):
                raise BundleError(f"{where}: field '{key}' must be {typ.__name__}")
        _check_keys(meta, (*_REQUIRED, *_OPTIONAL), where, "bundle.json")
        for key, typ in _OPTIONAL.items():
            if meta.get(key) is not None and not isinstance(meta[key], typ):
                raise BundleError(f"{where}: field '{key}' must be {typ.__name__}")
        if meta["schema_version"] > SCHEMA_VERSION:
            raise BundleError(
                f"{where}: schema_version {meta['schema_version']} is newer than this edgewise "
                f"understands ({SCHEMA_VERSION}); upgrade edgewise"
            )
        inp = Input.from_json(meta["input"], where)
        out = Output.from_json(meta["output"], where)
        variants = {name: Variant.from_json(name, d, where) for name, d in meta["variants"].items()}
        if not variants:
            raise BundleError(f"{where}: bundle has no model variants")
        files = {rel: _file_entry(rel, d, where) for rel, d in meta["files"].items()}
        ev = meta.get("evaluation")
        return cls(
            schema_version=meta["schema_version"], name=meta["name"], task=meta["task"], app=meta["app"],
            created=meta["created"], edgewise_version=meta["edgewise_version"], input=inp, output=out,
            variants=variants, files=files, labels=tuple(str(v) for v in meta.get("labels") or ()),
            thresholds=Thresholds.from_json(meta.get("thresholds"), where),
            config=dict(meta.get("config") or {}), metrics=dict(meta.get("metrics") or {}),
            evaluation=None if ev is None else Evaluation.from_json(ev, where),
        )


def _file_entry(rel: str, d: Any, where: str) -> FileEntry:
    if not (isinstance(d, Mapping) and isinstance(d.get("sha256"), str) and isinstance(d.get("size"), int)):
        raise BundleError(f"{where}: file entry '{rel}' needs 'sha256' (string) and 'size' (integer)")
    return FileEntry(sha256=d["sha256"], size=d["size"])
