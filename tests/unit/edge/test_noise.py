"""The terminal shows progress and results by default; the libraries' chatter only with ``-v``."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgewise.edge import progress

# What TensorFlow, the TFLite converter, tf2onnx, LiteRT and OpenCV print on every run
NOISE = (
    "Could not find cuda drivers",
    "cuInit",
    "absl::InitializeLog",
    "Assets written to",
    "Statistics for quantized inputs were expected",
    "tf2onnx",
    "fully_quantize",
    "XNNPACK delegate",
    "setPreferableTarget",
    "retracing",
)


def _edgewise(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "EDGEWISE_VERBOSE")}
    return subprocess.run([sys.executable, "-m", "edgewise.edge.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


def _noise_in(text: str) -> list[str]:
    return [n for n in NOISE if n in text]


@pytest.fixture
def not_verbose(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(progress, "VERBOSE", False)
    monkeypatch.setattr(progress, "QUIET", False)


def test_native_chatter_is_recognised_and_real_errors_are_not() -> None:
    noise = [
        "INFO: Created TensorFlow Lite XNNPACK delegate for CPU.",
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
        "I0000 00:00:1795781785.063238    3917 cudart_stub.cc:31] Could not find cuda drivers",
        "E0000 00:00:1795781788.869137    3917 cuda_platform.cc:52] failed call to cuInit: INTERNAL",
        "fully_quantize: 0, inference_type: 6, input_inference_type: INT8, output_inference_type: INT8",
    ]
    kept = [
        "ERROR: Didn't find op for builtin opcode 'CONV_2D' version '9'",
        "E0000 00:00:1795781788.869137    3917 op_kernel.cc:12] OOM when allocating tensor",
        "Traceback (most recent call last):",
        "WARNING: the model has no int8 kernels",
    ]
    assert all(progress.is_noise(line) for line in noise)
    assert not any(progress.is_noise(line) for line in kept)


def test_native_stderr_drops_chatter_and_reemits_the_rest(capfd: pytest.CaptureFixture, not_verbose: None
                                                          ) -> None:
    with progress.native_stderr() as lines:
        os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\nERROR: real trouble\n")
    err = capfd.readouterr().err
    assert "XNNPACK" not in err and "ERROR: real trouble" in err
    assert lines == ["INFO: Created TensorFlow Lite XNNPACK delegate for CPU.", "ERROR: real trouble"]


def test_native_stderr_passes_everything_when_verbose(capfd: pytest.CaptureFixture,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(progress, "VERBOSE", True)
    with progress.native_stderr() as lines:
        os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n")
    assert "XNNPACK" in capfd.readouterr().err
    assert lines == ["INFO: Created TensorFlow Lite XNNPACK delegate for CPU."]  # still kept for callers


def test_progress_prints_plain_lines_when_stderr_is_not_a_terminal(capsys: pytest.CaptureFixture,
                                                                   not_verbose: None) -> None:
    assert list(progress.progress(range(3), desc="work")) == [0, 1, 2]
    with progress.Bar(2, "epochs") as bar:
        bar.update(1, loss=0.5)
        bar.update(1, loss=0.25)
    err = capsys.readouterr().err
    assert "work 3/3" in err and "\r" not in err
    assert "epochs 2/2" in err and "loss=0.25" in err


def test_progress_is_silent_when_quiet(capsys: pytest.CaptureFixture, not_verbose: None) -> None:
    list(progress.progress(range(3), desc="work", quiet=True))
    with progress.Bar(2, "epochs", quiet=True) as bar:
        bar.update(2, loss=0.5)
    assert capsys.readouterr().err == ""


def test_opencv_yunet_creation_is_quiet(capfd: pytest.CaptureFixture, not_verbose: None, data_dir: Path
                                        ) -> None:
    from edgewise.edge.apps.face import YuNetDetector

    model = data_dir / "models" / "face_detection" / "yunet_n_320_320.onnx"
    if not model.is_file():
        pytest.skip(f"{model} absent")
    det = YuNetDetector(model)
    det.detect(np.zeros((120, 100, 3), np.uint8))
    assert "setPreferableTarget" not in capfd.readouterr().err


def test_tensorflow_keeps_retracing_warnings_and_info_out_of_the_terminal(not_verbose: None) -> None:
    from edgewise.train.keras_utils import import_tensorflow

    tf = import_tensorflow()
    log = tf.get_logger()  # "N out of the last M calls ... triggered tf.function retracing" is a WARNING
    assert not log.isEnabledFor(logging.WARNING) and log.isEnabledFor(logging.ERROR)
    assert not logging.getLogger("tf2onnx.optimizer").isEnabledFor(logging.INFO)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    """``edgewise train classify --epochs 1`` as a user runs it (TensorFlow, converter, tf2onnx, LiteRT)."""
    out = tmp_path_factory.mktemp("noise") / "digits.bundle"
    return out, _edgewise("train", "classify", "--epochs", "1", "--out", str(out))


@pytest.fixture(scope="module")
def digit_images(trained: tuple[Path, subprocess.CompletedProcess]) -> Path:
    from edgewise.train.classify import export_images, load_digits_split

    return export_images(load_digits_split()["x_test"], trained[0].parent / "images", limit=5)


def test_train_shows_progress_and_results_without_library_chatter(
        trained: tuple[Path, subprocess.CompletedProcess]) -> None:
    _, r = trained
    assert r.returncode == 0, r.stderr[-2000:]
    assert _noise_in(r.stderr) == [], r.stderr
    assert "digits epochs 1/1" in r.stderr and "convert 6/6" in r.stderr  # progress
    assert "| tflite_int8 |" in r.stdout  # results


def test_run_prints_events_without_the_xnnpack_line_unless_verbose(
        trained: tuple[Path, subprocess.CompletedProcess], digit_images: Path) -> None:
    bundle = str(trained[0])
    r = _edgewise("run", "classify", "--bundle", bundle, "--source", str(digit_images), timeout=120)
    assert r.returncode == 0, r.stderr
    assert _noise_in(r.stderr) == [], r.stderr
    assert r.stdout.count('"kind":"prediction"') + r.stdout.count('"kind": "prediction"') == 5
    v = _edgewise("-v", "run", "classify", "--bundle", bundle, "--source", str(digit_images), timeout=120)
    assert v.returncode == 0, v.stderr
    assert "Created TensorFlow Lite XNNPACK delegate" in v.stderr
