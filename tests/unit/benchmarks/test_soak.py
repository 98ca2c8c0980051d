"""The soak's sampling and growth arithmetic, on SYNTHETIC frames through the shared runner:
a loop that keeps memory or descriptors per frame is caught, one that does not passes."""

from __future__ import annotations

import mmap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgewise.benchmarks.soak import CycleSource, Sample, count_fds, growth, read_rss_mb, soak_loop
from edgewise.edge.pipeline import Frame


class Frames:
    """A finite SYNTHETIC source of small frames (re-iterable, like a recording replay)."""

    name, dropped = "synthetic", 0

    def __init__(self, n: int) -> None:
        self.n = n

    def __enter__(self) -> Frames:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def __iter__(self) -> Iterator[Frame]:
        for i in range(self.n):
            yield Frame(np.full(16, i, np.float32), time.monotonic(), i, {"source": self.name})


class App:
    """Keeps ``leak_mb`` of touched memory and/or one open file per frame when asked to."""

    name = "synthetic"

    def __init__(self, leak_mb: float = 0.0, leak_fd: Path | None = None) -> None:
        self.leak_mb, self.leak_fd, self.kept = leak_mb, leak_fd, []  # type: list[Any]

    def preprocess(self, frame: Frame) -> Any:
        if self.leak_mb:
            # fresh anonymous pages, written: resident. A numpy array could be served from pages the
            # allocator already holds (glibc raises its mmap threshold after big frees), and then a
            # real leak would not show in RSS inside a large test process
            page = mmap.mmap(-1, int(self.leak_mb * 2**20))
            page.write(b"\x01" * len(page))
            self.kept.append(page)
        if self.leak_fd is not None:
            self.kept.append(open(self.leak_fd / f"{frame.index}.txt", "w"))  # noqa: SIM115
        return frame.data

    def infer(self, x: Any) -> Any:
        return x * 2

    def postprocess(self, frame: Frame, y: Any) -> None:
        return None

    def close(self) -> None:
        for k in self.kept:
            if hasattr(k, "close"):
                k.close()


def test_growth_is_measured_from_the_first_sample_after_warmup_to_the_last() -> None:
    s = [Sample(0, 0, 50.0, 7), Sample(90, 1, 80.0, 7), Sample(100, 2, 100.0, 7), Sample(200, 3, 103.0, 8),
         Sample(300, 4, 102.0, 7)]
    g = growth(s, warmup_frames=95, target_mb=10)
    assert (g.baseline_frames, g.baseline_rss_mb, g.end_rss_mb) == (100, 100.0, 102.0)
    assert (g.growth_mb, g.peak_growth_mb, g.fds_growth) == (2.0, 3.0, 0)
    assert g.slope_mb_per_10k == pytest.approx(np.polyfit([100, 200, 300], [100, 103, 102], 1)[0] * 1e4,
                                               abs=1e-3)
    assert g.ok
    assert not growth(s[:2] + [Sample(100, 2, 100.0, 7), Sample(200, 3, 111.0, 7)], 95, 10).ok
    assert not growth(s[:3] + [Sample(200, 3, 100.0, 9)], 95, 10).ok  # descriptors left open


def test_growth_refuses_too_few_samples_after_warmup() -> None:
    with pytest.raises(ValueError, match="two samples"):
        growth([Sample(0, 0, 1.0, 1), Sample(10, 1, 1.0, 1)], warmup_frames=5)


def test_proc_readers_see_this_process() -> None:
    assert 1 < read_rss_mb() < 1e6
    before = count_fds()
    with open(__file__):
        assert count_fds() == before + 1


def test_a_loop_that_keeps_a_megabyte_per_frame_fails_and_a_clean_loop_passes() -> None:
    src = CycleSource([Frames(7), Frames(5)], "synthetic")  # cycled past their ends
    summary, samples, g, _ = soak_loop(App(leak_mb=1.0), src, [], frames=60, every=5, window=10,
                                       warmup=10, target_mb=10)
    assert summary["frames"] == 60 and summary["errors"] == 0
    assert [s.frames for s in samples][:3] == [0, 5, 10] and samples[-1].frames == 59
    # 49 frames after the baseline keep 1 MiB of fresh pages each: far above the 10 MB target
    assert 40 < g.growth_mb < 60 and not g.ok
    assert g.slope_mb_per_10k == pytest.approx(1e4, rel=0.5)
    _, _, clean, _ = soak_loop(App(), CycleSource([Frames(7)], "synthetic"), [], frames=60, every=5,
                               window=10, warmup=10, target_mb=10)
    assert clean.ok and abs(clean.growth_mb) < 5


def test_a_loop_that_leaves_a_file_open_per_frame_fails(tmp_path: Path) -> None:
    app = App(leak_fd=tmp_path)
    try:
        _, _, g, _ = soak_loop(app, Frames(30), [], frames=30, every=5, window=10, warmup=10, target_mb=10)
    finally:
        app.close()
    assert g.fds_growth == 19 and not g.ok  # frames 10..29 sampled before the file of that frame
