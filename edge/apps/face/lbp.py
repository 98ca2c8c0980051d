"""Local binary pattern histograms of aligned crops: the classic LBPH descriptor as a unit vector.

LBPH (8 neighbours, radius 1, a grid of cell histograms) is the classic method that matched the
embedding network on ORL. Here each cell histogram keeps the 58 uniform patterns plus one bin for
the rest, and the vector holds the square roots of the normalised counts scaled to unit length:
a dot product of two such vectors is the Hellinger (Bhattacharyya) affinity, a close stand-in for
the chi-square distance ``cv2.face.LBPHFaceRecognizer`` uses, but one that averages into a
template and compares many people with one matrix product, as the embeddings do. Numpy only, so
the device needs no OpenCV contrib build for it.
"""

from __future__ import annotations

import numpy as np

__all__ = ["LBP_GRID", "lbp_codes", "lbp_vectors"]

LBP_GRID = 8  # cells per side


def _uniform_lut() -> np.ndarray:
    """Pattern (0..255) -> bin: 58 uniform patterns (at most two 0/1 transitions), then one for the rest."""
    lut = np.full(256, 58, dtype=np.int64)
    k = 0
    for p in range(256):
        bits = [(p >> i) & 1 for i in range(8)]
        if sum(bits[i] != bits[(i + 1) % 8] for i in range(8)) <= 2:
            lut[p] = k
            k += 1
    return lut


_LUT = _uniform_lut()


def lbp_codes(crops: np.ndarray) -> np.ndarray:
    """(n, S, S) grey crops -> (n, S-2, S-2) uniform-LBP bin indices (8 neighbours, radius 1)."""
    x = np.asarray(crops, dtype=np.int16)
    c = x[:, 1:-1, 1:-1]
    h, w = c.shape[1:]
    code = np.zeros(c.shape, dtype=np.int64)
    offsets = ((-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1))
    for bit, (dy, dx) in enumerate(offsets):
        code |= (x[:, 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] >= c).astype(np.int64) << bit
    return _LUT[code]


def lbp_vectors(crops: np.ndarray, grid: int = LBP_GRID) -> np.ndarray:
    """(n, S, S) grey crops -> (n, grid * grid * 59) float32 unit vectors (square-rooted cell histograms)."""
    codes = lbp_codes(crops)
    n, h, w = codes.shape
    ys = np.minimum(np.arange(h) * grid // h, grid - 1)
    xs = np.minimum(np.arange(w) * grid // w, grid - 1)
    cell = (ys[:, None] * grid + xs[None, :]).ravel()
    flat = (cell[None, :] * 59 + codes.reshape(n, -1)).astype(np.int64)
    flat += (np.arange(n) * grid * grid * 59)[:, None]
    hist = np.bincount(flat.ravel(), minlength=n * grid * grid * 59).reshape(n, -1).astype(np.float32)
    v = np.sqrt(hist)
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
