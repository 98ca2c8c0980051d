"""Every face the embedding network sees, at one scale and position: ``face_crop``.

Faces with landmarks are aligned by a similarity transform (eyes, nose, mouth corners land on
the ArcFace reference points); faces from a box-only detector are placed where that detector's
boxes sit in aligned crops (``BOX_LAYOUT``); no face at all gives a centre crop. The same
``face_crop`` runs in training, in the benchmark and on the device, so the device does what
was evaluated.
"""

from __future__ import annotations

import numpy as np

from .detect import Detection, Detector, detect_padded, largest, to_bgr

__all__ = ["ARCFACE_112", "BOX_LAYOUT", "canonical_points", "align_face", "box_transform", "face_crop",
           "face_crops"]

# Where the five landmarks (eye, eye, nose tip, mouth corner, mouth corner; image left first)
# land in a 112x112 crop: the ArcFace reference layout, scaled to any crop size.
ARCFACE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float32,
)
# Where each detector's box lands in the aligned crop, as fractions of the crop size: (box width,
# box centre x, box centre y). Medians over 1,100 images of the training sets (AR, IMM, GT; not
# ORL), with the YuNet landmark alignment as reference, so a box-only crop matches the aligned
# crops the network was trained on.
BOX_LAYOUT = {
    "yunet": (0.697, 0.501, 0.587),
    "ultralight": (0.729, 0.499, 0.646),
    "haar": (0.895, 0.5, 0.567),
}


def canonical_points(size: int) -> np.ndarray:
    """Where the 5 landmarks go in a ``size`` x ``size`` aligned crop."""
    return ARCFACE_112 * (size / 112.0)


def align_face(img: np.ndarray, landmarks: np.ndarray, size: int) -> np.ndarray:
    """Warp ``img`` so ``landmarks`` land on ``canonical_points(size)`` (similarity transform)."""
    import cv2

    src = np.asarray(landmarks, dtype=np.float32).reshape(5, 2)
    if not np.isfinite(src).all():
        raise ValueError("landmarks contain NaN or infinite values")
    m, _ = cv2.estimateAffinePartial2D(src, canonical_points(size), method=cv2.LMEDS)
    if m is None:
        raise ValueError("landmarks are degenerate: no similarity transform")
    return cv2.warpAffine(img, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def box_transform(box: tuple[float, float, float, float], size: int, kind: str = "") -> np.ndarray:
    """The 2x3 image -> crop transform placing a ``kind`` detector's box as in aligned crops."""
    x, y, w, h = box
    wf, fx, fy = BOX_LAYOUT.get(kind, BOX_LAYOUT["ultralight"])
    s = wf * size / max(w, 1e-6)
    cx, cy = x + w / 2, y + h / 2
    return np.array([[s, 0, fx * size - s * cx], [0, s, fy * size - s * cy]], dtype=np.float32)


def _box_crop(img: np.ndarray, box: tuple[float, float, float, float], size: int,
              kind: str = "") -> np.ndarray:
    """A square crop placing the box where this detector's boxes sit in aligned crops (BOX_LAYOUT)."""
    import cv2

    m = box_transform(box, size, kind)
    return cv2.warpAffine(img, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _centre_crop(img: np.ndarray, size: int) -> np.ndarray:
    """No face found: the middle square, so face-set images (already cropped) still give a crop."""
    import cv2

    h, w = img.shape[:2]
    s = min(h, w)
    y0, x0 = (h - s) // 2, (w - s) // 2
    return cv2.resize(img[y0 : y0 + s, x0 : x0 + s], (size, size), interpolation=cv2.INTER_AREA)


def face_crop(img: np.ndarray, det: Detection | None, size: int) -> tuple[np.ndarray, str]:
    """The canonical grey crop of one face and how it was made (aligned / box / centre)."""
    import cv2

    g = img if img.ndim == 2 else cv2.cvtColor(to_bgr(img), cv2.COLOR_BGR2GRAY)
    if det is None:
        return _centre_crop(g, size), "centre"
    if det.landmarks is not None:
        return align_face(g, det.landmarks, size), "aligned"
    return _box_crop(g, det.box, size, det.kind), "box"


def face_crops(images: list[np.ndarray], detector: Detector, size: int, pad: float = 0.3,
               min_side: int = 160) -> tuple[np.ndarray, list[str]]:
    """Detect (padded, upscaled: face-set images are tight, small crops) and align many images.

    Used for training sets, galleries from photo folders and the benchmark, so all of them get
    the same crops as the live loop. Returns (n, size, size) uint8 and how each was made.
    """
    out = np.empty((len(images), size, size), np.uint8)
    how = []
    for i, img in enumerate(images):
        d = largest(detect_padded(detector, img, pad, min_side))
        out[i], h = face_crop(img, d, size)
        how.append(h)
    return out, how
