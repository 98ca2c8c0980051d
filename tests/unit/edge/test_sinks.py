"""Sinks tell the truth: a full disk fails events (counted, logged once per change) without
stopping the loop or tearing a line, an unusable outbox path is refused at start, and the MQTT
sender lives through errors. Disk full is made real where SQLite allows it (``max_page_count``);
the JSON lines writer's short write is injected at its one ``os.write``. The same faults on a
real full filesystem, with kill -9 and a real broker, are in tests/integration/test_faults.py."""

from __future__ import annotations

import errno
import json
import logging
import os
import socket
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from edgewise.edge.apps.run import make_sinks
from edgewise.edge.apps.settings import SinkSettings
from edgewise.edge.event import Event
from edgewise.edge.sinks import (
    JsonLinesSink,
    SinkCounts,
    SQLiteSink,
    is_space_error,
    repair_jsonl,
    sink_counts,
)


def _event(i: int, pad: int = 0) -> Event:
    return Event("classify", "frame", answer=str(i % 10), score=0.5, extra={"i": i, "pad": "x" * pad})


def _warnings(caplog: pytest.LogCaptureFixture, logger: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == logger and r.levelno >= logging.WARNING]


# -- JSON lines ------------------------------------------------------------------------------------

def test_jsonl_torn_last_line_left_by_a_crash_is_cut_on_open(tmp_path: Path,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    f = tmp_path / "e.jsonl"
    f.write_bytes(b'{"i":0}\n{"i":1}\n{"i":2,"lab')
    with caplog.at_level(logging.WARNING), JsonLinesSink(f) as s:
        assert s.write({"i": 3})
    assert [json.loads(x)["i"] for x in f.read_text().splitlines()] == [0, 1, 3]
    assert any("torn" in m and "11 bytes" in m for m in _warnings(caplog, "edgewise.sinks"))


def test_jsonl_whole_last_line_missing_only_its_newline_is_kept(tmp_path: Path) -> None:
    f = tmp_path / "e.jsonl"
    f.write_bytes(b'{"i":0}\n{"i":1}')
    assert repair_jsonl(f) == 0
    assert f.read_bytes() == b'{"i":0}\n{"i":1}\n'
    f.write_bytes(b'{"i":0')  # torn first line: nothing whole remains
    assert repair_jsonl(f) == 6 and f.read_bytes() == b""


def test_jsonl_disk_full_mid_line_leaves_whole_lines_and_warns_once_per_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    f = tmp_path / "e.jsonl"
    sink = JsonLinesSink(f)
    real_write = os.write
    full = {"on": False}

    def write(fd: int, data: bytes) -> int:
        if fd != sink._fd or not full["on"]:  # noqa: SLF001 - only this sink's file fills up
            return real_write(fd, data)
        if not full["cut"]:  # the kernel takes part of the line, then the disk is full
            full["cut"] = True
            return real_write(fd, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", write)
    with caplog.at_level(logging.WARNING):
        results = [sink.write(_event(i)) for i in range(5)]
        full.update(on=True, cut=False)
        results += [sink.write(_event(i)) for i in range(5, 25)]
        full["on"] = False
        results += [sink.write(_event(i)) for i in range(25, 30)]
    sink.close()
    assert results == [True] * 5 + [False] * 20 + [True] * 5
    lines = f.read_text().splitlines()
    assert f.read_bytes().endswith(b"\n")
    assert [json.loads(x)["i"] for x in lines] == [*range(5), *range(25, 30)]
    assert sink.counts() == SinkCounts(written=10, failed=20, buffered=0)
    msgs = _warnings(caplog, "edgewise.sinks")
    assert len(msgs) == 2, msgs  # ok -> failing, failing -> ok; not one per event
    assert "No space left on device" in msgs[0] and "after 20 failed attempts" in msgs[1]


# -- SQLite ----------------------------------------------------------------------------------------

def test_sqlite_full_database_fails_events_counts_them_and_recovers(tmp_path: Path,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    sink = SQLiteSink(tmp_path / "e.db")
    db = sink._db  # noqa: SLF001 - SQLite's own page limit: a real SQLITE_FULL, no mock
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    db.execute(f"PRAGMA max_page_count={pages + 2}")
    with caplog.at_level(logging.WARNING):
        ok = [sink.write(_event(i, pad=1500)) for i in range(40)]
        assert not all(ok) and ok[0]
        n_before = ok.index(False)
        db.execute("PRAGMA max_page_count=1000000")  # space freed
        assert sink.write(_event(99))
    stored = [e.extra["i"] for e in sink.events()]
    sink.close()
    assert stored == [*range(n_before), 99]
    assert sink.counts() == SinkCounts(written=n_before + 1, failed=40 - n_before)
    msgs = _warnings(caplog, "edgewise.sinks")
    assert len(msgs) == 2 and "full" in msgs[0], msgs


def test_sqlite_events_committed_are_in_the_file_before_write_returns(tmp_path: Path) -> None:
    sink = SQLiteSink(tmp_path / "e.db")
    for i in range(3):
        sink.write(_event(i))
        other = sqlite3.connect(str(tmp_path / "e.db"))  # another process's view: committed rows only
        assert other.execute("SELECT COUNT(*) FROM events").fetchone()[0] == i + 1
        other.close()
    sink.close()


def test_sqlite_log_that_is_a_folder_is_refused_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "x.db").mkdir()
    with pytest.raises(ValueError, match=r"SQLite event log .*x\.db: unable to open database file"):
        SQLiteSink(tmp_path / "x.db")


def test_space_errors_are_told_apart_from_other_failures() -> None:
    assert is_space_error(OSError(errno.ENOSPC, "No space left on device"))
    assert not is_space_error(OSError(errno.EACCES, "Permission denied"))
    assert is_space_error(sqlite3.OperationalError("database or disk is full"))
    assert not is_space_error(sqlite3.OperationalError("file is not a database"))


def test_sink_counts_in_the_summary_name_every_sink(tmp_path: Path) -> None:
    a, b = JsonLinesSink(tmp_path / "a.jsonl"), JsonLinesSink(tmp_path / "b.jsonl")
    c = SQLiteSink(tmp_path / "c.db")
    for s in (a, b, c):
        s.write(_event(0))
    b.write(_event(1))
    out = sink_counts([a, b, c, object()])
    for s in (a, b, c):
        s.close()
    assert out == {"jsonl": {"written": 1, "failed": 0, "buffered": 0},
                   "jsonl#2": {"written": 2, "failed": 0, "buffered": 0},
                   "sqlite": {"written": 1, "failed": 0, "buffered": 0}}


# -- MQTT outbox and sender (no broker: a port nothing listens on) --------------------------------

paho = pytest.importorskip("paho.mqtt.client", reason="paho-mqtt not installed: pip install edgewise[mqtt]")

def test_jsonl_is_fsynced_on_close_and_at_most_every_few_seconds_not_per_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd))
    clock = [100.0]
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    sink = JsonLinesSink(tmp_path / "e.jsonl")
    for _ in range(50):  # a burst within one second: written, not synced line by line
        assert sink.write({"kind": "x"})
    assert synced == []
    clock[0] += JsonLinesSink.SYNC_EVERY_S + 0.1
    sink.write({"kind": "x"})
    assert len(synced) == 1
    sink.close()
    assert len(synced) == 2
    assert len((tmp_path / "e.jsonl").read_text().splitlines()) == 51


from edgewise.edge.mqtt import MqttSink, OutboxPathError, check_outbox_path  # noqa: E402


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again: connections are refused


def _folder(d: Path) -> Path:
    (d / "box").mkdir()
    return d / "box"


def _under_a_file(d: Path) -> Path:
    (d / "f").write_text("x")
    return d / "f" / "sub" / "outbox.db"


def _not_sqlite(d: Path) -> Path:
    (d / "junk.db").write_bytes(b"not sqlite " * 200)
    return d / "junk.db"


@pytest.mark.parametrize("make, reason", [
    (_folder, "is a directory"), (_under_a_file, "is not a folder"), (_not_sqlite, "file is not a database"),
])
def test_unusable_outbox_paths_are_refused_in_one_line(tmp_path: Path, make: Any, reason: str) -> None:
    path = make(tmp_path)
    with pytest.raises(OutboxPathError, match=reason):
        MqttSink("127.0.0.1", _dead_port(), device="t", app="classify", buffer_path=path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere: no permission to take away")
def test_outbox_in_a_folder_without_write_permission_is_refused(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(OutboxPathError, match="not writable"):
            check_outbox_path(ro / "outbox.db")
    finally:
        ro.chmod(0o700)


def test_make_sinks_names_the_mqtt_buffer_flag_and_closes_the_sinks_it_opened(tmp_path: Path) -> None:
    (tmp_path / "box").mkdir()
    s = SinkSettings(jsonl=str(tmp_path / "e.jsonl"), mqtt_host="127.0.0.1", mqtt_port=_dead_port(),
                     mqtt_buffer=str(tmp_path / "box"), device_id="t")
    fds = len(os.listdir("/proc/self/fd"))
    with pytest.raises(ValueError, match=r"^--mqtt-buffer .*box: is a directory$"):
        make_sinks(s, "classify")
    assert len(os.listdir("/proc/self/fd")) == fds  # the JSON lines file was closed again


def test_mqtt_starts_with_the_broker_away_and_says_so_when_it_happens(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="edgewise.mqtt"):
        sink = MqttSink("127.0.0.1", _dead_port(), device="t", app="classify",
                        buffer_path=tmp_path / "o.db", close_timeout=0.2)
        try:
            assert all(sink.write(_event(i)) for i in range(3))
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and not _warnings(caplog, "edgewise.mqtt"):
                time.sleep(0.05)
            during_run = _warnings(caplog, "edgewise.mqtt")
            assert sink.counts() == SinkCounts(written=0, failed=0, buffered=3)
        finally:
            sink.close()
    assert during_run and "unreachable" in during_run[0], during_run  # logged while running, not at exit
    assert sink.pending() == 3


def test_mqtt_outbox_full_fails_events_counts_them_and_takes_events_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sink = MqttSink("127.0.0.1", _dead_port(), device="t", app="classify", buffer_path=tmp_path / "o.db",
                    close_timeout=0.2)
    try:
        with sink._lock:  # noqa: SLF001 - SQLite's own page limit: a real SQLITE_FULL
            pages = sink._db.execute("PRAGMA page_count").fetchone()[0]  # noqa: SLF001
            sink._db.execute(f"PRAGMA max_page_count={pages + 2}")  # noqa: SLF001
        with caplog.at_level(logging.WARNING, logger="edgewise.mqtt"):
            ok = [sink.write(_event(i, pad=1500)) for i in range(30)]
            with sink._lock:  # noqa: SLF001
                sink._db.execute("PRAGMA max_page_count=1000000")  # noqa: SLF001
            assert sink.write(_event(99))
        n = ok.index(False)
        assert not any(ok[n:])
        assert sink.counts() == SinkCounts(written=0, failed=30 - n, buffered=n + 1)
        outbox = [m for m in _warnings(caplog, "edgewise.mqtt") if m.startswith("MQTT outbox")]
        assert len(outbox) == 2 and "full" in outbox[0], outbox
    finally:
        sink.close()


class _Flaky(MqttSink):
    BACKOFF = (0.01, 0.05)
    fail_left = 3

    def _send_step(self) -> bool:
        if self.fail_left:
            self.fail_left -= 1
            raise sqlite3.OperationalError("database or disk is full")
        return super()._send_step()


def test_mqtt_sender_thread_survives_errors_and_retries_with_backoff(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="edgewise.mqtt"):
        sink = _Flaky("127.0.0.1", _dead_port(), device="t", app="classify", buffer_path=tmp_path / "o.db",
                      close_timeout=0.2)
        try:
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and sink.fail_left:
                time.sleep(0.01)
            time.sleep(0.3)
            assert sink._sender.is_alive()  # noqa: SLF001
            assert sink.write(_event(0))
        finally:
            sink.close()
    sender = [m for m in _warnings(caplog, "edgewise.mqtt") if m.startswith("MQTT sender")]
    assert len(sender) == 2 and "after 3 failed attempts" in sender[1], sender
    assert not sink._sender.is_alive()  # noqa: SLF001 - ended by close(), not by the errors


# -- the run summary -------------------------------------------------------------------------------

class _Emit:
    name = "classify"

    def preprocess(self, frame: Any) -> Any:
        return frame.data

    def infer(self, x: Any) -> Any:
        return x

    def postprocess(self, frame: Any, y: Any) -> Event:
        return _event(frame.index)


def test_run_summary_counts_written_failed_and_buffered_per_sink(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture) -> None:
    import cv2
    import numpy as np

    from edgewise.edge.apps.run import run_app
    from edgewise.edge.apps.settings import RunSettings, SourceSettings

    (tmp_path / "imgs").mkdir()
    for i in range(4):
        cv2.imwrite(str(tmp_path / "imgs" / f"{i}.png"), np.full((8, 8, 3), i, np.uint8))
    (tmp_path / "e.jsonl").write_bytes(b'{"i":-1}\n{"i":')  # a torn line from before: repaired, not counted
    s = RunSettings(source=SourceSettings(str(tmp_path / "imgs")),
                    sinks=SinkSettings(jsonl=str(tmp_path / "e.jsonl"), sqlite=str(tmp_path / "e.db")),
                    stats=str(tmp_path / "stats.json"))
    assert run_app(_Emit(), s) == 0
    sinks = json.loads((tmp_path / "stats.json").read_text())["sinks"]
    assert sinks == {"jsonl": {"written": 4, "failed": 0, "buffered": 0},
                     "sqlite": {"written": 4, "failed": 0, "buffered": 0}}
    err = capsys.readouterr().err
    assert "sinks: jsonl written=4 failed=0 buffered=0; sqlite written=4 failed=0 buffered=0" in err
    lines = (tmp_path / "e.jsonl").read_text().splitlines()
    assert [json.loads(x)["i"] for x in lines] == [-1, 0, 1, 2, 3]
