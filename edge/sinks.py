"""Where events go: JSON lines (stdout or file) and an SQLite event log; what each sink did.

Each sink writes an event as soon as it gets it, so a killed process never takes already
recorded events with it: a JSON line is one ``os.write`` (the kernel has it when ``write``
returns), an SQLite row is committed before ``write`` returns (``synchronous=FULL``: also
across a power cut). Sinks take ``Event``s; a plain mapping is written as it is (raw payloads,
e.g. a test message).

A sink never stops the camera loop: a full disk or another write error fails that one event,
which is counted, and the sink says so once when it starts failing and once when it writes
again, not once per event. ``counts()`` tells what happened to every event it was given
(written, failed, buffered), and the run summary reports it per sink.

>>> with SQLiteSink("events.db") as s: s.write(Event("inspect", "part", answer="FAIL"))  # doctest: +SKIP
>>> s.counts()                                                                            # doctest: +SKIP
SinkCounts(written=1, failed=0, buffered=0)
"""

from __future__ import annotations

import errno
import json
import logging
import os
import sqlite3
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .event import Event
from .jsonenc import dumps

__all__ = [
    "JsonLinesSink", "SQLiteSink", "SinkCounts", "WriteHealth", "to_json", "wire", "repair_jsonl",
    "is_space_error", "sink_counts", "error_text",
]

log = logging.getLogger("edgewise.sinks")

_SPACE_ERRNOS = {errno.ENOSPC, errno.EDQUOT}
_SQLITE_FULL = 13  # sqlite3.SQLITE_FULL, named only from Python 3.11


def wire(event: Event | Mapping[str, Any]) -> dict[str, Any]:
    """The flat wire object of an event (a mapping is taken as already on the wire)."""
    return event.to_dict() if isinstance(event, Event) else dict(event)


def to_json(event: Event | Mapping[str, Any]) -> str:
    """One compact line of JSON."""
    return dumps(wire(event))


@dataclass(frozen=True)
class SinkCounts:
    """What a sink did with the events it was given.

    ``written``: recorded at the destination (a line in the file, a committed row, a message
    the broker acknowledged). ``failed``: not recorded and never will be (disk full, I/O
    error); the loop went on without them. ``buffered``: accepted, waiting to be delivered
    (the MQTT outbox, earlier runs' events included).
    """

    written: int = 0
    failed: int = 0
    buffered: int = 0

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def sink_counts(sinks: Iterable[Any]) -> dict[str, dict[str, int]]:
    """``{sink name: counts}`` for the run summary; a second sink of the same kind gets ``name#2``."""
    out: dict[str, dict[str, int]] = {}
    for sink in sinks:
        counts = getattr(sink, "counts", None)
        if not callable(counts):
            continue
        name = str(getattr(sink, "name", type(sink).__name__))
        key, n = name, 1
        while key in out:
            n += 1
            key = f"{name}#{n}"
        out[key] = counts().to_dict()
    return out


def is_space_error(exc: BaseException) -> bool:
    """A full disk (or quota): the kind of failure that goes away once space is freed."""
    if isinstance(exc, OSError):
        return exc.errno in _SPACE_ERRNOS
    if isinstance(exc, sqlite3.Error):
        return getattr(exc, "sqlite_errorcode", None) == _SQLITE_FULL or "disk is full" in str(exc)
    return False


def error_text(exc: BaseException) -> str:
    """A short reason for a log line: ``No space left on device``, ``database or disk is full``."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


class WriteHealth:
    """ok <-> failing, logged once per change, so a full disk is two log lines, not one per event."""

    def __init__(self, what: str, logger: logging.Logger | None = None) -> None:
        self.what = what
        self.ok = True
        self.streak = 0  # failures since the last success
        self._log = logger or log

    def failed(self, exc: BaseException, consequence: str = "events are counted as failed") -> None:
        self.streak += 1
        if self.ok:
            self.ok = False
            self._log.warning("%s: cannot write (%s); %s until it recovers", self.what, error_text(exc),
                              consequence)

    def recovered(self) -> None:
        if not self.ok:
            self._log.warning("%s: writing again after %d failed attempts", self.what, self.streak)
        self.ok, self.streak = True, 0


def repair_jsonl(path: str | Path) -> int:
    """Make the file end on a whole line; returns the bytes dropped (0: nothing to repair).

    A last line without its newline is either complete JSON (then the newline is added) or
    the torn tail of an interrupted write (then it is cut off, back to the last newline).
    """
    p = Path(path)
    if not p.is_file() or p.stat().st_size == 0:
        return 0
    with open(p, "r+b") as f:
        size = f.seek(0, os.SEEK_END)
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return 0
        pos, chunk = size, 4096
        cut = 0
        while pos > 0:  # find the last newline, reading backwards
            start = max(0, pos - chunk)
            f.seek(start)
            block = f.read(pos - start)
            i = block.rfind(b"\n")
            if i >= 0:
                cut = start + i + 1
                break
            pos = start
        f.seek(cut)
        tail = f.read()
        try:
            whole = isinstance(json.loads(tail), dict)
        except ValueError:
            whole = False
        if whole:
            f.seek(0, os.SEEK_END)
            f.write(b"\n")
            return 0
        f.truncate(cut)
    return size - cut


class JsonLinesSink:
    """One JSON object per line to a file (appended) or to stdout (``-``).

    Each line goes to the file in one ``os.write``; if the disk fills in the middle of it, the
    file is cut back to where the line began, so the last line is never torn. Opening a file
    whose last line was torn by a crash (or an older writer) repairs it first. The file is
    fsynced at most every ``SYNC_EVERY_S`` seconds and on close: a power cut (a Pi pulled from
    its socket) loses at most those last seconds of lines, and an SD card is not synced per line.
    """

    name = "jsonl"
    SYNC_EVERY_S = 2.0

    def __init__(self, path: str | Path = "-") -> None:
        self.path = str(path)
        self.written = self.failed = 0
        self._health = WriteHealth(f"JSON lines {'stdout' if self.path == '-' else self.path}")
        self._fd: int | None = None
        if self.path != "-":
            p = Path(self.path)
            p.parent.mkdir(parents=True, exist_ok=True)
            dropped = repair_jsonl(p)
            if dropped:
                log.warning("JSON lines %s: its last line was torn (%d bytes, an interrupted write); cut off",
                            self.path, dropped)
            self._fd = os.open(p, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        self._synced_at = time.monotonic()

    def _sync(self, force: bool = False) -> None:
        """fsync when ``SYNC_EVERY_S`` has passed (or ``force``); a failure is logged, not raised:
        the lines are written, only their durability across a power cut is in doubt."""
        if self._fd is None or (not force and time.monotonic() - self._synced_at < self.SYNC_EVERY_S):
            return
        self._synced_at = time.monotonic()
        try:
            os.fsync(self._fd)
        except OSError as e:
            log.warning("JSON lines %s: fsync failed: %s", self.path, error_text(e))

    def write(self, event: Event | Mapping[str, Any]) -> bool:
        """Append one line; False (counted, logged on the change) when it could not be written."""
        line = to_json(event) + "\n"
        try:
            if self._fd is None:
                sys.stdout.write(line)
                sys.stdout.flush()
            else:
                self._append(line.encode("utf-8"))
                self._sync()
        except OSError as e:
            self.failed += 1
            self._health.failed(e)
            return False
        self.written += 1
        self._health.recovered()
        return True

    def _append(self, data: bytes) -> None:
        fd = self._fd
        assert fd is not None
        start = os.fstat(fd).st_size
        try:
            view = memoryview(data)
            while view:  # a short write: the disk filled during this line; the next call says why
                n = os.write(fd, view)
                if n <= 0:
                    raise OSError(errno.EIO, "write wrote nothing")
                view = view[n:]
        except OSError:
            try:  # cut the partial line; only what this write added
                if os.fstat(fd).st_size > start:
                    os.ftruncate(fd, start)
            except OSError as e2:
                log.error("JSON lines %s: could not cut a partial line: %s", self.path, error_text(e2))
            raise

    def counts(self) -> SinkCounts:
        return SinkCounts(written=self.written, failed=self.failed)

    def close(self) -> None:
        if self._fd is not None:
            self._sync(force=True)
            os.close(self._fd)
            self._fd = None
        else:
            try:
                sys.stdout.flush()
            except OSError:
                pass

    def __enter__(self) -> JsonLinesSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SQLiteSink:
    """Events in an SQLite table (``events``: id, ts, app, kind, json), committed per event.

    ``id`` is the event's sequence number in this log (never reused). A disk that is full when
    the run starts is not fatal: the sink warns, counts the events it cannot store and creates
    its table as soon as there is space.
    """

    name = "sqlite"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.written = self.failed = 0
        self._health = WriteHealth(f"SQLite event log {self.path}")
        self._lock = threading.Lock()
        self._ready = False
        try:
            self._db = sqlite3.connect(str(self.path), check_same_thread=False)
            self._setup()
        except sqlite3.Error as e:
            if not is_space_error(e):  # a folder, not a database, no permission: refused at start
                raise ValueError(f"SQLite event log {self.path}: {error_text(e)}") from None
            self._health.failed(e, "starting anyway; events are counted as failed")

    def _setup(self) -> None:
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # a committed event survives a power cut too
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY AUTOINCREMENT, "
            "ts REAL NOT NULL, app TEXT, kind TEXT, json TEXT NOT NULL)"
        )
        self._db.commit()
        self._ready = True

    def write(self, event: Event | Mapping[str, Any]) -> bool:
        """Commit one row; False (counted, logged on the change) when it could not be stored."""
        d = wire(event)
        ts = d.get("ts")
        row = (time.time() if ts is None else ts, d.get("app"), d.get("kind"), dumps(d))
        with self._lock:
            try:
                if not self._ready:
                    self._setup()
                self._db.execute("INSERT INTO events (ts, app, kind, json) VALUES (?, ?, ?, ?)", row)
                self._db.commit()
            except sqlite3.Error as e:
                self.failed += 1
                self._health.failed(e)
                try:
                    self._db.rollback()
                except sqlite3.Error:
                    pass
                return False
            self.written += 1
            self._health.recovered()
        return True

    def events(self) -> list[Event]:
        """Every recorded event, oldest first."""
        with self._lock:
            rows = self._db.execute("SELECT json FROM events ORDER BY id").fetchall()
        return [Event.from_dict(json.loads(r[0])) for r in rows]

    def counts(self) -> SinkCounts:
        return SinkCounts(written=self.written, failed=self.failed)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> SQLiteSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
