"""Training augmentation: pose, resolution and lighting changes of the aligned crops."""

from __future__ import annotations

import numpy as np

__all__ = ["AUGMENTATIONS", "augment"]

AUGMENTATIONS = ("basic", "strong")


def augment(x: np.ndarray, rng: np.random.Generator, strength: str = "strong") -> np.ndarray:
    """Random pose jitter, flip, blur / low resolution, brightness, contrast and gamma (uint8 in/out).

    The low-resolution and blur steps make the network tolerate small, soft faces (GT is 40x30),
    the photometric steps make any grey rendering of a colour camera acceptable. ``strong``
    (the default) widens the geometric jitter (rotation +-15 deg, scale 0.85-1.15, shift 8 %:
    aligned crops of turned or tilted heads vary that much) and blanks a random patch in a
    quarter of the images (glasses, hands, hair); ``"basic"`` is the earlier, milder recipe.
    """
    import cv2

    if strength not in AUGMENTATIONS:
        raise ValueError(f"augmentation strength must be 'basic' or 'strong'; got {strength!r}")
    strong = strength == "strong"
    rot, scl, sh = (15.0, 0.15, 0.08) if strong else (10.0, 0.1, 0.05)
    n, S = len(x), x.shape[1]
    out = np.empty_like(x)
    for i in range(n):
        a = rng.uniform(-rot, rot)
        sc = rng.uniform(1 - scl, 1 + scl)
        m = cv2.getRotationMatrix2D((S / 2, S / 2), a, sc)
        m[:, 2] += rng.uniform(-sh, sh, 2) * S
        im = cv2.warpAffine(x[i], m, (S, S), borderMode=cv2.BORDER_REPLICATE)
        if rng.random() < 0.5:
            im = im[:, ::-1]
        r = rng.random()
        if r < 0.2:
            k = int(rng.integers(S // 4, S // 2 + 1))
            im = cv2.resize(cv2.resize(im, (k, k), interpolation=cv2.INTER_AREA), (S, S))
        elif r < 0.3:
            im = cv2.GaussianBlur(im, (3, 3), rng.uniform(0.5, 1.2))
        f = im.astype(np.float32) / 255.0
        f = np.clip(f ** rng.uniform(0.7, 1.4), 0, 1)
        f = (f - f.mean()) * rng.uniform(0.7, 1.3) + f.mean() + rng.uniform(-0.12, 0.12)
        if strong and rng.random() < 0.25:
            h, w = (int(v) for v in rng.integers(S // 8, S // 3 + 1, 2))
            y0, x0 = int(rng.integers(0, S - h + 1)), int(rng.integers(0, S - w + 1))
            f[y0 : y0 + h, x0 : x0 + w] = rng.uniform(0, 1)
        out[i] = np.clip(f * 255.0, 0, 255).astype(np.uint8)
    return out
