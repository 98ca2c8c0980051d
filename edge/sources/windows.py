"""Samples cut into windows: a recording replayed, or samples piped in on standard input.

Each source yields ``Frame`` objects whose ``data`` is one window of samples (float64) and
whose ``meta`` carries ``fs`` (Hz), ``source`` and ``t_signal`` (seconds into the signal),
so the application can refuse a window sampled at a rate its model was not trained for.
``windowed`` is the one place a stream of sample chunks becomes windows (stdin, the ADXL345).

>>> with RecordingSource(np.zeros(4096), fs=12000, window=2048) as src:
...     [f.data.shape for f in src]
[(2048,), (2048,)]
"""

from __future__ import annotations

import os
import select
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from ..pipeline import Frame, FrameError

__all__ = ["RecordingSource", "StdinSource", "windowed"]

_MAX_LINE = 256  # bytes of one stdin text line (a number needs far fewer)


class RecordingSource:
    """Replays a signal as windows: at real-time pace (like a sensor) or as fast as possible."""

    def __init__(
        self,
        signal: np.ndarray,
        *,
        fs: float,
        window: int,
        hop: int | None = None,
        realtime: bool = False,
        loop: bool = False,
        name: str = "recording",
    ) -> None:
        self.signal = np.asarray(signal, dtype=np.float64).ravel()
        self.fs = float(fs)
        self.window, self.hop = int(window), int(hop or window)
        self.realtime, self.loop = realtime, loop
        self.name = name
        self.dropped = 0

    def __enter__(self) -> RecordingSource:
        if self.signal.size < self.window:
            raise ValueError(
                f"{self.name}: {self.signal.size} samples, shorter than one window of {self.window}"
            )
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def __iter__(self) -> Iterator[Frame]:
        i = 0
        t0 = time.monotonic()
        while True:
            for start in range(0, self.signal.size - self.window + 1, self.hop):
                end = start + self.window
                if self.realtime:  # a sensor delivers the window when its last sample arrives
                    delay = t0 + (i * self.hop + self.window) / self.fs - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                yield Frame(
                    self.signal[start:end].copy(),
                    time.monotonic(),
                    i,
                    {"source": self.name, "fs": self.fs, "t_signal": round(start / self.fs, 6)},
                )
                i += 1
            if not self.loop:
                return


class StdinSource:
    """Samples from standard input (one number per line, or raw little-endian float32).

    The real stdin is read from its file descriptor with ``select`` (a quarter-second poll),
    not through Python's buffered ``sys.stdin``: a silent pipe then never blocks a stop
    (``stop()``, SIGTERM), and a reader thread left waiting on it cannot hold the interpreter's
    stdin lock at exit. Lines are decoded leniently and bounded (``_MAX_LINE`` bytes): binary
    garbage or a line without an end becomes NaN samples, never an exception or a memory leak.
    """

    def __init__(
        self, *, fs: float, window: int, hop: int | None = None, fmt: str = "text", stream: Any = None
    ) -> None:
        if fs is None or fs <= 0:
            raise ValueError("stdin carries no sampling rate; pass it explicitly (--fs HZ)")
        if fmt not in ("text", "f32le"):
            raise ValueError(f"stdin format must be 'text' or 'f32le', got '{fmt}'")
        self.fs, self.window, self.hop, self.fmt = float(fs), int(window), int(hop or window), fmt
        self.stream = stream
        self.name = "stdin"
        self.dropped = 0
        self.bad_lines = 0
        self._stopping = threading.Event()

    def __enter__(self) -> StdinSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()

    def stop(self) -> None:
        """End iteration within a poll interval, even while nothing arrives."""
        self._stopping.set()

    def _chunks(self) -> Iterator[bytes]:
        f = self.stream if self.stream is not None else sys.stdin.buffer
        try:
            fd = f.fileno()
        except (AttributeError, OSError, ValueError):  # an in-memory stream
            fd = None
        if fd is None:
            while not self._stopping.is_set() and (chunk := f.read(4096)):
                yield chunk.encode() if isinstance(chunk, str) else chunk
            return
        while not self._stopping.is_set():
            if not select.select([fd], [], [], 0.25)[0]:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                return
            yield chunk

    def _lines(self) -> Iterator[list[bytes]]:
        """Complete lines per chunk; a line longer than ``_MAX_LINE`` comes in parts of that size."""
        rest = b""
        for chunk in self._chunks():
            *lines, rest = (rest + chunk).split(b"\n")
            keep = len(rest) - len(rest) % _MAX_LINE if len(rest) > _MAX_LINE else 0
            lines.append(rest[:keep])  # a line without an end: its full parts now, the tail waits
            rest = rest[keep:]
            yield [ln[i : i + _MAX_LINE] for ln in lines for i in range(0, max(len(ln), 1), _MAX_LINE)]
        if rest:
            yield [rest]

    def _value(self, line: bytes) -> float | None:
        text = line.decode("utf-8", "replace").strip()
        if not text:
            return None
        try:  # a non-numeric line becomes NaN: the app reports the window and goes on
            return float(text.split(",")[0])
        except ValueError:
            self.bad_lines += 1
            return float("nan")

    def _samples(self) -> Iterator[np.ndarray]:
        if self.fmt == "f32le":
            rest = b""  # a pipe may split a sample across reads: carry its bytes to the next one
            for chunk in self._chunks():
                chunk = rest + chunk
                usable = len(chunk) - len(chunk) % 4
                rest = chunk[usable:]
                yield np.frombuffer(chunk[:usable], "<f4").astype(np.float64)
            return
        for lines in self._lines():
            values = [v for v in map(self._value, lines) if v is not None]
            if values:
                yield np.asarray(values, np.float64)

    def __iter__(self) -> Iterator[Frame | FrameError]:
        return windowed(self._samples(), self.window, self.hop, self.fs, self.name)


def windowed(
    chunks: Iterator[np.ndarray | FrameError], window: int, hop: int, fs: float, name: str
) -> Iterator[Frame | FrameError]:
    """Cut a stream of sample chunks into overlapping windows, stamped when each completes.

    A ``FrameError`` among the chunks (a failed sensor read) is passed on, and the samples
    gathered before it are dropped: a window never spans a gap in the signal.
    """
    buf = np.empty(0)
    consumed = 0
    i = 0
    for chunk in chunks:
        if isinstance(chunk, FrameError):
            consumed += buf.size
            buf = np.empty(0)
            yield chunk
            continue
        buf = np.concatenate([buf, chunk])
        while buf.size >= window:
            yield Frame(
                buf[:window].copy(),
                time.monotonic(),
                i,
                {"source": name, "fs": fs, "t_signal": round(consumed / fs, 6)},
            )
            i += 1
            buf = buf[hop:]
            consumed += hop
