"""Where events go: JSON lines (stdout or file) and an SQLite event log.

Each sink writes an event as soon as it gets it (flushed / committed), so a crash or power
loss never takes already recorded events with it.

>>> with SQLiteSink("events.db") as s: s.write({"app": "inspect", "decision": "FAIL"})  # doctest: +SKIP
"""

from __future__ import annotations

import json
import sqlite3
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["JsonLinesSink", "SQLiteSink", "to_json"]


def _plain(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def to_json(event: dict[str, Any]) -> str:
    return json.dumps(event, default=_plain, separators=(",", ":"))


class JsonLinesSink:
    """One JSON object per line to a file (appended) or to stdout (``-``)."""

    def __init__(self, path: str | Path = "-") -> None:
        self.path = str(path)
        if self.path == "-":
            self._f = sys.stdout
        else:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._f = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def write(self, event: dict[str, Any]) -> None:
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

    def write(self, event: dict[str, Any]) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO events (ts, app, kind, json) VALUES (?, ?, ?, ?)",
                (event.get("ts", time.time()), event.get("app"), event.get("kind"), to_json(event)),
            )
            self._db.commit()

    def events(self) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute("SELECT json FROM events ORDER BY id").fetchall()
        return [json.loads(r[0]) for r in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> SQLiteSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
