"""Prometheus metrics of the runner: counted as the loop runs, served at /metrics, one registry each."""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request
from typing import Any

import numpy as np
import pytest

from edgewise.edge.event import Event
from edgewise.edge.pipeline import Frame, Runner
from edgewise.edge.status import StatusServer

prometheus_client = pytest.importorskip("prometheus_client", reason="pip install 'edgewise[metrics]'")
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from edgewise.edge.metrics import RunMetrics  # noqa: E402


class ListSource:
    def __init__(self, items: list[Any]) -> None:
        self.items, self.name, self.dropped = items, "list", 0

    def __enter__(self) -> ListSource:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def __iter__(self):
        return iter(self.items)


class EveryThirdFails:
    """Synthetic: a model that raises on every third frame, an event for every other one."""

    name = "classify"

    def preprocess(self, frame: Frame) -> Any:
        return frame.index

    def infer(self, i: int) -> int:
        if i % 3 == 2:
            raise ValueError("synthetic model failure")
        return i

    def postprocess(self, frame: Frame, y: int) -> Event:
        return Event("classify", "prediction", answer=str(y))


class DriftEveryFifth:
    """A monitor that reports drift on every fifth good frame (like ``edge.drift.DriftMonitor``)."""

    def observe(self, frame: Frame, x: Any, app: Any) -> Event | None:
        return Event("classify", "drift", extra={"distance": 1.0}) if frame.index % 5 == 0 else None


def frames(n: int) -> list[Frame]:
    return [Frame(np.zeros(4, np.float32), time.monotonic(), i) for i in range(n)]


def samples(metrics: RunMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    body, _ = metrics.exposition()
    out = {}
    for fam in text_string_to_metric_families(body.decode()):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_a_scrape_returns_the_runs_own_counts_events_by_kind_drift_and_stage_histograms() -> None:
    runner = Runner(EveryThirdFails(), monitors=[DriftEveryFifth()], give_up_after=0)
    metrics = RunMetrics(runner)
    runner.observers.append(metrics)
    stats = runner.run(ListSource(frames(30)))
    got = samples(metrics)

    assert (stats.frames, stats.frames_ok, stats.errors_by_kind["model"]) == (30, 20, 10)
    assert got[("edgewise_frames_total", ())] == 30
    assert got[("edgewise_frames_ok_total", ())] == 20
    assert got[("edgewise_errors_total", (("kind", "model"),))] == 10
    assert got[("edgewise_errors_total", (("kind", "decode"),))] == 0
    drift = sum(1 for i in range(30) if i % 3 != 2 and i % 5 == 0)  # good frames the monitor flags
    assert got[("edgewise_events_total", (("kind", "prediction"),))] == 20
    assert got[("edgewise_events_total", (("kind", "drift"),))] == drift
    assert got[("edgewise_drift_events_total", ())] == drift
    assert stats.events == 20 + drift
    for stage in ("capture", "preprocess", "inference", "postprocess", "sink", "end_to_end"):
        assert got[("edgewise_stage_latency_seconds_count", (("stage", stage),))] == 20
    assert got[("edgewise_stage_latency_seconds_sum", (("stage", "end_to_end"),))] > 0
    assert got[("edgewise_drift_monitors", ())] == 1


def test_each_metrics_object_has_its_own_registry() -> None:
    a, b = Runner(EveryThirdFails()), Runner(EveryThirdFails())
    ma, mb = RunMetrics(a), RunMetrics(b)
    a.observers.append(ma)
    a.run(ListSource(frames(6)))
    assert samples(ma)[("edgewise_frames_total", ())] == 6
    assert samples(mb)[("edgewise_frames_total", ())] == 0
    assert ma.registry is not mb.registry


def test_an_observer_that_raises_is_detached_and_the_loop_goes_on() -> None:
    class Broken:
        def observe_frame(self, timings: Any) -> None:
            raise RuntimeError("synthetic observer failure")

        def observe_event(self, event: Any) -> None:
            pass

    runner = Runner(EveryThirdFails())
    runner.observers.append(Broken())
    stats = runner.run(ListSource(frames(9)))
    assert (stats.frames, stats.frames_ok, stats.errors) == (9, 6, 3)
    assert runner.observers == []


def test_status_server_serves_metrics_with_the_bundle_info() -> None:
    runner = Runner(EveryThirdFails())
    server = StatusServer(runner, port=0).start()
    try:
        runner.run(ListSource(frames(4)))
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5) as r:
            ctype, text = r.headers["Content-Type"], r.read().decode()
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/stats.json", timeout=5) as r:
            live = json.loads(r.read())
    finally:
        server.stop()
    assert ctype.startswith("text/plain") and "version=" in ctype
    assert "edgewise_frames_total 4.0" in text and live["frames"] == 4
    assert 'edgewise_model_info{app="classify"' in text
    assert runner.observers == []  # detached when the server stops


def test_without_prometheus_client_metrics_answer_501_and_the_page_works(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # as if not installed
    runner = Runner(EveryThirdFails())
    server = StatusServer(runner, port=0).start()
    try:
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5)
        assert e.value.code == 501
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/stats.json", timeout=5) as r:
            assert json.loads(r.read())["app"] == "classify"
    finally:
        server.stop()
    assert server.metrics is None
