"""Benchmark results as a plot: p50 bars with p99 whiskers per variant and thread count, log scale.

matplotlib is optional (not installed on a bare Pi): without it the JSON and Markdown are
still written and the plot is skipped with a note.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["plot_latency", "latency_figure"]


def _ms(v: float) -> str:
    """Milliseconds with 3 significant digits: 0.0072, 0.84, 13.2, 105."""
    return f"{v:.3g}"


def plot_latency(result: dict[str, Any], path: str | Path) -> Path | None:
    """``latency_figure`` as a PNG; None without matplotlib (or without a timed row)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig = latency_figure(result)
    if fig is None:
        return None
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def latency_figure(result: dict[str, Any]) -> Any:
    """Bar p50, whisker to p99, per variant and thread count, each bar labelled with its p50.

    The y axis is logarithmic: one bundle's variants can differ 100-fold (a 0.035 ms model next to
    a 4 ms one), and on a linear axis the fast bars vanish. Rows without timings (a variant whose
    runtime is not installed) are left out; None when no row has one.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in result["rows"] if isinstance(r.get("p50_ms"), (int, float)) and r["p50_ms"] > 0]
    if not rows:
        return None
    variants = list(dict.fromkeys(r["variant"] for r in rows))
    threads = sorted({r["threads"] for r in rows})
    width = 0.8 / max(1, len(threads))
    fig, ax = plt.subplots(figsize=(max(6.5, 1.1 * len(variants) * max(1, len(threads)) / 1.5), 4.5))
    for k, t in enumerate(threads):
        xs, p50, hi = [], [], []
        for i, v in enumerate(variants):
            r = next((r for r in rows if r["variant"] == v and r["threads"] == t), None)
            if r is None:
                continue
            xs.append(i + k * width)
            p50.append(r["p50_ms"])
            hi.append(max(0.0, r.get("p99_ms", r["p50_ms"]) - r["p50_ms"]))
        ax.bar(xs, p50, width, yerr=[[0.0] * len(hi), hi], capsize=3, label=f"{t} thread(s)")
        for x, y, h in zip(xs, p50, hi, strict=True):
            ax.text(x, (y + h) * 1.12, _ms(y), rotation=90, ha="center", va="bottom", fontsize=7)
    ax.set_yscale("log")
    lo = min(r["p50_ms"] for r in rows)
    top = max(r.get("p99_ms", r["p50_ms"]) for r in rows)
    ax.set_ylim(lo / 3, top * 8)  # room below the shortest bar and above the labels
    ax.set_xticks([i + width * (len(threads) - 1) / 2 for i in range(len(variants))], variants,
                  rotation=30, ha="right")
    ax.set_ylabel("latency ms, log scale\n(bar p50, whisker p99, label p50)")
    ax.grid(axis="y", which="both", alpha=0.25)
    h = result["host"]
    title = f"{Path(result.get('bundle', '')).name}: {h['machine']}, {h['cores']} cores" + (
        " (emulated)" if h.get("emulated") else "")
    ax.set_title(title, fontsize=10, wrap=True)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig
