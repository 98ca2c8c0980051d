"""``edgewise commission vibration``: listen to the healthy machine, learn, write the file, report.

The learning itself is ``commission.commission`` (no I/O); this module is the command around it:
the flags, the source, how long to listen, and the short report a technician reads on site.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ...spec import BundleError
from .commission import Check, Commissioning, CommissionSettings, WindowStats, commission, commissioning_path
from .features import FeatureConfig, FeatureExtractor

__all__ = ["commission_main", "listen", "report_lines"]


def listen(source: Iterable[Any], fx: FeatureExtractor, seconds: float, hop: int) -> WindowStats:
    """Windows from ``source`` until ``seconds`` of signal have been heard (or it ends)."""
    st = WindowStats(fx)
    for item in source:
        data = getattr(item, "data", None)
        if data is None:  # a FrameError: a failed read, counted by the source's log
            continue
        meta = getattr(item, "meta", {}) or {}
        t = meta.get("t_signal")
        t = float(t) if t is not None else st.n * hop / fx.fs
        if t + fx.window / fx.fs > seconds + 1e-9:
            break
        try:
            st.add(data, t)
        except ValueError:  # NaN samples: that window is left out
            continue
    return st


def report_lines(c: Commissioning | None, checks: list[Check], path: Path | None,
                 beside: bool = True) -> list[str]:
    """The short report: checks, then thresholds before -> after and the false-alarm rates."""
    lines = [f"check {ch.name}: {'ok' if ch.ok else 'FAILED'}: {ch.text}" for ch in checks]
    if c is None:
        return lines
    r = c.report
    lines.append(f"learned from {r['windows']} healthy windows ({c.source.get('seconds', 0):.1f} s of "
                 f"signal), thresholds from {r['held_out_scores']} held-out scores, target false-alarm rate "
                 f"{100 * c.target_far:g} %")
    for v, new in {**c.thresholds["per_variant"], "baseline": c.thresholds["baseline"]}.items():
        old = r["thresholds_training"].get(v)
        fa_before = r["false_alarms_at_training_state"].get(v)
        fa_after = r["false_alarms_held_out"].get(v)
        shown = "n/a" if old is None else f"{old:.4g}"
        lines.append(f"  {v}: threshold {shown} -> {new:.4g}; false alarms on this "
                     f"healthy signal: {'n/a' if fa_before is None else f'{100 * fa_before:.1f} %'} with the "
                     f"training state, {100 * (fa_after or 0):.1f} % held out after")
    if "level_db_vs_training" in r:
        lines.append(f"  level: {r['level_db_vs_training']:+.1f} dB vs the training rig")
    if path is not None:
        how = ("applied by `edgewise run vibration` beside this bundle" if beside
               else f"apply it: `edgewise run vibration --commissioning {path}`")
        lines.append(f"wrote {path} ({how})")
    return lines


def commission_main(argv: list[str]) -> int:
    """``edgewise commission vibration``: listen to the healthy machine, write the commissioning file."""
    from ...bundle import load_bundle
    from ...cliargs import Parser, add_json, add_quiet, emit_json, fail
    from ...progress import log
    from ...sources.sensors import open_vibration_source

    prog = "edgewise commission vibration"
    p = Parser(
        prog=prog,
        description="Learn this machine's healthy state (normalisation, baseline, thresholds, level) from "
        "a few minutes of signal, on the device, without TensorFlow; check the signal is plausible; write "
        "the commissioning file beside the bundle.",
        epilog="examples:\n"
        "  edgewise commission vibration --bundle vib.bundle --source adxl345:1:0x53 --fs 3200 --minutes 5\n"
        "  edgewise commission vibration --bundle vib.bundle --source healthy.wav --minutes 3\n"
        "  cat samples.txt | edgewise commission vibration --bundle vib.bundle --source - --fs 12000",
    )
    add_quiet(p)
    add_json(p, "the commissioning report")
    p.add_argument("--bundle", required=True, help="vibration bundle directory or .zip")
    p.add_argument("--source", required=True,
                   help="healthy signal: recording (.wav .npy .csv .mat) | '-' (stdin) | "
                        "adxl345[:BUS[:ADDR]]")
    p.add_argument("--minutes", type=float, default=5.0, help="minutes of signal to learn from")
    p.add_argument("--fs", type=float, help="sampling rate (Hz) of the source (WAV carries its own)")
    p.add_argument("--channel", default=None, help="channel: CWRU key part (DE, FE), CSV column, WAV index")
    p.add_argument("--hop", type=int, help="samples between window starts (default: an eighth of the window)")
    p.add_argument("--stdin-format", choices=("text", "f32le"), default="text", help="stdin sample format")
    p.add_argument("--target-far", type=float,
                   help="target false-alarm rate per window (default: the bundle's)")
    p.add_argument("--min-windows", type=int, default=100, help="refuse with fewer healthy windows")
    p.add_argument("--no-levels", action="store_true", help="keep the bundle's level channel")
    p.add_argument("--out",
                   help="commissioning file (default: beside the bundle, <bundle>.commissioning.json)")
    p.add_argument("--threads", type=int, default=1, help="inference threads")
    p.add_argument("--force", action="store_true",
                   help="write the file even when a plausibility check fails (recorded in it); never "
                        "with too few windows")
    a = p.parse_args(argv)
    try:
        if a.minutes <= 0:
            raise ValueError(f"--minutes must be positive, got {a.minutes:g}")
        bundle = load_bundle(a.bundle)
        if bundle.spec.app != "vibration":
            raise BundleError(f"{bundle.path}: made for the '{bundle.spec.app}' application, not 'vibration'")
        cfg = bundle.spec.config
        fx = FeatureExtractor(float(cfg["fs"]), int(cfg["window"]),
                              FeatureConfig.from_bundle(cfg["features"]))
        hop = a.hop or max(1, fx.window // 8)
        src = open_vibration_source(a.source, window=fx.window, hop=hop, fs=a.fs, channel=a.channel,
                                    target_fs=fx.fs, stdin_format=a.stdin_format)
        if abs(float(src.fs) - fx.fs) > 1e-6 * fx.fs:
            raise ValueError(f"source sampled at {src.fs:g} Hz but the bundle was trained at {fx.fs:g} Hz")
        log(f"listening to {getattr(src, 'name', a.source)} for up to {a.minutes:g} min of signal ...",
            quiet=a.quiet)
        with src:
            st = listen(src, fx, a.minutes * 60.0, hop)
        seconds = 0.0 if not st.t else st.t[-1] + fx.window / fx.fs
        settings = CommissionSettings(target_far=a.target_far, min_windows=a.min_windows,
                                      learn_levels=not a.no_levels)
        c, checks = commission(bundle, st, settings, threads=a.threads, force=a.force,
                               source={"name": getattr(src, "name", a.source), "hop": hop,
                                       "seconds": round(seconds, 3)})
        path = None
        if c is not None:
            path = c.save(Path(a.out) if a.out else commissioning_path(bundle))
        beside = path is not None and path.resolve() == commissioning_path(bundle).resolve()
        for line in report_lines(c, checks, path, beside):
            log(line, quiet=a.quiet)
        emit_json({"ok": c is not None, "file": None if path is None else str(path),
                   "checks": [ch.to_dict() for ch in checks],
                   **({} if c is None else {"report": c.report, "thresholds": c.thresholds})}, a.json)
        if c is None:
            for ch in checks:
                if not ch.ok:
                    fail(prog, ch.text)
            return 2
        return 0
    except (ValueError, OSError, ImportError) as e:
        return fail(prog, e)
