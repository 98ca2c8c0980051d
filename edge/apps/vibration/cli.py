"""``edgewise run vibration``: stream windows from a recording, stdin or an ADXL345 into the app.

Vibration has its own parser rather than ``settings.run_parser``: its sources are signals
(``--fs``, ``--channel``, ``--hop``, ``--stdin-format``), not cameras. The run flags (sinks,
status page, stats window, periodic stats log) and the loop are the shared ones.
"""

from __future__ import annotations

from .app import VibrationApp

__all__ = ["run_main"]


def run_main(argv: list[str]) -> int:
    """``edgewise run vibration``: stream windows from a recording, stdin or an ADXL345."""
    from ...bundle import load_bundle
    from ...cliargs import Parser, add_quiet, fail
    from ...sources.sensors import open_vibration_source
    from ..base import add_option_flags, options_from
    from ..run import run_app
    from ..settings import RunSettings, SourceSettings, add_run_args

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
    p.add_argument(
        "--realtime",
        action="store_true",
        help="replay a recording at its real pace (else as fast as possible)",
    )
    p.add_argument(
        "--stdin-format",
        choices=("text", "f32le"),
        default="text",
        help="stdin: one number per line (text) or raw little-endian float32",
    )
    add_option_flags(p, VibrationApp.Options)
    add_run_args(p, unit="window", threads=1)
    a = p.parse_args(argv)
    try:
        if a.hop is not None and a.hop < 1:
            raise ValueError(f"--hop {a.hop}: must be at least 1 sample")
        if a.fs is not None and not 0 < a.fs < float("inf"):
            raise ValueError(f"--fs {a.fs:g}: must be a positive, finite number of Hz")
        settings = RunSettings.from_args(
            a, source=SourceSettings(a.source, realtime=a.realtime, latest=a.latest)
        )
        bundle = load_bundle(settings.bundle)
        app = VibrationApp(bundle, settings.variant, settings.threads,
                           options=options_from(a, VibrationApp.Options))
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
        return run_app(app, settings, source=src,
                       summary_extra=lambda: {"alarm_active_at_end": app.alarm.active})
    except (ValueError, OSError, ImportError) as e:
        return fail("edgewise run vibration", e)
