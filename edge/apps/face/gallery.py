"""The face gallery: enrolled people and their embeddings in one SQLite file.

Only embeddings are stored (float32 blobs), not photos, unless the caller passes the aligned
crops explicitly. Each embedding records the model that made it (``model_tag``: bundle name and
creation time), because embeddings of two networks are not comparable. ``remove`` deletes
every row of a person and vacuums the file, so the person's data is gone from disk, not just
unlinked.

>>> with Gallery("people.db") as g:                          # doctest: +SKIP
...     g.add("alice", embeddings, model="face-embed")
...     names, templates = g.templates(model="face-embed")
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path
from typing import Any

import numpy as np

from .embed import l2n

__all__ = ["Gallery"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS people (
    id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, created TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS embeddings (
    id INTEGER PRIMARY KEY, person_id INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,
    model TEXT NOT NULL, dim INTEGER NOT NULL, vector BLOB NOT NULL, source TEXT);
CREATE TABLE IF NOT EXISTS images (
    id INTEGER PRIMARY KEY, person_id INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,
    png BLOB NOT NULL);
"""


def _create_private(path: Path) -> None:
    """Create the gallery file readable by its owner only (0600): embeddings are biometric data.

    SQLite gives its journal files the database file's permissions, so they stay private too.
    """
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass
    except OSError as e:
        raise ValueError(f"{path}: cannot create the gallery ({e.strerror})") from None


class Gallery:
    """People and embeddings in SQLite; a context manager that closes the connection."""

    def __init__(self, path: str | Path, create: bool = True) -> None:
        self.path = Path(path)
        if not create and not self.path.is_file():
            raise ValueError(f"{self.path}: no such gallery (enroll someone first: edgewise enroll)")
        if create and not self.path.exists():
            _create_private(self.path)
        try:
            self._db = sqlite3.connect(str(self.path))
            self._db.execute("PRAGMA foreign_keys = ON")
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as e:
            raise ValueError(f"{self.path}: not a gallery database ({e})") from None

    def __enter__(self) -> Gallery:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the SQLite connection (the context manager does this)."""
        self._db.close()

    def add(self, name: str, embeddings: np.ndarray, *, model: str, sources: list[str] | None = None,
            images: list[np.ndarray] | None = None) -> int:
        """Add embeddings (n, d) for ``name`` (created if new); returns how many were stored."""
        name = name.strip()
        if not name:
            raise ValueError("person name is empty")
        e = np.asarray(embeddings, dtype=np.float32)
        if e.ndim != 2 or len(e) == 0:
            raise ValueError(f"embeddings must be a non-empty (n, d) array; got shape {e.shape}")
        if not np.isfinite(e).all():
            raise ValueError(f"embeddings for '{name}' contain NaN or infinite values")
        with self._db:
            self._db.execute("INSERT OR IGNORE INTO people(name, created) VALUES (?, ?)",
                             (name, time.strftime("%Y-%m-%dT%H:%M:%S")))
            pid = self._db.execute("SELECT id FROM people WHERE name = ?", (name,)).fetchone()[0]
            srcs = list(sources or [None] * len(e))
            self._db.executemany(
                "INSERT INTO embeddings(person_id, model, dim, vector, source) VALUES (?, ?, ?, ?, ?)",
                [(pid, model, e.shape[1], v.tobytes(), s) for v, s in zip(e, srcs, strict=False)],
            )
            if images:
                import cv2

                rows = [(pid, cv2.imencode(".png", im)[1].tobytes()) for im in images]
                self._db.executemany("INSERT INTO images(person_id, png) VALUES (?, ?)", rows)
        return len(e)

    def people(self) -> list[dict[str, Any]]:
        """Every person with their embedding count and the models that made them (``enroll --list``)."""
        # the LBP vectors a fused bundle stores beside each embedding (model "lbp:...") are not counted
        q = (
            "SELECT p.name, p.created, COUNT(e.id), GROUP_CONCAT(DISTINCT e.model) FROM people p "
            "LEFT JOIN embeddings e ON e.person_id = p.id AND e.model NOT LIKE 'lbp:%' "
            "GROUP BY p.id ORDER BY p.name"
        )
        return [{"name": n, "created": c, "embeddings": k, "model": m or ""}
                for n, c, k, m in self._db.execute(q)]

    def embeddings(self, name: str | None = None, model: str | None = None) -> list[tuple[str, np.ndarray]]:
        """(name, vector) rows in insertion order, optionally of one person and one model only."""
        q = "SELECT p.name, e.vector FROM embeddings e JOIN people p ON p.id = e.person_id WHERE 1=1"
        args: list[Any] = []
        if name is not None:
            q += " AND p.name = ?"
            args.append(name)
        if model is not None:
            q += " AND e.model = ?"
            args.append(model)
        rows = self._db.execute(q + " ORDER BY e.id", args)
        return [(n, np.frombuffer(v, dtype=np.float32)) for n, v in rows]

    def templates(self, model: str | None = None) -> tuple[list[str], np.ndarray]:
        """One L2-normalized mean embedding per person (made by ``model``): names, (k, d)."""
        by: dict[str, list[np.ndarray]] = {}
        for n, v in self.embeddings(model=model):
            by.setdefault(n, []).append(l2n(v))  # each photo counts once, however long its vector
        names = sorted(by)
        if not names:
            return [], np.zeros((0, 0), np.float32)
        return names, l2n(np.stack([np.mean(by[n], axis=0) for n in names]))

    def remove(self, name: str) -> bool:
        """Forget ``name`` completely (embeddings, images, the person row); False if absent."""
        with self._db:
            row = self._db.execute("SELECT id FROM people WHERE name = ?", (name,)).fetchone()
            if row is None:
                return False
            self._db.execute("DELETE FROM images WHERE person_id = ?", row)
            self._db.execute("DELETE FROM embeddings WHERE person_id = ?", row)
            self._db.execute("DELETE FROM people WHERE id = ?", row)
        self._db.execute("VACUUM")  # rewrite the file so deleted pages do not keep the data
        return True
