"""Synthetic defects on good tiles (good-only training) and a SYNTHETIC part dataset (demos
without real data); neither is ever presented as real defects."""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["synthetic_defect", "make_synthetic_dataset"]

def _smooth_mask(h: int, w: int, rng: np.random.Generator, cells: int, fill: float) -> np.ndarray:
    """A random blob-shaped soft mask in [0, 1] (Perlin-like: coarse noise, cubic upsampling,
    thresholded at the quantile that covers about ``fill`` of the tile)."""
    import cv2

    n = rng.normal(0, 1, (cells + 1, cells + 1)).astype(np.float32)
    n = cv2.resize(n, (w, h), interpolation=cv2.INTER_CUBIC)
    thr = np.quantile(n, 1 - fill)
    return np.clip((n - thr) / (n.std() * 0.15 + 1e-6), 0, 1)


def synthetic_defect(
    tile: np.ndarray, rng: np.random.Generator, donor: np.ndarray | None = None
) -> np.ndarray:
    """A good uint8 tile with one synthetic defect resembling a real kind of surface defect.

    Kinds: cut-paste patch (CutPaste), dark/bright pit of irregular shape (blowhole), thin
    jagged dark line (crack), broken edge (a dark or bright chunk entering from a tile side,
    break), frayed edge (dark ragged band along a side), a texture region from another tile
    blended through a noise mask (DRAEM-style), a smoothed region whose grinding texture is
    gone (uneven), and a smooth brightness blotch. Used by good-only mode (the model learns
    "anything unlike a good surface") and by the synthetic demo data; never presented as
    real defects.
    """
    import cv2

    t = tile.astype(np.float32).copy()
    h, w = t.shape
    kind = int(rng.integers(8))
    mean = float(t.mean())
    std = float(t.std()) + 1.0
    sign = -1.0 if rng.random() < 0.75 else 1.0  # real defects are mostly darker
    if kind == 0:  # cut-paste: a patch from elsewhere (or another part), jittered
        src = (donor if donor is not None else tile).astype(np.float32)
        ph, pw = int(rng.integers(6, h // 2)), int(rng.integers(6, w // 2))
        sy, sx = int(rng.integers(0, src.shape[0] - ph + 1)), int(rng.integers(0, src.shape[1] - pw + 1))
        patch = src[sy : sy + ph, sx : sx + pw]
        if rng.random() < 0.5:
            patch = patch.T if ph == pw else patch[::-1]
        patch = patch * rng.uniform(0.6, 1.4) + rng.uniform(-30, 30)
        dy, dx = int(rng.integers(0, h - ph + 1)), int(rng.integers(0, w - pw + 1))
        t[dy : dy + ph, dx : dx + pw] = patch
    elif kind == 1:  # pit / blowhole: small irregular dark (or bright) spot with a soft rim
        r = int(rng.integers(2, max(3, w // 7)))
        cy, cx = int(rng.integers(r, h - r)), int(rng.integers(r, w - r))
        local = _smooth_mask(2 * r + 1, 2 * r + 1, rng, 3, rng.uniform(0.35, 0.7))
        yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
        local *= (yy**2 + xx**2) <= r * r * rng.uniform(0.8, 1.2)
        m = np.zeros((h, w), np.float32)
        m[cy - r : cy + r + 1, cx - r : cx + r + 1] = local
        m = cv2.GaussianBlur(m, (0, 0), rng.uniform(0.5, 1.2))
        t = t + m * sign * rng.uniform(25, 90)
    elif kind == 2:  # crack / scratch: thin jagged polyline, mostly darker
        m = np.zeros((h, w), np.float32)
        p = np.array([rng.integers(0, w), rng.integers(0, h)], np.float64)
        ang = rng.uniform(0, 2 * np.pi)
        for _ in range(int(rng.integers(3, 10))):
            ang += rng.normal(0, 0.5)
            q = p + rng.uniform(3, w / 4) * np.array([np.cos(ang), np.sin(ang)])
            cv2.line(m, (int(p[0]), int(p[1])), (int(q[0]), int(q[1])), 1.0, int(rng.integers(1, 3)))
            p = q
        m = cv2.GaussianBlur(m, (0, 0), rng.uniform(0.4, 0.9))
        t = t + m * sign * rng.uniform(20, 80)
    elif kind in (3, 4):  # broken / frayed edge: a chunk or ragged band entering from one side
        m = _smooth_mask(h, w, rng, int(rng.integers(3, 7)), rng.uniform(0.3, 0.6))
        ramp = np.linspace(1.0, 0.0, h, dtype=np.float32)[:, None] ** rng.uniform(0.6, 3.0)
        depth = rng.uniform(0.15, 0.6) if kind == 3 else rng.uniform(0.05, 0.2)
        band = (ramp > 1 - depth).astype(np.float32)
        if kind == 4:  # fray: ragged edge of the band, streaks along it
            band = band * (rng.random((1, w)) < rng.uniform(0.5, 0.9))
            band = cv2.GaussianBlur(band, (0, 0), rng.uniform(0.7, 1.5))
        m = np.clip(band * (0.4 + m), 0, 1) if kind == 3 else band
        m = np.rot90(m, int(rng.integers(4))).copy()
        m = cv2.GaussianBlur(m, (0, 0), rng.uniform(0.5, 1.5))
        target = mean * rng.uniform(0, 0.6) if sign < 0 else min(250.0, mean + rng.uniform(30, 90))
        t = t * (1 - m) + m * (target + rng.normal(0, std * 0.3, t.shape).astype(np.float32))
    elif kind == 5:  # foreign texture through a noise mask (DRAEM-style)
        src = (donor if donor is not None else np.rot90(tile)).astype(np.float32)
        src = np.rot90(src, int(rng.integers(4)))[:h, :w]
        src = (src - src.mean()) * rng.uniform(0.5, 2.0) + mean + rng.uniform(-40, 40)
        m = _smooth_mask(h, w, rng, int(rng.integers(2, 6)), rng.uniform(0.1, 0.4))
        m = cv2.GaussianBlur(m, (0, 0), 1.0)
        a = rng.uniform(0.5, 1.0)
        t = t * (1 - a * m) + a * m * src
    elif kind == 6:  # uneven: a region whose grinding texture is smoothed out (and shifted)
        m = _smooth_mask(h, w, rng, int(rng.integers(2, 5)), rng.uniform(0.2, 0.6))
        m = cv2.GaussianBlur(m, (0, 0), 2.0)
        blur = cv2.GaussianBlur(t, (0, 0), rng.uniform(2.0, 5.0))
        smooth = blur + rng.uniform(-35, 25) + rng.normal(0, 2, t.shape).astype(np.float32)
        t = t * (1 - m) + m * smooth
    else:  # blotch: a large smooth brightness change
        m = _smooth_mask(h, w, rng, int(rng.integers(1, 4)), rng.uniform(0.15, 0.5))
        m = cv2.GaussianBlur(m, (0, 0), max(2.0, w / 16))
        t = t + m * sign * rng.uniform(20, 60)
    return np.clip(t, 0, 255).astype(np.uint8)



def make_synthetic_dataset(out: str | Path, n_good: int = 60, n_defect: int = 30, seed: int = 0) -> Path:
    """SYNTHETIC parts (textured grey tiles, synthetic defects with masks) in the folder layout.

    Only for the demo when no real data is available; every path says "synthetic".
    """
    import cv2

    out = Path(out)
    rng = np.random.default_rng(seed)

    def part() -> np.ndarray:
        h, w = int(rng.integers(180, 260)), int(rng.integers(180, 260))
        base = rng.normal(0, 1, (h // 8 + 1, w // 8 + 1)).astype(np.float32)
        base = cv2.resize(base, (w, h), interpolation=cv2.INTER_CUBIC) * 6 + rng.uniform(90, 150)
        grain = cv2.GaussianBlur(rng.normal(0, 8, (h, w)).astype(np.float32), (0, 0), 1.0)
        return np.clip(base + grain, 0, 255).astype(np.uint8)

    (out / "good").mkdir(parents=True, exist_ok=True)
    for i in range(n_good):
        cv2.imwrite(str(out / "good" / f"synthetic_good_{i:03d}.png"), part())
    for i in range(n_defect):
        img = part()
        t = 64
        y, x = int(rng.integers(0, img.shape[0] - t)), int(rng.integers(0, img.shape[1] - t))
        before = img[y : y + t, x : x + t].copy()
        after = synthetic_defect(before, rng)
        img[y : y + t, x : x + t] = after
        mask = np.zeros_like(img)
        mask[y : y + t, x : x + t] = (np.abs(after.astype(int) - before.astype(int)) > 12) * 255
        if not mask.any():
            mask[y + t // 2 - 2 : y + t // 2 + 2, x + t // 2 - 2 : x + t // 2 + 2] = 255
        d = out / "defect" / "synthetic"
        d.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(d / f"synthetic_defect_{i:03d}.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 95])
        cv2.imwrite(str(d / f"synthetic_defect_{i:03d}.png"), mask)
    return out
