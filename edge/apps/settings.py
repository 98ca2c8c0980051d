"""The flags of ``edgewise run APP`` and the typed settings they are parsed into, once.

The command's edge (an application's ``run_main``) parses its flags and calls
``RunSettings.from_args``: that is the only place the run loop's argparse namespace is read.
Everything below it (sinks, source, status page, stats log, ``run_app``) takes these frozen
dataclasses, so what a service does is decided by values a test can build directly, and a
flag renamed in one parser cannot silently fall back to a default somewhere deeper.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..cliargs import Parser, add_quiet, add_unpack_limit
from ..pipeline import DEFAULT_GIVE_UP_AFTER
from ..runstats import DEFAULT_STATS_WINDOW
from ..signing import add_trusted_key
from ..sources.imageheader import DEFAULT_MAX_PIXELS, limit_opencv

__all__ = [
    "CameraSettings", "SourceSettings", "SinkSettings", "RunSettings",
    "run_parser", "add_run_args", "add_sink_args", "add_picamera_args", "parse_size",
]

CAMERA_FORMATS = ("RGB888", "XRGB8888", "YUV420")
CAMERA_STREAMS = ("main", "lores")


def parse_size(text: str, flag: str) -> tuple[int, int]:
    """``640x480`` -> (640, 480); anything else is a one-line ``ValueError`` naming the flag."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"{flag} '{text}': expected WIDTHxHEIGHT, e.g. 640x480") from None
    if w < 1 or h < 1:
        raise ValueError(f"{flag} '{text}': width and height must be at least 1")
    return w, h


@dataclass(frozen=True)
class CameraSettings:
    """``--source picamera2``: the libcamera streams and which one the model sees."""

    size: tuple[int, int] = (640, 480)
    format: str = "RGB888"
    lores: tuple[int, int] | None = None
    stream: str = "main"
    fps: float = 30.0
    index: int = 0

    @classmethod
    def from_args(cls, a: argparse.Namespace) -> CameraSettings:
        return cls(
            size=parse_size(a.camera_size, "--camera-size"),
            format=a.camera_format,
            lores=parse_size(a.camera_lores, "--camera-lores") if a.camera_lores else None,
            stream=a.camera_stream,
            fps=float(a.camera_fps),
            index=int(a.camera_index),
        )


@dataclass(frozen=True)
class SourceSettings:
    """Where frames come from. ``gray`` is decided by the application (its bundle's input)."""

    source: str
    loop: bool = False
    realtime: bool = False
    latest: bool = False
    camera: CameraSettings = field(default_factory=CameraSettings)
    gray: bool = False
    max_pixels: int = DEFAULT_MAX_PIXELS

    @property
    def live(self) -> bool:
        """A camera or stream: frames keep coming whether or not the loop keeps up."""
        return self.source == "picamera2" or self.source.isdigit() or "://" in self.source

    @classmethod
    def from_args(cls, a: argparse.Namespace) -> SourceSettings:
        max_pixels = int(getattr(a, "max_image_pixels", DEFAULT_MAX_PIXELS))
        if max_pixels < 1:
            raise ValueError(f"--max-image-pixels {max_pixels}: must be at least 1")
        # OpenCV reads its own cap once, when cv2 is first imported: set it here, before any
        # application touches OpenCV (the header check guards the decoder either way).
        limit_opencv(max_pixels)
        return cls(source=a.source, loop=a.loop, realtime=a.realtime, latest=a.latest,
                   camera=CameraSettings.from_args(a), max_pixels=max_pixels)


@dataclass(frozen=True)
class SinkSettings:
    """Where events go: JSON lines (``-`` stdout, None off), SQLite, MQTT; and the status page."""

    jsonl: str | None = "-"
    sqlite: str | None = None
    mqtt_host: str | None = None
    mqtt_port: int = 1883
    mqtt_buffer: str | None = None
    device_id: str | None = None
    status_host: str = "127.0.0.1"
    status_port: int | None = None
    ha_discovery: bool = False

    @classmethod
    def from_args(cls, a: argparse.Namespace) -> SinkSettings:
        host, port = None, 1883
        if a.mqtt:
            from ..mqtt_topics import parse_broker  # standard library only; paho is needed by the sink itself

            host, port = parse_broker(a.mqtt)
        ha = bool(getattr(a, "ha_discovery", False))
        if ha and not a.mqtt:
            raise ValueError("--ha-discovery: needs --mqtt HOST[:PORT] (discovery configs go to the broker)")
        return cls(jsonl=a.jsonl or None, sqlite=a.sqlite or None, mqtt_host=host, mqtt_port=port,
                   mqtt_buffer=a.mqtt_buffer, device_id=a.device_id,
                   status_host=a.status_host, status_port=a.status_port, ha_discovery=ha)


def _check_writable(path: Path, flag: str) -> None:
    """Refuse an output file the run could not write at its end, before the run starts: a long
    run should not end in an error about where to put its results."""
    parent = path.expanduser().parent
    if path.is_dir():
        raise ValueError(f"{flag} {path}: is a folder; give a file name")
    if not parent.is_dir():
        raise ValueError(f"{flag} {path}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise ValueError(f"{flag} {path}: not writable")


@dataclass(frozen=True)
class RunSettings:
    """Everything ``run_app`` needs besides the application itself."""

    source: SourceSettings
    sinks: SinkSettings = field(default_factory=SinkSettings)
    bundle: str | None = None
    variant: str | None = None
    threads: int | None = None
    max_frames: int | None = None
    stats: str | None = None
    stats_window: int = DEFAULT_STATS_WINDOW
    log_every: float = 0.0
    give_up_after: int = DEFAULT_GIVE_UP_AFTER

    @classmethod
    def from_args(cls, a: argparse.Namespace, source: SourceSettings | None = None) -> RunSettings:
        """The namespace of ``run_parser`` (or of a parser with ``add_run_args``; then pass
        ``source``, built from that application's own source flags)."""
        if a.stats_window < 1:
            raise ValueError(f"--stats-window {a.stats_window}: must be at least 1")
        if a.threads is not None and a.threads < 1:
            raise ValueError(f"--threads {a.threads}: must be at least 1")
        if a.give_up_after < 0:
            raise ValueError(f"--give-up-after {a.give_up_after}: must be 0 (never) or more")
        if a.max_frames is not None and a.max_frames < 1:
            raise ValueError(f"--max-frames {a.max_frames}: must be at least 1")
        if a.log_every is not None and a.log_every < 0:
            raise ValueError(f"--log-every {a.log_every:g}: must be 0 (off) or more seconds")
        if a.status_port is not None and not 0 <= a.status_port <= 65535:
            raise ValueError(f"--status-port {a.status_port}: must be 0-65535 (0: any free port)")
        if a.stats:
            _check_writable(Path(a.stats), "--stats")
        return cls(
            source=source if source is not None else SourceSettings.from_args(a),
            sinks=SinkSettings.from_args(a),
            bundle=a.bundle, variant=a.variant, threads=a.threads, max_frames=a.max_frames,
            stats=a.stats or None, stats_window=a.stats_window, log_every=float(a.log_every or 0),
            give_up_after=a.give_up_after,
        )

    def with_gray(self, gray: bool = True) -> RunSettings:
        """The same settings, reading frames as single-channel images (folders, Pi camera)."""
        return dataclasses.replace(self, source=dataclasses.replace(self.source, gray=gray))


# -- the flags ------------------------------------------------------------------------------------


def run_parser(app: str, description: str, example: str) -> argparse.ArgumentParser:
    """The parser of an image application: bundle, camera/video/folder source, run and sink flags."""
    p = Parser(prog=f"edgewise run {app}", description=description, epilog=f"example:\n  {example}")
    add_quiet(p)
    p.add_argument("--bundle", required=True, help="bundle directory or .zip")
    p.add_argument("--source", required=True,
                   help="picamera2 | camera index (0) | rtsp:// URL | video file | image folder")
    p.add_argument("--realtime", action="store_true",
                   help="pace a video file at its frame rate, like a camera")
    p.add_argument("--loop", action="store_true", help="restart a video file or folder at its end")
    p.add_argument("--max-image-pixels", type=int, default=DEFAULT_MAX_PIXELS, metavar="N",
                   help="refuse images and video frames larger than this (read from the header, "
                   "before decoding: decompression bombs are skipped and counted)")
    add_run_args(p)
    add_picamera_args(p)
    return p


def add_run_args(p: argparse.ArgumentParser, *, unit: str = "frame", threads: int | None = None) -> None:
    """Variant, threads, event outputs, stats and sinks: the same flags for every application.

    ``unit`` names one step of the loop (frame, window) in the help texts; ``threads`` is the
    default inference thread count (None: the runtime's, all cores).
    """
    p.add_argument("--variant", help="model variant (default: int8 if present)")
    p.add_argument("--threads", type=int, default=threads,
                   help="inference threads" + ("" if threads else " (default: cores)"))
    p.add_argument("--jsonl", default="-", help="JSON lines events file ('-' = stdout, '' = off)")
    p.add_argument("--sqlite", help="SQLite event log path")
    p.add_argument("--max-frames", type=int, help=f"stop after this many {unit}s")
    p.add_argument("--latest", action="store_true",
                   help=f"capture in a thread and keep only the newest {unit} (cameras and streams: always)")
    p.add_argument("--stats", help="write run statistics (per-stage latency, FPS) as JSON here")
    p.add_argument("--stats-window", type=int, default=DEFAULT_STATS_WINDOW,
                   help=f"latency percentiles over the last N {unit}s (bounded memory as a service)")
    p.add_argument("--give-up-after", type=int, default=DEFAULT_GIVE_UP_AFTER, metavar="N",
                   help=f"exit 1 when the first N {unit}s all fail the same way, e.g. a model that "
                   "does not fit the input (0: never give up)")
    p.add_argument("--log-every", type=float, default=0, metavar="SECONDS",
                   help="log a one-line JSON stats summary this often (for the service journal)")
    add_trusted_key(p)
    add_unpack_limit(p)
    add_sink_args(p)


def add_sink_args(p: argparse.ArgumentParser) -> None:
    """MQTT and status-page flags, shared by every application."""
    g = p.add_argument_group("MQTT and status page")
    g.add_argument("--mqtt", metavar="HOST[:PORT]",
                   help="publish events to this MQTT broker (topic edgewise/<device>/<app>/events, QoS 1)")
    g.add_argument("--device-id", help="device name in the MQTT topic (default: the hostname)")
    g.add_argument("--ha-discovery", action="store_true",
                   help="publish retained Home Assistant MQTT discovery configs (homeassistant/...) so the "
                   "device appears in Home Assistant; available while edgewise/<device>/status is online")
    g.add_argument("--mqtt-buffer", metavar="FILE",
                   help="SQLite outbox for events the broker has not acknowledged "
                   "(default: ~/.local/state/edgewise/mqtt-<device>-<app>.db)")
    g.add_argument("--status-port", type=int,
                   help="serve a status page (stats JSON, live MJPEG preview, Prometheus /metrics) "
                   "on this port")
    g.add_argument("--status-host", default="127.0.0.1",
                   help="address the status page binds to (default 127.0.0.1: this device only)")


def add_picamera_args(p: argparse.ArgumentParser) -> None:
    """Options of ``--source picamera2`` (Raspberry Pi camera via picamera2/libcamera)."""
    g = p.add_argument_group("picamera2 (--source picamera2)")
    g.add_argument("--camera-size", default="640x480", metavar="WxH", help="main stream size")
    g.add_argument("--camera-format", default="RGB888", choices=CAMERA_FORMATS,
                   help="main stream pixel format")
    g.add_argument("--camera-lores", metavar="WxH",
                   help="also configure a low-resolution YUV420 stream of this size")
    g.add_argument("--camera-stream", default="main", choices=CAMERA_STREAMS,
                   help="stream the model sees (lores: cheap inference input, main kept for preview)")
    g.add_argument("--camera-fps", type=float, default=30.0, help="sensor frame rate")
    g.add_argument("--camera-index", type=int, default=0, help="which camera (multi-camera boards)")
