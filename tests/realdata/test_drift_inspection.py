"""Input drift on real inspection images (magnetic tiles): a changed exposure is one warning and
one ``drift`` event in the run's event stream; the same camera's other parts are not."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest


def _parts(data_dir: Path) -> list[Path]:
    files = sorted((data_dir / "inspection" / "magnetic_tile" / "MT_Free" / "Imgs").glob("*.jpg"))
    if len(files) < 120:
        pytest.skip("magnetic tile MT_Free images absent")
    return files


class _App:
    """Stands in for the inspect app (the drift check does not look at the model's answer)."""

    name = "inspect"

    def __init__(self, config: dict) -> None:
        self.spec = type("Spec", (), {"config": config})()

    def preprocess(self, frame):  # noqa: ANN001, ANN201
        return frame.data

    def infer(self, x):  # noqa: ANN001, ANN201
        return float(np.mean(x))

    def postprocess(self, frame, y):  # noqa: ANN001, ANN201
        from edgewise.edge.event import Event

        return Event(self.name, "part", answer="PASS", score=y, path=frame.meta.get("path"))


class _Sink:
    def __init__(self) -> None:
        self.events: list = []

    def write(self, e) -> None:  # noqa: ANN001
        self.events.append(e)

    def close(self) -> None:
        pass


@pytest.mark.realdata
@pytest.mark.parametrize("shift", [0, 40, -40])
def test_brightness_shifted_parts_give_one_drift_warning_and_event(
    data_dir: Path, tmp_path: Path, shift: int, caplog: pytest.LogCaptureFixture
) -> None:
    """Reference: 100 good parts as the trainer stores it; run: 40 other good parts through the
    folder source and the shared Runner, as shot (shift 0) or with the exposure changed."""
    import cv2

    from edgewise.edge.drift import drift_monitors, image_reference
    from edgewise.edge.pipeline import Runner
    from edgewise.edge.sources import open_source

    files = _parts(data_dir)
    ref = image_reference(files[:100], channels=1)
    assert ref is not None and ref["samples"] == 100
    folder = tmp_path / "parts"
    folder.mkdir()
    for f in files[100:140]:
        img = cv2.imread(str(f), cv2.IMREAD_GRAYSCALE).astype(np.int16)
        shot = np.clip(img + shift, 0, 255).astype(np.uint8)
        cv2.imwrite(str(folder / f.name.replace(".jpg", ".png")), shot)
    app, sink = _App({"drift": ref}), _Sink()
    with caplog.at_level(logging.WARNING, logger="edgewise.drift"):
        Runner(app, [sink], monitors=drift_monitors(app)).run(open_source(str(folder)))
    drift = [e for e in sink.events if e.kind == "drift"]
    warnings = [r.getMessage() for r in caplog.records if r.name == "edgewise.drift"]
    assert sum(e.kind == "part" for e in sink.events) == 40
    if shift == 0:
        assert drift == [] and warnings == []
        return
    assert len(drift) == 1 and len(warnings) == 1 and "brightness" in warnings[0]
    (f,) = [f for f in drift[0].extra["findings"] if f["name"] == "mean_c0"]
    assert f["recent"] - f["reference"] == pytest.approx(shift, abs=10)
