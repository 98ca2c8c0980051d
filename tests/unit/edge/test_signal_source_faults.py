"""Signal sources go on after bad input: binary garbage on stdin, samples split across pipe reads,
an I2C read that fails. SYNTHETIC signals only."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest

from edgewise.edge.pipeline import Frame, FrameError, Runner
from edgewise.edge.sources.adxl345 import ADXL345, ADXL345Source
from edgewise.edge.sources.windows import StdinSource


def test_binary_garbage_and_endless_lines_on_stdin_become_nan_samples_not_an_exception(monkeypatch):
    data = b"0.5\n" * 8 + b"\xff\xfe\x00garbage\n" + b"9" * 100_000 + b"\n" + b"0.25\n" * 8
    # the process's real stdin: a strict UTF-8 text layer over the bytes (it would raise on 0xff)
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))
    src = StdinSource(fs=100, window=8)
    with src:
        frames = list(src)
    assert all(isinstance(f, Frame) for f in frames)
    samples = np.concatenate([f.data for f in frames])
    assert samples[:8].tolist() == [0.5] * 8 and samples[-8:].tolist() == [0.25] * 8
    assert src.bad_lines == 1  # the garbage line; the long line is read in bounded parts (numbers)


class Trickle(io.RawIOBase):
    """A pipe that hands out at most 3 bytes per read: a float32 sample is split across reads."""

    def __init__(self, data: bytes) -> None:
        self.buf = io.BytesIO(data)

    def read(self, n: int = -1) -> bytes:
        return self.buf.read(min(3, n if n > 0 else 3))


def test_f32le_samples_split_across_reads_stay_aligned():
    x = np.arange(32, dtype="<f4")
    src = StdinSource(fs=100, window=8, fmt="f32le", stream=Trickle(x.tobytes()))
    with src:
        got = np.concatenate([f.data for f in src])
    assert got.tolist() == x.astype(np.float64).tolist()


class GlitchingBus:
    """An ADXL345 register stream (SYNTHETIC ramp on z) whose FIFO reads fail at chosen polls."""

    def __init__(self, n_samples: int, batch: int, fail_at: set[int]) -> None:
        self.counts = (np.arange(n_samples) % 2000).astype("<i2")
        self.pos, self.batch, self.poll, self.fail_at = 0, batch, 0, fail_at
        self.pending, self.exhausted = 0, False

    def read_byte_data(self, addr: int, reg: int) -> int:
        if reg == ADXL345.DEVID:
            return 0xE5
        assert reg == ADXL345.FIFO_STATUS
        self.poll += 1
        if self.poll in self.fail_at:
            raise OSError(121, "Remote I/O error")
        self.pending = min(self.batch, len(self.counts) - self.pos)
        self.exhausted = self.pending == 0
        return self.pending

    def write_byte_data(self, addr: int, reg: int, value: int) -> None:
        pass

    def read_i2c_block_data(self, addr: int, reg: int, n: int) -> list[int]:
        z = int(self.counts[self.pos])
        self.pos += 1
        return list(np.array([0, 0, z], "<i2").tobytes())


def test_a_failed_i2c_read_is_counted_and_no_window_spans_the_gap():
    bus = GlitchingBus(n_samples=32 * 20, batch=32, fail_at={5, 12})
    seen: list[np.ndarray] = []

    class Keep:
        name = "keep"

        def preprocess(self, frame: Frame) -> Any:
            seen.append(frame.data)
            return frame.data

        def infer(self, x: Any) -> Any:
            return x

        def postprocess(self, frame: Frame, y: Any) -> None:
            return None

    stats = Runner(Keep()).run(ADXL345Source(window=64, bus=bus, rate=3200, axis="z", poll_s=0))
    assert stats.errors_by_kind["source"] == 2 and stats.frames_ok == len(seen) >= 6
    for w in seen:  # each window is one unbroken run of the ramp
        steps = np.round(np.diff(w) / ADXL345.G_PER_LSB)
        assert (steps == 1).all()


def test_an_i2c_bus_that_stays_dead_ends_the_source_with_one_line():
    bus = GlitchingBus(n_samples=64, batch=32, fail_at=set(range(1, 1000)))
    src = ADXL345Source(window=64, bus=bus, rate=3200, poll_s=0, max_failures=5)
    with src:
        items = []
        with pytest.raises(OSError, match="5 reads failed in a row"):
            for item in src:
                items.append(item)
    assert len(items) == 4 and all(isinstance(i, FrameError) for i in items)
