"""Face recognition on the edge: detect -> align -> embed -> match against an SQLite gallery.

Three detectors behind one call (``detect(img) -> list[Detection]``): YuNet through
``cv2.FaceDetectorYN`` (box + 5 landmarks), Ultra-Light RFB-320 through LiteRT or ONNX
Runtime (priors decoded here, then NMS) and OpenCV's Haar cascade as the fallback that needs
no model file. Faces with landmarks are aligned to a canonical crop by a similarity transform
(eyes, nose, mouth corners land on fixed points), others are centre-cropped from their box, so
the embedding network always sees faces at the same scale and position. The same
``face_crop`` runs in training, in the benchmark and here, so the device does what was
evaluated.

>>> # edgewise enroll --gallery people.db --name alice --images photos/alice --bundle face.bundle
>>> # edgewise run face --bundle face.bundle --gallery people.db --source 0
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..backends import load_model, open_model
from ..bundle import Bundle, load_bundle
from ..pipeline import Frame
from .common import run_app, run_parser

__all__ = [
    "Detection",
    "YuNetDetector",
    "UltraLightDetector",
    "HaarDetector",
    "make_detector",
    "detector_model_path",
    "DETECTOR_FILES",
    "ultralight_priors",
    "decode_ultralight",
    "nms",
    "canonical_points",
    "align_face",
    "face_crop",
    "box_transform",
    "face_crops",
    "detect_padded",
    "largest",
    "l2n",
    "model_tag",
    "TTA_MODES",
    "bundle_tta",
    "tta_pair",
    "unknown_threshold",
    "FaceEmbedder",
    "match",
    "FaceApp",
    "run_main",
    "enroll_main",
]

log = logging.getLogger("edgewise.face")

# Where the five landmarks (eye, eye, nose tip, mouth corner, mouth corner; image left first)
# land in a 112x112 crop: the ArcFace reference layout, scaled to any crop size.
ARCFACE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float32,
)
DETECTORS = ("yunet", "ultralight", "haar")
# The detector model files as published, below the datasets folder ($EDGEWISE_DATA).
DETECTOR_FILES = {
    "yunet": "models/face_detection/yunet_n_320_320.onnx",
    "ultralight": "models/face_detection/ultra_light_rfb_320_without_postprocessing.tflite",
}
# Where each detector's box lands in the aligned crop, as fractions of the crop size: (box width,
# box centre x, box centre y). Medians over 1,100 images of the training sets (AR, IMM, GT; not
# ORL), with the YuNet landmark alignment as reference, so a box-only crop matches the aligned
# crops the network was trained on.
BOX_LAYOUT = {
    "yunet": (0.697, 0.501, 0.587),
    "ultralight": (0.729, 0.499, 0.646),
    "haar": (0.895, 0.5, 0.567),
}


@dataclass
class Detection:
    """One face: box (x, y, w, h) in frame pixels, score, and 5 landmarks (5, 2) or None."""

    box: tuple[float, float, float, float]
    score: float
    landmarks: np.ndarray | None = None
    kind: str = ""  # which detector: its boxes sit differently on the face (see BOX_LAYOUT)


def _bgr(img: np.ndarray) -> np.ndarray:
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
def _opencv_quiet() -> Any:
    """OpenCV's warnings off unless ``-v``: OpenCV 5's new DNN engine warns "setPreferableTarget
    Targets are not supported by the new graph engine" for every YuNet created (the default CPU
    target it is given is simply ignored). Errors still raise ``cv2.error``."""
    import cv2

    from ..progress import VERBOSE

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
        img = _bgr(img)
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

        img = _bgr(img)
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

        g = cv2.cvtColor(_bgr(img), cv2.COLOR_BGR2GRAY)
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


def make_detector(kind: str, model: str | Path | None = None, threads: int | None = 1) -> Any:
    """One of ``DETECTORS``; YuNet and Ultra-Light read their model file (``detector_model_path``)."""
    if kind == "haar":
        return HaarDetector(model)
    if kind not in DETECTORS:
        raise ValueError(f"unknown detector '{kind}'; valid: {', '.join(DETECTORS)}")
    model = detector_model_path(kind, model)
    if kind == "yunet":
        return YuNetDetector(model)
    return UltraLightDetector(model, threads=threads)


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
    import cv2

    h, w = img.shape[:2]
    s = min(h, w)
    y0, x0 = (h - s) // 2, (w - s) // 2
    return cv2.resize(img[y0 : y0 + s, x0 : x0 + s], (size, size), interpolation=cv2.INTER_AREA)


def face_crop(img: np.ndarray, det: Detection | None, size: int) -> tuple[np.ndarray, str]:
    """The canonical grey crop of one face and how it was made (aligned / box / centre)."""
    import cv2

    g = img if img.ndim == 2 else cv2.cvtColor(_bgr(img), cv2.COLOR_BGR2GRAY)
    if det is None:
        return _centre_crop(g, size), "centre"
    if det.landmarks is not None:
        return align_face(g, det.landmarks, size), "aligned"
    return _box_crop(g, det.box, size, det.kind), "box"


def largest(dets: list[Detection]) -> Detection | None:
    return max(dets, key=lambda d: d.box[2] * d.box[3]) if dets else None


def detect_padded(detector: Any, img: np.ndarray, pad: float = 0.0, min_side: int = 0) -> list[Detection]:
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


TTA_MODES = ("none", "flip", "enroll")


def bundle_tta(bundle: Bundle) -> str:
    """The test-time augmentation the bundle was calibrated for (``none`` for older bundles)."""
    mode = str(bundle.config.get("tta", bundle.thresholds.get("tta", "none")))
    if mode not in TTA_MODES:
        raise ValueError(f"{bundle.path}: unknown tta mode {mode!r} in bundle.json; "
                         f"valid: {', '.join(TTA_MODES)}")
    return mode


def unknown_threshold(bundle: Bundle, tta: str | None = None, far: float | None = None) -> float:
    """The calibrated unknown threshold for a TTA mode and target false-accept rate.

    A threshold only holds for the embeddings it was calibrated on: flip-averaged similarities
    run higher than plain ones, so each mode has its own. Bundles without the per-mode table
    (older trainings) give their single ``unknown`` threshold, and only for their own mode.
    """
    th = bundle.thresholds
    own = bundle_tta(bundle)
    mode = own if tta is None else tta
    target = float(th.get("far_target", 0.001)) if far is None else float(far)
    table = th.get("unknown_by_tta") or {}
    if mode in table:
        by = {float(k): float(v) for k, v in table[mode].items()}
        if target not in by:
            raise ValueError(f"no threshold calibrated for FAR {target:g} in {bundle.path}; "
                             f"calibrated: {', '.join(f'{k:g}' for k in sorted(by))}")
        return by[target]
    if mode == own and far is None:
        return float(th.get("unknown", 0.5))
    raise ValueError(f"{bundle.path}: no threshold calibrated for tta={mode}, FAR {target:g} "
                     "(retrain, or pass --threshold)")


def tta_pair(e: np.ndarray, e_mirror: np.ndarray, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """(enrollment, probe) embeddings of the same images for a test-time-augmentation mode.

    ``e`` / ``e_mirror``: embeddings of the crops and of their mirror images. ``flip``: the two
    averaged on both sides; ``enroll``: averaged at enrollment only (no cost per live face);
    ``none``: plain embeddings. Training calibrates, the benchmark measures, with this one rule.
    """
    if mode not in TTA_MODES:
        raise ValueError(f"unknown tta mode {mode!r}; valid: {', '.join(TTA_MODES)}")
    both = l2n(np.asarray(e) + np.asarray(e_mirror))
    return {"none": (e, e), "flip": (both, both), "enroll": (both, e)}[mode]


class FaceEmbedder:
    """The bundle's embedding network: canonical crop -> L2-normalized embedding.

    ``flip=True`` embeds every crop and its mirror image and averages the two (re-normalized):
    a near-frontal face and its mirror are the same person, and the average cancels part of
    the pose and lighting asymmetry. It doubles the embedding time (about 1 ms per face here).
    """

    def __init__(self, bundle: Bundle, variant: str | None = None, threads: int | None = None):
        self.bundle = bundle
        self.model = load_model(bundle, variant, threads=threads)
        self.variant = bundle.variant(variant).name
        shape = bundle.input["shape"]
        self.size = int(shape[1])
        norm = bundle.input.get("normalization") or {}
        self.scale = np.float32(norm.get("scale", 1 / 255))
        self.offset = np.float32(norm.get("offset", 0.0))

    def prepare(self, crops: list[np.ndarray] | np.ndarray) -> np.ndarray:
        x = np.asarray(crops, dtype=np.float32)
        if x.ndim != 3 or x.shape[1:] != (self.size, self.size):
            raise ValueError(f"face crops must be ({self.size}, {self.size}) grey; got {x.shape[1:]}")
        return (x * self.scale + self.offset)[..., None]

    def embed(self, crops: list[np.ndarray] | np.ndarray, flip: bool = False) -> np.ndarray:
        x = self.prepare(crops)
        if len(x) == 0:
            return np.zeros((0, int(self.bundle.output["shape"][-1])), np.float32)
        e = l2n(np.concatenate([self.model.predict(x[i : i + 1]) for i in range(len(x))]))
        if flip:
            xm = np.ascontiguousarray(x[:, :, ::-1])
            e = e + l2n(np.concatenate([self.model.predict(xm[i : i + 1]) for i in range(len(xm))]))
        return l2n(e)


def model_tag(bundle: Bundle) -> str:
    """Which network made an embedding: name + creation time, since two trainings never agree."""
    return f"{bundle.name}@{bundle.meta.get('created', '?')}"


def l2n(e: np.ndarray) -> np.ndarray:
    e = np.asarray(e, dtype=np.float32)
    return e / np.maximum(np.linalg.norm(e, axis=-1, keepdims=True), 1e-12)


def match(emb: np.ndarray, names: list[str], templates: np.ndarray, threshold: float) -> tuple[str, float]:
    """Best cosine similarity against the gallery templates; 'unknown' below ``threshold``."""
    if len(names) == 0:
        return "unknown", float("nan")
    sims = templates @ l2n(emb).ravel()
    k = int(np.argmax(sims))
    return (names[k] if sims[k] >= threshold else "unknown"), float(sims[k])


class FaceApp:
    """Detect -> align -> embed -> match, on the shared pipeline runner."""

    name = "face"

    def __init__(self, bundle: Bundle, gallery: Any, detector: Any, *, variant: str | None = None,
                 threads: int | None = None, threshold: float | None = None, max_faces: int = 5,
                 preview: str | Path | None = None, tta: str | None = None, far: float | None = None):
        self.embedder = FaceEmbedder(bundle, variant, threads)
        self.detector = detector
        self.tta = bundle_tta(bundle) if tta is None else tta
        if self.tta not in TTA_MODES:
            raise ValueError(f"unknown tta mode {self.tta!r}; valid: {', '.join(TTA_MODES)}")
        self.flip = self.tta == "flip"  # "enroll": mirror averaging at enrollment only
        self.threshold = (float(threshold) if threshold is not None
                          else unknown_threshold(bundle, self.tta, far))
        self.names, self.templates = gallery.templates(model=model_tag(bundle))
        self.size = self.embedder.size
        self.max_faces = max_faces
        self.preview = Path(preview) if preview else None
        if self.preview:
            self.preview.mkdir(parents=True, exist_ok=True)

    def preprocess(self, frame: Frame) -> dict[str, Any]:
        img = frame.data
        t0 = time.monotonic()
        dets = sorted(self.detector.detect(img), key=lambda d: -d.box[2] * d.box[3])[: self.max_faces]
        t1 = time.monotonic()
        crops = [face_crop(img, d, self.size) for d in dets]
        t2 = time.monotonic()
        return {"dets": dets, "crops": crops, "t": {"detect": t1 - t0, "align": t2 - t1}}

    def infer(self, x: dict[str, Any]) -> dict[str, Any]:
        t0 = time.monotonic()
        x["emb"] = self.embedder.embed([c for c, _ in x["crops"]], flip=self.flip)
        x["t"]["embed"] = time.monotonic() - t0
        return x

    def postprocess(self, frame: Frame, y: dict[str, Any]) -> dict[str, Any]:
        t0 = time.monotonic()
        faces = []
        for d, (_, how), e in zip(y["dets"], y["crops"], y["emb"], strict=True):
            who, sim = match(e, self.names, self.templates, self.threshold)
            faces.append({
                "person": who, "similarity": round(sim, 4), "box": [round(v, 1) for v in d.box],
                "detector_score": round(d.score, 3), "crop": how,
            })
        y["t"]["match"] = time.monotonic() - t0
        if self.preview is not None:
            self._annotate(frame, faces)
        top = faces[0] if faces else None
        kind = "no_face" if top is None else ("unknown" if top["person"] == "unknown" else "person")
        return {
            "ts": time.time(), "app": self.name, "kind": kind,
            "person": top["person"] if top else None,
            "similarity": top["similarity"] if top else None,
            "box": top["box"] if top else None,
            "faces": faces, "path": frame.meta.get("path"),
            "latency_ms": {k: round(v * 1e3, 3) for k, v in y["t"].items()},
        }


    def _annotate(self, frame: Frame, faces: list[dict[str, Any]]) -> None:
        """Write the frame with boxes and names (green: enrolled, red: unknown) to the preview folder."""
        import cv2

        if self.preview is None:
            return
        img = _bgr(frame.data).copy()
        for f in faces:
            x, y, w, h = (int(round(v)) for v in f["box"])
            col = (0, 200, 0) if f["person"] != "unknown" else (0, 0, 230)
            cv2.rectangle(img, (x, y), (x + w, y + h), col, 2)
            cv2.putText(img, f"{f['person']} {f['similarity']:.2f}", (x, max(12, y - 4)),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.5, col, 1, cv2.LINE_AA)
        cv2.imwrite(str(self.preview / f"frame_{frame.index:06d}.jpg"), img)


def _tta_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tta", choices=TTA_MODES,
                   help="mirror averaging: flip = at enrollment and per live face (2 embeddings per face), "
                   "enroll = at enrollment only, none; default: the mode the bundle was calibrated for")


def _detector_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--detector", choices=DETECTORS, default="yunet", help="face detector (default yunet)")
    p.add_argument("--detector-model", help="detector model file (.onnx for YuNet, .tflite/.onnx for "
                   "Ultra-Light without post-processing; Haar: optional cascade XML); default: "
                   f"$EDGEWISE_DATA/{DETECTOR_FILES['yunet']} (YuNet) or "
                   f"$EDGEWISE_DATA/{DETECTOR_FILES['ultralight']} (Ultra-Light)")


def run_main(argv: list[str]) -> int:
    from ..cliargs import fail
    from ..gallery import Gallery

    p = run_parser(
        "face",
        "Recognize enrolled people in every frame: detect, align, embed, match; strangers -> unknown.",
        "edgewise run face --bundle face.bundle --gallery people.db --source 0 \\\n"
        "      --detector yunet --detector-model models/yunet_n_320_320.onnx --jsonl events.jsonl",
    )
    p.add_argument("--gallery", required=True, help="SQLite gallery made by `edgewise enroll`")
    p.add_argument("--threshold", type=float, help="unknown threshold (default: the bundle's)")
    p.add_argument("--far", type=float,
                   help="pick the bundle threshold calibrated for this false-accept rate "
                   "(e.g. 0.0001; default: the bundle's far_target)")
    _tta_arg(p)
    p.add_argument("--preview", help="write annotated frames (boxes, names) into this folder")
    _detector_args(p)
    a = p.parse_args(argv)
    try:
        bundle = load_bundle(a.bundle)
        detector = make_detector(a.detector, a.detector_model, threads=a.threads or 1)
        with Gallery(a.gallery, create=False) as g:
            app = FaceApp(bundle, g, detector, variant=a.variant, threads=a.threads, threshold=a.threshold,
                          preview=a.preview, tta=a.tta, far=a.far)
    except (ValueError, OSError) as e:
        return fail("edgewise run face", e)
    if not app.names:
        log.warning("gallery %s has no people enrolled with model %s (re-enroll after retraining): "
                    "every face will be 'unknown'", a.gallery, model_tag(bundle))
    return run_app(app, a)


def enroll_main(argv: list[str]) -> int:
    """``edgewise enroll``: add a person from photos or the camera, list, or remove (forget)."""
    from ..cliargs import Parser, add_quiet, fail
    from ..gallery import Gallery
    from ..sources.files import IMAGE_SUFFIXES, read_image

    p = Parser(
        prog="edgewise enroll",
        description="Manage the face gallery: enroll a person from a folder of photos or the camera, "
        "list the people, or remove one completely (embeddings and any stored images).",
        epilog="examples:\n"
        "  edgewise enroll --gallery people.db --bundle face.bundle --name alice --images photos/alice \\\n"
        "      --detector-model models/yunet_n_320_320.onnx\n"
        "  edgewise enroll --gallery people.db --list\n"
        "  edgewise enroll --gallery people.db --remove alice",
    )
    add_quiet(p)
    p.add_argument("--gallery", required=True, help="SQLite gallery file (created if missing)")
    p.add_argument("--bundle", help="face embedding bundle (needed to enroll)")
    p.add_argument("--name", help="person to enroll")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--images", help="folder of photos of the person")
    src.add_argument("--camera", nargs="?", const="0", help="camera (index, default 0) to take photos from")
    p.add_argument("--shots", type=int, default=5, help="camera photos to take (default 5)")
    p.add_argument("--list", action="store_true", help="list enrolled people")
    p.add_argument("--remove", metavar="NAME", help="forget a person completely")
    p.add_argument("--keep-images", action="store_true", help="also store the aligned crops (off by default)")
    p.add_argument("--variant", help="model variant (default: int8 if present)")
    p.add_argument("--threads", type=int, default=1, help="inference threads for detector and embedder")
    _tta_arg(p)
    _detector_args(p)
    a = p.parse_args(argv)
    if not (a.list or a.remove):  # enrolling: check the flags and files before the gallery is created
        if not (a.name and a.bundle and (a.images or a.camera)):
            p.error("enrolling needs --name, --bundle and --images DIR or --camera")
        for path, what in ((a.bundle, "bundle"), (a.images, "image folder")):
            if path and not Path(path).exists():
                return fail("edgewise enroll", f"{path}: no such {what}")
    try:
        with Gallery(a.gallery) as g:
            if a.list:
                for row in g.people():
                    print(f"{row['name']}\t{row['embeddings']} embeddings\t{row['model']}\t{row['created']}")
                return 0
            if a.remove:
                if not g.remove(a.remove):
                    return fail("edgewise enroll", f"'{a.remove}' is not in {a.gallery}", code=1)
                print(f"removed {a.remove} (embeddings and images deleted, database vacuumed)")
                return 0
            if not (a.name and a.bundle and (a.images or a.camera)):
                p.error("enrolling needs --name, --bundle and --images DIR or --camera")
            bundle = load_bundle(a.bundle)
            emb = FaceEmbedder(bundle, a.variant, a.threads)
            det = make_detector(a.detector, a.detector_model, threads=a.threads)
            imgs: list[tuple[str, np.ndarray]] = []
            if a.images:
                folder = Path(a.images)
                if not folder.is_dir():
                    raise ValueError(f"{folder}: no such image folder")
                for f in sorted(q for q in folder.rglob("*") if q.suffix.lower() in IMAGE_SUFFIXES):
                    try:
                        imgs.append((str(f), read_image(f)))
                    except ValueError as e:
                        print(f"skipped: {e}", file=sys.stderr)
            else:
                imgs = _camera_shots(a.camera, a.shots)
            crops, used = [], []
            for name, img in imgs:
                d = largest(det.detect(img))
                if d is None:
                    print(f"skipped: {name}: no face found", file=sys.stderr)
                    continue
                crops.append(face_crop(img, d, emb.size)[0])
                used.append(name)
            if not crops:
                raise ValueError(f"no face found in any of {len(imgs)} images; nothing enrolled")
            tta = bundle_tta(bundle) if a.tta is None else a.tta
            vecs = emb.embed(crops, flip=tta in ("flip", "enroll"))
            g.add(a.name, vecs, model=model_tag(bundle), sources=used,
                  images=crops if a.keep_images else None)
            print(f"enrolled {a.name}: {len(vecs)} embeddings from {len(imgs)} images ({model_tag(bundle)})")
            return 0
    except (ValueError, OSError) as e:
        return fail("edgewise enroll", e)


def _camera_shots(spec: str, n: int) -> list[tuple[str, np.ndarray]]:
    from ..sources import open_source

    shots = []
    with open_source(spec) as src:
        for i, frame in enumerate(src):
            if i % 10 == 0:  # ~1/3 s apart at 30 fps, so the shots differ a little
                shots.append((f"camera:{spec}#{frame.index}", frame.data))
            if len(shots) >= n:
                break
    return shots


def face_crops(images: list[np.ndarray], detector: Any, size: int, pad: float = 0.3,
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
