"""Every face the embedding network sees, at one scale and position: ``face_crop``.

Faces with landmarks are aligned by a similarity transform (eyes, nose, mouth corners land on
the ArcFace reference points); faces from a box-only detector are placed where that detector's
boxes sit in aligned crops (``BOX_LAYOUT``); no face at all gives a centre crop. The same
``face_crop`` runs in training, in the benchmark and on the device, so the device does what
was evaluated. A pretrained embedder brought with ``edgewise convert --task face-embedding`` may
name its own landmark template (``config.crop.template`` in the bundle, crop pixels) and take
colour crops; bundles without one get the ArcFace layout in grey, as always.
"""

from __future__ import annotations

import numpy as np

from .detect import Detection, Detector, detect_padded, largest, to_bgr

__all__ = ["ARCFACE_112", "BOX_LAYOUT", "CROP_COLORS", "canonical_points", "check_template", "align_face",
           "box_transform", "face_crop", "face_crops"]

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


# the colours a crop is cut in: grey (the trained bundles), or OpenCV's BGR for colour embedders
CROP_COLORS = ("gray", "bgr")


def canonical_points(size: int) -> np.ndarray:
    """Where the 5 landmarks go in a ``size`` x ``size`` aligned crop."""
    return ARCFACE_112 * (size / 112.0)


def check_template(template: object, size: int) -> np.ndarray:
    """A 5-point landmark template as (5, 2) float32 crop pixels, or ValueError saying what is wrong.

    Five distinct points inside the ``size`` x ``size`` crop, eyes above the mouth: a template
    that is mirrored or upside down would align every face wrongly without any error.
    """
    try:
        t = np.asarray(template, dtype=np.float32).reshape(5, 2)
    except (TypeError, ValueError):
        raise ValueError(f"alignment template must be 5 (x, y) points (10 numbers); got {template!r}"
                         ) from None
    if not np.isfinite(t).all() or (t < 0).any() or (t > size).any():
        raise ValueError(f"alignment template points must lie inside the {size}x{size} crop; "
                         f"got {t.tolist()}")
    if not (t[0, 0] < t[1, 0] and t[3, 0] < t[4, 0] and max(t[0, 1], t[1, 1]) < min(t[3, 1], t[4, 1])):
        raise ValueError("alignment template must list left eye, right eye, nose, left and right mouth "
                         f"corner (image left first, eyes above the mouth); got {t.tolist()}")
    return t


def align_face(img: np.ndarray, landmarks: np.ndarray, size: int, template: np.ndarray | None = None
               ) -> np.ndarray:
    """Warp ``img`` so ``landmarks`` land on ``template`` (default ``canonical_points(size)``) by a
    similarity transform."""
    import cv2

    src = np.asarray(landmarks, dtype=np.float32).reshape(5, 2)
    if not np.isfinite(src).all():
        raise ValueError("landmarks contain NaN or infinite values")
    dst = canonical_points(size) if template is None else np.asarray(template, dtype=np.float32)
    m, _ = cv2.estimateAffinePartial2D(src, dst, method=cv2.LMEDS)
    if m is None:
        raise ValueError("landmarks are degenerate: no similarity transform")
    return cv2.warpAffine(img, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def box_transform(box: tuple[float, float, float, float], size: int, kind: str = "",
                  template: np.ndarray | None = None) -> np.ndarray:
    """The 2x3 image -> crop transform placing a ``kind`` detector's box as in aligned crops.

    ``BOX_LAYOUT`` was measured in ArcFace-aligned crops; with another ``template`` the box is
    carried over by the similarity transform from the ArcFace points to that template.
    """
    x, y, w, h = box
    wf, fx, fy = BOX_LAYOUT.get(kind, BOX_LAYOUT["ultralight"])
    s = wf * size / max(w, 1e-6)
    cx, cy = x + w / 2, y + h / 2
    m = np.array([[s, 0, fx * size - s * cx], [0, s, fy * size - s * cy]], dtype=np.float32)
    if template is None:
        return m
    import cv2

    t, _ = cv2.estimateAffinePartial2D(canonical_points(size), np.asarray(template, np.float32))
    return (t @ np.vstack([m, [0, 0, 1]])).astype(np.float32)


def _box_crop(img: np.ndarray, box: tuple[float, float, float, float], size: int,
              kind: str = "", template: np.ndarray | None = None) -> np.ndarray:
    """A square crop placing the box where this detector's boxes sit in aligned crops (BOX_LAYOUT)."""
    import cv2

    m = box_transform(box, size, kind, template)
    return cv2.warpAffine(img, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _centre_crop(img: np.ndarray, size: int) -> np.ndarray:
    """No face found: the middle square, so face-set images (already cropped) still give a crop."""
    import cv2

    h, w = img.shape[:2]
    s = min(h, w)
    y0, x0 = (h - s) // 2, (w - s) // 2
    return cv2.resize(img[y0 : y0 + s, x0 : x0 + s], (size, size), interpolation=cv2.INTER_AREA)


def face_crop(img: np.ndarray, det: Detection | None, size: int, *, color: str = "gray",
              template: np.ndarray | None = None) -> tuple[np.ndarray, str]:
    """The canonical crop of one face and how it was made (aligned / box / centre).

    ``color`` ``gray`` gives (size, size), ``bgr`` (size, size, 3) (a grey image is repeated into
    the three channels); ``template`` places the landmarks (default: the ArcFace layout).
    """
    import cv2

    if color not in CROP_COLORS:
        raise ValueError(f"crop colour must be one of {', '.join(CROP_COLORS)}; got {color!r}")
    if color == "gray":
        g = img if img.ndim == 2 else cv2.cvtColor(to_bgr(img), cv2.COLOR_BGR2GRAY)
    else:
        g = to_bgr(img)
    if det is None:
        return _centre_crop(g, size), "centre"
    if det.landmarks is not None:
        return align_face(g, det.landmarks, size, template), "aligned"
    return _box_crop(g, det.box, size, det.kind, template), "box"


def face_crops(images: list[np.ndarray], detector: Detector, size: int, pad: float = 0.3,
               min_side: int = 160, *, color: str = "gray", template: np.ndarray | None = None
               ) -> tuple[np.ndarray, list[str]]:
    """Detect (padded, upscaled: face-set images are tight, small crops) and align many images.

    Used for training sets, galleries from photo folders and the benchmark, so all of them get
    the same crops as the live loop. Returns (n, size, size) uint8 ((n, size, size, 3) for
    ``color`` ``bgr``) and how each was made.
    """
    out = np.empty((len(images), size, size, *((3,) if color == "bgr" else ())), np.uint8)
    how = []
    for i, img in enumerate(images):
        d = largest(detect_padded(detector, img, pad, min_side))
        out[i], h = face_crop(img, d, size, color=color, template=template)
        how.append(h)
    return out, how
