"""Visual inspection on the edge: tile a part image, score every tile, PASS/FAIL the part.

This module is the ONE implementation of the inspection preprocessing: grey conversion,
optional region of interest, a fixed scale (never a resize to a fixed size, so a small
defect keeps its pixels), optional per-image intensity normalisation, and a sliding window
of fixed-size tiles that covers the whole image. Training (``edgewise.train.inspect``), the
benchmark and the device all call it, so the device scores parts exactly the way they were
evaluated. The image score is the maximum tile score (or the mean of the top-k tile
scores); the coarse map of tile scores is the anomaly / defect map.

>>> # edgewise run inspect --bundle tiles.bundle --source parts/ --save-fails fails/
>>> tile_positions(100, 150, tile=64, stride=32)[-1]
(36, 86)
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..backends import load_model
from ..bundle import Bundle, BundleError, load_bundle
from ..pipeline import Frame
from .common import run_app, run_parser

__all__ = [
    "TileConfig",
    "to_gray",
    "crop_roi",
    "parse_roi",
    "rescale",
    "tile_positions",
    "make_tiles",
    "normalize",
    "condition",
    "image_score",
    "prepare_part",
    "score_map",
    "score_tiles",
    "predict_rows",
    "NearestGood",
    "unit_rows",
    "overlay",
    "sigmoid",
    "InspectApp",
    "run_main",
]

log = logging.getLogger("edgewise.inspect")


NORMS = ("none", "image")


@dataclass(frozen=True)
class TileConfig:
    """How a part image becomes tiles and tile scores become an image score; stored in the
    bundle's ``config``.

    ``scale`` is a fixed factor applied to every image (1.0 = native resolution), so defects
    keep the same size in pixels whatever the image size; ``tile`` and ``stride`` are in
    pixels after scaling. ``norm`` = "image" maps every scaled image to a fixed mean and
    contrast before tiling (parts photographed brighter or darker look alike to the model).
    ``top_k`` is how many of the highest tile scores are averaged into the image score
    (1 = the maximum tile score).
    """

    tile: int = 64
    stride: int = 32
    scale: float = 1.0
    norm: str = "none"
    top_k: int = 1

    def __post_init__(self) -> None:
        if self.tile < 8:
            raise ValueError(f"tile must be >= 8 pixels, got {self.tile}")
        if not 1 <= self.stride <= self.tile:
            raise ValueError(f"stride must be in 1..tile ({self.tile}), got {self.stride}")
        if not 0.05 <= self.scale <= 4:
            raise ValueError(f"scale must be in 0.05..4, got {self.scale}")
        if self.norm not in NORMS:
            raise ValueError(f"norm must be one of {', '.join(NORMS)}, got '{self.norm}'")
        if self.top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {self.top_k}")

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> TileConfig:
        t = cfg.get("tiling") or {}
        return cls(
            tile=int(t.get("tile", 64)),
            stride=int(t.get("stride", 32)),
            scale=float(t.get("scale", 1.0)),
            norm=str(t.get("norm", "none")),
            top_k=int(t.get("top_k", 1)),
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "tile": self.tile,
            "stride": self.stride,
            "scale": self.scale,
            "norm": self.norm,
            "top_k": self.top_k,
        }


def to_gray(img: np.ndarray) -> np.ndarray:
    """uint8 single-channel image from grey, BGR or BGRA input."""
    import cv2

    if img is None or getattr(img, "size", 0) == 0:
        raise ValueError("empty image")
    img = np.asarray(img)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    if img.ndim == 3:
        code = cv2.COLOR_BGRA2GRAY if img.shape[2] == 4 else cv2.COLOR_BGR2GRAY
        img = cv2.cvtColor(img, code)
    if img.ndim != 2:
        raise ValueError(f"image must be 2-D grey or 3-D colour, got shape {img.shape}")
    if img.dtype != np.uint8:
        img = np.clip(img, 0, 255).astype(np.uint8)
    return img


def parse_roi(text: str | None) -> tuple[int, int, int, int] | None:
    """``"x,y,w,h"`` -> tuple, or None; raises ValueError naming the problem."""
    if not text:
        return None
    parts = text.split(",")
    if len(parts) != 4 or not all(re.fullmatch(r"\d+", p.strip()) for p in parts):
        raise ValueError(f"--roi must be x,y,w,h with non-negative integers, got '{text}'")
    x, y, w, h = (int(p) for p in parts)
    if w <= 0 or h <= 0:
        raise ValueError(f"--roi width and height must be > 0, got '{text}'")
    return x, y, w, h


def crop_roi(img: np.ndarray, roi: tuple[int, int, int, int] | None) -> np.ndarray:
    """The region of interest of ``img`` (clipped to the image); error if nothing is left."""
    if roi is None:
        return img
    x, y, w, h = roi
    out = img[y : y + h, x : x + w]
    if out.size == 0:
        raise ValueError(f"region of interest {roi} lies outside the {img.shape[1]}x{img.shape[0]} image")
    return out


def rescale(img: np.ndarray, scale: float) -> np.ndarray:
    """Apply the fixed scale factor (area interpolation when shrinking)."""
    import cv2

    if scale == 1.0:
        return img
    h, w = img.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.resize(img, size, interpolation=interp)


# mean and standard deviation every image is mapped to with norm="image" (uint8 grey levels)
NORM_MEAN, NORM_STD = 128.0, 32.0


def condition(gray: np.ndarray, norm: str) -> np.ndarray:
    """Per-image intensity normalisation (``norm="image"``): the same fixed mean and contrast
    for every part, whatever the exposure; "none" returns the image unchanged."""
    if norm == "none":
        return gray
    f = gray.astype(np.float32)
    f = (f - f.mean()) * np.float32(NORM_STD / (float(f.std()) + 1.0)) + np.float32(NORM_MEAN)
    return np.clip(f + 0.5, 0, 255).astype(np.uint8)


def image_score(scores: np.ndarray, top_k: int = 1) -> float:
    """The part's score: mean of its ``top_k`` highest tile scores (top_k=1: the maximum).

    Averaging a few of the worst tiles is steadier than one tile: a single odd good tile
    moves the score less, while a real defect usually lights up the overlapping tiles too.
    """
    s = np.asarray(scores, np.float64).ravel()
    if top_k <= 1 or len(s) == 1:
        return float(s.max())
    k = min(top_k, len(s))
    return float(np.partition(s, len(s) - k)[len(s) - k :].mean())


def _starts(n: int, tile: int, stride: int) -> list[int]:
    if n <= tile:
        return [0]
    s = list(range(0, n - tile + 1, stride))
    if s[-1] != n - tile:  # the last tile is aligned to the border: no pixel is left out
        s.append(n - tile)
    return s


def tile_positions(h: int, w: int, tile: int, stride: int) -> list[tuple[int, int]]:
    """Top-left (y, x) of every tile of a sliding window covering the whole h x w image."""
    return [(y, x) for y in _starts(h, tile, stride) for x in _starts(w, tile, stride)]


def normalize(tiles_u8: np.ndarray) -> np.ndarray:
    """uint8 tiles -> float32 in [0, 1], shape (n, t, t, 1): the model's input."""
    return (np.asarray(tiles_u8, np.float32) / np.float32(255.0))[..., None]


def make_tiles(gray: np.ndarray, cfg: TileConfig) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """uint8 tiles (n, t, t) and their positions; images smaller than a tile are padded."""
    import cv2

    h, w = gray.shape
    t = cfg.tile
    if h < t or w < t:  # reflect-pad so a small image still fills one tile
        gray = cv2.copyMakeBorder(gray, 0, max(0, t - h), 0, max(0, t - w), cv2.BORDER_REFLECT_101)
        h, w = gray.shape
    pos = tile_positions(h, w, t, cfg.stride)
    tiles = np.stack([gray[y : y + t, x : x + t] for y, x in pos])
    return tiles, pos


def prepare_part(
    img: np.ndarray, cfg: TileConfig, roi: tuple[int, int, int, int] | None = None
) -> tuple[np.ndarray, np.ndarray, list[tuple[int, int]]]:
    """Image -> (scaled, normalised grey image, model input tiles (n, t, t, 1) float32, positions)."""
    gray = condition(rescale(crop_roi(to_gray(img), roi), cfg.scale), cfg.norm)
    tiles, pos = make_tiles(gray, cfg)
    return gray, normalize(tiles), pos


class NearestGood:
    """Tile features -> cosine distance to the nearest good training tile (the memory bank).

    Runs in float32 after the model, whatever the model's precision. Inside an int8 model the
    normalisation and the distances (good tiles sit ~0.01 apart, the threshold near 0.04)
    would each get one 8-bit range and lose the ranking (test AUROC 0.914 float32 -> 0.798
    int8, measured). Each model variant has its own bank: the same good tiles, embedded by
    that variant. Quantization moves a tile's features by about as much as good tiles differ
    from each other, but it moves similar tiles alike, so int8 queries against an int8 bank
    keep the ranking where int8 queries against the float bank lost it (test AUROC 0.887 vs
    0.931, docs/inspect.md). The cost is one (tiles x 128) @ (128 x bank) product.
    """

    KIND = "nearest-good"

    def __init__(self, bank: np.ndarray) -> None:
        bank = np.asarray(bank, np.float32)
        if bank.ndim != 2 or len(bank) == 0 or not np.isfinite(bank).all():
            raise ValueError(f"memory bank must be a finite (n, dim) array, got shape {bank.shape}")
        self.bank = unit_rows(bank)

    def __call__(self, features: np.ndarray) -> np.ndarray:
        f = np.asarray(features, np.float32).reshape(len(features), -1)
        if f.shape[1] != self.bank.shape[1]:
            raise ValueError(f"features have {f.shape[1]} values, the memory bank {self.bank.shape[1]}")
        return (1.0 - (unit_rows(f) @ self.bank.T).max(1)).astype(np.float64)

    @classmethod
    def from_bundle(cls, bundle: Bundle, variant: str | None = None) -> NearestGood | None:
        """The head (``output.head``) for ``variant`` (default: the bundle's default variant),
        or None when the model's last output is the score."""
        head = bundle.output.get("head")
        if not head:
            return None
        if head.get("kind") != cls.KIND:
            raise BundleError(f"{bundle.path}: unknown inspection head {head.get('kind')!r}")
        name = bundle.variant(variant).name
        bank = (head.get("banks") or {}).get(name)
        if bank is None:
            raise BundleError(f"{bundle.path}: no memory bank for variant {name}")
        try:
            return cls(np.load(bundle.file(bank), allow_pickle=False))
        except (OSError, ValueError) as e:
            raise BundleError(f"{bundle.path}: memory bank {bank}: {e}") from e


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Every row scaled to unit length (cosine similarity is then a dot product)."""
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def predict_rows(model: Any, x: np.ndarray, batch: int = 8) -> np.ndarray:
    """The model's outputs for every tile, one row each, computed ``batch`` tiles at a time.

    Small batches: activations of a few 64x64 tiles stay in cache, measured faster on XNNPACK
    than one batch of all tiles (and than one tile at a time).
    """
    outs = [np.asarray(model.predict(x[i : i + batch])) for i in range(0, len(x), batch)]
    return np.concatenate(outs).reshape(len(x), -1)


def score_tiles(model: Any, x: np.ndarray, batch: int = 8, head: NearestGood | None = None) -> np.ndarray:
    """Defect logit or anomaly score of every tile: the last output column, or ``head``
    applied to the outputs (features) when the bundle has one."""
    y = predict_rows(model, x, batch)
    return head(y) if head is not None else y[:, -1].astype(np.float64)


def score_map(
    scores: np.ndarray, pos: list[tuple[int, int]], shape: tuple[int, int], tile: int
) -> np.ndarray:
    """Per-pixel map: the max score of the tiles covering each pixel (the anomaly map)."""
    h, w = max(shape[0], tile), max(shape[1], tile)
    m = np.zeros((h, w), np.float32)
    for s, (y, x) in zip(scores, pos, strict=True):
        view = m[y : y + tile, x : x + tile]
        np.maximum(view, np.float32(s), out=view)
    return m[: shape[0], : shape[1]]


def sigmoid(x: np.ndarray | float) -> np.ndarray:
    """Logit -> probability (float64, clipped so it never overflows)."""
    return 1.0 / (1.0 + np.exp(-np.clip(np.asarray(x, np.float64), -60, 60)))


OVERLAY_MIN_SIDE = 384  # px: smaller parts are enlarged so tiles, boxes and text stay legible


def overlay(
    gray: np.ndarray,
    scores: np.ndarray,
    pos: list[tuple[int, int]],
    tile: int,
    threshold: float | None = None,
    label: str = "",
    logits: bool = False,
    mask: np.ndarray | None = None,
    min_side: int = OVERLAY_MIN_SIDE,
) -> np.ndarray:
    """BGR heat-map overlay of the tile scores, with a colour bar that says what the colours mean.

    Tiles at/above the threshold are boxed in red; ``mask`` (the true defect pixels, when known)
    is outlined in green. Colours: logits through the sigmoid (the bar reads P(defect) 0..1);
    other scores (distances) relative to the threshold, which sits mid-scale (the bar reads 0 to
    2x threshold), so the map reads the same whatever the score's units. A part smaller than
    ``min_side`` pixels is enlarged by a whole factor first: a 193-px part at scale 1 is too small
    to read a box or a number on.
    """
    import cv2

    if logits:
        unit = sigmoid(scores)
        thr_unit = float(sigmoid(threshold)) if threshold is not None else None
    elif threshold is not None:
        unit = np.clip(0.5 * np.asarray(scores, np.float64) / max(threshold, 1e-9), 0.0, 1.0)
        thr_unit = 0.5
    else:
        unit = np.clip(np.asarray(scores, np.float64), 0.0, 1.0)
        thr_unit = None
    f = max(1, int(np.ceil(min_side / max(1, min(gray.shape[:2])))))
    m = score_map(unit, pos, gray.shape, tile)
    heat = cv2.applyColorMap(np.clip(m * 255, 0, 255).astype(np.uint8), cv2.COLORMAP_JET)
    base = cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
    out = cv2.addWeighted(base, 0.6, heat, 0.4, 0)
    if f > 1:
        out = cv2.resize(out, (out.shape[1] * f, out.shape[0] * f), interpolation=cv2.INTER_NEAREST)
    if mask is not None and np.any(mask):
        size = (out.shape[1], out.shape[0])
        m8 = cv2.resize(np.asarray(mask, np.uint8), size, interpolation=cv2.INTER_NEAREST)
        cnts, _ = cv2.findContours(m8, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(out, cnts, -1, (0, 255, 0), max(1, f // 2))
    if threshold is not None:
        for s, (y, x) in zip(scores, pos, strict=True):
            if s >= threshold:
                corner = ((x + tile) * f - 1, (y + tile) * f - 1)
                cv2.rectangle(out, (x * f, y * f), corner, (0, 0, 255), max(1, f // 2))
    k = max(1.0, max(out.shape[:2]) / 500)  # text and colour bar grow with the part
    if label:
        _text(out, label, (4, 4), 0.5 * k)
    bar = _colour_bar(out.shape[0], "P(defect)" if logits else "score",
                      ("1", "0") if logits else (("2x thr", "0") if thr_unit else ("1", "0")), thr_unit,
                      mask is not None, k)
    return np.hstack([out, bar])


def _text(img: np.ndarray, text: str, at: tuple[int, int], scale: float) -> None:
    """``text`` with its top-left corner at ``at``, on a dark box so it reads on any colour."""
    import cv2

    thick = max(1, int(scale / 0.5 + 0.5))
    (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    x, y = at
    cv2.rectangle(img, (x - 2, y - 2), (x + w + 2, y + h + base + 1), (0, 0, 0), -1)
    cv2.putText(img, text, (x, y + h), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thick, cv2.LINE_AA)


def _colour_bar(height: int, title: str, ends: tuple[str, str], thr_unit: float | None, has_mask: bool,
                k: float = 1.0) -> np.ndarray:
    """A vertical JET scale (top = 1) with its end values, the threshold and a box/outline legend.

    Drawn at 1x and enlarged ``k`` times for a large part, so it keeps its proportions (and stays
    legible) when a report shrinks the part into a grid cell."""
    import cv2

    width, strip, top, bottom = 96, 16, 22, 70
    base = int(round(height / k))
    panel = np.full((max(base, top + bottom + 40), width, 3), 255, np.uint8)
    h = panel.shape[0] - top - bottom
    ramp = np.linspace(255, 0, h).astype(np.uint8).reshape(-1, 1)
    panel[top : top + h, 6 : 6 + strip] = cv2.applyColorMap(np.repeat(ramp, strip, axis=1), cv2.COLORMAP_JET)
    black = (0, 0, 0)
    cv2.putText(panel, title, (2, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.38, black, 1, cv2.LINE_AA)
    cv2.putText(panel, ends[0], (26, top + 8), cv2.FONT_HERSHEY_SIMPLEX, 0.38, black, 1, cv2.LINE_AA)
    cv2.putText(panel, ends[1], (26, top + h), cv2.FONT_HERSHEY_SIMPLEX, 0.38, black, 1, cv2.LINE_AA)
    if thr_unit is not None:
        y = top + int(round((1.0 - thr_unit) * (h - 1)))
        cv2.line(panel, (0, y), (5, y), black, 2)  # ticks either side: the strip's colour stays visible
        cv2.line(panel, (6 + strip, y), (6 + strip + 5, y), black, 2)
        cv2.putText(panel, "thr", (26, y + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.38, black, 1, cv2.LINE_AA)
    y = top + h + 18
    cv2.rectangle(panel, (6, y - 9), (6 + strip, y + 3), (0, 0, 255), 2)
    cv2.putText(panel, ">= thr", (28, y + 2), cv2.FONT_HERSHEY_SIMPLEX, 0.38, black, 1, cv2.LINE_AA)
    if has_mask:
        y += 22
        cv2.line(panel, (6, y - 3), (6 + strip, y - 3), (0, 255, 0), 2)
        cv2.putText(panel, "defect", (28, y + 2), cv2.FONT_HERSHEY_SIMPLEX, 0.38, black, 1, cv2.LINE_AA)
    panel = panel[:base] if panel.shape[0] > base else panel
    if k == 1.0:
        return panel
    return cv2.resize(panel, (int(round(width * k)), height), interpolation=cv2.INTER_LINEAR)


class InspectApp:
    """PASS/FAIL per part: tiles -> model -> image score (max or top-k mean of the
    tile scores) vs the bundle's threshold.

    ``save_fails`` writes an annotated image (heat map, failing tiles boxed) per FAIL part;
    ``reject`` is any object with ``blink(on_time, off_time, n, background)`` (a gpiozero
    ``DigitalOutputDevice``) pulsed once per FAIL part to drive a reject gate.
    """

    name = "inspect"

    def __init__(
        self,
        bundle: Bundle,
        variant: str | None = None,
        threads: int | None = None,
        *,
        roi: tuple[int, int, int, int] | None = None,
        save_fails: str | Path | None = None,
        reject: Any = None,
        pulse_s: float = 0.2,
        threshold: float | None = None,
    ) -> None:
        self.bundle = bundle
        self.cfg = TileConfig.from_config(bundle.config)
        self.model = load_model(bundle, variant, threads=threads)
        self.variant = variant or bundle.variant(None).name
        self.head = NearestGood.from_bundle(bundle, self.variant)
        per_variant = bundle.thresholds.get("per_variant") or {}
        thr = (
            threshold
            if threshold is not None
            else per_variant.get(self.variant, bundle.thresholds.get("decision"))
        )
        if thr is None:
            raise ValueError(f"{bundle.path}: bundle has no thresholds.decision for inspection")
        self.threshold = float(thr)
        self.logits = bundle.output.get("kind") == "logit"
        self.roi = roi
        self.save_fails = Path(save_fails) if save_fails else None
        if self.save_fails:
            self.save_fails.mkdir(parents=True, exist_ok=True)
        self.reject = reject
        self.pulse_s = pulse_s
        self.fails = 0

    def preprocess(self, frame: Frame) -> tuple[np.ndarray, np.ndarray, list[tuple[int, int]]]:
        return prepare_part(frame.data, self.cfg, self.roi)

    def infer(self, x: tuple[np.ndarray, np.ndarray, list[tuple[int, int]]]) -> tuple[Any, ...]:
        gray, tiles, pos = x
        return gray, score_tiles(self.model, tiles, head=self.head), pos

    def postprocess(self, frame: Frame, y: tuple[Any, ...]) -> dict[str, Any]:
        gray, scores, pos = y
        k = int(np.argmax(scores))
        score = image_score(scores, self.cfg.top_k)
        fail = score >= self.threshold
        ty, tx = pos[k]
        inv = 1.0 / self.cfg.scale
        ox, oy = (self.roi[0], self.roi[1]) if self.roi else (0, 0)
        event: dict[str, Any] = {
            "ts": time.time(),
            "app": self.name,
            "kind": "part",
            "decision": "FAIL" if fail else "PASS",
            "score": round(score, 5),
            **({"probability": round(float(sigmoid(score)), 5)} if self.logits else {}),
            "threshold": round(self.threshold, 5),
            "tiles": len(pos),
            # worst tile in original image pixels: where to look on the part
            "worst_tile": [
                round(ox + tx * inv),
                round(oy + ty * inv),
                round(self.cfg.tile * inv),
                round(self.cfg.tile * inv),
            ],
            "variant": self.variant,
            "path": frame.meta.get("path"),
        }
        if fail:
            self.fails += 1
            if self.reject is not None:
                self.reject.blink(on_time=self.pulse_s, off_time=0.0, n=1, background=True)
                event["reject_signal"] = True
            if self.save_fails:
                event["saved"] = str(self._save(frame, gray, scores, pos, score))
        return event

    def _save(self, frame: Frame, gray: np.ndarray, scores: np.ndarray, pos: list, score: float) -> Path:
        import cv2

        stem = Path(frame.meta["path"]).stem if frame.meta.get("path") else "frame"
        path = self.save_fails / f"{frame.index:06d}_{stem}_FAIL.png"
        img = overlay(
            gray, scores, pos, self.cfg.tile, self.threshold, f"FAIL {score:.3f}", logits=self.logits
        )
        if not cv2.imwrite(str(path), img):
            raise OSError(f"{path}: could not write the annotated FAIL image")
        return path

    def close(self) -> None:
        self.model.close()
        if self.reject is not None:
            self.reject.close()


def open_reject_pin(pin: int) -> Any:
    """A gpiozero output for the reject gate; one-line errors when gpiozero or the GPIO is missing.

    Off a Pi gpiozero warns once per pin library it tries and then raises: the warnings are
    collected into the one error line instead of being printed.
    """
    import warnings

    if not 0 <= pin <= 27:
        raise ValueError(f"--gpio-pin {pin}: a Raspberry Pi BCM pin is 0..27")
    try:
        from gpiozero import DigitalOutputDevice
        from gpiozero.exc import GPIOZeroError
    except ImportError:
        raise ImportError("--gpio-pin needs gpiozero: pip install 'edgewise[pi]'") from None
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        try:
            return DigitalOutputDevice(pin, active_high=True, initial_value=False)
        except (GPIOZeroError, OSError, RuntimeError) as e:
            tried = "".join(f"; {w.message}" for w in seen)
            raise OSError(f"--gpio-pin {pin}: no usable GPIO on this machine ({e}{tried})") from None


def run_main(argv: list[str]) -> int:
    p = run_parser(
        "inspect",
        "Inspect parts: tile each image at a fixed scale, score every tile, PASS/FAIL the part "
        "against the bundle's threshold (chosen for a target recall on validation).",
        "edgewise run inspect --bundle tiles.bundle --source parts/ --save-fails fails/ "
        "--sqlite events.db --gpio-pin 17",
    )
    p.add_argument("--roi", help="region of interest x,y,w,h in source pixels")
    p.add_argument("--save-fails", help="folder for annotated images of FAIL parts")
    p.add_argument("--gpio-pin", type=int, help="BCM pin pulsed once per FAIL part (gpiozero)")
    p.add_argument("--pulse", type=float, default=0.2, help="reject pulse length in seconds")
    p.add_argument("--threshold", type=float, help="override the bundle's decision threshold")
    a = p.parse_args(argv)
    try:
        roi = parse_roi(a.roi)
    except ValueError as e:
        p.error(str(e))
    if a.pulse <= 0:
        p.error(f"--pulse {a.pulse}: must be positive (seconds)")
    reject = open_reject_pin(a.gpio_pin) if a.gpio_pin is not None else None
    bundle = load_bundle(a.bundle)
    app = InspectApp(
        bundle,
        a.variant,
        a.threads,
        roi=roi,
        save_fails=a.save_fails,
        reject=reject,
        pulse_s=a.pulse,
        threshold=a.threshold,
    )
    try:
        folder = Path(a.source).is_dir()
        return run_app(app, a, **({"gray": True} if folder else {}))
    finally:
        app.close()
