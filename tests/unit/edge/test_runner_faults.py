"""The runner never dies of one frame: every fault is counted by kind, logged once, and the loop goes on;
stats stay bounded; a run where nothing worked exits 1 with one line."""

from __future__ import annotations

import json
import logging
import struct
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgewise.edge.apps.run import run_app
from edgewise.edge.apps.settings import RunSettings, SinkSettings, SourceSettings
from edgewise.edge.errorlog import ErrorLog
from edgewise.edge.pipeline import Frame, FrameError, LatestFrame, Runner
from edgewise.edge.runstats import DEFAULT_STATS_WINDOW, TimingWindow
from edgewise.edge.sources import ImageFolderSource, VideoSource
from edgewise.edge.sources.windows import RecordingSource


def png_bomb() -> bytes:
    """74 bytes whose PNG header claims 60000 x 60000 pixels (test_image_header covers every format)."""
    ihdr = b"IHDR" + struct.pack(">IIBBBBB", 60000, 60000, 8, 0, 0, 0, 0)
    idat = b"IDAT" + zlib.compress(bytes(240_004), 9)[:17]
    body = b"".join(struct.pack(">I", len(c) - 4) + c + struct.pack(">I", zlib.crc32(c))
                    for c in (ihdr, idat, b"IEND"))
    return b"\x89PNG\r\n\x1a\n" + body


class ListSource:
    """Frames (or FrameErrors) from a list, like a real source: a context manager with ``dropped``."""

    def __init__(self, items: list[Any], name: str = "list") -> None:
        self.items, self.name, self.dropped = items, name, 0

    def __enter__(self) -> ListSource:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def __iter__(self):
        return iter(self.items)


def frames(n: int, name: str = "synthetic") -> list[Frame]:
    return [Frame(np.full(4, i, np.float32), time.monotonic(), i, {"source": name}) for i in range(n)]


class FaultyApp:
    """Fails with a different (not Value/Runtime/OS) exception at chosen frames of each stage."""

    name = "faulty"

    def __init__(self, pre: set[int] = frozenset(), model: set[int] = frozenset(),
                 post: set[int] = frozenset(), none: bool = False) -> None:
        self.pre, self.model, self.post, self.none = pre, model, post, none
        self.seen: list[int] = []

    def preprocess(self, frame: Frame) -> Any:
        if frame.index in self.pre:
            raise KeyError("missing channel")
        return frame

    def infer(self, frame: Frame) -> Any:
        if frame.index in self.model:
            raise ZeroDivisionError("tensor shape (1, 4) does not fit input (1, 8)")
        return frame

    def postprocess(self, frame: Frame, y: Any) -> Any:
        if frame.index in self.post:
            raise TypeError("cannot score")
        self.seen.append(frame.index)
        return None if self.none else {"app": self.name, "label": str(frame.index)}


class ListSink:
    def __init__(self, fail_at: set[int] = frozenset()) -> None:
        self.events: list[Any] = []
        self.fail_at = fail_at

    def write(self, event: Any) -> None:
        if event.frame in self.fail_at:
            raise MemoryError("disk full")
        self.events.append(event)

    def close(self) -> None:
        pass


def test_any_exception_of_any_stage_is_counted_by_kind_and_the_loop_goes_on(caplog: pytest.LogCaptureFixture):
    app = FaultyApp(pre={1}, model={3, 4}, post={6})
    sink = ListSink(fail_at={8})
    with caplog.at_level(logging.ERROR, logger="edgewise.pipeline"):
        stats = Runner(app, [sink]).run(ListSource(frames(10)))
    assert stats.errors_by_kind == {"source": 0, "decode": 0, "preprocess": 1, "model": 2, "postprocess": 1,
                                    "sink": 1}
    assert (stats.frames, stats.frames_ok, stats.events, stats.errors) == (10, 6, 6, 5)
    assert app.seen == [0, 2, 5, 7, 8, 9] and [e.frame for e in sink.events] == [0, 2, 5, 7, 9]
    msgs = [r.getMessage() for r in caplog.records]
    assert "preprocess error: frame 1 from synthetic skipped: 'missing channel'" in msgs
    assert any(m.startswith("model error: frame 3 from synthetic skipped: tensor shape") for m in msgs)
    assert any(m.startswith("sink error: event of frame 8 to ListSink") for m in msgs)
    assert stats.failure is None
    s = stats.summary()
    assert s["errors"] == 5 and s["errors_by_kind"]["model"] == 2 and s["frames_ok"] == 6


def test_keyboard_interrupt_from_a_stage_is_not_swallowed():
    class Interrupting(FaultyApp):
        def infer(self, frame: Frame) -> Any:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Runner(Interrupting()).run(ListSource(frames(3)))


def test_a_source_whose_next_raises_is_counted_and_read_again():
    class Flaky:
        """An iterator (not a generator) whose reads 2 and 5 raise, then go on."""

        name, dropped = "flaky", 0

        def __init__(self) -> None:
            self.i = 0

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            pass

        def __iter__(self):
            return self

        def __next__(self) -> Frame:
            self.i += 1
            if self.i > 8:
                raise StopIteration
            if self.i in (2, 5):
                raise BufferError("device hiccup")
            return Frame(np.zeros(4), time.monotonic(), self.i, {"source": "flaky"})

    stats = Runner(FaultyApp()).run(Flaky())
    assert (stats.frames, stats.errors_by_kind["source"]) == (6, 2)


def test_frame_errors_from_a_source_are_counted_and_never_dropped_by_latest_frame():
    items: list[Any] = []
    for f in frames(20):
        items.append(f)
        if f.index % 4 == 0:
            items.append(FrameError("decode", f"file{f.index}.png", "corrupt image", "ImageError"))
    stats = Runner(FaultyApp()).run(LatestFrame(ListSource(items)))
    assert stats.errors_by_kind["decode"] == 5
    assert stats.frames + stats.dropped == 20  # frames may be dropped for fresher ones; errors never are


def test_a_74_byte_png_bomb_in_a_folder_is_skipped_and_counted_as_decode(tmp_path: Path):
    import cv2

    for i in range(4):
        cv2.imwrite(str(tmp_path / f"{i}.png"), np.full((8, 8, 3), i, np.uint8))
    (tmp_path / "2b.png").write_bytes(png_bomb())
    (tmp_path / "3b.jpg").write_bytes(b"\xff\xd8 this is no jpeg")
    app = FaultyApp()
    stats = Runner(app).run(ImageFolderSource(tmp_path))
    assert (stats.frames, stats.frames_ok, stats.errors_by_kind["decode"]) == (4, 4, 2)
    assert stats.failure is None


def test_a_video_frame_that_fails_mid_stream_is_skipped_and_the_rest_is_read(tmp_path: Path):
    import cv2

    path = tmp_path / "v.avi"
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (64, 48))
    if not vw.isOpened():
        pytest.skip("OpenCV has no MJPG writer here")
    for i in range(20):
        vw.write(np.full((48, 64, 3), i * 10, np.uint8))
    vw.release()
    raw = bytearray(path.read_bytes())
    soi = [i for i in range(len(raw) - 1) if raw[i] == 0xFF and raw[i + 1] == 0xD8]
    assert len(soi) == 20
    raw[soi[10] : soi[10] + 200] = bytes(200)  # frame 10's JPEG data wiped
    path.write_bytes(bytes(raw))
    means: list[int] = []

    class Mean(FaultyApp):
        def postprocess(self, frame: Frame, y: Any) -> Any:
            means.append(round(float(frame.data.mean())))

    stats = Runner(Mean()).run(VideoSource(path))
    assert stats.errors_by_kind["decode"] == 1 and stats.frames == 19
    expected = [i * 10 for i in range(20) if i != 10]  # before: the video ended at frame 10
    assert len(means) == 19 and np.allclose(means, expected, atol=2), means  # JPEG: within 2 grey levels


def test_a_camera_that_keeps_failing_is_retried_then_given_up(monkeypatch: pytest.MonkeyPatch):
    import cv2

    class DeadCamera:
        def __init__(self, *a: Any) -> None:
            self.reads = 0

        def isOpened(self) -> bool:  # noqa: N802 - OpenCV's name
            return True

        def get(self, prop: int) -> float:
            return {cv2.CAP_PROP_FRAME_WIDTH: 64, cv2.CAP_PROP_FRAME_HEIGHT: 48}.get(prop, 0)

        def read(self):
            self.reads += 1
            if self.reads <= 3:
                return True, np.zeros((48, 64, 3), np.uint8)
            raise cv2.error("camera unplugged")

        def set(self, *a: Any) -> bool:
            return True

        def release(self) -> None:
            pass

    monkeypatch.setattr(cv2, "VideoCapture", DeadCamera)
    src = VideoSource(0, max_failures=5, retry_s=0.001)
    stats = Runner(FaultyApp()).run(src)
    assert stats.frames == 3 and stats.errors_by_kind["source"] == 5
    assert stats.failure is None  # three frames went through: the run did something


def test_a_video_with_frames_over_the_pixel_limit_is_refused_at_open(tmp_path: Path):
    import cv2

    path = tmp_path / "v.avi"
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (64, 48))
    vw.write(np.zeros((48, 64, 3), np.uint8))
    vw.release()
    with pytest.raises(ValueError, match="64x48"):
        VideoSource(path, max_pixels=1000).__enter__()


# -- giving up, exit codes ------------------------------------------------------------------------


def test_a_model_failing_identically_at_start_gives_up_after_n_frames():
    app = FaultyApp(model=set(range(10_000)))
    stats = Runner(app, give_up_after=7).run(ListSource(frames(10_000)))
    assert stats.frames == 7 and stats.frames_ok == 0
    assert stats.gave_up is not None and "first 7 frames" in stats.gave_up and "tensor shape" in stats.gave_up
    assert stats.failure == stats.gave_up


def test_failures_after_a_first_success_never_give_up():
    app = FaultyApp(model=set(range(1, 500)))
    stats = Runner(app, give_up_after=7).run(ListSource(frames(500)))
    assert (stats.frames, stats.frames_ok, stats.gave_up, stats.failure) == (500, 1, None, None)


def test_different_failures_at_start_do_not_count_as_identical():
    app = FaultyApp(pre=set(range(0, 40, 2)), model=set(range(1, 40, 2)))
    stats = Runner(app, give_up_after=3).run(ListSource(frames(40)))
    assert stats.gave_up is None and stats.frames == 40
    assert stats.failure == "all 40 frames failed (errors: preprocess 20, model 20)"


def _run(tmp_path: Path, app: Any, source: Any, capsys: pytest.CaptureFixture, **kw: Any) -> tuple[int, str]:
    settings = RunSettings(source=SourceSettings("test"), sinks=SinkSettings(jsonl=None),
                           stats=str(tmp_path / "stats.json"), **kw)
    rc = run_app(app, settings, source=source)
    return rc, capsys.readouterr().err


def test_exit_1_with_one_line_when_every_frame_failed(tmp_path: Path, capsys: pytest.CaptureFixture):
    rc, err = _run(tmp_path, FaultyApp(model=set(range(30))), ListSource(frames(30)), capsys, give_up_after=0)
    assert rc == 1
    lines = err.strip().splitlines()
    assert lines[-1] == "edgewise run faulty: error: all 30 frames failed (errors: model 30)"
    assert lines[0].startswith("frames=30 events=0 errors=30 dropped=0") and "(model=30)" in lines[0]
    s = json.loads((tmp_path / "stats.json").read_text())
    assert s["errors_by_kind"]["model"] == 30 and s["frames_ok"] == 0 and "fps" in s and "dropped" in s


def test_exit_1_when_the_source_delivered_nothing_because_of_errors(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture):
    for i in range(3):
        (tmp_path / f"{i}.png").write_bytes(b"corrupt")
    rc, err = _run(tmp_path, FaultyApp(), ImageFolderSource(tmp_path), capsys)
    assert rc == 1
    assert err.strip().splitlines()[-1] == (
        "edgewise run faulty: error: the source delivered no frame (errors: decode 3)")


def test_exit_1_when_giving_up_and_0_when_some_frames_worked(tmp_path: Path, capsys: pytest.CaptureFixture):
    rc, err = _run(tmp_path, FaultyApp(model=set(range(100))), ListSource(frames(100)), capsys)
    assert rc == 1 and "the first 50 frames all failed the same way" in err.splitlines()[-1]
    rc, err = _run(tmp_path, FaultyApp(model=set(range(1, 100))), ListSource(frames(100)), capsys)
    assert rc == 0 and "error:" not in err


def test_an_empty_source_is_not_a_failure(tmp_path: Path, capsys: pytest.CaptureFixture):
    rc, _ = _run(tmp_path, FaultyApp(), ListSource([]), capsys)
    assert rc == 0


# -- bounded stats ----------------------------------------------------------------------------------


def test_20k_frames_keep_the_stored_timings_within_the_window_even_without_the_flag():
    stats = Runner(FaultyApp(none=True)).run(ListSource(frames(20_000)))  # no window given
    assert stats.frames == 20_000 and stats.window == DEFAULT_STATS_WINDOW
    assert all(len(v) == DEFAULT_STATS_WINDOW and v.total == 20_000 for v in stats.times.values())
    assert all(v.nbytes == 8 * DEFAULT_STATS_WINDOW for v in stats.times.values())
    stats = Runner(FaultyApp(none=True), window=500).run(ListSource(frames(20_000)))
    assert all(len(v) == 500 for v in stats.times.values())
    assert stats.summary()["end_to_end"]["n"] == 500


def test_vibration_windows_through_run_app_keep_the_same_bounded_window(tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture):
    """The vibration runner's path: a signal source handed to run_app; its timings are bounded too."""
    signal = np.random.default_rng(1).normal(size=20_000 * 8)  # SYNTHETIC noise, 20k windows of 8
    src = RecordingSource(signal, fs=12_000, window=8, name="synthetic")
    rc, _ = _run(tmp_path, FaultyApp(none=True), src, capsys, stats_window=300)
    s = json.loads((tmp_path / "stats.json").read_text())
    assert rc == 0 and s["frames"] == 20_000 and s["stats_window"] == 300
    assert all(s[stage]["n"] == 300 for stage in ("capture", "preprocess", "inference", "end_to_end"))


def test_timing_window_keeps_the_newest_values_in_order():
    w = TimingWindow(3)
    assert len(w) == 0 and w.values().size == 0
    for v in range(1, 8):
        w.append(v)
    assert w.values().tolist() == [5.0, 6.0, 7.0] and w[-1] == 7.0 and w.recent(2).tolist() == [6.0, 7.0]
    assert np.asarray(w).tolist() == [5.0, 6.0, 7.0] and w.total == 7
    with pytest.raises(ValueError):
        TimingWindow(0)


# -- rate-limited error lines ------------------------------------------------------------------------


def test_repeated_identical_errors_are_logged_once_then_summed_every_interval(caplog):
    now = [0.0]
    elog = ErrorLog(logging.getLogger("edgewise.test"), interval=10.0, clock=lambda: now[0])
    with caplog.at_level(logging.ERROR, logger="edgewise.test"):
        for i in range(100_000):  # 100k identical errors over 30 s
            now[0] = i * 30.0 / 100_000
            elog.report("decode", ("decode", "bad.png"), "decode error: bad.png skipped: corrupt")
        elog.flush()
    msgs = [r.getMessage() for r in caplog.records]
    assert msgs[0] == "decode error: bad.png skipped: corrupt"
    assert 3 <= len(msgs) <= 5 and elog.lines == len(msgs)
    assert all(m.startswith("errors repeated") and "(decode " in m for m in msgs[1:])
    assert sum(int(m.split()[2]) for m in msgs[1:]) == 99_999  # every repeat counted in a summary


def test_many_distinct_errors_stay_within_the_line_budget(caplog: pytest.LogCaptureFixture):
    now = [0.0]
    elog = ErrorLog(logging.getLogger("edgewise.test"), interval=10.0, burst=10, clock=lambda: now[0])
    with caplog.at_level(logging.ERROR, logger="edgewise.test"):
        for i in range(5_000):  # a distinct message every time, over 20 s
            now[0] = i * 20.0 / 5_000
            elog.report("model", ("model", i), f"model error: {i}")
        elog.flush()
    assert len(caplog.records) <= 2 * (10 + 1) + 1


def test_the_status_page_shows_errors_by_kind():
    from edgewise.edge.status import live_stats

    runner = Runner(FaultyApp(pre={0}, model={1}))
    runner.run(ListSource(frames(5)))
    st = live_stats(runner)
    kinds = st["errors_by_kind"]
    assert st["errors"] == 2 and kinds["preprocess"] == 1 and kinds["model"] == 1
    assert st["end_to_end"]["n"] == 3
