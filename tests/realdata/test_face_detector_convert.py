"""YuNet converted for LiteRT (`edgewise convert --task face-detector`) on real ORL faces: float32
finds exactly what OpenCV's YuNet finds, int8 nearly so, and `run face` takes the file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")


@pytest.fixture(scope="module")
def converted(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    from edgewise.edge.cli import main

    out = tmp_path_factory.mktemp("detector")
    orl = data_dir / "faces" / "orl"
    yunet = data_dir / "models/face_detection/yunet_n_320_320.onnx"
    rc = main(["convert", "--task", "face-detector", str(yunet),
               "--calib", *[str(orl / f"s{i}") for i in range(1, 11)],
               "--eval", *[str(orl / f"s{i}") for i in range(31, 41)],
               "--limit", "20", "--out", str(out), "-q", "--json", str(out / "report.json")])
    assert rc == 0
    return out, json.loads((out / "report.json").read_text())


def test_float32_finds_what_opencv_finds_and_int8_stays_close(converted: tuple[Path, dict]) -> None:
    _, report = converted
    agree = {(a["reference"], a["other"]): a for a in report["agreement"]}
    f32 = agree[("opencv_float32", "litert_float32")]
    assert f32["images"] == 60 and f32["matched"] == 1.0 and f32["iou_median"] > 0.99
    i8 = agree[("litert_float32", "litert_int8")]
    assert i8["matched"] >= 0.95 and i8["found_loss_pt"] <= 2.0 and i8["landmark_error_median"] < 0.05
    assert report["int8_non_int8_ops"] == []


def test_the_int8_file_runs_as_the_pipelines_yunet_on_a_camera_frame(converted: tuple[Path, dict],
                                                                     data_dir: Path) -> None:
    import cv2

    from edgewise.benchmarks.face.timing import compose_frame
    from edgewise.edge.apps.face.detect import make_detector

    out, _ = converted
    frame = compose_frame(cv2.imread(str(data_dir / "faces/orl/s1/1.pgm"), cv2.IMREAD_GRAYSCALE))
    ref = make_detector("yunet", data_dir / "models/face_detection/yunet_n_320_320.onnx").detect(frame)
    got = make_detector("yunet", out / "yunet_n_320_320_int8.tflite").detect(frame)
    assert len(ref) >= 1 and len(got) >= 1
    a, b = np.array(ref[0].box), np.array(got[0].box)
    assert np.abs(a - b).max() < 0.15 * max(a[2], a[3])  # same face, box within 15 % of its size
    assert got[0].landmarks is not None and got[0].landmarks.shape == (5, 2)
