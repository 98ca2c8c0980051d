"""Input drift: a wrong sampling rate, a changed exposure, another sensor, a swapped lens each give
one warning line and a ``drift`` event; inputs like the training ones give none (synthetic
signals and images)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pytest

from edgewise.edge.drift import DriftMonitor, DriftReference, drift_monitors, image_stats, spectrum_scale
from edgewise.edge.event import Event
from edgewise.edge.pipeline import Frame, Runner

FS = 12000.0


# Hz: the machine's spectral lines (irregular, as a real machine's), the same whatever the sampling
LINES = np.exp(np.random.default_rng(41).uniform(np.log(40), np.log(5000), 80))
GAINS = np.random.default_rng(42).uniform(0.05, 1.0, LINES.size)


def machine(seconds: float, fs: float, seed: int = 0) -> np.ndarray:
    """SYNTHETIC machine vibration sampled at ``fs``: lines from 40 Hz to 5 kHz, a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * fs)) / fs
    phases = rng.uniform(0, 2 * np.pi, LINES.size)
    x = (GAINS[:, None] * np.sin(2 * np.pi * LINES[:, None] * t + phases[:, None])).sum(axis=0)
    return x + 0.01 * rng.normal(size=t.size)


def windows(x: np.ndarray, n: int = 2048) -> list[np.ndarray]:
    return [x[i: i + n] for i in range(0, len(x) - n + 1, n)]


def images(n: int, seed: int = 0, shift: float = 0.0, blur: int = 0) -> list[np.ndarray]:
    """SYNTHETIC grey parts: a textured background with a few edges, optionally brightened/blurred."""
    import cv2

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        img = 110 + 25 * rng.normal(size=(96, 128))
        img[20:60, 30:90] += 50
        img = cv2.GaussianBlur(img, (3, 3), 0)
        if blur:
            img = cv2.GaussianBlur(img, (0, 0), blur)
        out.append(np.clip(img + shift, 0, 255).astype(np.uint8))
    return out


def feed(mon: DriftMonitor, samples: list[np.ndarray]) -> list[Event]:
    return [e for e in (mon.observe_sample(s) for s in samples) if e is not None]


@pytest.fixture(scope="module")
def vib_ref() -> DriftReference:
    return DriftReference.fit("vibration", windows(machine(6, FS)), fs=FS)


def test_a_signal_like_the_training_one_raises_no_drift(vib_ref: DriftReference) -> None:
    mon = DriftMonitor(vib_ref, first=16, every=16)
    assert feed(mon, windows(machine(6, FS, seed=1))) == [] and mon.checks >= 2


def test_a_wrong_sampling_rate_is_named_with_the_rate_the_spectrum_suggests(
    vib_ref: DriftReference, caplog: pytest.LogCaptureFixture
) -> None:
    """The machine sampled at 48 kHz but declared 12 kHz: every frequency reads 4x too low."""
    mon = DriftMonitor(vib_ref, first=16, every=1000)
    with caplog.at_level(logging.WARNING, logger="edgewise.drift"):
        events = feed(mon, windows(machine(3, 4 * FS))[:16])
    assert len(events) == 1 and events[0].kind == "drift" and events[0].extra["drift"]
    found = {f["name"]: f for f in events[0].extra["findings"]}
    assert "sampling_rate" in found
    assert found["sampling_rate"]["recent"] == pytest.approx(4.0, rel=0.1)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "sampling rate" in warnings[0].getMessage()


def test_another_sensor_gain_is_a_level_change_not_a_rate_change(vib_ref: DriftReference) -> None:
    mon = DriftMonitor(vib_ref, first=16, every=1000)
    (event,) = feed(mon, [3.0 * w for w in windows(machine(6, FS, seed=2))][:16])
    names = [f["name"] for f in event.extra["findings"]]
    assert names == ["level_db"] and event.extra["findings"][0]["recent"] - event.extra["findings"][0][
        "reference"] == pytest.approx(20 * np.log10(3), abs=0.5)


def test_spectrum_scale_recovers_a_factor_two_from_log_bands() -> None:
    ref = DriftReference.fit("vibration", windows(machine(4, FS)), fs=FS)
    mon = DriftMonitor(ref, first=10**9)
    feed(mon, windows(machine(3, 2 * FS)))
    r, c, c0 = spectrum_scale(np.mean(list(mon._profiles), axis=0), np.asarray(ref.profile))
    assert r == pytest.approx(2.0, rel=0.1) and c > c0


@pytest.fixture(scope="module")
def img_ref() -> DriftReference:
    return DriftReference.fit("image", images(40))


@pytest.mark.parametrize("how", ["same", "brighter", "darker", "blurred"])
def test_image_drift_catches_exposure_and_a_soft_lens_only(img_ref: DriftReference, how: str) -> None:
    kw = {"same": {}, "brighter": {"shift": 60}, "darker": {"shift": -60}, "blurred": {"blur": 3}}[how]
    mon = DriftMonitor(img_ref, first=16, every=1000)
    events = feed(mon, images(20, seed=7, **kw))
    if how == "same":
        assert events == []
        return
    (event,) = events
    names = {f["name"] for f in event.extra["findings"]}
    assert ("log_sharpness" in names) if how == "blurred" else ("mean_c0" in names)


def test_a_colour_camera_is_compared_in_grey_with_a_grey_reference(img_ref: DriftReference) -> None:
    """A BGR frame of the same scene against a grey reference: converted, not flagged."""
    bgr = [np.repeat(i[..., None], 3, axis=-1) for i in images(20, seed=3)]
    assert feed(DriftMonitor(img_ref, first=16, every=1000), bgr) == []
    grey = images(1, seed=3)[0]
    assert image_stats(bgr[0], 1)[0]["mean_c0"] == pytest.approx(image_stats(grey, 1)[0]["mean_c0"])


def test_drift_that_ends_is_reported_once_more_as_gone(img_ref: DriftReference) -> None:
    mon = DriftMonitor(img_ref, first=16, every=16, recent=16)
    events = feed(mon, images(16, seed=1, shift=70) + images(16, seed=2))
    assert [e.extra["drift"] for e in events] == [True, False]


def test_the_reference_survives_bundle_json_and_malformed_ones_are_one_line(img_ref: DriftReference) -> None:
    import json

    back = DriftReference.from_dict(json.loads(json.dumps(img_ref.to_dict())))
    assert back.stats.keys() == img_ref.stats.keys() and back.channels == 1
    for bad, what in (({"kind": "sound"}, "malformed"), ({**img_ref.to_dict(), "kind": "sound"}, "kind"),
                      ({**img_ref.to_dict(), "extra": 1}, "unknown keys")):
        with pytest.raises(ValueError, match=what) as e:
            DriftReference.from_dict(bad)
        assert "\n" not in str(e.value)


@dataclass
class _Spec:
    config: dict


class _App:
    """A stand-in application: every frame is an event of its own; the spec carries a reference."""

    name = "inspect"

    def __init__(self, config: dict) -> None:
        self.spec = _Spec(config)

    def preprocess(self, frame: Frame) -> np.ndarray:
        return frame.data

    def infer(self, x: np.ndarray) -> float:
        return float(x.mean())

    def postprocess(self, frame: Frame, y: float) -> Event:
        return Event(self.name, "part", answer="PASS", score=y)


class _Sink:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def write(self, e: Event) -> None:
        self.events.append(e)

    def close(self) -> None:
        pass


class _Frames:
    name, dropped = "parts", 0

    def __init__(self, imgs: list[np.ndarray]) -> None:
        self.imgs = imgs

    def __enter__(self) -> _Frames:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def __iter__(self):
        for i, img in enumerate(self.imgs):
            yield Frame(img, 0.0, i, {"path": f"p{i}.png"})


def test_the_runner_puts_drift_events_in_the_apps_event_stream(img_ref: DriftReference) -> None:
    """Brightness-shifted parts through the shared loop: one drift event among the parts' own."""
    app = _App({"drift": img_ref.to_dict()})
    sink = _Sink()
    runner = Runner(app, [sink], monitors=drift_monitors(app))
    stats = runner.run(_Frames(images(24, seed=5, shift=50)))
    kinds = [e.kind for e in sink.events]
    assert kinds.count("part") == 24 and kinds.count("drift") == 1 and stats.events == 25
    drift = next(e for e in sink.events if e.kind == "drift")
    assert drift.app == "inspect" and drift.frame == 15 and drift.to_dict()["decision"] is None


def test_a_bundle_without_training_statistics_skips_the_check() -> None:
    assert drift_monitors(_App({})) == []


def test_a_failing_monitor_is_counted_and_the_loop_goes_on(img_ref: DriftReference) -> None:
    class Broken:
        def observe(self, frame: Frame, x: object, app: object) -> None:
            raise ValueError("boom")

    sink = _Sink()
    stats = Runner(_App({}), [sink], monitors=[Broken()]).run(_Frames(images(3)))
    assert len(sink.events) == 3 and stats.errors_by_kind["postprocess"] == 3 and stats.frames_ok == 3
