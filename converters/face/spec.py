"""What a pretrained face embedder expects: crop size, colour order, layout, normalisation, landmark template.

The user states it (flags, or a small YAML with ``--spec``); what the model file itself says (its
input tensor's shape) fills the gaps and is checked against what was stated, so a wrong size or
layout is one line at the start rather than a bundle that quietly embeds garbage. Colour order
and normalisation cannot be read from a tensor and must be stated for a colour network.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from edgewise.edge.apps.face.align import canonical_points, check_template

__all__ = ["COLORS", "LAYOUTS", "YAML_KEYS", "FaceInputRequest", "FaceInput", "read_yaml", "resolve"]

COLORS = ("rgb", "bgr", "gray")
LAYOUTS = ("NHWC", "NCHW")
YAML_KEYS = ("size", "color", "layout", "normalization", "mean", "std", "template")
# --normalization words -> x * scale + offset on 0-255 pixels (as ``edgewise convert`` names them)
NORMALIZATION_WORDS: dict[str, dict[str, float]] = {
    "none": {"scale": 1.0, "offset": 0.0},
    "0-1": {"scale": 1 / 255, "offset": 0.0},
    "-1-1": {"scale": 1 / 127.5, "offset": -1.0},
}


@dataclass(frozen=True)
class FaceInputRequest:
    """What the user stated (None: not stated). ``normalization`` is scale/offset on 0-255 pixels,
    ``mean``/``std`` are applied after it, per channel or one for all; ``template`` is ``arcface``
    or five (x, y) points in crop pixels."""

    size: int | None = None
    color: str | None = None
    layout: str | None = None
    normalization: dict[str, float] | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    template: str | tuple[tuple[float, float], ...] | None = None

    def over(self, base: FaceInputRequest) -> FaceInputRequest:
        """This request with ``base`` filling what it leaves unstated (flags over ``--spec`` YAML)."""
        return replace(base, **{k: v for k, v in self.__dict__.items() if v is not None})


@dataclass(frozen=True)
class FaceInput:
    """The resolved input contract written into the bundle: NHWC crops of ``size`` x ``size``."""

    size: int
    channels: int
    color: str
    source_layout: str
    normalization: dict[str, Any]
    template: tuple[tuple[float, float], ...]
    template_name: str

    def bundle_input(self) -> dict[str, Any]:
        """``input`` keys of bundle.json besides shape/dtype (the bundle's layout is always NHWC)."""
        return {"layout": "NHWC", "color": self.color, "normalization": dict(self.normalization)}


def _numbers(v: Any, what: str) -> tuple[float, ...]:
    if isinstance(v, (int, float)):
        return (float(v),)
    if isinstance(v, str):
        v = [p for p in v.replace(" ", "").split(",") if p]
    try:
        out = tuple(float(x) for x in v)
    except (TypeError, ValueError):
        raise ValueError(f"{what}: expected numbers, got {v!r}") from None
    if not out or not all(abs(x) < float("inf") for x in out):
        raise ValueError(f"{what}: expected finite numbers, got {v!r}")
    return out


def parse_normalization(v: Any) -> dict[str, float]:
    """``none``, ``0-1``, ``-1-1``, ``SCALE,OFFSET`` or a {scale, offset} mapping -> scale/offset."""
    if isinstance(v, str) and v in NORMALIZATION_WORDS:
        return dict(NORMALIZATION_WORDS[v])
    if isinstance(v, dict):
        unknown = set(v) - {"scale", "offset"}
        if unknown:
            raise ValueError(f"normalization: unknown keys {sorted(unknown)} (scale, offset; mean and std "
                             "are keys of their own)")
        scale, offset = float(v.get("scale", 1.0)), float(v.get("offset", 0.0))
    else:
        nums = _numbers(v, "normalization")
        if len(nums) != 2:
            raise ValueError(f"normalization {v!r}: expected none, 0-1, -1-1 or SCALE,OFFSET")
        scale, offset = nums
    if scale == 0:
        raise ValueError("normalization: scale must not be 0")
    return {"scale": scale, "offset": offset}


def parse_template(v: Any) -> str | tuple[tuple[float, float], ...]:
    """``arcface`` or five (x, y) points (10 numbers, or a list of pairs)."""
    if isinstance(v, str) and v.strip().lower() == "arcface":
        return "arcface"
    if isinstance(v, (list, tuple)) and v and isinstance(v[0], (list, tuple)):
        v = [x for p in v for x in p]
    nums = _numbers(v, "template")
    if len(nums) != 10:
        raise ValueError(f"template: expected 'arcface' or 10 numbers (5 x, y points), got {len(nums)}")
    return tuple((nums[i], nums[i + 1]) for i in range(0, 10, 2))


def read_yaml(path: str | Path) -> FaceInputRequest:
    """A ``--spec`` YAML file (keys: size, color, layout, normalization, mean, std, template)."""
    try:
        import yaml
    except ImportError:
        raise ValueError("--spec needs PyYAML: pip install pyyaml") from None
    try:
        d = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"{path}: cannot read the spec ({first})") from None
    if not isinstance(d, dict):
        raise ValueError(f"{path}: the spec must be a mapping of {', '.join(YAML_KEYS)}")
    unknown = sorted(set(d) - set(YAML_KEYS))
    if unknown:
        raise ValueError(f"{path}: unknown keys {unknown}; valid: {', '.join(YAML_KEYS)}")
    try:
        return FaceInputRequest(
            size=None if d.get("size") is None else int(d["size"]),
            color=None if d.get("color") is None else str(d["color"]).lower(),
            layout=None if d.get("layout") is None else str(d["layout"]).upper(),
            normalization=None if d.get("normalization") is None else parse_normalization(d["normalization"]),
            mean=None if d.get("mean") is None else _numbers(d["mean"], "mean"),
            std=None if d.get("std") is None else _numbers(d["std"], "std"),
            template=None if d.get("template") is None else parse_template(d["template"]),
        )
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path}: {e}") from None


def _layout_of(shape: tuple[int | None, ...]) -> str | None:
    """NHWC or NCHW from a 4-D image tensor's shape (channels 1 or 3); None when it cannot tell."""
    last, first = shape[3] in (1, 3), shape[1] in (1, 3)
    if last and not first:
        return "NHWC"
    if first and not last:
        return "NCHW"
    return None


def resolve(req: FaceInputRequest, shape: tuple[int | None, ...]) -> FaceInput:
    """The request completed from the model's input ``shape`` and checked against it (ValueError)."""
    shown = "(" + ", ".join("?" if d is None else str(d) for d in shape) + ")"
    if len(shape) != 4:
        raise ValueError(f"the model's input {shown} is not a 4-D image batch (NHWC or NCHW)")
    if req.layout is not None and req.layout not in LAYOUTS:
        raise ValueError(f"layout {req.layout!r}: expected one of {', '.join(LAYOUTS)}")
    found = _layout_of(shape)
    layout = req.layout or found
    if layout is None:
        raise ValueError(f"cannot tell the layout of the model's input {shown}: give --layout NHWC or NCHW")
    if found is not None and req.layout is not None and req.layout != found:
        raise ValueError(f"--layout {req.layout}: the model's input {shown} is {found}")
    h, w, c = (shape[1], shape[2], shape[3]) if layout == "NHWC" else (shape[2], shape[3], shape[1])
    if c not in (1, 3):
        raise ValueError(f"the model's input {shown} has {c} channels as {layout}; expected 1 or 3")
    if h is None or w is None:
        if req.size is None:
            raise ValueError(f"the model's input {shown} has no fixed size: give --size")
        h = h or req.size
        w = w or req.size
    if h != w:
        raise ValueError(f"the model's input is {h}x{w}: face crops are square, so only square inputs are "
                         "supported")
    if req.size is not None and req.size != h:
        raise ValueError(f"--size {req.size}: the model's input {shown} is {h}x{w}")
    size = int(h)
    color = req.color or ("gray" if c == 1 else None)
    if color is None:
        raise ValueError(f"the model takes 3 channels {shown}: give --color rgb or bgr (the order the "
                         "network was trained on cannot be read from the file; gray repeats a grey crop)")
    if color not in COLORS:
        raise ValueError(f"color {color!r}: expected one of {', '.join(COLORS)}")
    if c == 1 and color != "gray":
        raise ValueError(f"--color {color}: the model's input {shown} has one channel (gray)")
    if req.normalization is None and req.mean is None:
        raise ValueError("give the normalisation the network was trained with: --normalization (0-1, -1-1, "
                         "SCALE,OFFSET, none) and/or --mean/--std; it cannot be read from the model file")
    norm: dict[str, Any] = dict(req.normalization or NORMALIZATION_WORDS["none"])
    if (req.mean is None) != (req.std is None):
        raise ValueError("--mean and --std go together")
    if req.mean is not None and req.std is not None:
        for name, v in (("mean", req.mean), ("std", req.std)):
            if len(v) not in (1, c):
                raise ValueError(f"--{name}: {len(v)} values for a {c}-channel input (give 1 or {c})")
        if any(s == 0 for s in req.std):
            raise ValueError("--std must not contain 0")
        norm.update(mean=list(req.mean) if len(req.mean) > 1 else req.mean[0],
                    std=list(req.std) if len(req.std) > 1 else req.std[0])
    if req.template is None or req.template == "arcface":
        template, name = canonical_points(size), "arcface"
    else:
        template, name = check_template(req.template, size), "custom"
    return FaceInput(size=size, channels=int(c), color=color, source_layout=layout, normalization=norm,
                     template=tuple((float(x), float(y)) for x, y in template), template_name=name)
