"""Run an application on the shared loop: source, sinks, status page, stats; from typed settings.

Every ``edgewise run APP`` ends in ``run_app(app, settings)``: the sources, sinks and runner
are the same for all applications, so a camera loop behaves the same whatever it runs.
Nothing here sees argparse: ``settings.RunSettings.from_args`` is where the flags stop.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable, Mapping
from typing import Any

from ..cliargs import fail
from ..jsonenc import dumps
from ..pipeline import LatestFrame, Runner
from ..sinks import JsonLinesSink, SQLiteSink, sink_counts
from ..sources import open_source
from .settings import RunSettings, SinkSettings, SourceSettings

__all__ = ["make_sinks", "make_source", "run_app", "print_stats", "start_status", "start_stats_log"]

log = logging.getLogger("edgewise.run")


def make_sinks(s: SinkSettings, app_name: str | None = None) -> list[Any]:
    """The event sinks the settings ask for, in the order JSON lines, SQLite, MQTT.

    A path no sink can use (a folder, no permission, a folder that cannot be made) is refused
    here in one line naming its flag, before the loop starts; the sinks opened before it are
    closed again.
    """
    sinks: list[Any] = []
    try:
        if s.jsonl:
            sinks.append(JsonLinesSink(s.jsonl))
        if s.sqlite:
            sinks.append(SQLiteSink(s.sqlite))
        if s.mqtt_host:
            sinks.append(_mqtt_sink(s, app_name or "app"))
    except BaseException:
        for sink in sinks:
            sink.close()
        raise
    return sinks


def _mqtt_sink(s: SinkSettings, app: str) -> Any:
    """The MQTT sink, its errors as one line (``--mqtt-buffer PATH: is a directory``)."""
    from ..mqtt import MqttSink, OutboxPathError  # paho itself is imported by the sink

    try:
        return MqttSink(
            s.mqtt_host or "", s.mqtt_port, device=s.device_id, app=app,
            buffer_path=s.mqtt_buffer, ha_discovery=s.ha_discovery,
            username=os.environ.get("EDGEWISE_MQTT_USERNAME"),
            password=os.environ.get("EDGEWISE_MQTT_PASSWORD"),
        )
    except ImportError as e:  # paho missing: one line on the command line, not a traceback
        raise ValueError(str(e)) from None
    except OutboxPathError as e:
        if s.mqtt_buffer:
            raise ValueError(f"--mqtt-buffer {s.mqtt_buffer}: {e.reason}") from None
        raise ValueError(f"MQTT outbox {e}; choose another with --mqtt-buffer") from None


def print_sink_counts(counts: Mapping[str, Mapping[str, int]]) -> None:
    """One line on stderr: what every sink did (``sinks: jsonl written=120 failed=3 buffered=0 ...``)."""
    if counts:
        parts = [f"{name} " + " ".join(f"{k}={v}" for k, v in c.items()) for name, c in counts.items()]
        print("sinks: " + "; ".join(parts), file=sys.stderr)


def _source_kw(s: SourceSettings) -> dict[str, Any]:
    """Keyword arguments of ``open_source`` for this kind of source."""
    if s.source == "picamera2":
        c = s.camera
        kw: dict[str, Any] = {"size": c.size, "format": c.format, "lores": c.lores, "stream": c.stream,
                              "fps": c.fps, "camera": c.index}
    else:
        kw = {"loop": True} if s.loop else {}
        kw["max_pixels"] = s.max_pixels  # video frames and folder images: refused over the limit
    if s.gray:  # image folders and the Pi camera read single-channel frames
        kw["gray"] = True
    return kw


def make_source(s: SourceSettings) -> Any:
    """The frame source; a camera or stream (or ``latest``) is read in a thread, newest frame kept."""
    src = open_source(s.source, realtime=s.realtime, **_source_kw(s))
    return LatestFrame(src) if (s.latest or s.live) else src


def print_stats(summary: Mapping[str, Any]) -> None:
    """One line on stderr: counts (errors by kind when there were any), FPS and the p50 of
    every stage that ran."""
    line = (
        f"frames={summary['frames']} events={summary['events']} errors={summary['errors']} "
        f"dropped={summary['dropped']} fps={summary['fps']}"
    )
    kinds = {k: n for k, n in (summary.get("errors_by_kind") or {}).items() if n}
    if kinds:
        line += " (" + " ".join(f"{k}={n}" for k, n in kinds.items()) + ")"
    for stage in ("capture", "preprocess", "inference", "postprocess", "end_to_end"):
        st = summary.get(stage, {})
        if st.get("n"):
            line += f" {stage}_p50={st['p50_ms']:.2f}ms"
    print(line, file=sys.stderr)


def start_status(runner: Runner, s: SinkSettings) -> Any:
    """Start the status page when a port is set; returns the server or None."""
    if s.status_port is None:
        return None
    from ..status import StatusServer

    server = StatusServer(runner, host=s.status_host, port=s.status_port)
    server.start()
    log.info("status page on http://%s:%d/", server.host, server.port)
    return server


def start_stats_log(runner: Runner, every: float) -> threading.Event | None:
    """Log ``live_stats`` as one JSON line every ``every`` seconds until the event is set."""
    if not every or every <= 0:
        return None
    from ..status import live_stats

    done = threading.Event()

    def loop() -> None:
        while not done.wait(every):
            st = live_stats(runner)
            st.pop("last_event", None)
            log.info("stats %s", dumps(st))

    threading.Thread(target=loop, name="stats-log", daemon=True).start()
    return done


def run_app(app: Any, settings: RunSettings, source: Any = None,
            summary_extra: Callable[[], Mapping[str, Any]] | None = None) -> int:
    """Run ``app`` until the source ends (or ``max_frames``), then write and print the stats.

    ``source``: an already open source (vibration's signal sources), else the settings' one.
    ``summary_extra``: figures the application adds to the summary once the loop has ended.
    The app is closed at the end, whatever happened.

    Returns 0, or 1 with one line ``edgewise run APP: error: ...`` when the run failed as a
    whole (``RunStats.failure``): every frame failed, the source delivered nothing because of
    errors, or the first ``give_up_after`` frames all failed the same way. A service manager
    then sees a failed unit instead of one that is "active" and does nothing.
    """
    if not isinstance(settings, RunSettings):  # a namespace here means a flag escaped its parser
        raise TypeError(f"run_app needs RunSettings, got {type(settings).__name__}")
    try:
        if source is None:  # opened before the sinks: a bad source leaves no event files behind
            source = make_source(settings.source)
        elif settings.source.latest or settings.source.live:
            source = LatestFrame(source)
        from ..drift import drift_monitors  # input drift against the bundle's training statistics

        monitors = drift_monitors(app)  # before the sinks: a malformed reference leaves no files
        runner = Runner(app, make_sinks(settings.sinks, getattr(app, "name", None)),
                        window=settings.stats_window, give_up_after=settings.give_up_after,
                        monitors=monitors)
        status = start_status(runner, settings.sinks)
        stats_log = start_stats_log(runner, settings.log_every)
        try:
            stats = runner.run(source, max_frames=settings.max_frames)
        finally:
            if status is not None:
                status.stop()
            if stats_log is not None:
                stats_log.set()
        summary = stats.summary()
        summary["sinks"] = sink_counts(runner.sinks)  # written / failed / buffered per sink
        if summary_extra is not None:
            summary.update(summary_extra())
    finally:
        close = getattr(app, "close", None)
        if callable(close):
            close()
    if settings.stats:
        with open(settings.stats, "w", encoding="utf-8") as f:
            f.write(dumps(summary, indent=2))
    print_stats(summary)
    print_sink_counts(summary["sinks"])
    if stats.failure:
        return fail(f"edgewise run {getattr(app, 'name', 'app')}", stats.failure, code=1)
    return 0
