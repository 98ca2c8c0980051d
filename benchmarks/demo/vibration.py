"""The vibration part of ``edgewise demo``: train -> convert -> edge cost -> the edge loop on a replay.

Real CWRU recordings when ``data`` holds them, SYNTHETIC signals (said so) otherwise. The edge
loop replays the healthy test part followed by a fault recording through ``VibrationApp``, as
``edgewise run vibration`` would, and its alarm is judged against where the fault begins.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from edgewise.edge.event import Event
from edgewise.edge.progress import log
from edgewise.edge.sources.recordings import Recording

__all__ = ["demo", "edge_alarm_figures"]

DEMO_VARIANTS = ["tflite_float32", "tflite_int8", "onnx_float32", "onnx_int8"]


def _recordings(data: Path | None, quiet: bool) -> tuple[list[Recording], dict[str, Any]]:
    """CWRU from ``data`` when it is there, else the SYNTHETIC set (logged as such)."""
    from edgewise.train.data.cwru import load_cwru_dataset
    from edgewise.train.data.synthetic_vibration import DATASET, synthetic_dataset

    if data is not None:
        try:
            return load_cwru_dataset(data, "DE", 48000.0, quiet)
        except ValueError as e:
            log(f"vibration demo: {e}; using SYNTHETIC signals", quiet=quiet)
    log("vibration demo on SYNTHETIC signals (no CWRU data given)", quiet=False)
    return synthetic_dataset(), dict(DATASET)


def demo(out_dir: Path, data: Path | None, quiet: bool) -> dict:
    """Train -> convert -> bench -> run on the edge loop; real CWRU when ``data`` has it."""
    from edgewise.edge.apps.vibration import VibrationApp
    from edgewise.edge.apps.vibration.cost import edge_cost
    from edgewise.edge.bundle import load_bundle
    from edgewise.edge.pipeline import Runner
    from edgewise.edge.sinks import JsonLinesSink, SQLiteSink
    from edgewise.edge.sources.windows import RecordingSource
    from edgewise.train.vibration import VibrationConfig, VibrationTrainer
    from edgewise.train.vibration.data import split_recordings

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    recs, ds = _recordings(data, quiet)
    cfg = VibrationConfig(epochs=120)
    bundle_dir = out_dir / "vibration.bundle"
    m = VibrationTrainer(cfg, dataset=ds, quiet=quiet, variants=DEMO_VARIANTS).fit(recs).export(bundle_dir)
    print((bundle_dir / "report" / "vibration.md").read_text())
    bundle = load_bundle(bundle_dir)
    cost = edge_cost(bundle, "tflite_int8", iterations=500)
    log(
        f"edge cost per window (features + int8 model, 1 thread): p50 {cost['p50_ms']:.3f} ms, "
        f"p99 {cost['p99_ms']:.3f} ms, {cost['realtime_factor_p50']:.0f}x real time",
        quiet=False,
    )
    # the edge loop on a replayed fault recording preceded by healthy test signal
    normal, faults = split_recordings(recs)
    fault = faults[0]
    tail = normal.signal[int(len(normal.signal) * (1 - cfg.split[2])) :]
    sig = np.r_[tail, fault.signal[: len(tail)]]
    app = VibrationApp(bundle, "tflite_int8", threads=1)
    events_path = out_dir / "vibration_events.jsonl"
    sinks = [JsonLinesSink(events_path), SQLiteSink(out_dir / "vibration_events.db")]
    stats = Runner(app, sinks).run(
        RecordingSource(sig, fs=normal.fs, window=app.window, name=f"healthy-test+{fault.name}")
    )
    s = stats.summary()
    log(
        f"edge loop: {s['frames']} windows (healthy test part, then {fault.name}), alarm at end: "
        f"{app.alarm.active}; events -> {events_path}",
        quiet=False,
    )
    events = [Event.from_dict(json.loads(line)) for line in events_path.read_text().splitlines()]
    res = m["results"]
    verdict = {
        "synthetic": m["synthetic"], "targets": m["targets"],
        "int8": {k: res["tflite_int8"][k] for k in ("auroc_min", "recall_min", "far")},
        "baseline": {k: res["baseline"][k] for k in ("auroc_min", "recall_min", "far")},
        "edge": edge_alarm_figures(events, len(tail), app.window, normal.fs),
    }
    return {"synthetic": m["synthetic"], "targets": m["targets"], "edge_cost": cost, "run": s,
            "verdict": verdict}


def edge_alarm_figures(events: list[Event], healthy: int, window: int, fs: float) -> dict[str, Any]:
    """Alarm state of the replayed edge loop: windows wholly in the healthy part that were in alarm,
    and how long after the fault began (end of the first window in alarm) the alarm stood."""
    wins = [e for e in events if e.extra.get("t_signal_s") is not None]  # "window", "alarm_raised", ...
    start = [round(e.extra["t_signal_s"] * fs) for e in wins]
    healthy_w = [e for e, s0 in zip(wins, start, strict=True) if s0 + window <= healthy]
    fault_alarm = [s0 for e, s0 in zip(wins, start, strict=True) if s0 + window > healthy and e.answer]
    return {
        "healthy_windows": len(healthy_w),
        "healthy_in_alarm": sum(bool(e.answer) for e in healthy_w),
        "alarm_on_fault": bool(fault_alarm),
        "seconds_to_alarm": (fault_alarm[0] + window - healthy) / fs if fault_alarm else None,
    }
