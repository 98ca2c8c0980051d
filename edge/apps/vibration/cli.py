"""``edgewise run vibration``: stream windows from a recording, stdin or an ADXL345 into the app.

Vibration has its own parser rather than ``common.run_parser``: its sources are signals
(``--fs``, ``--channel``, ``--hop``, ``--stdin-format``), not cameras. The sinks, the status
page, the bounded stats window and the periodic stats log are the shared ones.
"""

from __future__ import annotations

import json

from .app import VibrationApp

__all__ = ["run_main"]


def run_main(argv: list[str]) -> int:
    """``edgewise run vibration``: stream windows from a recording, stdin or an ADXL345."""
    from ...bundle import load_bundle
    from ...cliargs import Parser, add_quiet, fail
    from ...pipeline import LatestFrame, Runner
    from ...sources.sensors import open_vibration_source
    from ..base import add_option_flags, options_from
    from ..common import add_sink_args, make_sinks, print_stats, start_stats_log, start_status

    p = Parser(
        prog="edgewise run vibration",
        description="Score vibration windows with a vibration bundle; alarm with N-of-M debounce "
        "and hysteresis; events as JSON lines and in SQLite.",
        epilog="examples:\n"
        "  edgewise run vibration --bundle vib.bundle --fs 12000 --jsonl ev.jsonl \\\n"
        "      --source $EDGEWISE_DATA/vibration/cwru/12k_DE/IR007_0.mat\n"
        "  edgewise run vibration --bundle vib.bundle --source rec.wav --realtime --sqlite ev.db\n"
        "  cat samples.txt | edgewise run vibration --bundle vib.bundle --source - --fs 12000",
    )
    add_quiet(p)
    p.add_argument("--bundle", required=True, help="vibration bundle directory or .zip")
    p.add_argument(
        "--source", required=True, help="recording (.wav .npy .csv .mat) | '-' (stdin) | adxl345[:BUS[:ADDR]]"
    )
    p.add_argument(
        "--fs",
        type=float,
        help="sampling rate (Hz) of the source; required for .npy/.csv/.mat/stdin "
        "(WAV carries its own). CWRU 12k_DE files: 12000; healthy 97.mat: see docs",
    )
    p.add_argument(
        "--channel",
        default=None,
        help="channel: CWRU key part (DE, FE, BA), CSV column name/index, WAV/npy index",
    )
    p.add_argument("--hop", type=int, help="samples between window starts (default: the window)")
    p.add_argument("--variant", help="model variant (default: int8 if present)")
    p.add_argument("--threads", type=int, default=1, help="inference threads (default 1)")
    p.add_argument("--jsonl", default="-", help="JSON lines events file ('-' = stdout, '' = off)")
    p.add_argument("--sqlite", help="SQLite event log path")
    p.add_argument("--max-frames", type=int, help="stop after this many windows")
    p.add_argument(
        "--realtime",
        action="store_true",
        help="replay a recording at its real pace (else as fast as possible)",
    )
    p.add_argument("--latest", action="store_true", help="capture in a thread, keep the newest window")
    add_option_flags(p, VibrationApp.Options)
    p.add_argument(
        "--stdin-format",
        choices=("text", "f32le"),
        default="text",
        help="stdin: one number per line (text) or raw little-endian float32",
    )
    p.add_argument("--stats", help="write run statistics (per-stage latency) as JSON here")
    p.add_argument("--stats-window", type=int, default=100_000,
                   help="latency percentiles over the last N windows (bounded memory as a service)")
    p.add_argument("--log-every", type=float, default=0, metavar="SECONDS",
                   help="log a one-line JSON stats summary this often (for the service journal)")
    add_sink_args(p)
    a = p.parse_args(argv)
    try:
        bundle = load_bundle(a.bundle)
        app = VibrationApp(bundle, a.variant, a.threads, options=options_from(a, VibrationApp.Options))
        src = open_vibration_source(
            a.source,
            window=app.window,
            hop=a.hop or app.window,
            fs=a.fs,
            channel=a.channel,
            realtime=a.realtime,
            target_fs=app.fs,
            stdin_format=a.stdin_format,
        )
        app.check_rate(src.fs)
        sinks = make_sinks(a, "vibration")
    except (ValueError, OSError, ImportError) as e:
        return fail("edgewise run vibration", e)
    if a.latest:
        src = LatestFrame(src)
    runner = Runner(app, sinks, window=a.stats_window)
    status = start_status(runner, a)
    stats_log = start_stats_log(runner, a.log_every)
    try:
        stats = runner.run(src, max_frames=a.max_frames)
    finally:
        if status is not None:
            status.stop()
        if stats_log is not None:
            stats_log.set()
        app.close()
    summary = stats.summary()
    summary["alarm_active_at_end"] = app.alarm.active
    if a.stats:
        with open(a.stats, "w", encoding="utf-8") as f:
            json.dump(summary, f, indent=2)
    print_stats(summary)
    return 0
