"""``edgewise bench vibration``: the vibration targets, measured in the edge runtime, in one run.

(Over 450 lines on purpose: recording specs are read in ``vibration_sets``; what remains is
one benchmark's four tables, split only by section.)

- detection on any recordings (``--files`` fault recordings, ``--healthy`` healthy ones, each
  with its own rate and channel, see ``vibration_sets``) or, by default, the bundle's own CWRU
  files: AUROC and recall per fault file, false-alarm rate on the healthy windows, for TFLite
  int8, TFLite float32, ONNX int8 and the Mahalanobis baseline at their bundle thresholds,
  with the device code (features from ``edge.apps.vibration``, models through
  ``edge.backends``, no TensorFlow);
- robustness: the same under gain, noise, DC offset, another resampling filter and +-2 %
  shaft speed (``train.vibration.perturb``), the int8 model and the baseline side by side;
- diagnosis: the failing part named for every fault file (when the bundle has a bearing);
- edge cost per window (features + model + score, the app's own code) on ONE core: p50/p99
  and the real-time factor (seconds of signal per second of compute).

Every result carries the host and thread count. JSON and Markdown out.

>>> # edgewise bench vibration --bundle vib.bundle --healthy 'site/ok*.wav' --files 'site/pump*.wav'
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from edgewise.benchmarks.outputs import write_outputs
from edgewise.edge.apps.vibration import (
    AlarmConfig,
    FeatureConfig,
    FeatureExtractor,
    Mahalanobis,
    frame_signal,
    reconstruction_error,
    robust_z,
)
from edgewise.edge.apps.vibration.cost import edge_cost
from edgewise.edge.apps.vibration.diagnosis import DiagnosisConfig
from edgewise.edge.backends import load_model
from edgewise.edge.bundle import Bundle, load_bundle
from edgewise.edge.cliargs import Parser, add_json, add_quiet, fail
from edgewise.edge.progress import log
from edgewise.train.vibration.data import window_features
from edgewise.train.vibration.diagnosis import diagnosis_markdown, diagnosis_summary, diagnosis_table
from edgewise.train.vibration.evaluate import evaluate_scores
from edgewise.train.vibration.report import robustness_table, sweep_table
from edgewise.train.vibration.robustness import (
    Scorer,
    ScoreSetup,
    baseline_scorer,
    model_scorer,
    robustness,
    robustness_targets,
)

from .host import host_info
from .vibration_sets import BenchSet, bench_set, bundle_set

__all__ = ["detection", "alarm_replay", "bench_main", "bench_markdown", "robustness_rows", "diagnosis_rows"]

DEFAULT_VARIANTS = ("tflite_int8", "tflite_float32", "onnx_int8")


def _setup(bundle: Bundle) -> ScoreSetup:
    """The device's feature extractor and the bundle's centre / spread / cap, hops from training."""
    cfg = bundle.spec.config
    tr = cfg["training"]
    fx = FeatureExtractor(float(cfg["fs"]), int(cfg["window"]), FeatureConfig.from_bundle(cfg["features"]))
    norm = bundle.spec.input.normalization
    return ScoreSetup(fx, np.asarray(norm.mean, np.float32), np.asarray(norm.std, np.float32),
                      int(tr["hop_normal"]), int(tr["hop_fault"]))


def detection(bundle: Bundle, data: BenchSet, variants: list[str], threads: int = 1) -> dict[str, Any]:
    """Per-file AUROC / recall and FAR at the bundle thresholds, per variant and the baseline."""
    spec = bundle.spec
    cfg = spec.config
    setup = _setup(bundle)
    n = setup.fx.window
    cap = setup.fx.cfg.z_cap
    ft, it = window_features(setup.fx, data.healthy_windows(n, setup.hop_normal))
    zt = robust_z(ft, setup.centre, setup.spread, cap)
    fz = {}
    for k, sig in data.faults.items():
        f, ind = window_features(setup.fx, frame_signal(sig, n, setup.hop_fault))
        fz[k] = (robust_z(f, setup.centre, setup.spread, cap), ind)
    th = spec.thresholds
    out: dict[str, Any] = {}
    for v in variants:
        if v not in bundle.variants:
            continue
        m = load_model(bundle, v, threads=threads)

        def score(z: np.ndarray, m: Any = m) -> np.ndarray:
            if len(z) == 0:
                return np.empty(0)
            return reconstruction_error(
                z, np.concatenate([m.predict(z[i : i + 256]) for i in range(0, len(z), 256)])
            )

        t = th.for_variant(v)
        sn, sf = score(zt), {k: score(z) for k, (z, _) in fz.items()}
        out[v] = _evaluate(sn, sf, t)
        out[v]["alarm"] = alarm_replay(sn, sf, t, cfg, n)
        m.close()
    maha = Mahalanobis.from_dict(cfg["baseline"])
    sn, sf = maha.score(it) if len(it) else np.empty(0), {k: maha.score(ind) for k, (_, ind) in fz.items()}
    if th.get("baseline") is None:
        raise ValueError(f"{bundle.path}: bundle.json thresholds lack 'baseline'")
    tb = float(th.get("baseline"))
    out["baseline"] = _evaluate(sn, sf, tb)
    out["baseline"]["alarm"] = alarm_replay(sn, sf, tb, cfg, n)
    return out


def _evaluate(sn: np.ndarray, sf: dict[str, np.ndarray], t: float) -> dict[str, Any]:
    """``evaluate_scores`` when both healthy and fault windows are there; else what can be said."""
    if len(sn) and sf:
        return evaluate_scores(sn, sf, t)
    out: dict[str, Any] = {"threshold": float(t), "normal_windows": int(len(sn))}
    if len(sn):
        out["far"] = float((sn > t).mean())
    if sf:
        out["per_file"] = {k: {"recall": float((v > t).mean()), "windows": int(len(v))}
                           for k, v in sf.items()}
        out["recall_min"] = float(min(v["recall"] for v in out["per_file"].values()))
    return out


def robustness_rows(
    bundle: Bundle, data: BenchSet, variant: str | None, threads: int, quick: bool, quiet: bool = False
) -> list[dict[str, Any]]:
    """The perturbation table on these recordings: ``variant`` (the deployed model) and the
    baseline at their bundle thresholds."""
    setup = _setup(bundle)
    th = bundle.spec.thresholds
    scorers: dict[str, Scorer] = {}
    model = None
    if variant is not None:
        model = load_model(bundle, variant, threads=threads)
        scorers[variant] = model_scorer(model.predict, th.for_variant(variant))
    scorers["baseline"] = baseline_scorer(Mahalanobis.from_dict(bundle.spec.config["baseline"]),
                                          float(th.get("baseline")))
    try:
        return robustness(list(data.healthy.values()), data.faults, setup, scorers, quick=quick, quiet=quiet)
    finally:
        if model is not None:
            model.close()


def diagnosis_rows(bundle: Bundle, data: BenchSet) -> dict[str, Any] | None:
    """The part named for every fault recording (None when the bundle has no bearing)."""
    d = bundle.spec.config.get("diagnosis")
    if not d or not data.faults:
        return None
    cfg = DiagnosisConfig.from_bundle(d)
    fs = float(bundle.spec.config["fs"])
    sig = {k: (x, data.part.get(k) or "unknown", data.shaft_hz.get(k)) for k, x in data.faults.items()}
    rows = diagnosis_table(sig, fs, cfg)
    return {"rows": rows, "summary": diagnosis_summary([r for r in rows if r["truth"] != "unknown"]),
            "config": cfg.to_dict()}


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
    if r.get("data_source"):
        lines += [f"data: {r['data_source']}", ""]
    det = r.get("detection")
    if det:
        order = list(det)

        def cell(d: dict[str, Any], f: str) -> str:
            pf = d["per_file"][f]
            return f"{pf['auroc']:.4f} / {pf['recall']:.3f}" if "auroc" in pf else f"- / {pf['recall']:.3f}"

        lines += [
            "## Detection (edge runtime, healthy windows vs each fault file)",
            "",
            "AUROC / recall at the bundle threshold",
            "",
            "| file | " + " | ".join(order) + " |",
            "|---|" + "---|" * len(order),
        ]
        for f in det[order[0]].get("per_file", {}):
            lines.append(f"| {f} | " + " | ".join(cell(det[k], f) for k in order) + " |")
        if "auroc_min" in det[order[0]]:
            lines.append("| **min AUROC** | " + " | ".join(f"{det[k]['auroc_min']:.4f}" for k in order)
                         + " |")
        if "recall_min" in det[order[0]]:
            lines.append("| **min recall** | " + " | ".join(f"{det[k]['recall_min']:.3f}" for k in order)
                         + " |")
        if "far" in det[order[0]]:
            lines.append("| **FAR** | " + " | ".join(
                f"{det[k]['far']:.3f} ({round(det[k]['far'] * det[k]['normal_windows'])}"
                f"/{det[k]['normal_windows']})" for k in order) + " |")
        lines += ["", "N-of-M alarm on back-to-back windows (the device's debounce and hysteresis):", ""]
        for k in order:
            al = det[k].get("alarm")
            if al:
                lines.append(
                    f"- {k}: {al['healthy_alarms_raised']} alarm(s) on {al['healthy_windows']} healthy "
                    f"windows; {al['fault_files_alarmed']}/{al['fault_files']} fault files alarmed, at most "
                    f"{al['max_seconds_to_alarm']} s of signal after the start ({al['n_of_m'][0]} of "
                    f"{al['n_of_m'][1]})"
                )
        lines.append("")
    if r.get("robustness"):
        lines += ["## Robustness (healthy windows and every fault file under perturbations, at the bundle "
                  "thresholds)",
                  "", "Gain multiplies the signal; noise is white at the SNR of each whole recording; "
                  "DC offset 5x RMS; IIR resampling: up 4x and back down through scipy's Chebyshev "
                  "decimator; speed: every frequency x0.98 / x1.02. Band share: the largest share one "
                  "feature has of a flagged fault window's reconstruction error.", "",
                  *robustness_table(r["robustness"]), ""]
    if r.get("diagnosis"):
        dg = r["diagnosis"]
        lines += ["## Diagnosis (the failing part named from the envelope spectrum; no labels fitted)", "",
                  f"First {dg['config']['seconds']:g} s of each fault recording; speed known = the "
                  "recording's RPM (CWRU .mat or :rpm=), else the bundle's nominal speed; estimated = "
                  f"from the spectrum near the nominal {dg['config']['shaft_hz']:.2f} Hz.", "",
                  *diagnosis_markdown(dg["rows"], dg["summary"]), ""]
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
    if q and "auroc_min" in q:
        t["int8 AUROC >= 0.999 per fault file (min)"] = {
            "value": q["auroc_min"],
            "pass": q["auroc_min"] >= 0.999,
        }
        t["int8 recall >= 0.99 per fault file (min)"] = {
            "value": q["recall_min"],
            "pass": q["recall_min"] >= 0.99,
        }
        t["int8 FAR <= 0.01 on held-out healthy"] = {"value": q["far"], "pass": q["far"] <= 0.01}
    if q and f and "auroc_min" in q:
        d = max(abs(q["per_file"][k]["auroc"] - f["per_file"][k]["auroc"]) for k in q["per_file"])
        t["|int8 - float32| AUROC <= 0.005 (max over files)"] = {"value": d, "pass": d <= 0.005}
    if r.get("robustness"):
        scorers = [k for k in r["robustness"][0]["scorers"] if k != "baseline"]
        if scorers:
            t.update(robustness_targets(r["robustness"], scorers[0]))
    dg = (r.get("diagnosis") or {}).get("summary", {})
    if dg.get("given") and dg.get("files"):
        t[f"diagnosis: right part for >= 80 % of {dg['files']} labelled fault files (speed known)"] = {
            "value": dg["given"]["right"], "pass": dg["given"]["right"] >= 0.8 * dg["files"]}
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
    """Variants to measure: named ones must all run here; by default a variant the bundle lacks or
    whose runtime is missing is skipped with one line (checked before any measuring, so nothing
    measured is lost to it)."""
    from edgewise.edge.backends import runtime_missing

    names = [v for v in (requested or ",".join(DEFAULT_VARIANTS)).split(",") if v]
    keep = []
    for n in names:
        if n not in bundle.variants:
            if requested:
                has = ", ".join(bundle.variants)
                raise ValueError(f"--variants: '{n}' is not in {bundle.path} (has {has})")
            log(f"{n}: skipped, not in {bundle.path}", quiet=False)
            continue
        why = runtime_missing(bundle.variants[n].backend)
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
        description="Detection per fault recording (int8 / float32 / ONNX int8 / baseline) in the edge "
        "runtime, robustness to gain, noise, offset, resampling and speed, the failing part named per fault "
        "recording, and edge cost per window on one core.",
        epilog="examples:\n"
        "  edgewise bench vibration --bundle vib.bundle --data $EDGEWISE_DATA --out bench/\n"
        "  edgewise bench vibration --bundle vib.bundle --healthy 'site/ok_*.wav' \\\n"
        "      --files 'site/pump_*.npy:fs=25600' 'cwru/12k_DE/OR*.mat:fs=12000:ch=DE' --quick",
    )
    p.add_argument("--bundle", required=True, help="vibration bundle directory or .zip")
    p.add_argument("--data", help="datasets folder with the bundle's own CWRU recordings, used when no "
                   "--files/--healthy are given (default $EDGEWISE_DATA)")
    p.add_argument("--files", nargs="+", action="extend", default=[], metavar="SPEC",
                   help="fault (or unknown) recordings: GLOB[:fs=HZ][:ch=NAME][:rpm=RPM][:part=PART]")
    p.add_argument("--healthy", nargs="+", action="extend", default=[], metavar="SPEC",
                   help="healthy recordings, same form; their windows give the false-alarm rates")
    p.add_argument("--fs", type=float, help="sampling rate for specs without fs= (WAV carries its own)")
    p.add_argument("--channel", help="channel for specs without ch= (CWRU DE/FE/BA, CSV column, index)")
    p.add_argument("--variants", help="comma-separated variants; refused if one cannot run here (default: "
                   f"{','.join(DEFAULT_VARIANTS)}, skipping those whose runtime is not installed)")
    p.add_argument("--iterations", type=int, default=2000, help="timed windows per variant")
    p.add_argument("--cpu", type=int, default=0, help="CPU to pin the cost timing to (-1: no pinning)")
    p.add_argument("--threads", type=int, default=1,
                   help="inference threads for the detection figures (edge cost: always 1 thread, 1 core)")
    p.add_argument("--quick", action="store_true",
                   help="the target perturbations only (clean, gain 0.8/1.25, 20 dB) and 300 timed windows")
    add_json(p)
    p.add_argument("--md", help="write the Markdown report here")
    p.add_argument("--out", help="folder for vibration_bench.json and vibration_bench.md")
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
        fs = float(bundle.spec.config["fs"])
        data_dir = a.data or os.environ.get("EDGEWISE_DATA")
        sets = None
        if a.files or a.healthy:
            sets = bench_set(a.files, a.healthy, fs, a.fs, a.channel)
    except (ValueError, ImportError, OSError) as e:
        return fail("edgewise bench vibration", e)
    if sets is None and data_dir:
        try:
            sets = bundle_set(bundle, Path(data_dir))
        except ValueError as e:
            print(f"edgewise bench vibration: detection skipped: {e}", file=sys.stderr)
    r: dict[str, Any] = {
        "host": {**host_info(), "loadavg_at_start": os.getloadavg()},
        "bundle": str(bundle.path),
        "synthetic": bool(bundle.spec.config.get("dataset", {}).get("synthetic")),
        "threads": a.threads,
        "quick": a.quick,
    }
    if sets is not None:
        r["data_source"] = sets.source
        r["recordings"] = {"healthy": {k: round(len(v) / fs, 2) for k, v in sets.healthy.items()},
                           "faults": {k: round(len(v) / fs, 2) for k, v in sets.faults.items()}}
        log(f"detection on {len(sets.healthy)} healthy and {len(sets.faults)} fault recording(s) ...",
            quiet=a.quiet)
        r["detection"] = detection(bundle, sets, variants, threads=a.threads)
        r["detection_threads"] = a.threads
        deployed = "tflite_int8" if "tflite_int8" in variants else (variants[0] if variants else None)
        log("robustness: perturbing every recording ...", quiet=a.quiet)
        r["robustness"] = robustness_rows(bundle, sets, deployed, a.threads, a.quick, a.quiet)
        r["diagnosis"] = diagnosis_rows(bundle, sets)
    else:
        log("no --files/--healthy and no --data / EDGEWISE_DATA: detection figures skipped (cost only)",
            quiet=a.quiet)
    rep = bundle.file("report/metrics.json")
    if rep.is_file():
        r["window_sweep"] = json.loads(rep.read_text()).get("window_sweep")
    cpu = None if a.cpu < 0 else a.cpu
    iterations = min(a.iterations, 300) if a.quick else a.iterations
    r["cost"] = []
    for v in variants:
        log(f"edge cost: {v}, {iterations} windows on cpu {cpu} ...", quiet=a.quiet)
        r["cost"].append(edge_cost(bundle, v, iterations=iterations, cpu=cpu))
    r["loadavg_cost"] = [round(x, 2) for x in os.getloadavg()]
    r["targets"] = _targets(r)
    write_outputs(r, bench_markdown(r), stem="vibration_bench", out=a.out, json_path=a.json, md_path=a.md)
    return 0
