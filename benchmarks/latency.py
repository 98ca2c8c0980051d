"""Per-variant model latency: p50/p90/p99, throughput, memory, size and accuracy in one run.

Each (variant, threads) cell loads the model fresh, warms it up, times ``iterations`` single
inferences on a real evaluation sample from the bundle, and scores the bundle's stored
evaluation samples (``eval/``) with the same loaded model, so a speed-up and the accuracy it
costs come from the same run. Memory is the peak resident memory that importing the runtime,
loading the model and running it add to a fresh process: measured in this process it would
read 0 for every variant after the first, since the runtime and allocator keep their pages.
A variant whose runtime is not installed (ONNX Runtime on a bare Pi) is skipped with the
reason, unless it was asked for by name, then it is refused before anything runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgewise.benchmarks.outputs import write_outputs
from edgewise.edge.backends import litert_interpreter, load_model, runtime_missing
from edgewise.edge.bundle import Bundle, load_bundle
from edgewise.edge.evaluate import Decider, percentiles
from edgewise.edge.progress import progress

from .host import host_info

__all__ = ["bench_bundle", "bench_main", "rss_mib", "peak_rss_delta_mib", "evaluate", "latency_markdown"]


def _status_mib(key: str) -> float:
    try:
        with open("/proc/self/status", encoding="utf-8") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def rss_mib() -> float:
    """Resident memory of this process in MiB (Linux)."""
    return _status_mib("VmRSS")


def _import_runtime(backend: str) -> None:
    if backend == "onnxruntime":
        import onnxruntime  # noqa: F401
    else:
        litert_interpreter()


def _peak_child(bundle_dir: str, variant: str, threads: int, runs: int) -> dict[str, float]:
    """In a fresh process: RSS the runtime import adds, then the peak that load + ``runs`` inferences add."""
    b = load_bundle(bundle_dir, verify=False)
    ev = b.meta.get("evaluation") or {}
    x = np.load(b.file(ev["x"]))[:1] if ev.get("x") else None
    base = rss_mib()
    _import_runtime(b.variant(variant).backend)
    imported = rss_mib()
    try:  # reset the peak ("high water mark") so it covers only what follows
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
    except OSError:
        pass
    model = load_model(b, variant, threads=threads)
    x = x if x is not None else _zeros(model)
    for _ in range(runs):
        model.predict(x)
    peak = max(_status_mib("VmHWM"), rss_mib())
    return {"runtime_mib": round(imported - base, 1), "model_peak_mib": round(peak - imported, 1)}


def peak_rss_delta_mib(bundle: Bundle, variant: str, threads: int, runs: int = 20) -> dict[str, float] | None:
    """Resident MiB that running ``variant`` adds to a fresh Python process, or None if unknown.

    ``runtime_mib``: importing the runtime library; ``model_peak_mib``: the peak on top of that
    while loading the model and running ``runs`` batch-1 inferences (weights, arena, threads).
    """
    cmd = [sys.executable, "-m", "edgewise.benchmarks.latency", "--peak-rss", str(bundle.path),
           variant, str(threads), str(runs)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, check=False)
        value = json.loads(r.stdout.strip().splitlines()[-1])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None
    if not isinstance(value, dict) or any(v != v for v in value.values()):  # NaN: no /proc here
        return None
    return value


def evaluate(bundle: Bundle, model: Any) -> dict[str, Any]:
    """The bundle's task metric for ``model`` on the bundle's evaluation samples, by the rule the
    bundle was evaluated with (``Decider.for_spec``: accuracy, AUROC, or pair AUROC for embeddings)."""
    ev = bundle.spec.evaluation
    rule = Decider.for_spec(bundle.spec)
    if ev is None or ev.y is None or rule.kind == "none":
        return {}
    x = np.load(bundle.file(ev.x))
    y = np.load(bundle.file(ev.y))
    out = np.concatenate([model.predict(x[i : i + 32]) for i in range(0, len(x), 32)])
    return {rule.name: rule.metric(x, out, y)}


def bench_bundle(
    bundle: str | Path | Bundle,
    *,
    variants: list[str] | None = None,
    threads: list[int] | None = None,
    iterations: int = 200,
    warmup: int = 20,
    quiet: bool = False,
    memory: bool = True,
) -> dict[str, Any]:
    """Benchmark every (variant, threads) cell; returns ``{"host", "rows", "skipped", ...}``.

    ``variants`` named explicitly must all be runnable here (ImportError naming the pip
    command otherwise); by default a variant whose runtime is missing lands in ``skipped``.
    ``memory`` measures each cell's peak RSS in a fresh process (about 0.5 s per cell).
    """
    b = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
    names = variants or list(b.variants)
    skipped = []
    for name in names:
        why = runtime_missing(b.variant(name).backend)  # unknown names fail here, with the valid ones
        if why and variants:
            raise ImportError(f"{name}: {why}")
        if why:
            skipped.append({"variant": name, "reason": why})
    ev = b.meta.get("evaluation") or {}
    x1 = np.load(b.file(ev["x"]))[:1] if ev.get("x") else None
    rows = []
    for name in names:
        if any(sk["variant"] == name for sk in skipped):
            continue
        v = b.variant(name)
        for t in threads or [1, 2]:
            t0 = time.perf_counter()
            model = load_model(b, name, threads=t)
            load_s = time.perf_counter() - t0
            x = x1 if x1 is not None else _zeros(model)
            for _ in range(warmup):
                model.predict(x)
            times = []
            for _ in progress(range(iterations), desc=f"bench {name} t={t}", quiet=quiet):
                s = time.perf_counter()
                model.predict(x)
                times.append(time.perf_counter() - s)
            row = {
                "variant": name,
                "backend": v.backend,
                "precision": v.precision,
                "threads": t,
                "size_kib": round(b.file(v.file).stat().st_size / 1024, 1),
                "load_ms": round(load_s * 1e3, 2),
                "memory_mib": peak_rss_delta_mib(b, name, t) if memory else None,
                **percentiles(times),
                "throughput_per_s": round(len(times) / sum(times), 1),
                **evaluate(b, model),
            }
            model.close()
            rows.append(row)
    return {
        "host": host_info(), "bundle": str(b.path), "iterations": iterations, "rows": rows,
        "skipped": skipped, "evaluation": _evaluation_set(b),
    }


def _evaluation_set(b: Bundle) -> dict[str, Any]:
    """Which samples the metric column is computed on, so it is not confused with ``info``'s."""
    ev = b.meta.get("evaluation") or {}
    conv = next((v.parity.get("samples") for v in b.variants.values() if v.parity.get("samples")), None)
    return {"set": "bundle eval/ samples", "samples": ev.get("samples"), "metric": ev.get("metric"),
            "conversion_samples": conv}


def _zeros(model: Any) -> np.ndarray:
    shape = [1 if d is None else d for d in model.input_shape]
    return np.zeros(shape, np.float32)


def latency_markdown(result: dict[str, Any]) -> str:
    h = result["host"]
    ev = result.get("evaluation") or {}
    where = f"on the bundle's stored evaluation samples (eval/, {ev.get('samples')} samples"
    if ev.get("conversion_samples"):
        where += f"; `edgewise info` shows the conversion set, {ev['conversion_samples']} samples"
    lines = [
        f"Host: {h['machine']}, {h['cpu']}, {h['cores']} cores"
        + (" (EMULATED: timings say nothing about real hardware)" if h.get("emulated") else ""),
        f"Iterations per cell: {result['iterations']} (batch 1, real evaluation sample)",
        f"metric: {where})",
        "RSS +MiB runtime / model: resident memory a fresh process gains by importing the runtime, "
        "then its peak gain while loading the model and running it",
        "",
        "| variant | threads | size KiB | p50 ms | p90 ms | p99 ms | per s | RSS +MiB runtime / model "
        "| metric |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        metric = next(
            (f"{k} {r[k]:.4f}" for k in ("accuracy", "auroc", "pair_auroc") if r.get(k) is not None), "-"
        )
        m = r.get("memory_mib")
        mem = "-" if not m else f"{m['runtime_mib']:.1f} / {m['model_peak_mib']:.1f}"
        lines.append(
            f"| {r['variant']} | {r['threads']} | {r['size_kib']} | {r['p50_ms']:.3f} | "
            f"{r['p90_ms']:.3f} | {r['p99_ms']:.3f} | {r['throughput_per_s']} | "
            f"{mem} | {metric} |"
        )
    lines += [f"{sk['variant']}: skipped, {sk['reason']}" for sk in result.get("skipped", [])]
    return "\n".join(lines) + "\n"


def bench_main(argv: list[str]) -> int:
    """``edgewise bench BUNDLE``: this table for every variant and thread count, on this machine."""
    from edgewise.edge.cliargs import CliError, Parser, add_json, add_quiet
    from edgewise.edge.progress import log

    p = Parser(
        prog="edgewise bench",
        description="Benchmark every variant of a bundle on this machine: latency p50/p90/p99, throughput, "
        "memory and accuracy per variant. Applications have their own benchmark: "
        "edgewise bench vibration|inspect|face --help.",
        epilog="examples:\n  edgewise bench digits.bundle --threads 1 2 --json latency.json\n"
        "  edgewise bench face --bundle face.bundle --data $EDGEWISE_DATA   (application benchmark)",
    )
    p.add_argument("bundle", help="bundle directory/.zip, or an application name (vibration, inspect, face)")
    p.add_argument("--variants", nargs="+",
                   help="only these variants; refused if one cannot run here (default: every variant, "
                   "skipping those whose runtime is not installed)")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts to time")
    p.add_argument("--iterations", type=int, default=200, help="timed single inferences per cell")
    p.add_argument("--warmup", type=int, default=20, help="untimed inferences before timing")
    p.add_argument("--out", help="folder for latency.json, latency.md and latency.png")
    p.add_argument("--quick", action="store_true",
                   help="at most 50 timed and 5 warm-up inferences per cell, no memory measurement")
    add_json(p, "the results")
    p.add_argument("--md", metavar="PATH", help="also write the Markdown table to PATH")
    add_quiet(p)
    a = p.parse_args(argv)
    if min(a.threads) < 1 or a.iterations < 1 or a.warmup < 0:
        raise CliError("--threads and --iterations must be at least 1, --warmup at least 0")
    res = bench_bundle(
        a.bundle, variants=a.variants, threads=a.threads,
        iterations=min(a.iterations, 50) if a.quick else a.iterations,
        warmup=min(a.warmup, 5) if a.quick else a.warmup, quiet=a.quiet, memory=not a.quick,
    )
    out = write_outputs(res, latency_markdown(res), stem="latency", out=a.out, json_path=a.json, md_path=a.md)
    if out is not None:
        from .report import plot_latency

        if plot_latency(res, out / "latency.png") is None:
            log("latency.png skipped: matplotlib is not installed")
    return 0


if __name__ == "__main__":  # the fresh process of peak_rss_delta_mib
    if sys.argv[1:2] == ["--peak-rss"] and len(sys.argv) == 6:
        print(json.dumps(_peak_child(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))))
    else:
        sys.exit("usage: python -m edgewise.benchmarks.latency --peak-rss BUNDLE VARIANT THREADS RUNS")
