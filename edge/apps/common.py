"""What every ``edgewise run APP`` shares: bundle, source, sinks, threads, the stats printout.

An application module builds its ``App`` and calls ``run_app``; the sources, sinks and
runner are the same for all of them, so a camera loop behaves the same whatever it runs.
Applications with their own parser can still get the shared sink flags (MQTT, status page)
with ``add_sink_args(parser)`` and ``make_sinks(args, app_name)``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
from typing import Any

from ..cliargs import Parser, add_quiet
from ..jsonenc import dumps
from ..pipeline import LatestFrame, Runner
from ..sinks import JsonLinesSink, SQLiteSink
from ..sources import open_source

__all__ = [
    "run_parser", "add_sink_args", "add_picamera_args", "make_sinks", "make_source", "run_app",
    "print_stats", "start_status", "start_stats_log",
]

log = logging.getLogger("edgewise.run")


def run_parser(app: str, description: str, example: str) -> argparse.ArgumentParser:
    p = Parser(prog=f"edgewise run {app}", description=description, epilog=f"example:\n  {example}")
    add_quiet(p)
    p.add_argument("--bundle", required=True, help="bundle directory or .zip")
    p.add_argument("--source", required=True,
                   help="picamera2 | camera index (0) | rtsp:// URL | video file | image folder")
    p.add_argument("--variant", help="model variant (default: int8 if present)")
    p.add_argument("--threads", type=int, default=None, help="inference threads (default: cores)")
    p.add_argument("--jsonl", default="-", help="JSON lines events file ('-' = stdout, '' = off)")
    p.add_argument("--sqlite", help="SQLite event log path")
    p.add_argument("--max-frames", type=int, help="stop after this many frames")
    p.add_argument("--realtime", action="store_true",
                   help="pace a video file at its frame rate, like a camera")
    p.add_argument("--latest", action="store_true",
                   help="capture in a thread and keep only the newest frame (cameras: default)")
    p.add_argument("--loop", action="store_true", help="restart a video file or folder at its end")
    p.add_argument("--stats", help="write run statistics (per-stage latency, FPS) as JSON here")
    p.add_argument("--stats-window", type=int, default=100_000,
                   help="latency percentiles over the last N frames (bounded memory as a service)")
    p.add_argument("--log-every", type=float, default=0, metavar="SECONDS",
                   help="log a one-line JSON stats summary this often (for the service journal)")
    add_sink_args(p)
    add_picamera_args(p)
    return p


def add_sink_args(p: argparse.ArgumentParser) -> None:
    """MQTT and status-page flags, shared by every application."""
    g = p.add_argument_group("MQTT and status page")
    g.add_argument("--mqtt", metavar="HOST[:PORT]",
                   help="publish events to this MQTT broker (topic edgewise/<device>/<app>/events, QoS 1)")
    g.add_argument("--device-id", help="device name in the MQTT topic (default: the hostname)")
    g.add_argument("--mqtt-buffer", metavar="FILE",
                   help="SQLite outbox for events the broker has not acknowledged "
                   "(default: ~/.local/state/edgewise/mqtt-<device>-<app>.db)")
    g.add_argument("--status-port", type=int,
                   help="serve a status page (stats JSON + live MJPEG preview) on this port")
    g.add_argument("--status-host", default="127.0.0.1",
                   help="address the status page binds to (default 127.0.0.1: this device only)")


def add_picamera_args(p: argparse.ArgumentParser) -> None:
    """Options of ``--source picamera2`` (Raspberry Pi camera via picamera2/libcamera)."""
    g = p.add_argument_group("picamera2 (--source picamera2)")
    g.add_argument("--camera-size", default="640x480", metavar="WxH", help="main stream size")
    g.add_argument("--camera-format", default="RGB888", choices=["RGB888", "XRGB8888", "YUV420"],
                   help="main stream pixel format")
    g.add_argument("--camera-lores", metavar="WxH",
                   help="also configure a low-resolution YUV420 stream of this size")
    g.add_argument("--camera-stream", default="main", choices=["main", "lores"],
                   help="stream the model sees (lores: cheap inference input, main kept for preview)")
    g.add_argument("--camera-fps", type=float, default=30.0, help="sensor frame rate")
    g.add_argument("--camera-index", type=int, default=0, help="which camera (multi-camera boards)")


def _size(s: str, flag: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in s.lower().split("x"))
    except ValueError:
        raise ValueError(f"{flag} '{s}': expected WIDTHxHEIGHT, e.g. 640x480") from None
    return w, h


def make_sinks(a: argparse.Namespace, app_name: str | None = None) -> list[Any]:
    sinks: list[Any] = []
    if getattr(a, "jsonl", None):
        sinks.append(JsonLinesSink(a.jsonl))
    if getattr(a, "sqlite", None):
        sinks.append(SQLiteSink(a.sqlite))
    if getattr(a, "mqtt", None):
        from ..mqtt import MqttSink, parse_broker

        host, port = parse_broker(a.mqtt)
        try:
            sinks.append(MqttSink(
                host, port, device=getattr(a, "device_id", None), app=app_name or "app",
                buffer_path=getattr(a, "mqtt_buffer", None),
                username=os.environ.get("EDGEWISE_MQTT_USERNAME"),
                password=os.environ.get("EDGEWISE_MQTT_PASSWORD"),
            ))
        except ImportError as e:  # one line on the command line, not a traceback
            raise ValueError(str(e)) from None
    return sinks


def _picamera_kw(a: argparse.Namespace) -> dict[str, Any]:
    return {
        "size": _size(getattr(a, "camera_size", "640x480"), "--camera-size"),
        "format": getattr(a, "camera_format", "RGB888"),
        "lores": _size(a.camera_lores, "--camera-lores") if getattr(a, "camera_lores", None) else None,
        "stream": getattr(a, "camera_stream", "main"),
        "fps": getattr(a, "camera_fps", 30.0),
        "camera": getattr(a, "camera_index", 0),
    }


def make_source(a: argparse.Namespace, **kw: Any) -> Any:
    live = a.source == "picamera2" or a.source.isdigit() or "://" in a.source
    if a.source == "picamera2":
        kw = {**_picamera_kw(a), **{k: v for k, v in kw.items() if k == "gray"}}
    elif getattr(a, "loop", False):
        kw["loop"] = True
    src = open_source(a.source, realtime=a.realtime, **kw)
    return LatestFrame(src) if (a.latest or live) else src


def print_stats(summary: dict[str, Any]) -> None:
    line = (
        f"frames={summary['frames']} events={summary['events']} errors={summary['errors']} "
        f"dropped={summary['dropped']} fps={summary['fps']}"
    )
    for stage in ("capture", "preprocess", "inference", "postprocess", "end_to_end"):
        s = summary.get(stage, {})
        if s.get("n"):
            line += f" {stage}_p50={s['p50_ms']:.2f}ms"
    print(line, file=sys.stderr)


def start_status(runner: Runner, a: argparse.Namespace) -> Any:
    """Start the status page when ``--status-port`` was given; returns the server or None."""
    port = getattr(a, "status_port", None)
    if port is None:
        return None
    from ..status import StatusServer

    server = StatusServer(runner, host=getattr(a, "status_host", "127.0.0.1"), port=port)
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
            s = live_stats(runner)
            s.pop("last_event", None)
            log.info("stats %s", dumps(s))

    threading.Thread(target=loop, name="stats-log", daemon=True).start()
    return done


def run_app(app: Any, a: argparse.Namespace, **source_kw: Any) -> int:
    runner = Runner(app, make_sinks(a, getattr(app, "name", None)), window=getattr(a, "stats_window", None))
    status = start_status(runner, a)
    stats_log = start_stats_log(runner, getattr(a, "log_every", 0))
    try:
        stats = runner.run(make_source(a, **source_kw), max_frames=a.max_frames)
    finally:
        if status is not None:
            status.stop()
        if stats_log is not None:
            stats_log.set()
    summary = stats.summary()
    if a.stats:
        with open(a.stats, "w", encoding="utf-8") as f:
            f.write(dumps(summary, indent=2))
    print_stats(summary)
    return 0
