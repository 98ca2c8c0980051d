"""Training crops: defect-centred and good crops of real parts, augmentation, and the good-only
pairs of good crops with synthetic defects."""

from __future__ import annotations

import numpy as np

from .config import InspectConfig
from .synthetic import synthetic_defect

__all__ = ["Image", "Crops", "sample_crops", "augment", "good_only_crops", "to_input"]

Image = tuple[np.ndarray, np.ndarray, int]  # scaled grey image, defect mask, label
Crops = tuple[np.ndarray, np.ndarray]  # uint8 crops, float32 labels (1 = defect)


def to_input(tiles_u8: np.ndarray) -> np.ndarray:
    """uint8 tiles -> the model's float input in [0, 1] with a channel axis."""
    return (tiles_u8.astype(np.float32) / 255.0)[..., None]


def _pad(img: np.ndarray, t: int) -> np.ndarray:
    import cv2

    h, w = img.shape[:2]
    if h >= t and w >= t:
        return img
    return cv2.copyMakeBorder(img, 0, max(0, t - h), 0, max(0, t - w), cv2.BORDER_REFLECT_101)


def sample_crops(
    images: list[Image],
    cfg: InspectConfig,
    rng: np.random.Generator,
    defect_crops: int | None = None,
    good_crops: int | None = None,
) -> Crops:
    """Fixed-size uint8 crops and labels: centred (with jitter) on defect pixels, or random
    crops of regions without defect pixels (from good parts and from defect-free regions
    of defective parts). A defective image whose mask is empty gives random crops labelled
    defective (the whole part is declared bad)."""
    t = cfg.tile
    nd = cfg.defect_crops if defect_crops is None else defect_crops
    ng = cfg.good_crops if good_crops is None else good_crops
    xs: list[np.ndarray] = []
    ys: list[int] = []
    jit = t // 4
    for img, mask, label in images:
        img, mask = _pad(img, t), _pad(mask.astype(np.uint8), t).astype(bool)
        h, w = img.shape
        if label:
            pts = np.argwhere(mask)
            for _ in range(nd):
                if len(pts):
                    cy, cx = pts[rng.integers(len(pts))] + rng.integers(-jit, jit + 1, 2)
                    y = int(np.clip(cy - t // 2, 0, h - t))
                    x = int(np.clip(cx - t // 2, 0, w - t))
                else:
                    y, x = int(rng.integers(0, h - t + 1)), int(rng.integers(0, w - t + 1))
                xs.append(img[y : y + t, x : x + t])
                ys.append(1)
        n_good = ng if not label else max(1, ng // 3)
        if label and not mask.any():
            continue
        for _ in range(n_good):
            for _try in range(8):
                y, x = int(rng.integers(0, h - t + 1)), int(rng.integers(0, w - t + 1))
                if not mask[max(0, y - 4) : y + t + 4, max(0, x - 4) : x + t + 4].any():
                    xs.append(img[y : y + t, x : x + t])
                    ys.append(0)
                    break
    return np.stack(xs), np.asarray(ys, np.float32)


def augment(x: np.ndarray, rng: np.random.Generator, rotate: bool = True) -> np.ndarray:
    """Flips, 90-degree rotations, brightness and contrast jitter on uint8 tiles -> float [0,1].

    ``rotate=False`` keeps the surface's orientation (flips only): on parts with directional
    texture (grinding streaks) a streak turned by 90 degrees is itself an anomaly.
    """
    out = np.empty(x.shape, np.float32)
    for i, t in enumerate(x):
        if rotate:
            t = np.rot90(t, int(rng.integers(4)))
        elif rng.random() < 0.5:
            t = t[::-1]
        if rng.random() < 0.5:
            t = t[:, ::-1]
        out[i] = t
    out /= 255.0
    a = rng.uniform(0.75, 1.25, (len(x), 1, 1)).astype(np.float32)
    b = rng.uniform(-0.12, 0.12, (len(x), 1, 1)).astype(np.float32)
    m = out.mean(axis=(1, 2), keepdims=True)
    return np.clip((out - m) * a + m + b, 0, 1)[..., None]




def good_only_crops(
    images: list[Image],
    cfg: InspectConfig,
    rng: np.random.Generator,
    per_image: int | None = None,
) -> Crops:
    """Good crops (label 0) and the same number with a synthetic defect (label 1)."""
    goods = [im for im in images if im[2] == 0]
    x0, _ = sample_crops(goods, cfg, rng, defect_crops=0, good_crops=per_image or cfg.good_crops)
    donors = rng.permutation(len(x0))
    x1 = np.stack([synthetic_defect(x0[i], rng, x0[donors[i]]) for i in range(len(x0))])
    return np.concatenate([x0, x1]), np.r_[np.zeros(len(x0)), np.ones(len(x1))].astype(np.float32)
