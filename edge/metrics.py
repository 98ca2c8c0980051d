"""Prometheus metrics of a running loop, served by the status page at ``/metrics``.

A fleet is watched by the Prometheus it already runs: each device's status server exposes the
text format Prometheus scrapes, built with the maintained ``prometheus_client`` (imported only
when the status page starts; without it ``/metrics`` answers 501 and the page works on).

What a scrape returns, all prefixed ``edgewise_``:

- ``frames_total``, ``frames_ok_total``, ``errors_total{kind}``, ``dropped_frames_total``: read
  from the runner's ``RunStats`` at scrape time, so they are exactly the run's own totals.
- ``events_total{kind}`` and ``drift_events_total``: counted as the runner emits each event
  (the application's and its monitors'); ``drift_monitors`` says whether drift is watched.
- ``stage_latency_seconds{stage}``: a histogram per stage (capture, preprocess, inference,
  postprocess, sink, end_to_end), observed for every good frame. The runner's ring buffers only
  keep recent frames; a histogram observed at frame time loses none between two scrapes.
- ``model_info{name,app,variant,bundle_sha256,version}``: which bundle runs (sha256 of its
  ``bundle.json``, which pins every model file by checksum) and which edgewise runs it.
- ``running``, ``start_time_seconds`` and the process's own CPU and memory (``process_*``).

Every ``RunMetrics`` has its own ``CollectorRegistry``: two servers in one process (tests, a
second loop) never share or leak counters.

>>> metrics = RunMetrics(runner)     # doctest: +SKIP
>>> runner.observers.append(metrics)  # doctest: +SKIP
>>> body, content_type = metrics.exposition()  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .event import Event
from .runstats import ERROR_KINDS, STAGES

__all__ = ["RunMetrics", "ModelInfo", "LATENCY_BUCKETS", "MISSING"]

log = logging.getLogger("edgewise.metrics")
# Seconds: from a sub-millisecond int8 model on a Pi 5 to a multi-second face gallery search.
LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                   1.0, 2.5, 5.0, 10.0)
MISSING = ("metrics need prometheus_client: pip install 'edgewise[metrics]' "
           "(or apt install python3-prometheus-client)")


@dataclass(frozen=True)
class ModelInfo:
    """What runs: the bundle's name, the application running it (``classify``, ``inspect``...),
    the variant, ``bundle.json``'s sha256 and the edgewise version."""

    name: str = ""
    app: str = ""
    variant: str = ""
    bundle_sha256: str = ""
    version: str = ""

    @classmethod
    def of(cls, app: Any) -> ModelInfo:
        """The info of a running application (a ``BundleApp``; anything else gives what it has)."""
        from . import __version__
        from .bundle import BUNDLE_JSON, sha256_file

        bundle = getattr(app, "bundle", None)
        digest = ""
        path = getattr(bundle, "path", None)
        if path is not None and (Path(path) / BUNDLE_JSON).is_file():
            digest = sha256_file(Path(path) / BUNDLE_JSON)
        return cls(
            name=str(getattr(bundle, "name", "") or ""),
            app=str(getattr(app, "name", "") or getattr(bundle, "app", "") or ""),  # the one that runs
            variant=str(getattr(app, "variant", "") or ""),
            bundle_sha256=digest,
            version=__version__,
        )

    def labels(self) -> dict[str, str]:
        return {"name": self.name, "app": self.app, "variant": self.variant,
                "bundle_sha256": self.bundle_sha256, "version": self.version}


class _RunCollector:
    """The run's totals, read from ``runner.stats`` when Prometheus scrapes (no work per frame)."""

    def __init__(self, runner: Any) -> None:
        self.runner = runner

    def describe(self) -> list[Any]:
        return []  # families depend on the run; nothing to check at registration

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        runner = self.runner
        stats = runner.stats
        running = stats is not None and runner.t_start is not None and stats.wall_s == 0.0
        yield GaugeMetricFamily("edgewise_running", "1 while the loop runs, 0 before and after",
                                value=1.0 if running else 0.0)
        yield GaugeMetricFamily("edgewise_drift_monitors", "Input drift monitors watching the loop",
                                value=float(len(getattr(runner, "monitors", ()) or ())))
        frames = CounterMetricFamily("edgewise_frames", "Frames the source delivered to the application")
        ok = CounterMetricFamily("edgewise_frames_ok", "Frames that went through preprocess, model and "
                                 "postprocess")
        dropped = CounterMetricFamily("edgewise_dropped_frames", "Frames the source discarded because the "
                                      "loop was slower (newest frame kept)")
        errors = CounterMetricFamily("edgewise_errors", "Errors by where the frame failed", labels=["kind"])
        if stats is None:
            by_kind: Mapping[str, int] = dict.fromkeys(ERROR_KINDS, 0)
            n, n_ok, n_dropped = 0, 0, 0
        else:
            by_kind = dict(stats.errors_by_kind)
            n, n_ok = stats.frames, stats.frames_ok
            source = getattr(runner, "_source", None)  # live count while a camera thread drops
            n_dropped = int(getattr(source, "dropped", stats.dropped) or 0)
            t0 = runner.t_start
            if t0 is not None:  # monotonic start -> wall clock, for `time() - start_time_seconds`
                start = time.time() - (time.monotonic() - t0)
                yield GaugeMetricFamily("edgewise_start_time_seconds", "When the loop started (Unix time)",
                                        value=round(start, 3))
        frames.add_metric([], n)
        ok.add_metric([], n_ok)
        dropped.add_metric([], n_dropped)
        for kind, count in by_kind.items():
            errors.add_metric([kind], count)
        yield from (frames, ok, dropped, errors)


class RunMetrics:
    """A runner's metrics in a private registry; the runner calls it for every frame and event.

    ``observe_frame`` and ``observe_event`` are the runner's observer hooks (``Runner.observers``);
    ``exposition`` is what ``/metrics`` serves. Raises ``ImportError`` (``MISSING``) without
    ``prometheus_client``.
    """

    def __init__(self, runner: Any, info: ModelInfo | None = None) -> None:
        try:
            from prometheus_client import CollectorRegistry, Counter, Histogram, Info, ProcessCollector
        except ImportError:
            raise ImportError(MISSING) from None
        self.runner = runner
        self.registry = CollectorRegistry()
        self.info = info if info is not None else ModelInfo.of(getattr(runner, "app", None))
        Info("edgewise_model", "The bundle, variant and edgewise version that run",
             registry=self.registry).info(self.info.labels())
        self._latency = Histogram("edgewise_stage_latency_seconds", "Per-frame time of each pipeline stage",
                                  ["stage"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self._stages = {s: self._latency.labels(s) for s in STAGES}  # children resolved once
        self._events = Counter("edgewise_events", "Events emitted, by kind", ["kind"], registry=self.registry)
        self._kinds: dict[str, Any] = {}
        self._drift = Counter("edgewise_drift_events", "Input drift events (the input moved away from the "
                              "bundle's training statistics)", registry=self.registry)
        self.registry.register(_RunCollector(runner))
        ProcessCollector(registry=self.registry)  # CPU seconds, resident memory, open files

    def observe_frame(self, timings: Mapping[str, float]) -> None:
        """One good frame's stage times in seconds (called by the runner's loop thread)."""
        for stage, seconds in timings.items():
            child = self._stages.get(stage)
            if child is None:  # a stage an application added: labelled on first sight
                child = self._stages[stage] = self._latency.labels(stage)
            child.observe(seconds)

    def observe_event(self, event: Event) -> None:
        """One event the runner handed to the sinks (the application's or a monitor's)."""
        child = self._kinds.get(event.kind)
        if child is None:
            child = self._kinds[event.kind] = self._events.labels(event.kind)
        child.inc()
        if event.kind == "drift":
            self._drift.inc()

    def exposition(self) -> tuple[bytes, str]:
        """(body, content type) of the Prometheus text format."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST
