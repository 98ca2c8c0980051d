"""What a run counts: frames, events, errors by kind, and a bounded window of stage timings.

A service runs for months, so nothing here grows with the number of frames: the counters are
totals, the per-stage timings live in fixed-size ring buffers (``TimingWindow``) of the last
``window`` frames, whatever application runs and whether or not ``--stats-window`` was given.
The latency percentiles then describe the recent frames; the counts describe the whole run.

>>> s = RunStats(window=3)
>>> for dt in (0.1, 0.2, 0.3, 0.4):
...     s.times["inference"].append(dt)
>>> s.times["inference"].values().tolist(), len(s.times["inference"])
([0.2, 0.3, 0.4], 3)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .evaluate import percentiles

__all__ = ["RunStats", "TimingWindow", "STAGES", "ERROR_KINDS", "FRAME_ERROR_KINDS", "DEFAULT_STATS_WINDOW"]

STAGES = ("capture", "preprocess", "inference", "postprocess", "sink", "end_to_end")
# Where a frame can fail: the source (a read that raised), decoding (a corrupt or oversized
# image), the three application stages, and a sink that could not write the frame's event.
ERROR_KINDS = ("source", "decode", "preprocess", "model", "postprocess", "sink")
# The kinds that mean a frame produced nothing (a sink failure happens after the frame succeeded).
FRAME_ERROR_KINDS = ERROR_KINDS[:-1]
# Timings kept per stage when nobody says otherwise: 8 bytes each, 480 kB for all six stages.
DEFAULT_STATS_WINDOW = 10_000


class TimingWindow:
    """The last ``size`` values (seconds) in a float64 ring buffer: 8 bytes a value, never more.

    The buffer grows by doubling up to ``size`` (a short run does not pay for a long window),
    then overwrites the oldest value. ``values()`` returns them oldest first.
    """

    __slots__ = ("size", "total", "_buf", "_n", "_next")

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"timing window must hold at least 1 value, got {size}")
        self.size = int(size)
        self.total = 0  # values ever appended (the window keeps the last ``size``)
        self._buf = np.empty(min(self.size, 256), np.float64)
        self._n = 0
        self._next = 0

    def append(self, value: float) -> None:
        self.total += 1
        if self._n < self.size:  # still filling: values sit in order at 0 .. n-1
            if self._n == self._buf.size:
                grown = np.empty(min(self.size, 2 * self._buf.size), np.float64)
                grown[: self._n] = self._buf
                self._buf = grown
            self._buf[self._n] = value
            self._n += 1
            self._next = self._n % self.size
            return
        self._buf[self._next] = value
        self._next = (self._next + 1) % self.size

    def values(self) -> np.ndarray:
        """A copy of the kept values, oldest first."""
        if self._n < self.size:
            return self._buf[: self._n].copy()
        return np.concatenate((self._buf[self._next :], self._buf[: self._next]))

    def recent(self, n: int) -> np.ndarray:
        """The newest ``n`` values (fewer when fewer are kept)."""
        return self.values()[-n:] if n > 0 else np.empty(0)

    @property
    def nbytes(self) -> int:
        return int(self._buf.nbytes)

    def __len__(self) -> int:
        return self._n

    def __iter__(self) -> Any:
        return iter(self.values().tolist())

    def __getitem__(self, key: int | slice) -> Any:
        return self.values()[key]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        v = self.values()
        return v if dtype is None else v.astype(dtype)


@dataclass
class RunStats:
    """Counters of one run (totals) and the stage timings of its last ``window`` frames.

    ``frames`` counts the frames the source delivered to the application, ``frames_ok`` those
    that went through preprocess, model and postprocess. Errors are counted by kind
    (``ERROR_KINDS``); ``errors`` is their total. ``gave_up`` says why the runner stopped early
    (every frame at the start failing the same way), None when it did not.
    """

    window: int = DEFAULT_STATS_WINDOW
    frames: int = 0
    frames_ok: int = 0
    events: int = 0
    dropped: int = 0
    wall_s: float = 0.0
    errors_by_kind: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ERROR_KINDS, 0))
    gave_up: str | None = None
    times: dict[str, TimingWindow] = field(init=False)

    def __post_init__(self) -> None:
        self.times = {s: TimingWindow(self.window) for s in STAGES}

    @property
    def errors(self) -> int:
        return sum(self.errors_by_kind.values())

    def count_error(self, kind: str) -> None:
        if kind not in self.errors_by_kind:
            raise ValueError(f"unknown error kind '{kind}' (one of {', '.join(ERROR_KINDS)})")
        self.errors_by_kind[kind] += 1

    def _by_kind(self) -> str:
        return ", ".join(f"{k} {n}" for k, n in self.errors_by_kind.items() if n)

    @property
    def failure(self) -> str | None:
        """Why the run as a whole failed (the process then exits 1), or None.

        It failed when the runner gave up, when frames arrived and none went through, or when
        the source delivered nothing because every read failed.
        """
        if self.gave_up:
            return self.gave_up
        if self.frames > 0 and self.frames_ok == 0:
            return f"all {self.frames} frames failed (errors: {self._by_kind()})"
        if self.frames == 0 and any(self.errors_by_kind[k] for k in FRAME_ERROR_KINDS):
            return f"the source delivered no frame (errors: {self._by_kind()})"
        return None

    def summary(self) -> dict[str, Any]:
        return {
            "frames": self.frames,
            "frames_ok": self.frames_ok,
            "events": self.events,
            "errors": self.errors,
            "errors_by_kind": dict(self.errors_by_kind),
            "dropped": self.dropped,
            "wall_s": round(self.wall_s, 3),
            "fps": round(self.frames / self.wall_s, 2) if self.wall_s > 0 else 0.0,
            "stats_window": self.window,
            **({"gave_up": self.gave_up} if self.gave_up else {}),
            **{s: percentiles(v.values()) for s, v in self.times.items()},
        }
