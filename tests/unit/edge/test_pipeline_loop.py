"""The camera loop: latest-frame semantics, a real OpenCV video, SIGTERM, corrupt frames, picamera2."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np
import pytest

from edgewise.edge.event import Event
from edgewise.edge.pipeline import Frame, LatestFrame, Runner
from edgewise.edge.sources import VideoSource

W, H, FPS = 640, 480, 30


def write_digit_video(path: Path, frames: int = 60, fps: int = FPS) -> Path:
    """A 640x480 video written by cv2.VideoWriter: scikit-learn digits scaled to full frame.

    Pixel values stay on the digits' own 0..16 scale (what the digits bundle expects), each
    frame also carries a bright frame counter in its top-left corner block for debugging.
    """
    import cv2
    from sklearn.datasets import load_digits

    d = load_digits()
    for fourcc, suffix in (("mp4v", ".mp4"), ("MJPG", ".avi")):
        out = path.with_suffix(suffix)
        vw = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*fourcc), float(fps), (W, H), isColor=True)
        if vw.isOpened():
            break
    else:
        pytest.skip("OpenCV has no mp4v/MJPG video writer here")
    for i in range(frames):
        img = d.images[i % len(d.images)].astype(np.uint8)  # 0..16
        big = cv2.resize(img, (W, H), interpolation=cv2.INTER_NEAREST)
        vw.write(cv2.cvtColor(big, cv2.COLOR_GRAY2BGR))
    vw.release()
    return out


class SlowApp:
    """Stands in for a model slower than the camera: ``delay`` seconds per frame."""

    name = "slow"

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.seen: list[int] = []

    def preprocess(self, frame: Frame) -> np.ndarray:
        if frame.data is None or frame.data.size == 0:
            raise ValueError("empty frame")
        return frame.data

    def infer(self, x: np.ndarray) -> float:
        time.sleep(self.delay)
        return float(x.mean())

    def postprocess(self, frame: Frame, y: float) -> dict:
        self.seen.append(frame.index)
        return {"app": self.name, "mean": y}


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_digit_video(tmp_path_factory.mktemp("video") / "line", frames=60)


def test_opencv_video_is_640x480_at_30fps(video: Path):
    import cv2

    cap = cv2.VideoCapture(str(video))
    assert (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (W, H)
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(FPS)
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 60
    cap.release()


def test_slow_model_drops_stale_frames_instead_of_queueing(video: Path):
    """60 frames at 30 fps (2 s) into a 100 ms model: ~20 processed, the rest dropped, and each
    processed frame is fresh (latency stays near one inference, never grows with the backlog)."""
    app = SlowApp(delay=0.1)
    stats = Runner(app).run(LatestFrame(VideoSource(video, realtime=True)))
    s = stats.summary()
    assert stats.frames + stats.dropped == 60  # every frame either processed or counted as dropped
    assert 8 <= stats.frames <= 30, s
    assert stats.dropped >= 30, s
    gaps = np.diff(app.seen)
    assert (gaps >= 1).all() and gaps.max() >= 2  # indices jump over the stale frames
    # A queue would make frame k wait k * (100 - 33) ms: the last one ~2.7 s. Latest-frame keeps
    # every frame's age within about two inference times.
    assert s["end_to_end"]["max_ms"] < 350, s["end_to_end"]


def test_without_latest_frame_a_slow_model_makes_latency_grow(video: Path):
    """The contrast that motivates LatestFrame: a camera feeding an unbounded queue."""
    import queue
    import threading

    q: queue.Queue = queue.Queue()

    class QueuedCamera:
        name, dropped = "queued", 0

        def __enter__(self):
            def pump():
                with VideoSource(video, realtime=True) as src:
                    for f in src:
                        q.put(f)
                q.put(None)

            threading.Thread(target=pump, daemon=True).start()
            return self

        def __exit__(self, *exc):
            pass

        def __iter__(self):
            while (f := q.get()) is not None:
                yield f

    app = SlowApp(delay=0.1)
    stats = Runner(app).run(QueuedCamera(), max_frames=20)
    e2e = np.array(stats.times["end_to_end"])
    assert stats.dropped == 0
    assert e2e[-1] > 0.8 and e2e[-1] > 4 * e2e[0]  # the backlog grows frame after frame


def test_corrupt_frames_are_logged_and_skipped(video: Path, caplog: pytest.LogCaptureFixture):
    class WithCorrupt:
        """The real video with an empty frame and a None frame injected."""

        name, dropped = "corrupt", 0

        def __init__(self):
            self.src = VideoSource(video)

        def __enter__(self):
            self.src.__enter__()
            return self

        def __exit__(self, *exc):
            self.src.__exit__(*exc)

        def __iter__(self):
            for f in self.src:
                if f.index == 5:
                    f = Frame(np.zeros((0, 0, 3), np.uint8), f.t_capture, f.index, f.meta)
                if f.index == 9:
                    f = Frame(None, f.t_capture, f.index, f.meta)  # type: ignore[arg-type]
                yield f

    app = SlowApp(delay=0)
    with caplog.at_level(logging.ERROR, logger="edgewise.pipeline"):
        stats = Runner(app).run(WithCorrupt(), max_frames=20)
    assert stats.frames == 20 and stats.errors == 2 and stats.events == 18
    assert 5 not in app.seen and 9 not in app.seen and 10 in app.seen
    msgs = [r.getMessage() for r in caplog.records]
    assert any("frame 5" in m and "empty frame" in m for m in msgs), msgs


def test_digits_bundle_runs_on_the_video_through_the_runner(video: Path, digits_bundle: Path):
    from sklearn.datasets import load_digits

    from edgewise.edge.apps.classify import ClassifyApp
    from edgewise.edge.bundle import load_bundle

    app = ClassifyApp(load_bundle(digits_bundle), threads=2)
    events: list[dict] = []

    class Collect:
        def write(self, e: Event):
            events.append(e.to_dict())  # the wire form every sink writes

        def close(self):
            pass

    stats = Runner(app, [Collect()]).run(VideoSource(video))
    assert stats.frames == 60 and stats.errors == 0 and len(events) == 60
    truth = load_digits().target[:60].astype(str)
    acc = float(np.mean([e["label"] == t for e, t in zip(events, truth, strict=True)]))
    assert acc >= 0.8, f"digits read back from the video: accuracy {acc:.2f}"
    assert all(e["latency_ms"]["end_to_end"] > 0 for e in events)


def test_sigterm_stops_the_loop_gracefully_and_writes_stats(video: Path, digits_bundle: Path, tmp_path: Path):
    stats_file, events = tmp_path / "stats.json", tmp_path / "events.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgewise.edge.cli", "run", "classify", "--bundle", str(digits_bundle),
         "--source", str(video), "--realtime", "--loop", "--latest", "--threads", "2",
         "--jsonl", str(events), "--stats", str(stats_file)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 90
    # past the video's 60 frames: --loop keeps the camera-like source going until the signal
    while time.monotonic() < deadline and (not events.exists() or events.read_text().count("\n") <= 70):
        assert proc.poll() is None, proc.communicate()[1]
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    summary = json.loads(stats_file.read_text())
    lines = events.read_text().splitlines()
    assert summary["frames"] > 60 and summary["events"] == len(lines)
    assert all(json.loads(line)["app"] == "classify" for line in lines)  # no torn last line
    assert "frames=" in err



def test_stats_window_bounds_memory_but_counters_stay_totals(video: Path):
    runner = Runner(SlowApp(delay=0), window=10)
    stats = runner.run(VideoSource(video))
    assert stats.frames == 60 and stats.events == 60
    assert all(len(v) < 20 for v in stats.times.values())  # a months-long service stays bounded
    assert stats.summary()["end_to_end"]["n"] == len(stats.times["end_to_end"])


def test_preview_annotates_images_and_draws_signal_windows():
    from edgewise.edge.status import annotate

    img = annotate(Frame(np.zeros((48, 64), np.uint8), 0.0, 3, {}), {"label": "7", "probability": 0.9,
                                                                   "latency_ms": {"end_to_end": 2.5}})
    assert img.shape == (48, 64, 3) and img.max() > 0  # gray -> BGR with the label drawn
    window = np.sin(np.linspace(0, 20, 2048)).astype(np.float32)
    trace = annotate(Frame(window, 0.0, 0, {}), {"score": 0.1, "alarm": False})
    assert trace.shape == (240, 640, 3) and (trace[..., 1] > 200).sum() > 500  # the waveform

# --- picamera2 ------------------------------------------------------------------------------


def test_picamera2_source_off_device_fails_with_one_clear_line(monkeypatch: pytest.MonkeyPatch):
    from edgewise.edge.sources.picamera import PiCameraSource

    monkeypatch.setitem(sys.modules, "picamera2", None)  # import picamera2 -> ImportError
    with pytest.raises(ValueError) as e:
        PiCameraSource().__enter__()
    msg = str(e.value)
    assert "\n" not in msg and "picamera2" in msg and "apt install python3-picamera2" in msg


class FakePicamera2:
    """Records the configuration and serves YUV420/RGB888 arrays like picamera2 does."""

    instances: list = []

    def __init__(self, camera_num: int = 0):
        self.camera_num, self.started, self.closed, self.n = camera_num, False, False, 0
        FakePicamera2.instances.append(self)

    def create_video_configuration(self, main, lores=None, controls=None, buffer_count=None, **kw):
        return {"main": main, "lores": lores, "controls": controls, "buffer_count": buffer_count}

    def configure(self, config):
        self.config = config

    def start(self):
        self.started = True

    def stop(self):
        self.started = False

    def close(self):
        self.closed = True

    def capture_arrays(self, names):
        self.n += 1
        out = []
        for name in names:
            w, h = self.config[name]["size"]
            if self.config[name]["format"] == "YUV420":
                a = np.full((h * 3 // 2, w), 128, np.uint8)
                a[:h] = 200  # luma plane
            else:
                a = np.zeros((h, w, 3), np.uint8)
                a[..., 2] = 255  # picamera2 "RGB888" is B,G,R in memory
            out.append(a)
        ts = time.monotonic_ns() - 5_000_000  # exposed 5 ms ago
        return out, {"SensorTimestamp": ts, "FrameDuration": 33333}


def test_picamera2_main_and_lores_streams_become_bgr_frames_with_capture_time(monkeypatch):
    from edgewise.edge.sources.picamera import PiCameraSource

    monkeypatch.setitem(sys.modules, "picamera2", types.SimpleNamespace(Picamera2=FakePicamera2))
    src = PiCameraSource(size=(640, 480), lores=(320, 240), stream="lores", fps=30)
    with src:
        cam = FakePicamera2.instances[-1]
        assert cam.config["main"] == {"size": (640, 480), "format": "RGB888"}
        assert cam.config["lores"] == {"size": (320, 240), "format": "YUV420"}
        assert cam.config["controls"]["FrameRate"] == 30
        it = iter(src)
        t0 = time.monotonic()
        f = next(it)
        assert f.data.shape == (240, 320, 3) and f.data.dtype == np.uint8
        assert f.meta["main"].shape == (480, 640, 3)  # kept for the annotated preview
        assert 0.004 <= t0 - f.t_capture + (time.monotonic() - t0) < 0.5  # stamped at exposure
    assert cam.closed and not cam.started


def test_picamera2_yuv_main_stream_as_gray_uses_the_luma_plane(monkeypatch):
    from edgewise.edge.sources.picamera import PiCameraSource

    monkeypatch.setitem(sys.modules, "picamera2", types.SimpleNamespace(Picamera2=FakePicamera2))
    with PiCameraSource(size=(64, 48), format="YUV420", gray=True) as src:
        f = next(iter(src))
    assert f.data.shape == (48, 64) and int(f.data[0, 0]) == 200
    with pytest.raises(ValueError, match="stream 'lores' needs --camera-lores"):
        PiCameraSource(stream="lores")


@pytest.mark.skipif(os.environ.get("EDGEWISE_PICAMERA") != "1", reason="set EDGEWISE_PICAMERA=1 on a Pi")
def test_real_picamera2_delivers_frames():
    from edgewise.edge.sources.picamera import PiCameraSource

    with PiCameraSource(size=(640, 480)) as src:
        f = next(iter(src))
    assert f.data.shape == (480, 640, 3)


# --- status page ----------------------------------------------------------------------------


def test_status_page_serves_live_stats_and_an_annotated_mjpeg_preview(video: Path):
    import threading
    import urllib.request

    import cv2

    from edgewise.edge.status import StatusServer

    runner = Runner(SlowApp(delay=0.02))
    server = StatusServer(runner, port=0, preview_fps=20).start()
    assert server.host == "127.0.0.1"  # local only unless asked otherwise
    t = threading.Thread(target=runner.run, args=(LatestFrame(VideoSource(video, realtime=True, loop=True)),))
    t.start()
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            stats = json.loads(urllib.request.urlopen(server.url + "stats.json", timeout=5).read())
            if stats.get("frames", 0) > 5:
                break
            time.sleep(0.1)
        assert stats["app"] == "slow" and stats["frames"] > 5 and stats["fps"] > 1
        assert stats["end_to_end"]["n"] > 0 and stats["last_event"]["app"] == "slow"
        with urllib.request.urlopen(server.url + "stream.mjpg", timeout=5) as r:
            assert r.headers["Content-Type"].startswith("multipart/x-mixed-replace")
            jpgs, buf = [], b""
            while len(jpgs) < 2:
                buf += r.read(4096)
                while (s := buf.find(b"\xff\xd8")) >= 0 and (e := buf.find(b"\xff\xd9", s)) >= 0:
                    jpgs.append(buf[s:e + 2])
                    buf = buf[e + 2:]
        imgs = [cv2.imdecode(np.frombuffer(j, np.uint8), cv2.IMREAD_COLOR) for j in jpgs]
        assert all(i.shape == (480, 640, 3) for i in imgs)
        # the overlay is drawn: the video's frames are dark (0..16), the text is bright yellow
        assert max(int(i[:, :, 2].max()) for i in imgs) > 200
        page = urllib.request.urlopen(server.url, timeout=5).read().decode()
        assert "stream.mjpg" in page and "stats.json" in page
    finally:
        runner.stop()
        t.join(10)
        server.stop()
    assert not t.is_alive()
