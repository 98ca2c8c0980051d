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

import sys
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from ..pipeline import Frame

__all__ = ["RecordingSource", "StdinSource", "windowed"]


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
    """Samples from standard input (one number per line, or raw little-endian float32)."""

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

    def __enter__(self) -> StdinSource:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def _samples(self) -> Iterator[np.ndarray]:
        if self.fmt == "f32le":
            f = self.stream or sys.stdin.buffer
            while chunk := f.read(4 * 1024):
                usable = len(chunk) - len(chunk) % 4
                yield np.frombuffer(chunk[:usable], "<f4").astype(np.float64)
            return
        f = self.stream or sys.stdin
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:  # a non-numeric line becomes NaN: the app reports the window and goes on
                v = float(line.split(",")[0])
            except ValueError:
                self.bad_lines += 1
                v = float("nan")
            yield np.array([v])

    def __iter__(self) -> Iterator[Frame]:
        return windowed(self._samples(), self.window, self.hop, self.fs, self.name)


def windowed(
    chunks: Iterator[np.ndarray], window: int, hop: int, fs: float, name: str
) -> Iterator[Frame]:
    """Cut a stream of sample chunks into overlapping windows, stamped when each completes."""
    buf = np.empty(0)
    consumed = 0
    i = 0
    for chunk in chunks:
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
