"""Per-variant model latency: p50/p90/p99, throughput, memory, size and accuracy in one run.

Each (variant, threads) cell loads the model fresh, warms it up, times ``iterations`` single
inferences on a real evaluation sample from the bundle, and scores the whole evaluation set
with the same loaded model, so a speed-up and the accuracy it costs come from the same run.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from edgewise.edge.backends import load_model
from edgewise.edge.bundle import Bundle, load_bundle
from edgewise.edge.metrics import auroc, percentiles
from edgewise.edge.progress import progress
from edgewise.edge.scoring import score_outputs

from .host import host_info

__all__ = ["bench_bundle", "rss_mib", "evaluate", "latency_markdown"]


def rss_mib() -> float:
    """Resident memory of this process in MiB (Linux)."""
    try:
        with open("/proc/self/status", encoding="utf-8") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def evaluate(bundle: Bundle, model: Any) -> dict[str, Any]:
    """The bundle's task metric for ``model`` on the bundle's evaluation samples."""
    ev = bundle.meta.get("evaluation") or {}
    if not ev.get("x") or not ev.get("y"):
        return {}
    x = np.load(bundle.file(ev["x"]))
    y = np.load(bundle.file(ev["y"]))
    out = np.concatenate([model.predict(x[i : i + 32]) for i in range(0, len(x), 32)])
    if ev.get("decision") == "argmax":
        return {"accuracy": float((out.reshape(len(out), -1).argmax(-1) == y.ravel()).mean())}
    if ev.get("decision") == "threshold":
        return {"auroc": auroc(score_outputs(ev.get("score", "last"), x, out), y)}
    return {}


def bench_bundle(
    bundle: str | Path | Bundle,
    *,
    variants: list[str] | None = None,
    threads: list[int] | None = None,
    iterations: int = 200,
    warmup: int = 20,
    quiet: bool = False,
) -> dict[str, Any]:
    """Benchmark every (variant, threads) cell; returns ``{"host": ..., "rows": [...]}``."""
    b = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
    names = variants or list(b.variants)
    ev = b.meta.get("evaluation") or {}
    x1 = np.load(b.file(ev["x"]))[:1] if ev.get("x") else None
    rows = []
    for name in names:
        v = b.variant(name)
        for t in threads or [1, 2]:
            rss0 = rss_mib()
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
                "rss_delta_mib": round(rss_mib() - rss0, 1),
                **percentiles(times),
                "throughput_per_s": round(len(times) / sum(times), 1),
                **evaluate(b, model),
            }
            model.close()
            rows.append(row)
    return {"host": host_info(), "bundle": str(b.path), "iterations": iterations, "rows": rows}


def _zeros(model: Any) -> np.ndarray:
    shape = [1 if d is None else d for d in model.input_shape]
    return np.zeros(shape, np.float32)


def latency_markdown(result: dict[str, Any]) -> str:
    h = result["host"]
    lines = [
        f"Host: {h['machine']}, {h['cpu']}, {h['cores']} cores"
        + (" (EMULATED: timings say nothing about real hardware)" if h.get("emulated") else ""),
        f"Iterations per cell: {result['iterations']} (batch 1, real evaluation sample)",
        "",
        "| variant | threads | size KiB | p50 ms | p90 ms | p99 ms | per s | RSS +MiB | metric |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        metric = next(
            (f"{k} {r[k]:.4f}" for k in ("accuracy", "auroc") if r.get(k) is not None), "-"
        )
        lines.append(
            f"| {r['variant']} | {r['threads']} | {r['size_kib']} | {r['p50_ms']:.3f} | "
            f"{r['p90_ms']:.3f} | {r['p99_ms']:.3f} | {r['throughput_per_s']} | "
            f"{r['rss_delta_mib']} | {metric} |"
        )
    return "\n".join(lines) + "\n"
