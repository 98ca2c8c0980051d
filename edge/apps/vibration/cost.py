"""Edge cost per window: the app's own per-window work timed on one core, one inference thread.

Both the training report (``edgewise demo``) and ``edgewise bench vibration`` measure it here,
in the edge runtime, so the figure a report quotes is the one the device code costs.

>>> c = edge_cost(load_bundle("vib.bundle"), "tflite_int8", iterations=500)   # doctest: +SKIP
>>> c["p50_ms"], c["realtime_factor_p50"]                                      # doctest: +SKIP
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from ...bundle import Bundle
from ...pipeline import Frame
from .app import VibrationApp
from .features import frame_signal

__all__ = ["edge_cost", "OneCore"]


class OneCore:
    """Pin this process to one CPU for a timing (Linux), restore the old mask afterwards."""

    def __init__(self, cpu: int | None) -> None:
        self.cpu = cpu
        self.old: set[int] | None = None

    def __enter__(self) -> OneCore:
        if self.cpu is not None and hasattr(os, "sched_setaffinity"):
            self.old = os.sched_getaffinity(0)
            os.sched_setaffinity(0, {self.cpu})
        return self

    def __exit__(self, *exc: object) -> None:
        if self.old is not None:
            os.sched_setaffinity(0, self.old)


def _p50(x: list[float]) -> float:
    return float(np.percentile(x, 50))


def edge_cost(
    bundle: Bundle,
    variant: str = "tflite_int8",
    *,
    iterations: int = 2000,
    warmup: int = 100,
    cpu: int | None = 0,
    signal: np.ndarray | None = None,
) -> dict[str, Any]:
    """Time the app's per-window work (preprocess + infer + postprocess) on one core, 1 thread.

    ``signal`` (at the bundle's rate) supplies real windows; otherwise Gaussian noise (the cost
    does not depend on the content). Stage split: features vs model vs scoring/alarm.
    """
    app = VibrationApp(bundle, variant, threads=1)
    n = app.window
    if signal is not None and len(signal) >= n:
        wins = frame_signal(signal, n, max(1, (len(signal) - n) // 64))
    else:
        wins = np.random.default_rng(0).normal(0, 0.1, size=(64, n))
    t_pre, t_inf, t_post, t_all, t_cpu, t_fm = [], [], [], [], [], []
    with OneCore(cpu):
        for i in range(warmup + iterations):
            f = Frame(wins[i % len(wins)], time.monotonic(), i, {"fs": app.fs})
            c0 = time.thread_time()
            t0 = time.perf_counter()
            x = app.preprocess(f)
            t1 = time.perf_counter()
            y = app.infer(x)
            t2 = time.perf_counter()
            c_fm = time.thread_time()
            app.postprocess(f, y)
            t3 = time.perf_counter()
            c1 = time.thread_time()
            if i >= warmup:
                t_pre.append(t1 - t0)
                t_inf.append(t2 - t1)
                t_post.append(t3 - t2)
                t_all.append(t3 - t0)
                t_cpu.append(c1 - c0)
                t_fm.append(c_fm - c0)
    app.close()
    a = np.asarray(t_all) * 1e3
    c = np.asarray(t_cpu) * 1e3
    win_s = n / app.fs
    p50, p99 = float(np.percentile(a, 50)), float(np.percentile(a, 99))
    c50, c99 = float(np.percentile(c, 50)), float(np.percentile(c, 99))
    return {
        "variant": variant,
        "window": n,
        "fs": app.fs,
        "window_seconds": win_s,
        "iterations": iterations,
        "threads": 1,
        "cpu_pinned": cpu,
        "p50_ms": p50,
        "p99_ms": p99,
        "mean_ms": float(a.mean()),
        "cpu_p50_ms": c50,
        "cpu_p99_ms": c99,
        "features_p50_ms": _p50(t_pre) * 1e3,
        "model_p50_ms": _p50(t_inf) * 1e3,
        "score_alarm_event_p50_ms": _p50(t_post) * 1e3,
        # features + model only (the headline "edge cost per window"), thread CPU time
        "features_model_cpu_p50_ms": _p50(t_fm) * 1e3,
        "features_model_cpu_p99_ms": float(np.percentile(t_fm, 99) * 1e3),
        "realtime_factor_features_model_cpu_p50": win_s / _p50(t_fm),
        # wall clock: what a sensor loop sees on this (shared) machine
        "realtime_factor_p50": win_s / (p50 / 1e3),
        "realtime_factor_p99": win_s / (p99 / 1e3),
        # CPU time of the thread: seconds of signal per second of compute
        "realtime_factor_cpu_p50": win_s / (c50 / 1e3),
        "realtime_factor_cpu_p99": win_s / (c99 / 1e3),
    }
