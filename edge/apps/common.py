"""What every ``edgewise run APP`` shares: bundle, source, sinks, threads, the stats printout.

An application module builds its ``App`` and calls ``run_app``; the sources, sinks and
runner are the same for all of them, so a camera loop behaves the same whatever it runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..pipeline import LatestFrame, Runner
from ..sinks import JsonLinesSink, SQLiteSink
from ..sources import open_source

__all__ = ["run_parser", "make_sinks", "make_source", "run_app", "print_stats"]


def run_parser(app: str, description: str, example: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=f"edgewise run {app}",
        description=description,
        epilog=f"example:\n  {example}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
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
    p.add_argument("--stats", help="write run statistics (per-stage latency, FPS) as JSON here")
    return p


def make_sinks(a: argparse.Namespace) -> list[Any]:
    sinks: list[Any] = []
    if a.jsonl:
        sinks.append(JsonLinesSink(a.jsonl))
    if a.sqlite:
        sinks.append(SQLiteSink(a.sqlite))
    return sinks


def make_source(a: argparse.Namespace, **kw: Any) -> Any:
    src = open_source(a.source, realtime=a.realtime, **kw)
    live = a.source == "picamera2" or a.source.isdigit() or "://" in a.source
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


def run_app(app: Any, a: argparse.Namespace, **source_kw: Any) -> int:
    runner = Runner(app, make_sinks(a))
    stats = runner.run(make_source(a, **source_kw), max_frames=a.max_frames)
    summary = stats.summary()
    if a.stats:
        with open(a.stats, "w", encoding="utf-8") as f:
            json.dump(summary, f, indent=2)
    print_stats(summary)
    return 0
