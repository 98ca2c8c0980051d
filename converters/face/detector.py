"""YuNet for LiteRT: float32 and int8 ``.tflite`` files, checked against OpenCV's own detector.

The face pipeline's detector is most of a frame's model time on a Pi, and OpenCV runs it in
float32 only. Rebuilt in Keras (``converters.onnx_keras``) with one output per kind (scores
(cls, obj) of every cell, boxes, landmarks: three tensors told apart by width, since LiteRT does
not keep output names), it converts like every other model here. int8 is calibrated on the
user's own images (``--calib DIR``), each placed at several sizes on the network's canvas as
the device letterboxes frames.

Agreement is measured, not assumed, on images kept apart from calibration (``--eval DIR``):
the float32 file against ``cv2.FaceDetectorYN`` on the same canvas (the translation and the
decoding), and int8 against float32 (the quantization): share of images with a face, share of
the reference's largest face found again (IoU >= 0.5), and landmark error over eye distance.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgewise.edge.apps.face.detect import Detection, YuNetDetector, largest
from edgewise.edge.apps.face.yunet_lite import LiteYuNetDetector, letterbox
from edgewise.edge.sources.files import IMAGE_SUFFIXES, read_image

__all__ = ["PAD_FACTORS", "Agreement", "detector_keras", "image_files", "place_faces", "canvases",
           "agreement", "agreement_rows", "convert_face_detector"]

# a face-set photo padded by these multiples of its size: faces from filling the canvas to small
PAD_FACTORS = (0.25, 0.75, 1.5)


@dataclass
class Agreement:
    """How often ``other`` finds what ``reference`` finds, on the same canvases."""

    reference: str
    other: str
    images: int
    reference_found: float  # share of images with at least one face
    other_found: float
    matched: float  # share of the reference's largest faces found again at IoU >= 0.5
    iou_median: float
    landmark_error_median: float | None  # landmark distance / eye distance, matched faces

    @property
    def found_loss_pt(self) -> float:
        return round(100 * (self.reference_found - self.other_found), 2)


def detector_keras(onnx_path: str | Path, keras: Any) -> Any:
    """YuNet's ONNX as Keras with three outputs over all cells: scores (n, 2) = (cls, obj),
    boxes (n, 4), landmarks (n, 10); cells of stride 8, 16, 32 in order, as ``yunet_grid``."""
    from edgewise.converters.onnx_keras import onnx_to_keras

    net = onnx_to_keras(onnx_path, keras)
    names = [t.name.split("/")[0] for t in net.outputs]
    kinds = {k: [o for o in net.outputs if o.shape[-1] == w] for k, w in (("box", 4), ("kps", 10))}
    ones = [o for o in net.outputs if o.shape[-1] == 1]
    if len(ones) != 6 or len(kinds["box"]) != 3 or len(kinds["kps"]) != 3:
        raise ValueError(f"{onnx_path}: outputs {names} are not YuNet's (cls, obj, bbox, kps at 3 strides)")
    L = keras.layers
    cls = L.Concatenate(axis=1, name="cls")(ones[:3])  # the ONNX order: cls_8..32, obj_8..32
    obj = L.Concatenate(axis=1, name="obj")(ones[3:])
    scores = L.Concatenate(axis=-1, name="scores")([cls, obj])
    boxes = L.Concatenate(axis=1, name="boxes")(kinds["box"])
    kps = L.Concatenate(axis=1, name="landmarks")(kinds["kps"])
    return keras.Model(net.input, [scores, boxes, kps], name="yunet")


def image_files(roots: list[str | Path], limit: int) -> list[Path]:
    """The images below ``roots`` (recursively), ``limit`` of them spread over all; a folder
    that is missing or holds no image is refused by name."""
    files = []
    for root in map(Path, roots):
        if not root.is_dir():
            raise ValueError(f"{root}: not a folder of images")
        found = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not found:
            raise ValueError(f"{root}: no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        files += found
    if limit and len(files) > limit:  # spread over the folder (all people), not its first ones
        files = [files[i] for i in np.linspace(0, len(files) - 1, limit).astype(int)]
    return files


def place_faces(images: Iterable[np.ndarray], width: int, height: int) -> np.ndarray:
    """Each image, padded by every ``PAD_FACTORS`` x its size (replicated border, so a tight
    face-set crop looks like a face in a scene), letterboxed onto the network's canvas."""
    import cv2

    out = []
    for img in images:
        if img.ndim == 2:
            img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
        h, w = img.shape[:2]
        for f in PAD_FACTORS:
            py, px = int(round(h * f)), int(round(w * f))
            padded = cv2.copyMakeBorder(img, py, py, px, px, cv2.BORDER_REPLICATE)
            out.append(letterbox(padded, width, height)[0])
    return np.stack(out).astype(np.float32)


def canvases(roots: list[str | Path], width: int, height: int, limit: int = 0) -> np.ndarray:
    """The images of ``roots`` (``limit`` spread over them) placed as ``place_faces`` does."""
    return place_faces((read_image(p) for p in image_files(roots, limit)), width, height)


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ax2, ay2, bx2, by2 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw, ih = max(0.0, min(ax2, bx2) - max(a[0], b[0])), max(0.0, min(ay2, by2) - max(a[1], b[1]))
    inter = iw * ih
    return inter / max(a[2] * a[3] + b[2] * b[3] - inter, 1e-9)


def agreement(ref_name: str, ref: list[list[Detection]], other_name: str, other: list[list[Detection]]
              ) -> Agreement:
    """Compare two detectors' results on the same images (see ``Agreement``)."""
    matched, ious, lm_err = 0, [], []
    for r, o in zip(ref, other, strict=True):
        big = largest(r)
        if big is None:
            continue
        best = max(o, key=lambda d: _iou(big.box, d.box), default=None)
        if best is None or _iou(big.box, best.box) < 0.5:
            continue
        matched += 1
        ious.append(_iou(big.box, best.box))
        if big.landmarks is not None and best.landmarks is not None:
            eyes = float(np.linalg.norm(big.landmarks[0] - big.landmarks[1]))
            if eyes > 1:
                lm_err.append(float(np.linalg.norm(big.landmarks - best.landmarks, axis=1).mean()) / eyes)
    n = len(ref)
    found_ref, found_other = sum(1 for r in ref if r), sum(1 for o in other if o)
    return Agreement(ref_name, other_name, n, round(found_ref / n, 4), round(found_other / n, 4),
                     round(matched / max(found_ref, 1), 4), round(float(np.median(ious)), 4) if ious else 0.0,
                     round(float(np.median(lm_err)), 4) if lm_err else None)


def convert_face_detector(onnx_path: str | Path, out: str | Path, calib: list[str | Path],
                          evaluate: list[str | Path],
                          *, limit: int = 200, threads: int = 2) -> dict[str, Any]:
    """Write ``out/<stem>_float32.tflite`` and ``_int8.tflite``; return the agreement report
    (also written as ``out/<stem>_agreement.json``)."""
    import keras

    from edgewise.converters.tflite import non_int8_ops, to_tflite
    from edgewise.edge.jsonenc import dumps

    onnx_path, out = Path(onnx_path), Path(out)
    model = detector_keras(onnx_path, keras)
    _, h, w, _ = model.input.shape
    calib_x = canvases(calib, w, h, limit)
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    for precision in ("float32", "int8"):
        path = out / f"{onnx_path.stem}_{precision}.tflite"
        rng = np.random.default_rng(0)  # calibration order fixed: the same file from the same images
        # float input and outputs around the int8 network: the frame is quantized by XNNPACK's
        # QUANTIZE op, cheaper than numpy (projected 5 % of the int8 detector on a Pi 4 and Pi 5)
        path.write_bytes(to_tflite(model, precision, calib_x[rng.permutation(len(calib_x))]
                                   if precision == "int8" else None, max_calib=len(calib_x), float_io=True))
        files[precision] = path
    eval_x = canvases(evaluate, w, h, limit)
    cv = YuNetDetector(onnx_path)
    results = {"opencv_float32": [cv.detect(x.astype(np.uint8)) for x in eval_x]}
    for precision, path in files.items():
        det = LiteYuNetDetector(path, threads=threads)
        results[f"litert_{precision}"] = [det.detect(x) for x in eval_x]
        det.close()
    report = {
        "source": onnx_path.name,
        "input": [int(h), int(w), 3],
        "calibration": {"folders": [str(c) for c in calib], "images": len(calib_x) // len(PAD_FACTORS),
                        "canvases": len(calib_x)},
        "evaluation": {"folders": [str(e) for e in evaluate], "canvases": len(eval_x)},
        "files": {k: v.name for k, v in files.items()},
        "int8_non_int8_ops": non_int8_ops(str(files["int8"])),
        "agreement": [asdict(a) | {"found_loss_pt": a.found_loss_pt} for a in (
            agreement(ref, results[ref], other, results[other]) for ref, other in (
                ("opencv_float32", "litert_float32"), ("litert_float32", "litert_int8"),
                ("opencv_float32", "litert_int8")))],
    }
    (out / f"{onnx_path.stem}_agreement.json").write_text(dumps(report))
    return report


def agreement_rows(report: dict[str, Any]) -> list[str]:
    """The agreement report as lines a person reads."""
    rows = []
    for a in report["agreement"]:
        lm = "-" if a["landmark_error_median"] is None else f"{100 * a['landmark_error_median']:.1f} %"
        rows.append(f"{a['other']} vs {a['reference']}, {a['images']} canvases: faces found "
                    f"{100 * a['other_found']:.1f} % vs {100 * a['reference_found']:.1f} % "
                    f"({a['found_loss_pt']:+.2f} pt lost), largest face found again "
                    f"{100 * a['matched']:.1f} %, "
                    f"median IoU {a['iou_median']:.3f}, landmark error {lm} of the eye distance")
    return rows
