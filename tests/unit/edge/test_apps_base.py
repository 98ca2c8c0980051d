"""BundleApp: variant, threshold and normalization come from the bundle; options become flags once."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from edgewise.edge.apps.base import BundleApp, Options, add_option_flags, options_from
from edgewise.edge.bundle import BundleError, load_bundle
from edgewise.edge.event import Event
from edgewise.edge.pipeline import Frame


class FakeModel:
    closed = False

    def predict(self, x: np.ndarray) -> np.ndarray:
        return x.reshape(len(x), -1)[:, :2]

    def close(self) -> None:
        self.closed = True


class Gate(BundleApp):
    name = "inspect"
    uses_threshold = True

    @dataclasses.dataclass(frozen=True)
    class Options(Options):
        pulse_s: float = dataclasses.field(default=0.2, metadata={"help": "reject pulse length"})
        save_fails: str | None = dataclasses.field(default=None, metadata={"help": "folder for FAIL images"})
        flip: bool = False

    def postprocess(self, frame: Frame, y: np.ndarray) -> Event:
        score = float(y.max())
        return Event(self.name, "part", answer="FAIL" if score >= self.threshold else "PASS", score=score)


@pytest.fixture()
def bundle(tmp_path: Path) -> Path:
    from test_bundle import _tiny_bundle  # tests/ is on sys.path under pytest

    root = _tiny_bundle(tmp_path / "b")
    meta = json.loads((root / "bundle.json").read_text())
    meta["input"]["normalization"] = {"scale": 0.5, "offset": -1.0}
    meta["thresholds"] = {"decision": 1.0, "per_variant": {"tflite_float32": 2.0}}
    (root / "bundle.json").write_text(json.dumps(meta))
    return root


def test_threshold_and_normalization_come_from_the_bundle(bundle: Path) -> None:
    model = FakeModel()
    with Gate(load_bundle(bundle), model=model) as app:
        assert app.variant == "tflite_float32" and app.threshold == 2.0  # per-variant beats bundle-wide
        frame = Frame(np.array([2, 4, 6, 8], np.uint8), 0.0, 0, {})
        x = app.preprocess(frame)
        np.testing.assert_array_equal(x, [[0.0, 1.0, 2.0, 3.0]])  # 0.5 x - 1, from bundle.json
        ev = app.postprocess(frame, app.infer(x))
        assert (ev.answer, ev.score) == ("PASS", 1.0)
    assert model.closed


def test_an_explicit_threshold_overrides_and_a_missing_one_is_refused(bundle: Path) -> None:
    assert Gate(load_bundle(bundle), threshold=0.5, model=FakeModel()).threshold == 0.5
    meta = json.loads((bundle / "bundle.json").read_text())
    meta["thresholds"] = {}
    (bundle / "bundle.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError, match="thresholds has no 'decision'"):
        Gate(load_bundle(bundle, verify=False), model=FakeModel())


def test_options_become_flags_with_their_defaults_and_back(bundle: Path) -> None:
    p = argparse.ArgumentParser()
    add_option_flags(p, Gate.Options)
    assert options_from(p.parse_args([]), Gate.Options) == Gate.Options()
    got = options_from(p.parse_args(["--pulse-s", "0.5", "--save-fails", "f", "--flip"]), Gate.Options)
    assert got == Gate.Options(pulse_s=0.5, save_fails="f", flip=True)
    assert "reject pulse length" in p.format_help()
    app = Gate(load_bundle(bundle), options=got, model=FakeModel())
    assert app.options.pulse_s == 0.5


def test_an_app_refuses_a_bundle_made_for_another_application_in_one_line(bundle: Path) -> None:
    class FaceOnly(Gate):
        bundle_apps = ("face",)

    b = load_bundle(bundle)
    model = FakeModel()
    with pytest.raises(BundleError, match=rf"made for the '{b.spec.app}' application, not 'face'"):
        FaceOnly(b, model=model)
    with Gate(b, model=FakeModel()):  # an app that names no bundle_apps runs any bundle
        pass
