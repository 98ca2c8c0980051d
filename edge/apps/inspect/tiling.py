"""How a part image becomes the model's input: grey, region of interest, fixed scale, tiles.

This is the ONE implementation of the inspection preprocessing. Training
(``edgewise.train.inspect``), the benchmark and the device all call it, so the device
scores parts exactly the way they were evaluated. The image is scaled by a fixed factor and
never resized to a fixed size, so a small defect keeps its pixels; a sliding window of
fixed-size tiles then covers the whole image, the last tile aligned to the border.

>>> tile_positions(100, 150, tile=64, stride=32)[-1]
(36, 86)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...bundle import BundleError

__all__ = [
    "NORMS",
    "NORM_MEAN",
    "NORM_STD",
    "TileConfig",
    "to_gray",
    "parse_roi",
    "crop_roi",
    "rescale",
    "condition",
    "tile_positions",
    "normalize",
    "make_tiles",
    "prepare_part",
]

NORMS = ("none", "image")
# mean and standard deviation every image is mapped to with norm="image" (uint8 grey levels)
NORM_MEAN, NORM_STD = 128.0, 32.0
# keys every bundle's config.tiling carries: they decide which pixels the model sees, so a
# missing one is an error, never a guess (training and the device once guessed differently)
REQUIRED_KEYS = ("tile", "stride", "scale")


@dataclass(frozen=True)
class TileConfig:
    """How a part image becomes tiles and tile scores become an image score; stored in the
    bundle's ``config.tiling``.

    ``scale`` is a fixed factor applied to every image (1.0 = native resolution), so defects
    keep the same size in pixels whatever the image size; ``tile`` and ``stride`` are in
    pixels after scaling. These three have no default: they change what the model sees, so
    they come from the training configuration or the bundle, never from a fallback here.
    ``norm`` = "image" maps every scaled image to a fixed mean and contrast before tiling
    (parts photographed brighter or darker look alike to the model). ``top_k`` is how many of
    the highest tile scores are averaged into the image score (1 = the maximum tile score).
    Their defaults ("none", 1) are the identity, and what bundles written before the two
    options existed were evaluated with.
    """

    tile: int
    stride: int
    scale: float
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
    def from_config(cls, cfg: Mapping[str, Any], where: str = "bundle") -> TileConfig:
        """The tiling a bundle was trained and evaluated with (its ``config``; ``where``
        names the bundle in errors).

        Raises BundleError naming the missing key instead of substituting a default: a
        device that tiled at another scale would run a different model than the one measured.
        """
        t = cfg.get("tiling")
        if not isinstance(t, Mapping):
            raise BundleError(f"{where}: config has no 'tiling' section: not an inspection bundle")
        missing = [k for k in REQUIRED_KEYS if k not in t]
        if missing:
            lacks = ", ".join(missing)
            raise BundleError(f"{where}: config.tiling lacks {lacks}: cannot tile as in training")
        return cls(
            tile=int(t["tile"]),
            stride=int(t["stride"]),
            scale=float(t["scale"]),
            norm=str(t.get("norm", "none")),
            top_k=int(t.get("top_k", 1)),
        )

    def as_dict(self) -> dict[str, Any]:
        """The ``config.tiling`` section written into a bundle (``from_config`` reads it back)."""
        return {
            "tile": self.tile,
            "stride": self.stride,
            "scale": self.scale,
            "norm": self.norm,
            "top_k": self.top_k,
        }


def to_gray(img: np.ndarray) -> np.ndarray:
    """uint8 single-channel image from grey, BGR or BGRA input (the model is grey-scale)."""
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
    """Apply the fixed scale factor (area interpolation when shrinking, so no aliasing)."""
    import cv2

    if scale == 1.0:
        return img
    h, w = img.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.resize(img, size, interpolation=interp)


def condition(gray: np.ndarray, norm: str) -> np.ndarray:
    """Per-image intensity normalisation (``norm="image"``): the same fixed mean and contrast
    for every part, whatever the exposure; "none" returns the image unchanged."""
    if norm == "none":
        return gray
    f = gray.astype(np.float32)
    f = (f - f.mean()) * np.float32(NORM_STD / (float(f.std()) + 1.0)) + np.float32(NORM_MEAN)
    return np.clip(f + 0.5, 0, 255).astype(np.uint8)


def _starts(n: int, tile: int, stride: int) -> list[int]:
    """Start offsets along one axis; the last tile is aligned to the border so no pixel is left out."""
    if n <= tile:
        return [0]
    s = list(range(0, n - tile + 1, stride))
    if s[-1] != n - tile:
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
