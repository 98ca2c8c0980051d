"""Benchmark results as a plot: p50 with p90-p99 whiskers per variant and thread count.

matplotlib is optional (not installed on a bare Pi): without it the JSON and Markdown are
still written and the plot is skipped with a note.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["plot_latency"]


def plot_latency(result: dict[str, Any], path: str | Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    rows = result["rows"]
    variants = list(dict.fromkeys(r["variant"] for r in rows))
    threads = sorted({r["threads"] for r in rows})
    width = 0.8 / max(1, len(threads))
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(variants)), 4))
    for k, t in enumerate(threads):
        xs, p50, lo, hi = [], [], [], []
        for i, v in enumerate(variants):
            r = next((r for r in rows if r["variant"] == v and r["threads"] == t), None)
            if r is None:
                continue
            xs.append(i + k * width)
            p50.append(r["p50_ms"])
            lo.append(0)
            hi.append(r["p99_ms"] - r["p50_ms"])
        ax.bar(xs, p50, width, yerr=[lo, hi], capsize=3, label=f"{t} thread(s)")
    ax.set_xticks([i + width * (len(threads) - 1) / 2 for i in range(len(variants))], variants,
                  rotation=30, ha="right")
    ax.set_ylabel("latency ms (bar p50, whisker p99)")
    h = result["host"]
    ax.set_title(f"{Path(result.get('bundle', '')).name}: {h['machine']}, {h['cores']} cores"
                 + (" (emulated)" if h.get("emulated") else ""))
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
