"""Detection, alignment and the loop's handling of bad frames (real detector model files)."""

from __future__ import annotations

import numpy as np
import pytest

from edgewise.edge.apps.face.align import align_face, canonical_points, face_crop
from edgewise.edge.apps.face.detect import (
    Detection,
    HaarDetector,
    UltraLightDetector,
    YuNetDetector,
    decode_ultralight,
    detector_model_path,
    make_detector,
    nms,
    ultralight_priors,
)


@pytest.fixture(scope="module")
def models(data_dir):
    return data_dir / "models" / "face_detection"


@pytest.fixture(scope="module")
def frame(data_dir):
    """A 640x480 frame composed from ORL s1/1.pgm (ORL images are 92x112 crops)."""
    import cv2

    from edgewise.benchmarks.face.timing import compose_frame

    return compose_frame(cv2.imread(str(data_dir / "faces/orl/s1/1.pgm"), cv2.IMREAD_GRAYSCALE))


def test_alignment_maps_landmarks_to_canonical_points():
    """Draw 5 dots, rotate/scale/shift the image, align from the moved dots: dots land on target."""
    import cv2

    size = 64
    src_pts = np.array([[70, 90], [130, 88], [100, 125], [76, 160], [126, 158]], np.float32)
    img = np.zeros((240, 220), np.uint8)
    m = cv2.getRotationMatrix2D((110, 120), 17, 1.3)
    moved = (np.c_[src_pts, np.ones(5)] @ m.T).astype(np.float32)
    for x, y in moved:
        cv2.circle(img, (int(round(x)), int(round(y))), 3, 255, -1)
    out = align_face(img, moved, size)
    target = canonical_points(size)
    n, lab, stats, cents = cv2.connectedComponentsWithStats((out > 100).astype(np.uint8))
    assert n - 1 == 5
    found = cents[1:]
    for t in target:
        assert np.min(np.linalg.norm(found - t, axis=1)) < 1.5


def test_no_landmarks_gives_box_crop_and_no_detection_centre_crop():
    img = np.arange(200 * 300, dtype=np.uint32).reshape(200, 300).astype(np.uint8)
    c, how = face_crop(img, Detection((100, 50, 80, 80), 0.9), 48)
    assert how == "box" and c.shape == (48, 48)
    c, how = face_crop(img, None, 48)
    assert how == "centre" and c.shape == (48, 48)
    with pytest.raises(ValueError, match="NaN"):
        align_face(img, np.full((5, 2), np.nan), 48)


def test_ultralight_priors_and_nms():
    p = ultralight_priors(320, 240)
    assert p.shape == (4420, 4)
    # zero offsets decode to the priors themselves
    b = decode_ultralight(np.zeros((2, 4), np.float32), p[:2])
    assert np.allclose((b[:, :2] + b[:, 2:]) / 2, p[:2, :2])
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], np.float32)
    assert nms(boxes, np.array([0.9, 0.8, 0.7]), iou=0.3) == [0, 2]


@pytest.mark.parametrize("fname", ["ultra_light_rfb_320_without_postprocessing.tflite",
                                   "ultra_light_rfb_320_without_postprocessing.onnx"])
def test_ultralight_decoding_finds_the_face_in_a_composed_frame(models, frame, fname):
    det = UltraLightDetector(models / fname, threads=1)
    dets = det.detect(frame)
    assert len(dets) == 1, [d.box for d in dets]
    x, y, w, h = dets[0].box
    # the face sits in the 184x224 region pasted at (230, 120): box centre inside, face-sized
    cx, cy = x + w / 2, y + h / 2
    assert 230 < cx < 230 + 184 and 120 < cy < 120 + 224
    assert 80 < w < 220 and 80 < h < 260


def test_yunet_gives_five_landmarks_inside_the_box(models, frame):
    d = YuNetDetector(models / "yunet_n_320_320.onnx").detect(frame)
    assert len(d) == 1 and d[0].landmarks.shape == (5, 2)
    x, y, w, h = d[0].box
    lm = d[0].landmarks
    assert ((lm[:, 0] > x) & (lm[:, 0] < x + w) & (lm[:, 1] > y) & (lm[:, 1] < y + h)).all()
    assert lm[0, 0] < lm[1, 0]  # image-left eye first, as the canonical layout expects


def test_haar_fallback_finds_the_face_or_explains_how_to_get_it(frame):
    try:
        det = HaarDetector()
    except ValueError as e:
        assert "apt install opencv-data" in str(e)
        pytest.skip(f"Haar cascade not installed: {e}")
    assert len(det.detect(frame)) >= 1


def test_detector_errors_are_one_line(tmp_path, monkeypatch):
    monkeypatch.delenv("EDGEWISE_DATA", raising=False)
    with pytest.raises(ValueError, match="needs --detector-model PATH"):
        make_detector("yunet")
    monkeypatch.setenv("EDGEWISE_DATA", str(tmp_path))  # a datasets folder without the model file
    with pytest.raises(ValueError, match="model not found in the datasets folder; pass --detector-model"):
        make_detector("yunet")
    with pytest.raises(ValueError, match="unknown detector 'foo'"):
        make_detector("foo", "x")
    with pytest.raises(ValueError, match="YuNet model file not found"):
        make_detector("yunet", tmp_path / "none.onnx")


def test_detector_model_comes_from_the_flag_else_the_datasets_folder(models, data_dir, tmp_path, monkeypatch):
    """``run face``, ``enroll`` and ``bench face`` share this lookup: flag first, then EDGEWISE_DATA."""
    monkeypatch.setenv("EDGEWISE_DATA", str(data_dir))
    assert detector_model_path("yunet") == models / "yunet_n_320_320.onnx"
    assert detector_model_path("ultralight").name == "ultra_light_rfb_320_without_postprocessing.tflite"
    assert detector_model_path("yunet", tmp_path / "mine.onnx") == tmp_path / "mine.onnx"
    with pytest.raises(ValueError, match="model not found"):  # an explicit --data wins over the variable
        detector_model_path("yunet", data=tmp_path)
    assert detector_model_path("haar") is None
    assert isinstance(make_detector("yunet"), YuNetDetector)  # no --detector-model needed


@pytest.mark.parametrize("kind", ["ultralight", "haar"])
def test_box_only_crops_put_the_landmarks_near_the_canonical_points(models, data_dir, kind):
    """Detectors without landmarks must still hand the network the face where training put it:
    YuNet's landmarks, mapped through the box-only crop, land near the canonical points."""
    import cv2

    from edgewise.edge.apps.face.align import box_transform

    yunet = YuNetDetector(models / "yunet_n_320_320.onnx")
    if kind == "ultralight":
        det = UltraLightDetector(models / "ultra_light_rfb_320_without_postprocessing.tflite")
    else:
        try:
            det = HaarDetector()
        except ValueError as e:
            pytest.skip(str(e))
    errs = []
    for s in (3, 7, 12, 25, 31):
        img = cv2.imread(str(data_dir / f"faces/orl/s{s}/1.pgm"), cv2.IMREAD_GRAYSCALE)
        img = cv2.resize(img, None, fx=2, fy=2)
        lm = max(yunet.detect(img), key=lambda d: d.score).landmarks
        box = max(det.detect(img), key=lambda d: d.box[2] * d.box[3])
        m = box_transform(box.box, 64, box.kind)
        mapped = np.c_[lm, np.ones(5)] @ m.T
        errs.append(float(np.linalg.norm(mapped - canonical_points(64), axis=1).mean()))
    assert np.median(errs) < 0.08 * 64, errs
