"""Where events go: JSON lines (stdout or file) and an SQLite event log.

Each sink writes an event as soon as it gets it (flushed / committed), so a crash or power
loss never takes already recorded events with it. Sinks take ``Event``s; a plain mapping is
written as it is (raw payloads, e.g. a test message).

>>> with SQLiteSink("events.db") as s: s.write(Event("inspect", "part", answer="FAIL"))  # doctest: +SKIP
"""

from __future__ import annotations

import json
import sqlite3
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .event import Event
from .jsonenc import dumps

__all__ = ["JsonLinesSink", "SQLiteSink", "to_json", "wire"]


def wire(event: Event | Mapping[str, Any]) -> dict[str, Any]:
    """The flat wire object of an event (a mapping is taken as already on the wire)."""
    return event.to_dict() if isinstance(event, Event) else dict(event)


def to_json(event: Event | Mapping[str, Any]) -> str:
    """One compact line of JSON."""
    return dumps(wire(event))


class JsonLinesSink:
    """One JSON object per line to a file (appended) or to stdout (``-``)."""

    def __init__(self, path: str | Path = "-") -> None:
        self.path = str(path)
        if self.path == "-":
            self._f = sys.stdout
        else:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._f = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def write(self, event: Event | Mapping[str, Any]) -> None:
        self._f.write(to_json(event) + "\n")
        self._f.flush()

    def close(self) -> None:
        if self._f is not sys.stdout:
            self._f.close()

    def __enter__(self) -> JsonLinesSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SQLiteSink:
    """Events in an SQLite table (``events``: id, ts, app, kind, json), committed per event."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY AUTOINCREMENT, "
            "ts REAL NOT NULL, app TEXT, kind TEXT, json TEXT NOT NULL)"
        )
        self._db.commit()

    def write(self, event: Event | Mapping[str, Any]) -> None:
        d = wire(event)
        ts = d.get("ts")
        with self._lock:
            self._db.execute(
                "INSERT INTO events (ts, app, kind, json) VALUES (?, ?, ?, ?)",
                (time.time() if ts is None else ts, d.get("app"), d.get("kind"), dumps(d)),
            )
            self._db.commit()

    def events(self) -> list[Event]:
        """Every recorded event, oldest first."""
        with self._lock:
            rows = self._db.execute("SELECT json FROM events ORDER BY id").fetchall()
        return [Event.from_dict(json.loads(r[0])) for r in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> SQLiteSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
