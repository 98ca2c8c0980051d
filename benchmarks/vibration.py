"""``edgewise bench vibration``: the vibration targets, measured in the edge runtime, in one run.

- detection per CWRU fault file (AUROC, recall at the bundle threshold) and the false-alarm
  rate on held-out healthy windows, for TFLite int8, TFLite float32, ONNX int8 and the
  Mahalanobis baseline, re-derived here from the recordings with the device code (features
  from ``edge.apps.vibration``, models through ``edge.backends``, no TensorFlow);
- the int8-vs-float32 AUROC difference;
- detection vs window length (1024..12000), from the training run (it needs retraining per
  length; the bundle's report carries it);
- edge cost per window (features + model + score, the app's own code) on ONE core: p50/p99
  and the real-time factor (seconds of signal per second of compute).

Every result carries the host and thread count. JSON and Markdown out.

>>> # edgewise bench vibration --bundle vib.bundle --data $EDGEWISE_DATA --json bench.json
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from edgewise.edge.apps.vibration import (
    AlarmConfig,
    FeatureConfig,
    FeatureExtractor,
    Mahalanobis,
    frame_signal,
    reconstruction_error,
    split_in_time,
)
from edgewise.edge.apps.vibration.cost import edge_cost
from edgewise.edge.backends import load_model
from edgewise.edge.bundle import Bundle, load_bundle
from edgewise.edge.cliargs import Parser, add_json, add_quiet, emit_json, fail
from edgewise.edge.progress import log
from edgewise.edge.sources.recordings import read_recording, to_rate
from edgewise.train.data.cwru import cwru_dir
from edgewise.train.vibration.data import window_features
from edgewise.train.vibration.evaluate import evaluate_scores
from edgewise.train.vibration.report import sweep_table

from .host import host_info

__all__ = ["detection", "alarm_replay", "bench_main", "bench_markdown"]

DEFAULT_VARIANTS = ("tflite_int8", "tflite_float32", "onnx_int8")


def _cwru_recordings(bundle: Bundle, data: Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The healthy signal and every fault file at the bundle's rate, read with the edge readers
    and the rates the bundle was trained with (config.dataset)."""
    ds = bundle.spec.config.get("dataset", {})
    if ds.get("synthetic"):
        raise ValueError("this bundle was trained on SYNTHETIC data; bench detection needs a CWRU bundle")
    root = cwru_dir(data)
    fs = float(bundle.spec.config["fs"])
    ch = ds.get("channel", "DE")
    normal = read_recording(
        sorted((root / "Normal").glob("*.mat"))[0], fs=float(ds.get("normal_fs", 48000)), channel=ch
    )
    faults = {}
    for name in ds.get("faults", []):
        rec = read_recording(root / "12k_DE" / f"{name}.mat", fs=float(ds.get("fault_fs", 12000)), channel=ch)
        faults[name] = to_rate(rec, fs).signal
    return to_rate(normal, fs).signal, faults


def detection(bundle: Bundle, data: Path, variants: list[str], threads: int = 1) -> dict[str, Any]:
    """Per-file AUROC / recall and FAR at the bundle thresholds, per variant and the baseline."""
    spec = bundle.spec
    cfg = spec.config
    tr = cfg["training"]
    fs, n = float(cfg["fs"]), int(cfg["window"])
    fx = FeatureExtractor(fs, n, FeatureConfig.from_bundle(cfg["features"]))
    normal, faults = _cwru_recordings(bundle, data)
    a, b = split_in_time(len(normal), tuple(tr["split"]))[2]
    test_w = frame_signal(normal[a:b], n, int(tr["hop_normal"]))
    standardize = spec.input.normalization.apply  # the bundle's mean/std, as the device applies them
    zt, it = window_features(fx, test_w)
    zt = standardize(zt)
    fz = {}
    for k, sig in faults.items():
        f, ind = window_features(fx, frame_signal(sig, n, int(tr["hop_fault"])))
        fz[k] = (standardize(f), ind)
    th = spec.thresholds
    out: dict[str, Any] = {}
    for v in variants:
        if v not in bundle.variants:
            continue
        m = load_model(bundle, v, threads=threads)

        def score(z: np.ndarray, m: Any = m) -> np.ndarray:
            return reconstruction_error(
                z, np.concatenate([m.predict(z[i : i + 256]) for i in range(0, len(z), 256)])
            )

        t = th.for_variant(v)
        sn, sf = score(zt), {k: score(z) for k, (z, _) in fz.items()}
        out[v] = evaluate_scores(sn, sf, t)
        out[v]["alarm"] = alarm_replay(sn, sf, t, cfg, n)
        m.close()
    maha = Mahalanobis.from_dict(cfg["baseline"])
    sn, sf = maha.score(it), {k: maha.score(ind) for k, (_, ind) in fz.items()}
    if th.get("baseline") is None:
        raise ValueError(f"{bundle.path}: bundle.json thresholds lack 'baseline'")
    tb = float(th.get("baseline"))
    out["baseline"] = evaluate_scores(sn, sf, tb)
    out["baseline"]["alarm"] = alarm_replay(sn, sf, tb, cfg, n)
    return out


def alarm_replay(
    normal: np.ndarray, faults: dict[str, np.ndarray], threshold: float, cfg: dict[str, Any], window: int
) -> dict[str, Any]:
    """The device's N-of-M alarm on back-to-back (non-overlapping) windows: alarms raised on
    the healthy test part, and seconds of signal until the alarm on each fault file."""
    tr = cfg["training"]
    alarm = AlarmConfig.from_bundle(cfg.get("alarm"))
    win_s = window / float(cfg["fs"])

    def run(scores: np.ndarray, stride: int) -> list[tuple[int, str]]:
        st = alarm.state(threshold)
        return [(i, ch) for i, s in enumerate(scores[:: max(1, stride)]) if (ch := st.update(s))]

    healthy = run(normal, window // int(tr["hop_normal"]))
    first = {}
    for k, s in faults.items():
        ev = run(s, window // int(tr["hop_fault"]))
        first[k] = round((ev[0][0] + 1) * win_s, 3) if ev and ev[0][1] == "raised" else None
    detected = [v for v in first.values() if v is not None]
    return {
        "n_of_m": [alarm.n, alarm.m],
        "healthy_windows": int(len(normal[:: max(1, window // int(tr["hop_normal"]))])),
        "healthy_alarms_raised": sum(1 for _, c in healthy if c == "raised"),
        "fault_files_alarmed": len(detected),
        "fault_files": len(first),
        "max_seconds_to_alarm": max(detected) if detected else None,
        "seconds_to_alarm": first,
    }


def bench_markdown(r: dict[str, Any]) -> str:
    h = r["host"]
    lines = [
        "# Vibration benchmark",
        "",
        f"host: {h['cpu']} ({h['machine']}, {h['cores']} cores, {h['system']}, Python {h['python']}); "
        f"edge cost on 1 core, 1 inference thread; detection with {r.get('detection_threads', 1)} thread(s); "
        f"load average during the cost timing: {r.get('loadavg_cost', h.get('loadavg_at_start'))} "
        f"(shared machine)",
        "",
    ]
    det = r.get("detection")
    if det:
        order = list(det)
        lines += [
            "## Detection (edge runtime, held-out healthy test windows vs each fault file)",
            "",
            "AUROC / recall at the bundle threshold",
            "",
            "| file | " + " | ".join(order) + " |",
            "|---|" + "---|" * len(order),
        ]
        for f in det[order[0]]["per_file"]:
            lines.append(
                f"| {f} | "
                + " | ".join(
                    f"{det[k]['per_file'][f]['auroc']:.4f} / {det[k]['per_file'][f]['recall']:.3f}"
                    for k in order
                )
                + " |"
            )
        lines.append("| **min AUROC** | " + " | ".join(f"{det[k]['auroc_min']:.4f}" for k in order) + " |")
        lines.append("| **min recall** | " + " | ".join(f"{det[k]['recall_min']:.3f}" for k in order) + " |")
        lines.append(
            "| **FAR** | "
            + " | ".join(
                f"{det[k]['far']:.3f} ({round(det[k]['far'] * det[k]['normal_windows'])}"
                f"/{det[k]['normal_windows']})"
                for k in order
            )
            + " |"
        )
        lines += ["", "N-of-M alarm on back-to-back windows (the device's debounce and hysteresis):", ""]
        for k in order:
            al = det[k].get("alarm")
            if al:
                lines.append(
                    f"- {k}: {al['healthy_alarms_raised']} alarm(s) on {al['healthy_windows']} healthy test "
                    f"windows; {al['fault_files_alarmed']}/{al['fault_files']} fault files alarmed, at most "
                    f"{al['max_seconds_to_alarm']} s of signal after the start ({al['n_of_m'][0]} of "
                    f"{al['n_of_m'][1]})"
                )
        lines.append("")
    if r.get("targets"):
        lines += ["## Targets", ""]
        for name, t in r["targets"].items():
            lines.append(f"- {name}: {t['value']:.4g} -> {'PASS' if t['pass'] else 'FAIL'}")
        lines.append("")
    if r.get("window_sweep"):
        title = ("## Detection vs window length (from the training run: Keras float32 AE and baseline, "
                 "retrained per length)")
        lines += [*sweep_table(r["window_sweep"], title), ""]
    lines += [
        "## Edge cost per window (features + model + score/alarm, the app's code, 1 core)",
        "",
        "Wall = elapsed time per window (includes waiting for the CPU on this shared host); "
        "CPU = thread CPU time per window (the compute cost). Real time x = window seconds / time.",
        "",
        "| variant | window | wall p50 ms | wall p99 ms | CPU p50 ms | CPU p99 ms | features p50 | "
        "model p50 | score+alarm p50 | features+model CPU p50 / p99 ms | real time x wall p50 / p99 | "
        "real time x CPU p50 / p99 | real time x features+model CPU p50 |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in r["cost"]:
        lines.append(
            f"| {c['variant']} | {c['window']} ({c['window_seconds'] * 1e3:.0f} ms) | {c['p50_ms']:.3f} | "
            f"{c['p99_ms']:.3f} | {c['cpu_p50_ms']:.3f} | {c['cpu_p99_ms']:.3f} | "
            f"{c['features_p50_ms']:.3f} | {c['model_p50_ms']:.3f} | {c['score_alarm_event_p50_ms']:.3f} | "
            f"{c['features_model_cpu_p50_ms']:.3f} / {c['features_model_cpu_p99_ms']:.3f} | "
            f"{c['realtime_factor_p50']:.0f} / {c['realtime_factor_p99']:.0f} | "
            f"{c['realtime_factor_cpu_p50']:.0f} / {c['realtime_factor_cpu_p99']:.0f} | "
            f"{c['realtime_factor_features_model_cpu_p50']:.0f} |"
        )
    lines.append("")
    return "\n".join(lines)


def _targets(r: dict[str, Any]) -> dict[str, Any]:
    t: dict[str, Any] = {}
    det = r.get("detection") or {}
    q, f = det.get("tflite_int8"), det.get("tflite_float32")
    if q:
        t["int8 AUROC >= 0.999 per fault file (min)"] = {
            "value": q["auroc_min"],
            "pass": q["auroc_min"] >= 0.999,
        }
        t["int8 recall >= 0.99 per fault file (min)"] = {
            "value": q["recall_min"],
            "pass": q["recall_min"] >= 0.99,
        }
        t["int8 FAR <= 0.01 on held-out healthy"] = {"value": q["far"], "pass": q["far"] <= 0.01}
    if q and f:
        d = max(abs(q["per_file"][k]["auroc"] - f["per_file"][k]["auroc"]) for k in q["per_file"])
        t["|int8 - float32| AUROC <= 0.005 (max over files)"] = {"value": d, "pass": d <= 0.005}
    for c in r["cost"]:
        if c["variant"] == "tflite_int8" and c["window"] == 2048 and np.isclose(c["fs"], 12000):
            fm = c["realtime_factor_features_model_cpu_p50"]
            t["real time x >= 1000 (2048 @ 12 kHz, features + model, CPU time p50, 1 core)"] = {
                "value": fm,
                "pass": fm >= 1000,
            }
            t["real time x >= 1000 (2048 @ 12 kHz, whole window incl. score/alarm/event, CPU p50)"] = {
                "value": c["realtime_factor_cpu_p50"],
                "pass": c["realtime_factor_cpu_p50"] >= 1000,
            }
            t["real time x >= 1000 (2048 @ 12 kHz, wall clock p50, 1 core, shared host)"] = {
                "value": c["realtime_factor_p50"],
                "pass": c["realtime_factor_p50"] >= 1000,
            }
    return t


def _runnable_variants(bundle: Any, requested: str | None) -> list[str]:
    """Variants to measure: named ones must all run here; by default missing runtimes are skipped."""
    from edgewise.edge.backends import runtime_missing

    names = [v for v in (requested or ",".join(DEFAULT_VARIANTS)).split(",") if v]
    keep = []
    for n in names:
        if requested and n not in bundle.variants:
            raise ValueError(f"--variants: '{n}' is not in {bundle.path} (has {', '.join(bundle.variants)})")
        why = runtime_missing(bundle.variants[n].backend) if n in bundle.variants else None
        if why and requested:
            raise ImportError(f"{n}: {why}")
        if why:
            log(f"{n}: skipped, {why}", quiet=False)
            continue
        keep.append(n)
    return keep


def bench_main(argv: list[str]) -> int:
    p = Parser(
        prog="edgewise bench vibration",
        description="Detection per fault file (int8 / float32 / ONNX int8 / baseline) in the edge runtime, "
        "detection vs window length, and edge cost per window on one core.",
        epilog="example:\n  edgewise bench vibration --bundle vib.bundle --data $EDGEWISE_DATA "
        "--json bench.json --md bench.md",
    )
    p.add_argument("--bundle", required=True, help="vibration bundle directory or .zip")
    p.add_argument("--data", help="datasets folder for the detection figures (default $EDGEWISE_DATA)")
    p.add_argument("--variants", help="comma-separated variants; refused if one cannot run here (default: "
                   f"{','.join(DEFAULT_VARIANTS)}, skipping those whose runtime is not installed)")
    p.add_argument("--iterations", type=int, default=2000, help="timed windows per variant")
    p.add_argument("--cpu", type=int, default=0, help="CPU to pin the cost timing to (-1: no pinning)")
    p.add_argument("--threads", type=int, default=1,
                   help="inference threads for the detection figures (edge cost: always 1 thread, 1 core)")
    add_json(p)
    p.add_argument("--md", help="write the Markdown table here")
    add_quiet(p)
    a = p.parse_args(argv)
    if a.iterations < 1:
        p.error(f"--iterations {a.iterations}: must be at least 1")
    if a.threads < 1:
        p.error(f"--threads {a.threads}: must be at least 1")
    try:
        bundle = load_bundle(a.bundle)
        if bundle.app != "vibration":
            raise ValueError(f"{a.bundle}: app is '{bundle.app}', not a vibration bundle")
        variants = _runnable_variants(bundle, a.variants)
    except (ValueError, ImportError) as e:
        return fail("edgewise bench vibration", e)
    data = a.data or os.environ.get("EDGEWISE_DATA")
    r: dict[str, Any] = {
        "host": {**host_info(), "loadavg_at_start": os.getloadavg()},
        "bundle": str(bundle.path),
        "synthetic": bool(bundle.spec.config.get("dataset", {}).get("synthetic")),
    }
    if data:
        log("detection: reading recordings and scoring every window in the edge runtime ...")
        try:
            r["detection"] = detection(bundle, Path(data), variants, threads=a.threads)
            r["detection_threads"] = a.threads
        except ValueError as e:
            print(f"edgewise bench vibration: detection skipped: {e}", file=sys.stderr)
    else:
        log("no --data / EDGEWISE_DATA: detection figures skipped (cost only)")
    rep = bundle.file("report/metrics.json")
    if rep.is_file():
        r["window_sweep"] = json.loads(rep.read_text()).get("window_sweep")
    cpu = None if a.cpu < 0 else a.cpu
    r["cost"] = []
    for v in variants:
        if v in bundle.variants:
            log(f"edge cost: {v}, {a.iterations} windows on cpu {cpu} ...")
            r["cost"].append(edge_cost(bundle, v, iterations=a.iterations, cpu=cpu))
    r["loadavg_cost"] = [round(x, 2) for x in os.getloadavg()]
    r["targets"] = _targets(r)
    md = bench_markdown(r)
    if not emit_json(r, a.json):
        print(md)
    if a.md:
        Path(a.md).write_text(md)
    return 0
