"""Face detectors behind one call, ``detect(img) -> list[Detection]``.

Three detectors, because a Pi owner may have only some of the model files: YuNet through
``cv2.FaceDetectorYN`` (box + 5 landmarks, so faces can be aligned; a ``.tflite`` made by
``edgewise convert --task face-detector`` runs in LiteRT instead, see ``yunet_lite``),
Ultra-Light RFB-320 through LiteRT or ONNX Runtime (priors decoded and NMS applied here; boxes only)
and OpenCV's Haar cascade, the fallback that needs no model file. ``detector_model_path`` is the
one lookup of a detector's model file, so ``run face``, ``enroll``, training and ``bench face``
load the same file.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from ...backends import open_model

__all__ = [
    "DETECTORS",
    "DETECTOR_FILES",
    "Detection",
    "Detector",
    "YuNetDetector",
    "UltraLightDetector",
    "HaarDetector",
    "ultralight_priors",
    "decode_ultralight",
    "nms",
    "detector_model_path",
    "make_detector",
    "largest",
    "detect_padded",
    "to_bgr",
]

DETECTORS = ("yunet", "ultralight", "haar")
# The detector model files as published, below the datasets folder ($EDGEWISE_DATA).
DETECTOR_FILES = {
    "yunet": "models/face_detection/yunet_n_320_320.onnx",
    "ultralight": "models/face_detection/ultra_light_rfb_320_without_postprocessing.tflite",
}


@dataclass
class Detection:
    """One face: box (x, y, w, h) in frame pixels, score, and 5 landmarks (5, 2) or None."""

    box: tuple[float, float, float, float]
    score: float
    landmarks: np.ndarray | None = None
    kind: str = ""  # which detector: its boxes sit differently on the face (see align.BOX_LAYOUT)


class Detector(Protocol):
    """What the face loop needs of a detector: its name and boxes (with landmarks if it has them)."""

    name: str

    def detect(self, img: np.ndarray) -> list[Detection]: ...


def to_bgr(img: np.ndarray) -> np.ndarray:
    """Grey, BGR or BGRA -> BGR, the layout every detector takes; an empty frame is refused by name."""
    import cv2

    if img is None or not isinstance(img, np.ndarray) or img.size == 0:
        raise ValueError("empty image")
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    if img.ndim == 3 and img.shape[2] == 3:
        return img
    if img.ndim == 3 and img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    raise ValueError(f"image of shape {img.shape} is neither grey nor BGR")


@contextlib.contextmanager
def _opencv_quiet() -> Iterator[None]:
    """OpenCV's warnings off unless ``-v``: OpenCV 5's new DNN engine warns "setPreferableTarget
    Targets are not supported by the new graph engine" for every YuNet created (the default CPU
    target it is given is simply ignored). Errors still raise ``cv2.error``."""
    import cv2

    from ...progress import VERBOSE

    logging_mod = getattr(getattr(cv2, "utils", None), "logging", None)
    if VERBOSE or logging_mod is None:
        yield
        return
    before = logging_mod.getLogLevel()
    logging_mod.setLogLevel(logging_mod.LOG_LEVEL_ERROR)
    try:
        yield
    finally:
        logging_mod.setLogLevel(before)


class YuNetDetector:
    """YuNet (libfacedetection) through ``cv2.FaceDetectorYN``: boxes and 5 landmarks."""

    name = "yunet"

    def __init__(self, model: str | Path, score_threshold: float = 0.6, nms_threshold: float = 0.3):
        import cv2

        self.model = Path(model)
        if not self.model.is_file():
            raise ValueError(f"{self.model}: YuNet model file not found (--detector-model)")
        try:
            with _opencv_quiet():
                self._det = cv2.FaceDetectorYN.create(str(self.model), "", (320, 320), score_threshold,
                                                      nms_threshold, 50)
        except cv2.error as e:
            raise ValueError(f"{self.model}: not a loadable YuNet model ({str(e).strip()[:80]})") from None
        self._size: tuple[int, int] = (320, 320)

    def detect(self, img: np.ndarray) -> list[Detection]:
        img = to_bgr(img)
        h, w = img.shape[:2]
        if (w, h) != self._size:
            self._det.setInputSize((w, h))
            self._size = (w, h)
        _, faces = self._det.detect(img)
        if faces is None:
            return []
        return [
            Detection(tuple(float(v) for v in f[:4]), float(f[14]), f[4:14].reshape(5, 2).astype(np.float32),
                      "yunet")
            for f in faces
        ]


def ultralight_priors(width: int = 320, height: int = 240) -> np.ndarray:
    """Anchor boxes (cx, cy, w, h), normalized, in the order the Ultra-Light network emits them.

    Four feature maps (strides 8, 16, 32, 64) with 3, 2, 2, 3 square anchors per cell; 4,420
    priors at 320x240.
    """
    min_boxes = [[10, 16, 24], [32, 48], [64, 96], [128, 192, 256]]
    strides = [8, 16, 32, 64]
    out = []
    for stride, boxes in zip(strides, min_boxes, strict=True):
        fw, fh = int(np.ceil(width / stride)), int(np.ceil(height / stride))
        for j in range(fh):
            for i in range(fw):
                cx, cy = (i + 0.5) * stride / width, (j + 0.5) * stride / height
                for b in boxes:
                    out.append((cx, cy, b / width, b / height))
    return np.clip(np.array(out, dtype=np.float32), 0.0, 1.0)


def decode_ultralight(loc: np.ndarray, priors: np.ndarray, center_var: float = 0.1,
                      size_var: float = 0.2) -> np.ndarray:
    """Regression offsets -> corner boxes (x1, y1, x2, y2), normalized to [0, 1]."""
    c = loc[:, :2] * center_var * priors[:, 2:] + priors[:, :2]
    s = np.exp(loc[:, 2:] * size_var) * priors[:, 2:]
    return np.concatenate([c - s / 2, c + s / 2], axis=1)


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float = 0.3, top_k: int = 50) -> list[int]:
    """Greedy non-maximum suppression on corner boxes; indices of the kept boxes, best first."""
    order = np.argsort(-scores)
    keep: list[int] = []
    area = np.maximum(0, boxes[:, 2] - boxes[:, 0]) * np.maximum(0, boxes[:, 3] - boxes[:, 1])
    while order.size and len(keep) < top_k:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        xx1 = np.maximum(boxes[i, 0], boxes[rest, 0])
        yy1 = np.maximum(boxes[i, 1], boxes[rest, 1])
        xx2 = np.minimum(boxes[i, 2], boxes[rest, 2])
        yy2 = np.minimum(boxes[i, 3], boxes[rest, 3])
        inter = np.maximum(0, xx2 - xx1) * np.maximum(0, yy2 - yy1)
        ov = inter / np.maximum(area[i] + area[rest] - inter, 1e-9)
        order = rest[ov <= iou]
    return keep


class UltraLightDetector:
    """Ultra-Light-Fast-Generic-Face-Detector RFB-320 (the model without post-processing).

    Runs in LiteRT (``.tflite``, NHWC) or ONNX Runtime (``.onnx``, NCHW); input RGB
    (x - 127) / 128 at 320x240; the priors are decoded and NMS applied here. Boxes only, no
    landmarks, so faces are centre-cropped rather than aligned.
    """

    name = "ultralight"

    def __init__(self, model: str | Path, score_threshold: float = 0.7, iou: float = 0.3,
                 threads: int | None = 1):
        self.model = open_model(model, threads=threads)
        shp = self.model.input_shape
        self.nchw = len(shp) == 4 and shp[1] == 3
        self.h, self.w = (shp[2], shp[3]) if self.nchw else (shp[1], shp[2])
        if not self.h or not self.w:
            self.h, self.w = 240, 320
        self.priors = ultralight_priors(self.w, self.h)
        self.score_threshold = score_threshold
        self.iou = iou

    def detect(self, img: np.ndarray) -> list[Detection]:
        import cv2

        img = to_bgr(img)
        H, W = img.shape[:2]
        x = cv2.cvtColor(cv2.resize(img, (self.w, self.h)), cv2.COLOR_BGR2RGB).astype(np.float32)
        x = (x - 127.0) / 128.0
        x = x.transpose(2, 0, 1)[None] if self.nchw else x[None]
        outs = self.model.predict_all(x)
        scores = next(o for o in outs if o.shape[-1] == 2)[0]
        loc = next(o for o in outs if o.shape[-1] == 4)[0]
        if len(loc) != len(self.priors):
            raise ValueError(f"{self.model.path.name}: {len(loc)} boxes but {len(self.priors)} priors; "
                             "expected the RFB-320 model without post-processing")
        if not np.allclose(scores.sum(1), 1.0, atol=1e-3):  # logits: apply softmax
            e = np.exp(scores - scores.max(1, keepdims=True))
            scores = e / e.sum(1, keepdims=True)
        p = scores[:, 1]
        m = p > self.score_threshold
        if not m.any():
            return []
        boxes = decode_ultralight(loc[m], self.priors[m]) * np.array([W, H, W, H], dtype=np.float32)
        keep = nms(boxes, p[m], self.iou)
        return [
            Detection((float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])), float(s), None,
                      "ultralight")
            for b, s in zip(boxes[keep], p[m][keep], strict=True)
        ]


def _haar_file() -> Path | None:
    import cv2

    name = "haarcascade_frontalface_default.xml"
    dirs = [getattr(getattr(cv2, "data", None), "haarcascades", "") or "",
            "/usr/share/opencv4/haarcascades", "/usr/share/opencv/haarcascades"]
    for d in dirs:
        if d and (Path(d) / name).is_file():
            return Path(d) / name
    return None


class HaarDetector:
    """OpenCV's bundled frontal-face Haar cascade: no model download, boxes only."""

    name = "haar"

    def __init__(self, model: str | Path | None = None):
        import cv2

        path = Path(model) if model else _haar_file()
        if path is None or not path.is_file():
            raise ValueError("Haar cascade haarcascade_frontalface_default.xml not found in cv2.data or "
                             "/usr/share/opencv4 (apt install opencv-data, or pass --detector-model)")
        self._c = cv2.CascadeClassifier(str(path))
        if self._c.empty():
            raise ValueError(f"{path}: not a loadable Haar cascade")

    def detect(self, img: np.ndarray) -> list[Detection]:
        import cv2

        g = cv2.cvtColor(to_bgr(img), cv2.COLOR_BGR2GRAY)
        g = cv2.equalizeHist(g)
        found = self._c.detectMultiScale(g, scaleFactor=1.1, minNeighbors=4, minSize=(24, 24))
        boxes = found if len(found) else []
        return [Detection(tuple(float(v) for v in b), 1.0, None, "haar") for b in boxes]


def detector_model_path(kind: str, model: str | Path | None = None, data: str | Path | None = None
                        ) -> Path | None:
    """The detector's model file: ``model`` (the --detector-model flag), else the public file under
    ``data`` (the --data flag) or ``$EDGEWISE_DATA``, so ``run face``, ``enroll`` and ``bench face``
    find the same file the same way. Haar needs none (OpenCV's own cascade): None then.
    """
    if model:
        return Path(model).expanduser()
    if kind not in DETECTOR_FILES:
        return None
    root = data or os.environ.get("EDGEWISE_DATA")
    rel = DETECTOR_FILES[kind]
    if not root:
        raise ValueError(f"detector '{kind}' needs --detector-model PATH (or EDGEWISE_DATA set to the "
                         f"datasets folder holding {rel})")
    path = Path(root).expanduser() / rel
    if not path.is_file():
        raise ValueError(f"{path}: {kind} model not found in the datasets folder; pass --detector-model PATH")
    return path


def make_detector(kind: str, model: str | Path | None = None, threads: int | None = 1) -> Detector:
    """One of ``DETECTORS``; YuNet and Ultra-Light read their model file (``detector_model_path``)."""
    if kind == "haar":
        return HaarDetector(model)
    if kind not in DETECTORS:
        raise ValueError(f"unknown detector '{kind}'; valid: {', '.join(DETECTORS)}")
    model = detector_model_path(kind, model)
    if kind == "yunet" and model is not None and model.suffix == ".tflite":
        from .yunet_lite import LiteYuNetDetector  # converted for LiteRT (float32 or int8)

        return LiteYuNetDetector(model, threads=threads)
    if kind == "yunet":
        return YuNetDetector(model)
    return UltraLightDetector(model, threads=threads)


def largest(dets: list[Detection]) -> Detection | None:
    """The biggest face: in enrollment photos and face sets it is the person meant."""
    return max(dets, key=lambda d: d.box[2] * d.box[3]) if dets else None


def detect_padded(detector: Detector, img: np.ndarray, pad: float = 0.0, min_side: int = 0
                  ) -> list[Detection]:
    """Detect on an image padded by ``pad`` x its size (tight crops) and upscaled to ``min_side``.

    Face-set images are often cropped to the face itself, which detectors trained on scenes
    miss; a replicated border and a larger canvas fix that. Coordinates come back in the
    original image.
    """
    import cv2

    h, w = img.shape[:2]
    py, px = int(round(h * pad)), int(round(w * pad))
    big = cv2.copyMakeBorder(img, py, py, px, px, cv2.BORDER_REPLICATE) if pad else img
    s = max(1.0, min_side / min(big.shape[:2])) if min_side else 1.0
    if s != 1.0:
        big = cv2.resize(big, None, fx=s, fy=s, interpolation=cv2.INTER_LINEAR)
    out = []
    for d in detector.detect(big):
        x, y, bw, bh = d.box
        lm = None if d.landmarks is None else d.landmarks / s - np.array([px, py], dtype=np.float32)
        out.append(Detection((x / s - px, y / s - py, bw / s, bh / s), d.score, lm, d.kind))
    return out
