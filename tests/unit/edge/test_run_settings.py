"""``edgewise run APP``: flags are parsed once into typed settings; sinks, status page and source
are decided from those settings, and the shared loop never sees an argparse namespace."""

from __future__ import annotations

import argparse
import json
import types
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgewise.edge.apps import run as run_mod
from edgewise.edge.apps.run import make_sinks, make_source, run_app, start_status
from edgewise.edge.apps.settings import CameraSettings, RunSettings, SinkSettings, SourceSettings, run_parser
from edgewise.edge.pipeline import LatestFrame, Runner
from edgewise.edge.sinks import JsonLinesSink, SQLiteSink


def _settings(*flags: str) -> RunSettings:
    p = run_parser("test", "test parser", "edgewise run test")
    return RunSettings.from_args(p.parse_args(["--bundle", "b.bundle", "--source", "parts/", *flags]))


def test_run_flags_become_typed_settings() -> None:
    s = _settings(
        "--variant", "tflite_int8", "--threads", "2", "--max-frames", "7", "--stats", "st.json",
        "--stats-window", "50", "--log-every", "30", "--jsonl", "ev.jsonl", "--sqlite", "ev.db",
        "--mqtt", "broker.lan:1884", "--mqtt-buffer", "out.db", "--device-id", "pi-3",
        "--status-port", "8081", "--status-host", "0.0.0.0", "--loop", "--realtime", "--latest",
        "--camera-size", "1280x720", "--camera-lores", "320x240", "--camera-format", "YUV420",
        "--camera-stream", "lores", "--camera-fps", "15", "--camera-index", "1",
        "--give-up-after", "0", "--max-image-pixels", "2000000",
    )
    assert (s.bundle, s.variant, s.threads, s.give_up_after) == ("b.bundle", "tflite_int8", 2, 0)
    assert (s.max_frames, s.stats) == (7, "st.json")
    assert (s.stats_window, s.log_every) == (50, 30.0)
    assert s.sinks == SinkSettings(jsonl="ev.jsonl", sqlite="ev.db", mqtt_host="broker.lan", mqtt_port=1884,
                                   mqtt_buffer="out.db", device_id="pi-3", status_host="0.0.0.0",
                                   status_port=8081)
    assert s.source == SourceSettings(
        "parts/", loop=True, realtime=True, latest=True, gray=False, max_pixels=2_000_000,
        camera=CameraSettings(size=(1280, 720), format="YUV420", lores=(320, 240), stream="lores", fps=15.0,
                              index=1),
    )
    assert s.with_gray().source.gray and not s.source.gray  # frozen: a new object, the old one unchanged


def test_defaults_write_events_to_stdout_only_and_serve_no_status_page() -> None:
    s = _settings()
    assert s.sinks == SinkSettings(jsonl="-", sqlite=None, mqtt_host=None, status_port=None)
    assert s.source.camera == CameraSettings() and not (s.source.loop or s.source.latest or s.source.gray)
    assert (s.threads, s.max_frames, s.stats, s.stats_window, s.log_every) == (None, None, None, 10_000, 0.0)
    assert (s.give_up_after, s.source.max_pixels) == (50, 50_000_000)


@pytest.mark.parametrize(("flags", "message"), [
    (["--camera-size", "640"], "--camera-size '640': expected WIDTHxHEIGHT"),
    (["--camera-lores", "0x240"], "--camera-lores '0x240': width and height must be at least 1"),
    (["--mqtt", "broker:abc"], "port 'abc' is not a number"),
    (["--threads", "0"], "--threads 0: must be at least 1"),
    (["--stats-window", "0"], "--stats-window 0: must be at least 1"),
    (["--give-up-after", "-1"], "--give-up-after -1: must be 0"),
    (["--max-image-pixels", "0"], "--max-image-pixels 0: must be at least 1"),
    (["--ha-discovery"], "--ha-discovery: needs --mqtt HOST"),
])
def test_bad_run_settings_are_refused_at_the_edge(flags: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        _settings(*flags)


def test_ha_discovery_is_a_setting_of_the_mqtt_sink() -> None:
    assert _settings("--mqtt", "broker.lan", "--ha-discovery").sinks.ha_discovery
    assert not _settings("--mqtt", "broker.lan").sinks.ha_discovery


def test_sinks_are_the_ones_the_settings_name(tmp_path: Path) -> None:
    assert make_sinks(SinkSettings(jsonl=None)) == []
    both = SinkSettings(jsonl=str(tmp_path / "e.jsonl"), sqlite=str(tmp_path / "e.db"))
    sinks = make_sinks(both, "classify")
    try:
        assert [type(x) for x in sinks] == [JsonLinesSink, SQLiteSink]
    finally:
        for x in sinks:
            x.close()
    # '' on the command line turns the JSON lines sink off; SQLite alone remains
    s = _settings("--jsonl", "", "--sqlite", str(tmp_path / "only.db"))
    sinks = make_sinks(s.sinks)
    try:
        assert [type(x) for x in sinks] == [SQLiteSink]
    finally:
        sinks[0].close()


class _Echo:
    name = "echo"

    def __init__(self) -> None:
        self.closed = False

    def preprocess(self, frame: Any) -> Any:
        return frame.data

    def infer(self, x: Any) -> Any:
        return x

    def postprocess(self, frame: Any, y: Any) -> None:
        return None

    def close(self) -> None:
        self.closed = True


def test_status_page_starts_only_when_the_settings_give_a_port() -> None:
    runner = Runner(_Echo(), [])
    assert start_status(runner, SinkSettings()) is None
    server = start_status(runner, SinkSettings(status_port=0))  # 0: any free port
    try:
        assert server.port > 0
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/stats.json", timeout=10) as r:
            assert r.status == 200
    finally:
        server.stop()


def test_source_is_opened_as_the_settings_say(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, dict[str, Any]]] = []

    def fake_open(spec: str, **kw: Any) -> Any:
        seen.append((spec, kw))
        return types.SimpleNamespace(name=spec)

    monkeypatch.setattr(run_mod, "open_source", fake_open)
    src = make_source(SourceSettings("parts/", loop=True, gray=True, max_pixels=1000))
    assert seen[-1] == ("parts/", {"realtime": False, "loop": True, "gray": True, "max_pixels": 1000})
    assert not isinstance(src, LatestFrame)  # a folder is read in the loop's own thread
    assert isinstance(make_source(SourceSettings("clip.mp4", realtime=True, latest=True)), LatestFrame)
    assert seen[-1] == ("clip.mp4", {"realtime": True, "max_pixels": 50_000_000})
    cam = CameraSettings(size=(320, 240), format="YUV420", lores=(160, 120), stream="lores", fps=15.0,
                         index=1)
    src = make_source(SourceSettings("picamera2", loop=True, camera=cam, gray=True))
    assert seen[-1] == ("picamera2", {"realtime": False, "size": (320, 240), "format": "YUV420",
                                      "lores": (160, 120), "stream": "lores", "fps": 15.0, "camera": 1,
                                      "gray": True})
    assert isinstance(src, LatestFrame)  # a camera keeps running: only the newest frame is kept


def test_run_app_runs_from_settings_writes_stats_and_closes_the_app(tmp_path: Path) -> None:
    import cv2

    (tmp_path / "imgs").mkdir()
    for i in range(3):
        cv2.imwrite(str(tmp_path / "imgs" / f"{i}.png"), np.full((8, 8, 3), i, np.uint8))
    app = _Echo()
    s = RunSettings(source=SourceSettings(str(tmp_path / "imgs")), sinks=SinkSettings(jsonl=None),
                    max_frames=2, stats=str(tmp_path / "stats.json"))
    assert run_app(app, s, summary_extra=lambda: {"extra": 1}) == 0
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["frames"] == 2 and stats["extra"] == 1
    assert app.closed


def test_run_app_refuses_an_argparse_namespace() -> None:
    with pytest.raises(TypeError, match="run_app needs RunSettings, got Namespace"):
        run_app(_Echo(), argparse.Namespace(source="x", jsonl="-"))  # type: ignore[arg-type]


# -- every `edgewise run APP` parses, builds settings, and hands run_app only typed values --------

def _fake_bundle(_path: str) -> Any:
    return types.SimpleNamespace(spec=types.SimpleNamespace(input=types.SimpleNamespace(shape=(1, 8, 8, 1))))


class _FakeApp(_Echo):
    names = ["alice"]
    window, fs = 64, 12000.0
    alarm = types.SimpleNamespace(active=False)

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__()
        self.args, self.kw = args, kw

    def check_rate(self, fs: float) -> None:
        pass

    def operating_point_line(self) -> str | None:  # inspect prints its stored guarantee at start
        return None


class _FakeGallery:
    def __init__(self, *a: Any, **kw: Any) -> None:
        pass

    def __enter__(self) -> _FakeGallery:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def _patch_classify(mp: pytest.MonkeyPatch) -> str:
    from edgewise.edge.apps import classify

    mp.setattr(classify, "load_bundle", _fake_bundle)
    mp.setattr(classify, "ClassifyApp", _FakeApp)
    return "edgewise.edge.apps.classify"


def _patch_inspect(mp: pytest.MonkeyPatch) -> str:
    from edgewise.edge.apps.inspect import cli

    mp.setattr(cli, "load_bundle", _fake_bundle)
    mp.setattr(cli, "InspectApp", _FakeApp)
    return "edgewise.edge.apps.inspect.cli"


def _patch_face(mp: pytest.MonkeyPatch) -> str:
    from edgewise.edge.apps.face import cli

    mp.setattr(cli, "load_bundle", _fake_bundle)
    mp.setattr(cli, "FaceApp", _FakeApp)
    mp.setattr(cli, "Gallery", _FakeGallery)
    mp.setattr(cli, "make_detector", lambda *a, **kw: object())
    return "edgewise.edge.apps.face.cli"


def _patch_vibration(mp: pytest.MonkeyPatch) -> str:
    from edgewise.edge import bundle
    from edgewise.edge.apps.vibration import cli
    from edgewise.edge.sources import sensors

    mp.setattr(bundle, "load_bundle", _fake_bundle)
    fake = type("FakeVibrationApp", (_FakeApp,), {"Options": cli.VibrationApp.Options})
    mp.setattr(cli, "VibrationApp", fake)
    mp.setattr(sensors, "open_vibration_source", lambda *a, **kw: types.SimpleNamespace(fs=12000.0))
    return "edgewise.edge.apps.run"  # vibration imports run_app when it runs


@pytest.mark.parametrize(("app", "patch", "extra"), [
    ("classify", _patch_classify, []),
    ("inspect", _patch_inspect, []),
    ("face", _patch_face, ["--gallery", "g.db"]),
    ("vibration", _patch_vibration, ["--fs", "12000"]),
])
def test_every_run_command_hands_run_app_typed_settings(
    app: str, patch: Any, extra: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib

    from edgewise.edge.cli import main

    (tmp_path / "imgs").mkdir()
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    module = importlib.import_module(patch(monkeypatch))
    monkeypatch.setattr(module, "run_app", lambda *a, **kw: calls.append((a, kw)) or 0)
    rc = main(["run", app, "--bundle", "b.bundle", "--source", str(tmp_path / "imgs"), "--threads", "3",
               "--sqlite", str(tmp_path / "e.db"), "--status-port", "0", *extra])
    assert rc == 0 and len(calls) == 1
    args, kw = calls[0]
    values = [*args, *kw.values()]
    assert not any(isinstance(v, argparse.Namespace) for v in values)
    settings = args[1]
    assert isinstance(settings, RunSettings)
    assert settings.threads == 3 and settings.sinks.sqlite == str(tmp_path / "e.db")
    assert settings.sinks.status_port == 0
    if app in ("classify", "inspect"):  # a grey model on an image folder reads the images grey
        assert settings.source.gray


def test_the_status_page_listens_on_loopback_only_unless_told_otherwise() -> None:
    """The page shows live frames: by default nothing off the device can reach it."""
    import socket

    s = _settings("--status-port", "0")
    assert s.sinks.status_host == "127.0.0.1"
    server = start_status(Runner(_Echo(), []), s.sinks)
    try:
        bound = server.host
        assert bound == "127.0.0.1"
        found = {i[4][0] for i in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)}
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:  # the routed address; sends nothing
            try:
                probe.connect(("192.0.2.1", 9))
                found.add(probe.getsockname()[0])
            except OSError:
                pass
        others = [a for a in found if not a.startswith("127.") and a != "0.0.0.0"]
        for addr in others:  # the host's own non-loopback addresses are refused
            with pytest.raises(OSError):
                socket.create_connection((addr, server.port), timeout=2).close()
    finally:
        server.stop()
