"""``BundleSpec``: the typed, validated form of ``bundle.json``, and its schema.

(One module on purpose: it is the schema of one document, and the shipped
``bundle.schema.json`` is generated from exactly these models; split, the document's rules
would be read in several places.)

Everything that changes what a model means (input size, colour order, normalization,
quantization, labels, thresholds) is read from here and nowhere else: no application keeps
a default of its own, so the device runs the model that was evaluated.

The classes are pydantic models: every field has a type, a range and a description, unknown
keys are refused, and the JSON Schema shipped beside this module (``bundle.schema.json``) is
generated from them, so the document, the check and the published schema cannot drift apart.
A bundle travels between machines and may have been edited or forged, so the check is
strict (no ``"8"`` for ``8``, no ``true`` for ``1``) and every refusal is ONE line naming the
field (``b.bundle/bundle.json: input.shape[1]: must be greater than or equal to 1, got 0``);
callers only ever see ``BundleError``.

>>> spec = BundleSpec.from_json(json.loads(Path("b.bundle/bundle.json").read_text()))  # doctest: +SKIP
>>> x = spec.input.normalization.apply(pixels)                   # doctest: +SKIP
>>> spec.thresholds.for_variant("tflite_int8")                   # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    JsonValue,
    PrivateAttr,
    Tag,
    ValidationError,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema
from typing_extensions import TypedDict

from .evaluate import DECISIONS, SCORES

__all__ = [
    "SCHEMA_VERSION", "BACKENDS", "PRECISIONS", "COLORS", "BundleError", "BundleSpec", "Input", "Output",
    "Normalization", "Thresholds", "OperatingPoint", "KindRecall", "Evaluation", "Variant", "FileEntry",
    "IDENTITY", "MAX_JSON_BYTES", "MAX_DEPTH", "SCHEMA_FILE", "json_schema", "write_json_schema",
    "check_depth",
]

SCHEMA_VERSION = 1
BACKENDS = ("litert", "onnxruntime")
PRECISIONS = ("float32", "float16", "dynamic", "int8")
COLORS = ("gray", "rgb", "bgr", "none")
OUTPUT_KINDS = ("probabilities", "logit", "distance", "embedding", "reconstruction")
DTYPES = ("float32", "float16", "int8", "uint8")
# Raw inputs, written explicitly: a bundle always says how its input is scaled.
IDENTITY = {"scale": 1.0, "offset": 0.0}

# Ranges. A Pi has a few GB of memory: anything beyond these is a broken or hostile file,
# refused before an array, a label table or a loop is sized from it.
MAX_JSON_BYTES = 32 << 20  # bundle.json itself (the largest real one is well under 1 MB)
MAX_DEPTH = 32  # nesting of objects/arrays anywhere in bundle.json (real ones reach 6)
MAX_RANK = 8
MAX_DIM = 1 << 24
MAX_ELEMENTS = 1 << 28  # one sample's fixed dimensions multiplied: 1 GB of float32
MAX_FILES = 100_000
MAX_FILE_BYTES = 1 << 36  # 64 GiB
MAX_VARIANTS = 64
MAX_LABELS = 1 << 20
MAX_TEXT = 256
MAX_PATH = 1024
SCHEMA_FILE = Path(__file__).with_name("bundle.schema.json")


class BundleError(ValueError):
    """A bundle that cannot be trusted: missing, truncated or tampered file, bad JSON."""


class FieldError(ValueError):
    """A refusal raised inside a validator: ``field`` is the path below the model being checked."""

    def __init__(self, field: str | tuple[str, ...], message: str) -> None:
        super().__init__(message)
        self.field = (field,) if isinstance(field, str) else field
        self.message = message


# --- value types with their ranges ----------------------------------------------------------------


def _rel_path(v: str) -> str:
    """A bundle-relative POSIX path that cannot name anything outside the bundle (the final
    check, symlinks included, is ``Path.resolve()`` + ``is_relative_to`` at load)."""
    if "\x00" in v or "\\" in v:
        raise ValueError("path contains a NUL or a backslash")
    p = PurePosixPath(v)
    if p.is_absolute() or re.match(r"^[A-Za-z]:", v):
        raise ValueError(f"absolute path {v!r}; paths are relative to the bundle")
    parts = v.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise ValueError(f"path {v!r} leaves the bundle or has an empty, '.' or '..' part")
    return v


FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
Text = Annotated[str, Field(min_length=1, max_length=MAX_TEXT)]
# The same rule for other JSON Schema validators (pydantic's own regex engine has no lookahead).
_REL_PATTERN = r"^(?![A-Za-z]:)(?!/)(?!.*//)(?!(.*/)?\.\.?(/|$))[^\\\x00]+$"
RelPath = Annotated[
    str,
    Field(min_length=1, max_length=MAX_PATH, json_schema_extra={"pattern": _REL_PATTERN}),
    AfterValidator(_rel_path),
]
Dim = Annotated[int, Field(ge=1, le=MAX_DIM)]
VariantName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
Shape = Annotated[
    tuple[Dim | None, ...],
    Field(strict=False, min_length=1, max_length=MAX_RANK,
          description="Dimensions, batch first; null where any size is accepted (usually the batch)."),
]
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


def _number_or_list(v: Any) -> str:
    return "~list" if isinstance(v, (list, tuple)) else "~number"


# A scalar applied to every feature, or one value per feature. The tags (stripped from error
# paths) let pydantic report the one alternative the value was meant to be.
_Values = Annotated[tuple[FiniteFloat, ...], Field(strict=False, min_length=1, max_length=MAX_DIM)]
Numbers = Annotated[
    Annotated[FiniteFloat, Tag("~number")] | Annotated[_Values, Tag("~list")],
    Discriminator(_number_or_list),
]


class Quantization(TypedDict):
    """An int8/uint8 tensor's affine quantization: ``real = (q - zero_point) * scale``.

    A plain dict at run time (the backends index it on the per-frame path)."""

    __pydantic_config__ = ConfigDict(extra="forbid", strict=True)  # type: ignore[misc]

    scale: Annotated[FiniteFloat, Field(gt=0, description="Step between adjacent integer levels, > 0.")]
    zero_point: Annotated[int, Field(ge=-128, le=255, description="Integer that represents real 0.")]
    dtype: Annotated[Literal["int8", "uint8"], Field(description="Integer type of the tensor.")]


def _zero_point_in_range(q: Quantization) -> Quantization:
    lo, hi = (-128, 127) if q["dtype"] == "int8" else (0, 255)
    if not lo <= q["zero_point"] <= hi:
        raise FieldError("zero_point", f"{q['zero_point']} is outside {q['dtype']} ({lo}..{hi})")
    return q


QuantParams = Annotated[Quantization, AfterValidator(_zero_point_in_range)]


class Head(TypedDict, total=False):
    """Inspection's nearest-good head: features scored against a bank of good-tile features."""

    __pydantic_config__ = ConfigDict(extra="forbid", strict=True)  # type: ignore[misc]

    kind: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,63}$", description="Head type (nearest-good).")]
    size: Annotated[int, Field(ge=1, le=1 << 26, description="Rows in each memory bank.")]
    banks: Annotated[dict[VariantName, RelPath], Field(max_length=MAX_VARIANTS, description=(
        "Per variant, the .npy memory bank computed with that variant's own features."))]


FreeForm = Annotated[dict[str, JsonValue], Field(max_length=10_000)]


# --- the models -------------------------------------------------------------------------------------


class _Spec(BaseModel):
    """Shared configuration: immutable, strict types, unknown keys refused in one line."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, populate_by_name=True)
    # attributes that are not keys of bundle.json (filled in by the enclosing object)
    INTERNAL: ClassVar[tuple[str, ...]] = ()
    SECTION: ClassVar[str] = ""

    @classmethod
    def wire_keys(cls) -> tuple[str, ...]:
        """The keys this object has in bundle.json, in order."""
        return tuple(f.alias or n for n, f in cls.model_fields.items() if n not in cls.INTERNAL)

    @model_validator(mode="before")
    @classmethod
    def _refuse_unknown_keys(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and cls.model_config.get("extra") == "forbid":
            known = cls.wire_keys()
            for key in data:
                if key not in known and key not in cls.INTERNAL:
                    raise FieldError(str(key), f"unknown key; known: {', '.join(known)}")
        return data

    @classmethod
    def from_json(cls, d: Any, where: str = "bundle.json") -> Any:
        """Validate one parsed section of bundle.json; raises ``BundleError`` naming the field."""
        return _validate(cls, d, where, cls.SECTION)


class Normalization(_Spec):
    """How raw values become model input: ``x * scale + offset``, then ``(x - mean) / std``.

    Images use ``scale``/``offset`` (e.g. 1/255 and 0, or 1/127.5 and -1); feature vectors
    use per-feature ``mean``/``std``. ``of`` says what was standardized (documentation only).
    """

    SECTION: ClassVar[str] = "input.normalization"
    KEYS: ClassVar[tuple[str, ...]] = ("scale", "offset", "mean", "std", "of")

    scale: FiniteFloat = Field(1.0, description="Multiplies the raw value first; finite and not 0.")
    offset: FiniteFloat = Field(0.0, description="Added after scaling.")
    mean: Numbers | None = Field(None, description="Subtracted after scale/offset: one or one per feature.")
    std: Numbers | None = Field(None, description="Divides after the mean: one or one per feature, no 0.")
    of: Text | None = Field(None, description="What was standardized (documentation only).")

    @model_validator(mode="before")
    @classmethod
    def _says_how_inputs_are_scaled(cls, d: Any) -> Any:
        if isinstance(d, Mapping):
            if "scale" not in d and "mean" not in d:
                raise FieldError("scale", f"needs 'scale' (and 'offset') or 'mean' and 'std'; raw inputs say "
                                          f"{IDENTITY}")
            if ("mean" in d) != ("std" in d):
                raise FieldError("std" if "mean" in d else "mean", "needs both 'mean' and 'std'")
        return d

    @model_validator(mode="after")
    def _invertible(self) -> Normalization:
        if self.scale == 0:
            raise FieldError("scale", "must not be 0")
        if self.std is not None and np.any(np.asarray(self.std) == 0):
            raise FieldError("std", "must not contain 0")
        if isinstance(self.mean, tuple) and isinstance(self.std, tuple) and len(self.mean) != len(self.std):
            raise FieldError("std", f"has {len(self.std)} values, mean has {len(self.mean)}")
        return self

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


def _elements(shape: tuple[int | None, ...]) -> int:
    return math.prod(d for d in shape[1:] if d is not None)


class _Tensor(_Spec):
    """A tensor's shape, whose fixed dimensions must fit in memory."""

    @model_validator(mode="after")
    def _fits_in_memory(self) -> _Tensor:
        n = _elements(self.shape)  # type: ignore[attr-defined]
        if n > MAX_ELEMENTS:
            raise FieldError("shape", f"{n} values per sample is more than {MAX_ELEMENTS}")
        return self


class Input(_Tensor):
    """What the model takes: ``shape`` (batch first, ``None`` = any), ``dtype``, ``layout``
    ("NHWC", "NC"), ``color`` (gray, rgb, bgr, none), ``normalization`` (required),
    ``quantization`` (an int8 variant's input scale/zero-point, as stored under
    ``int8_quantization``) and ``tile`` (inspection: the tile side the model sees)."""

    SECTION: ClassVar[str] = "input"

    shape: Shape
    dtype: Literal[DTYPES] = Field(  # type: ignore[valid-type]
        description="Element type the application hands to the model (float32: int8 variants are "
                    "quantized inside the backend).")
    normalization: Normalization = Field(description=f"How raw values become model input; raw inputs say "
                                                     f"{IDENTITY}.")
    layout: Annotated[str, Field(pattern=r"^[A-Z]{1,8}$")] | None = Field(
        None, description="Dimension letters, batch first: NHWC (images), NC (feature vectors), ...")
    color: Literal[COLORS] | None = Field(  # type: ignore[valid-type]
        None, description="Channel order the model was trained on (gray, rgb, bgr, none).")
    quantization: QuantParams | None = Field(
        None, alias="int8_quantization",
        description="The int8 variant's input quantization (informational; each variant has its own).")
    tile: Dim | None = Field(None, description="Inspection: side in pixels of the square tile it sees.")

    @model_validator(mode="before")
    @classmethod
    def _needs_normalization(cls, d: Any) -> Any:
        if isinstance(d, Mapping) and "shape" in d and "dtype" in d and "normalization" not in d:
            raise FieldError("normalization", f"required field is missing (raw inputs say {IDENTITY})")
        return d

    @property
    def hwc(self) -> tuple[int, int, int]:
        """(height, width, channels) of an NHWC image input."""
        if len(self.shape) != 4 or None in self.shape[1:]:
            raise BundleError(f"input shape {list(self.shape)} is not a fixed-size NHWC image")
        _, h, w, c = self.shape
        return int(h), int(w), int(c)  # type: ignore[arg-type]


class Output(_Tensor):
    """What the model gives: ``shape``, ``dtype``, ``kind`` (probabilities, logit, distance,
    embedding, reconstruction), ``meaning`` (prose), ``score`` (a name from ``edge.evaluate.SCORES``)
    and ``head`` (inspection's nearest-good head: kind, size, per-variant bank files)."""

    SECTION: ClassVar[str] = "output"

    shape: Shape
    dtype: Literal[DTYPES] = Field(  # type: ignore[valid-type]
        description="Element type of the output as the application receives it (dequantized: float32).")
    kind: Literal[OUTPUT_KINDS] | None = Field(  # type: ignore[valid-type]
        None, description="What the numbers are: " + ", ".join(OUTPUT_KINDS) + ".")
    meaning: Annotated[str, Field(max_length=4096)] | None = Field(None, description="Prose for people.")
    score: Literal[tuple(SCORES)] | None = Field(  # type: ignore[valid-type]
        None, description="How an output row becomes one score (edge.evaluate.SCORES).")
    head: Head | None = Field(None, description="Inspection: a head applied to the outputs (features).")


Share = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
Count = Annotated[int, Field(ge=0, le=1 << 31)]
KindName = Annotated[str, Field(pattern=r"^[^\x00-\x1f]{1,64}$")]


class KindRecall(_Spec):
    """One defect kind at the operating point: caught of defects, recall and its lower bound."""

    defects: Count = Field(description="Defective parts of this kind that were scored.")
    caught: Count = Field(description="How many of them scored at/above the threshold.")
    recall: Share = Field(description="caught / defects.")
    recall_lower: Share = Field(description="One-sided Clopper-Pearson lower bound on the recall.")
    min_recall: Share | None = Field(None, description="The floor asked for this kind, if any.")
    reached: bool | None = Field(None, description="Whether the lower bound meets the floor.")


class OperatingPoint(_Spec):
    """Inspection's threshold with the recall it guarantees: measured on out-of-fold scores of
    every labelled part (``source`` out-of-fold; no part scored by a model that trained on it) or
    on the validation split, with a one-sided Clopper-Pearson lower bound on the recall and the
    false rejects it costs. Written on the workstation; the device only reads and prints it."""

    SECTION: ClassVar[str] = "thresholds.operating_point"

    source: Literal["out-of-fold", "validation"] = Field(description="Which scores it was measured on.")
    folds: Annotated[int, Field(ge=2, le=1000)] | None = Field(None, description="K of the K-fold split.")
    variant: VariantName = Field(description="The variant whose scores these are (the deployed one).")
    threshold: FiniteFloat = Field(description="The decision threshold these figures belong to.")
    rule: Annotated[str, Field(max_length=1024)] = Field(description="How the threshold was chosen.")
    confidence: Annotated[float, Field(gt=0, lt=1)] = Field(description="Confidence of the lower bound.")
    min_recall: Annotated[float, Field(gt=0, le=1)] = Field(description="Target for the lower bound.")
    defects: Count = Field(description="Defective parts scored.")
    caught: Count = Field(description="Defective parts at/above the threshold.")
    recall: Share = Field(description="caught / defects.")
    recall_lower: Share = Field(description="One-sided Clopper-Pearson lower bound on the recall.")
    reached: bool = Field(description="Whether recall_lower >= min_recall.")
    min_defects: Annotated[int, Field(ge=1, le=1 << 31)] = Field(
        description="Fewest defects, all caught, whose lower bound can reach min_recall.")
    good: Count = Field(description="Good parts scored.")
    false_rejects: Count = Field(description="Good parts at/above the threshold.")
    false_reject_rate: Share = Field(description="false_rejects / good.")
    precision: Share | None = Field(description="caught / (caught + false_rejects); null if none failed.")
    per_kind: Annotated[dict[KindName, KindRecall], Field(max_length=1000)] = Field(
        default_factory=dict, description="The same per defect kind.")

    @model_validator(mode="after")
    def _counts_agree(self) -> OperatingPoint:
        if self.caught > self.defects:
            raise FieldError("caught", f"{self.caught} caught of {self.defects} defects")
        if self.false_rejects > self.good:
            raise FieldError("false_rejects", f"{self.false_rejects} of {self.good} good parts")
        return self


class Thresholds(_Spec):
    """Decision thresholds: ``decision`` (bundle-wide), ``per_variant`` (calibrated on each
    variant's own scores, which quantization shifts) and app-specific ``values`` (face's
    ``unknown``/``unknown_by_tta``, vibration's ``baseline``, calibration targets): any other
    key, kept as written."""

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, JsonValue] = Field(init=False)  # type: ignore[assignment]
    SECTION: ClassVar[str] = "thresholds"

    decision: FiniteFloat | None = Field(None, description="The bundle-wide decision threshold.")
    per_variant: Annotated[dict[VariantName, FiniteFloat], Field(max_length=MAX_VARIANTS)] = Field(
        default_factory=dict, description="Thresholds calibrated on each variant's own scores.")
    operating_point: OperatingPoint | None = Field(
        None, description="Inspection: the recall the decision threshold guarantees, and its cost.")
    _where: str = PrivateAttr("bundle.json")

    @classmethod
    def from_json(cls, d: Any, where: str = "bundle.json") -> Thresholds:
        t = _validate(cls, {} if d is None else d, where, cls.SECTION)
        t._where = where
        return t

    @property
    def where(self) -> str:
        return self._where

    @property
    def values(self) -> dict[str, Any]:
        """The app-specific thresholds (every key but ``decision``, ``per_variant``, ``operating_point``)."""
        return dict(self.model_extra or {})

    def for_variant(self, variant: str) -> float:
        """The decision threshold calibrated for ``variant``, else the bundle-wide one."""
        if variant in self.per_variant:
            return self.per_variant[variant]
        if self.decision is None:
            raise BundleError(f"{self._where}: thresholds has no 'decision' (nor per_variant '{variant}')")
        return self.decision

    def get(self, key: str, default: Any = None) -> Any:
        """An app-specific threshold value (``unknown``, ``baseline``, ``far_target``, ...)."""
        return (self.model_extra or {}).get(key, default)


class Evaluation(_Spec):
    """The stored evaluation set (``eval/x.npy``, Keras outputs, labels) and its decision rule:
    ``decision`` (argmax, threshold, pairs, none), ``score`` (a name from ``edge.evaluate.SCORES``),
    ``threshold`` and ``metric`` (accuracy, auroc, pair_auroc, ...)."""

    SECTION: ClassVar[str] = "evaluation"

    samples: int = Field(ge=1, le=10_000_000, description="Number of stored evaluation samples.")
    x: RelPath = Field(description="The inputs (.npy), already normalized.")
    reference: RelPath = Field(description="The Keras outputs for x (.npy): what variants are compared with.")
    y: RelPath | None = Field(None, description="The labels (.npy), when the task has them.")
    decision: Literal[DECISIONS] = Field(  # type: ignore[valid-type]
        "argmax", description="How outputs become decisions: " + ", ".join(DECISIONS) + ".")
    score: Literal[tuple(SCORES)] = Field(  # type: ignore[valid-type]
        "last", description="How an output row becomes one score, for decision 'threshold'.")
    threshold: FiniteFloat | None = Field(None, description="Decision threshold on that score.")
    metric: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")] | None = Field(
        None, description="Name of the task metric (accuracy, auroc, pair_auroc, ...).")


class Variant(_Spec):
    """One converted model inside a bundle, e.g. ``tflite_int8``; ``name`` is its key in
    ``variants``. ``Variant(name, file, backend, precision, ...)`` as before."""

    INTERNAL: ClassVar[tuple[str, ...]] = ("name",)
    KEYS: ClassVar[tuple[str, ...]] = ("file", "backend", "precision", "input_quantization",
                                       "output_quantization", "parity", "flagged")

    name: SkipJsonSchema[VariantName] = ""
    file: RelPath = Field(description="The model file, relative to the bundle.")
    backend: Literal[BACKENDS] = Field(  # type: ignore[valid-type]
        description="Runtime that runs it: " + ", ".join(BACKENDS) + ".")
    precision: Literal[PRECISIONS] = Field(  # type: ignore[valid-type]
        description="Weights/activations: " + ", ".join(PRECISIONS) + ".")
    input_quantization: QuantParams | None = Field(
        None, description="The model's input quantization; must equal the model file's (checked at load).")
    output_quantization: QuantParams | None = Field(
        None, description="The model's output quantization; must equal the model file's (checked at load).")
    parity: FreeForm = Field(default_factory=dict, description="Agreement with Keras measured at conversion.")
    flagged: bool = Field(False, description="True when parity failed its tolerance.")

    def __init__(self, name: str = "", file: str = "", backend: str = "", precision: str = "",
                 **kw: Any) -> None:
        super().__init__(name=name, file=file, backend=backend, precision=precision, **kw)

    @classmethod
    def from_json(cls, name: str, d: Any, where: str = "bundle.json") -> Variant:  # type: ignore[override]
        section = _path(("variants", name))
        if isinstance(d, Mapping) and "name" in d:
            raise BundleError(f"{where}: {section}.name: unknown key; known: {', '.join(cls.wire_keys())}")
        return _validate(cls, {**d, "name": name} if isinstance(d, Mapping) else d, where, ("variants", name))

    def to_json(self) -> dict[str, Any]:
        """The ``variants`` entry in bundle.json (its name is the key)."""
        return {k: getattr(self, k) for k in self.KEYS}


class FileEntry(_Spec):
    """Size and sha256 of one file in the bundle, checked before anything runs."""

    sha256: Sha256 = Field(description="Lower-case hex SHA-256 of the file's bytes.")
    size: int = Field(ge=0, le=MAX_FILE_BYTES, description="The file's exact size in bytes.")


class BundleSpec(_Spec):
    """The whole of ``bundle.json``, validated. ``config`` holds the application's settings
    (window length, tiling, alarm debounce) as written by its trainer; ``metrics`` what
    training and conversion measured."""

    model_config = ConfigDict(title="edgewise bundle.json")

    schema_version: int = Field(ge=1, le=SCHEMA_VERSION,
                                description=f"Format version; this edgewise reads 1..{SCHEMA_VERSION}.")
    name: Text = Field(description="The bundle's name.")
    task: Text = Field(description="What the model does (classification, embedding, anomaly_detection, ...).")
    app: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,63}$")] = Field(
        description="The application that runs it (generic, face, inspect, vibration).")
    created: Annotated[str, Field(min_length=1, max_length=64)] = Field(
        description="When it was sealed (ISO 8601).")
    edgewise_version: Annotated[str, Field(min_length=1, max_length=64)] = Field(
        description="The edgewise version that sealed it.")
    input: Input = Field(description="What the model takes.")
    output: Output = Field(description="What the model gives.")
    variants: Annotated[dict[VariantName, Variant], Field(min_length=1, max_length=MAX_VARIANTS)] = Field(
        description="The converted models, by name (tflite_int8, onnx_float32, ...).")
    files: Annotated[dict[RelPath, FileEntry], Field(max_length=MAX_FILES)] = Field(
        description="Every file of the bundle but bundle.json, with its size and sha256.")
    labels: Annotated[tuple[Text, ...], Field(strict=False, max_length=MAX_LABELS)] = Field(
        (), description="Class names, in output order.")
    thresholds: Thresholds = Field(default_factory=Thresholds, description="Decision thresholds.")
    config: FreeForm = Field(default_factory=dict, description="The application's settings (its trainer's).")
    metrics: FreeForm = Field(default_factory=dict, description="What training and conversion measured.")
    evaluation: Evaluation | None = Field(None, description="The stored evaluation set and decision rule.")

    @model_validator(mode="before")
    @classmethod
    def _supported_version_and_named_variants(cls, d: Any) -> Any:
        if not isinstance(d, Mapping):
            return d
        v = d.get("schema_version")
        if isinstance(v, int) and not isinstance(v, bool) and v > SCHEMA_VERSION:
            raise FieldError("schema_version", f"{v} is newer than this edgewise understands "
                                               f"({SCHEMA_VERSION}); upgrade edgewise")
        variants = d.get("variants")
        if isinstance(variants, Mapping):
            named = {}
            for k, x in variants.items():
                if isinstance(x, Mapping):
                    if "name" in x:
                        raise FieldError(("variants", k, "name"), "unknown key; known: "
                                                               + ", ".join(Variant.wire_keys()))
                    x = {**x, "name": k}
                named[k] = x
            d = {**d, "variants": named}
        return d

    @model_validator(mode="after")
    def _consistent(self) -> BundleSpec:
        """Every file the spec names is pinned by a checksum; labels match a probability output."""
        for name, v in self.variants.items():
            if v.file not in self.files:
                raise FieldError(("variants", name, "file"), f"'{v.file}' has no checksum entry in files")
        if self.evaluation is not None:
            for key in ("x", "reference", "y"):
                rel = getattr(self.evaluation, key)
                if rel is not None and rel not in self.files:
                    raise FieldError(("evaluation", key), f"'{rel}' has no checksum entry in files")
        for name, rel in ((self.output.head or {}).get("banks") or {}).items():
            if rel not in self.files:
                raise FieldError(("output", "head", "banks", name), f"'{rel}' has no checksum entry in files")
        classes = self.output.shape[-1]
        if self.output.kind == "probabilities" and self.labels and classes and len(self.labels) != classes:
            raise FieldError("labels", f"{len(self.labels)} labels for {classes} output probabilities")
        return self

    @classmethod
    def from_json(cls, meta: Any, where: str = "bundle.json") -> BundleSpec:
        """Validate a parsed ``bundle.json``; raises ``BundleError`` naming the first problem."""
        if not isinstance(meta, Mapping):
            raise BundleError(f"{where}: top level must be an object, got {_json_type(meta)}")
        spec = _validate(cls, meta, where, "")
        spec.thresholds._where = where
        return spec


# --- one-line errors ----------------------------------------------------------------------------------

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SHOULD = re.compile(r"^(Input|Value|String|Dictionary|Tuple|List) should")
_TYPE_WORDS = {
    "int_type": "must be an integer", "float_type": "must be a number", "string_type": "must be a string",
    "bool_type": "must be true or false", "dict_type": "must be an object", "model_type": "must be an object",
    "model_attributes_type": "must be an object", "typed_dict_type": "must be an object",
    "tuple_type": "must be an array", "list_type": "must be an array",
    "finite_number": "must be a finite number", "none_required": "must be null",
    "int_from_float": "must be an integer", "missing": "required field is missing",
    "extra_forbidden": "unknown key",
}


def _json_type(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, int):
        return "an integer"
    if isinstance(v, float):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, Mapping):
        return "an object"
    if isinstance(v, (list, tuple)):
        return "an array"
    return type(v).__name__


def _shown(v: Any) -> str:
    """A value as the message shows it: short scalars as written, containers by their type."""
    if isinstance(v, (Mapping, list, tuple)) or v is None:
        return _json_type(v)
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def _path(loc: tuple[Any, ...]) -> str:
    """('input', 'shape', 1) -> 'input.shape[1]'; ('files', '../x') -> "files['../x']"."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part == "[key]" or (isinstance(part, str) and part.startswith("~")):
            continue  # a dict key's own check / a union alternative: not a field
        elif _IDENT.match(str(part)):
            out += f".{part}" if out else str(part)
        else:
            out += f"[{str(part)!r}]"
    return out


def _one_line(e: dict[str, Any], prefix: tuple[Any, ...]) -> tuple[str, str]:
    """(field path, message) of one pydantic error."""
    loc = prefix + tuple(e["loc"])
    kind = e["type"]
    value = e.get("input")
    cause = (e.get("ctx") or {}).get("error")
    if isinstance(cause, FieldError):
        return _path(loc + cause.field), cause.message
    if kind == "value_error":
        return _path(loc), str(cause) if cause is not None else e["msg"]
    if kind == "literal_error":
        options = re.sub(r"'|\bor\b", "", (e.get("ctx") or {}).get("expected", "")).replace("  ", ", ")
        return _path(loc), f"\x00{_shown(value)} is not one of {options}"
    if kind in ("missing", "extra_forbidden"):
        return _path(loc), _TYPE_WORDS[kind]
    msg = _TYPE_WORDS.get(kind) or _SHOULD.sub("must", e["msg"]).replace("\n", " ")
    return _path(loc), f"{msg}, got {_shown(value)}"


def _validate(cls: type[_Spec], data: Any, where: str, section: str | tuple[str, ...]) -> Any:
    """``cls.model_validate(data)``, with any failure (wrong type, out of range, too deep) as
    ONE ``BundleError`` line naming the field; nothing else escapes."""
    prefix = tuple(section.split(".")) if isinstance(section, str) and section else tuple(section)
    section = _path(prefix)
    check_depth(data, where, prefix)
    errors: list[Any] = []
    try:
        return cls.model_validate(data)
    except ValidationError as e:
        errors = e.errors(include_url=False)
        path, msg = _one_line(errors[0], prefix) if errors else (section, str(e).splitlines()[0])
    except FieldError as e:  # raised outside pydantic's wrapping (defensive)
        path, msg = _path(prefix + e.field), e.message
    except (RecursionError, MemoryError):
        path, msg = section, "too deeply nested or too large"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    if msg.startswith("\x00"):  # "input.color 'RGB' is not one of ..." reads as one phrase
        line = f"{where}: {path} {msg[1:]}" if path else f"{where}: {msg[1:]}"
    else:
        line = f"{where}: {path}: {msg}" if path else f"{where}: {msg}"
    raise BundleError((line + more).replace("\n", " ").replace("\r", " "))


def check_depth(data: Any, where: str, section: tuple[Any, ...] = (), limit: int = MAX_DEPTH) -> None:
    """Refuse objects/arrays nested deeper than ``limit`` (a crafted document would otherwise
    exhaust the stack of whatever walks it next), naming where the nesting goes too deep."""
    stack: list[tuple[Any, int, tuple[Any, ...]]] = [(data, 0, ())]
    while stack:
        node, depth, loc = stack.pop()
        if depth > limit:
            shown = _path((*section, *loc[:8])) + ("..." if len(loc) > 8 else "")
            raise BundleError(f"{where}: {shown or 'top level'}: nested deeper than {limit} levels")
        if isinstance(node, Mapping):
            stack.extend((v, depth + 1, (*loc, k)) for k, v in node.items())
        elif isinstance(node, (list, tuple)):
            stack.extend((v, depth + 1, (*loc, i)) for i, v in enumerate(node))


def parse_json(text: bytes | str, where: str) -> Any:
    """``json.loads`` for bundle.json: a size cap, duplicate keys refused (two readers could
    otherwise see two different documents), and every parse failure (bad syntax, bad UTF-8,
    nesting that exhausts the stack, a 5000-digit number) as one ``BundleError`` line."""
    if len(text) > MAX_JSON_BYTES:
        raise BundleError(f"{where}: {len(text)} bytes is more than the {MAX_JSON_BYTES >> 20} MB a "
                          f"bundle.json may have")

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        d = dict(items)
        if len(d) != len(items):
            dup = next(k for i, (k, _) in enumerate(items) if any(k == j for j, _ in items[:i]))
            raise BundleError(f"{where}: duplicate key {dup!r}")
        return d

    try:
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        data = json.loads(text, object_pairs_hook=pairs)
    except json.JSONDecodeError as e:
        raise BundleError(f"{where}: malformed JSON ({e})") from None
    except UnicodeDecodeError as e:
        raise BundleError(f"{where}: malformed JSON (not UTF-8: {e.reason} at byte {e.start})") from None
    except RecursionError:
        raise BundleError(f"{where}: malformed JSON (nested too deeply)") from None
    except BundleError:
        raise
    except ValueError as e:  # e.g. an integer with more digits than Python converts
        raise BundleError(f"{where}: malformed JSON ({str(e).splitlines()[0]})") from None
    check_depth(data, where)
    return data


# --- the published schema ------------------------------------------------------------------------------


def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of bundle.json, generated from the models above."""
    schema = BundleSpec.model_json_schema(by_alias=True, mode="validation")
    _closed(schema)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


def _closed(node: Any) -> None:
    """Keys that must match a pattern (file paths, variant names) may not be anything else:
    pydantic writes ``patternProperties`` but leaves other keys open; close them."""
    if isinstance(node, dict):
        if "patternProperties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
        for v in node.values():
            _closed(v)
    elif isinstance(node, list):
        for v in node:
            _closed(v)


def write_json_schema(path: str | Path = SCHEMA_FILE) -> Path:
    """Write ``json_schema()`` where the package ships it (run after changing a model)."""
    path = Path(path)
    path.write_text(json.dumps(json_schema(), indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return path
