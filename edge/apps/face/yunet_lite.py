"""YuNet through LiteRT: the face detector in float32 or int8 on the Pi's XNNPACK kernels.

``cv2.FaceDetectorYN`` runs YuNet's ONNX file in float32 on OpenCV's own kernels, and on a Pi
that detector is most of a face frame's model time. ``edgewise convert --task face-detector``
rebuilds the same network for LiteRT (float32 and int8, one output per kind: scores (cls, obj),
boxes, landmarks). This module runs it and decodes exactly as OpenCV does: a cell's score is
sqrt(cls x obj), its box centre is (col + dx, row + dy) x stride, its size exp(dw, dh) x stride,
landmarks (col + lx, row + ly) x stride, then non-maximum suppression.

The network has a fixed input (320x320 as published): a frame is scaled to fit and padded at the
bottom/right, so detection costs the same on any camera resolution, and coordinates come back in
the frame's pixels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...backends import open_model
from .detect import Detection, nms, to_bgr

__all__ = ["STRIDES", "LiteYuNetDetector", "letterbox", "yunet_grid", "decode_yunet"]

STRIDES = (8, 16, 32)


def letterbox(img: np.ndarray, width: int, height: int) -> tuple[np.ndarray, float]:
    """BGR frame -> float32 (height, width, 3) canvas, scaled to fit and padded bottom/right with
    zeros (as OpenCV pads YuNet's input), and the scale that maps canvas pixels back to the frame."""
    import cv2

    H, W = img.shape[:2]
    s = min(width / W, height / H)
    rw, rh = max(1, min(width, round(W * s))), max(1, min(height, round(H * s)))
    canvas = np.zeros((height, width, 3), np.float32)
    same = (rw, rh) == (W, H)
    canvas[:rh, :rw] = img if same else cv2.resize(img, (rw, rh), interpolation=cv2.INTER_LINEAR)
    return canvas, s


def yunet_grid(width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """(col, row) of every output cell and its stride, in the converted model's row order:
    stride 8 cells first, then 16, then 32, each row-major."""
    cells, strides = [], []
    for s in STRIDES:
        cols, rows = width // s, height // s
        r, c = np.mgrid[0:rows, 0:cols]
        cells.append(np.stack([c.ravel(), r.ravel()], 1))
        strides.append(np.full(rows * cols, s))
    return np.concatenate(cells).astype(np.float32), np.concatenate(strides).astype(np.float32)


def decode_yunet(scores: np.ndarray, boxes: np.ndarray, kps: np.ndarray, cells: np.ndarray,
                 strides: np.ndarray, score_threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows above the threshold -> (corner boxes (n, 4), scores (n,), landmarks (n, 5, 2)), input pixels."""
    cls, obj = np.clip(scores[:, 0], 0, 1), np.clip(scores[:, 1], 0, 1)
    score = np.sqrt(cls * obj)
    m = score >= score_threshold
    if not m.any():
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 5, 2), np.float32)
    cell, s = cells[m], strides[m][:, None]
    b = boxes[m]
    centre = (cell + b[:, :2]) * s
    size = np.exp(b[:, 2:4]) * s
    corners = np.concatenate([centre - size / 2, centre + size / 2], 1)
    lm = (kps[m].reshape(-1, 5, 2) + cell[:, None, :]) * s[:, :, None]
    return corners.astype(np.float32), score[m].astype(np.float32), lm.astype(np.float32)


class LiteYuNetDetector:
    """YuNet converted for LiteRT (``.tflite``): boxes, scores and 5 landmarks, like YuNetDetector."""

    name = "yunet"

    def __init__(self, model: str | Path, score_threshold: float = 0.6, nms_threshold: float = 0.3,
                 threads: int | None = 1):
        self.path = Path(model)
        if not self.path.is_file():
            raise ValueError(f"{self.path}: YuNet model file not found (--detector-model)")
        self.model = open_model(self.path, threads=threads)
        shp = self.model.input_shape
        if len(shp) != 4 or shp[3] != 3 or not shp[1] or not shp[2]:
            raise ValueError(f"{self.path}: expected a converted YuNet with a fixed (1, H, W, 3) input, "
                             f"found {shp} (edgewise convert --task face-detector)")
        self.h, self.w = int(shp[1]), int(shp[2])
        self.cells, self.strides = yunet_grid(self.w, self.h)
        self.score_threshold, self.nms_threshold = score_threshold, nms_threshold

    def _outputs(self, outs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        by_width = {o.shape[-1]: o.reshape(-1, o.shape[-1]) for o in outs}
        if sorted(by_width) != [2, 4, 10] or any(len(v) != len(self.cells) for v in by_width.values()):
            raise ValueError(f"{self.path.name}: outputs {[o.shape for o in outs]} are not a converted "
                             f"YuNet's (scores, boxes, landmarks over {len(self.cells)} cells)")
        return by_width[2], by_width[4], by_width[10]

    def detect(self, img: np.ndarray) -> list[Detection]:
        canvas, s = letterbox(to_bgr(img), self.w, self.h)
        scores, boxes, kps = self._outputs(self.model.predict_all(canvas[None]))
        corners, score, lm = decode_yunet(scores, boxes, kps, self.cells, self.strides, self.score_threshold)
        keep = nms(corners, score, self.nms_threshold, top_k=50)
        out = []
        for i in keep:
            x1, y1, x2, y2 = corners[i] / s
            out.append(Detection((float(x1), float(y1), float(x2 - x1), float(y2 - y1)), float(score[i]),
                                 lm[i] / s, "yunet"))
        return out

    def close(self) -> None:
        self.model.close()
