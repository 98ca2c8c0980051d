"""The suite result as Markdown (header, one table per application, regressions) and two plots.

Plots (matplotlib is optional: without it the JSON and Markdown are still written): the latency
spread of every variant (p50 to p99, and min / p90 / max where the row has them), and accuracy
against latency per application, so a faster variant that costs accuracy shows at a glance.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .rows import SuiteResult, SuiteRow

__all__ = ["suite_markdown", "plot_suite"]


def _num(v: float | None, nd: int = 3) -> str:
    return "-" if v is None else f"{v:.{nd}f}"


def _header_lines(r: SuiteResult) -> list[str]:
    h = r.header
    libs = ", ".join(f"{k} {v}" for k, v in (h.get("libraries") or {}).items())
    lines = [
        f"Host: {h.get('cpu')} ({h.get('machine')}, {h.get('cores')} cores, {h.get('system')}, "
        f"Python {h.get('python')})" + (" EMULATED: timings say nothing about real hardware"
                                        if h.get("emulated") else ""),
        f"Governor: {h.get('governor')}; throttling: {h.get('throttling')}; load average at start: "
        f"{h.get('loadavg')}",
        f"Libraries: {libs}",
        f"Threads swept: {r.threads}; {'quick run (CI size)' if r.quick else 'full run'}; created "
        f"{h.get('created', '?')}; schema {r.schema}",
        "",
    ]
    projections = h.get("projections") or []
    if not projections:
        lines += ["Projected Pi figures: not projected (pass `--projection FILE` from "
                  "`edgewise project BUNDLE --target pi4|pi5 --json FILE`).", ""]
    for p in projections:
        lines += [f"Projected Pi figures, {p['target']} ({Path(str(p.get('source'))).name}), {p['label']}, "
                  f"±{100 * (p.get('band') or 0):.0f} %, 1 thread:", "",
                  "| model | projected ms | band ms | calibrated ms |", "| --- | ---: | ---: | ---: |"]
        for v in p["variants"]:
            band = v.get("ms_band") or [None, None]
            lines.append(f"| {v['name']} | {_num(v['ms'])} | {_num(band[0])}-{_num(band[1])} | "
                         f"{_num(v.get('calibrated_ms'))} |")
        for q in p.get("pipelines", []):
            lines.append(f"| per frame with {q['variant']} | {_num(q['ms'])} | - | - |")
        for q in p.get("ratios", []):
            lines.append(f"| **int8/float32, {q['backend']}** | {q['ratio']:.2f}x | - | - |")
        for q in p.get("pipeline_ratios", []):
            lines.append(f"| **int8/float32, whole pipeline, {q['backend']}** | {q['ratio']:.2f}x | - | - |")
        lines.append("")
    return lines


def _marks(r: SuiteResult) -> dict[str, str]:
    """Per row key, what the comparison says: ``ok``, ``new`` or ``REGRESSED ...``."""
    if not r.comparison:
        return {}
    marks: dict[str, list[str]] = {}
    for f in r.comparison["findings"]:
        if f["kind"] == "missing":
            continue
        text = ("new" if f["kind"] == "new" else
                f"latency {f['change']:.2f}x" if f["kind"] == "latency" else
                f"accuracy {f['change']:+.4f}" if f["change"] is not None else "accuracy gone")
        marks.setdefault(f["key"], []).append(("**REGRESSED** " + text) if f["regression"] else text)
    return {k: "; ".join(v) for k, v in marks.items()}


def _row_line(row: SuiteRow, mark: str | None) -> str:
    cells = [row.level, row.method + (" (peer)" if row.peer else ""), row.backend, row.precision,
             str(row.threads), _num(row.p50_ms), _num(row.p99_ms),
             f"{row.metric} {_num(row.value, 4)}" if row.metric else "-"]
    if mark is not None:
        cells.append(mark)
    return "| " + " | ".join(cells) + " |"


def suite_markdown(r: SuiteResult) -> str:
    marks = _marks(r)
    compared = r.comparison is not None
    lines = ["# Benchmark suite", "", *_header_lines(r)]
    if compared:
        c = r.comparison
        t = c["tolerance"]
        lines += [f"Compared with {c['baseline']}: a row regresses when its p50 is more than "
                  f"{t['latency_ratio']}x the baseline's (and at least {t['min_delta_ms']} ms slower) or its "
                  f"metric drops by more than {t['accuracy_drop']}. "
                  f"Regressions: {len(c['regressions'])}.", ""]
    for app in dict.fromkeys(row.app for row in r.rows):
        lines += [f"## {app}", "",
                  "| level | method | backend | precision | threads | p50 ms | p99 ms | accuracy |"
                  + (" vs baseline |" if compared else ""),
                  "| --- | --- | --- | --- | ---: | ---: | ---: | --- |" + (" --- |" if compared else "")]
        rows = [row for row in r.rows if row.app == app]
        lines += [_row_line(row, marks.get(row.key, "-") if compared else None) for row in rows]
        notes = list(dict.fromkeys(f"{row.level}: {row.note}" for row in rows if row.note))
        lines += ["", *[f"- {n}" for n in notes], ""]
    if compared and r.comparison["regressions"]:
        lines += ["## Regressions", ""]
        for f in r.comparison["regressions"]:
            lines.append(f"- {f['key']}: {f['kind']} {f['old']} -> {f['new']}")
        lines.append("")
    missing = [f["key"] for f in (r.comparison or {}).get("findings", []) if f["kind"] == "missing"]
    if missing:
        lines += ["Rows of the baseline not measured in this run: " + ", ".join(missing), ""]
    if r.skipped:
        lines += ["## Not measured", "", *[f"- {s}" for s in r.skipped], ""]
    return "\n".join(lines)


def plot_suite(r: SuiteResult, stem: Path) -> list[Path]:
    """``<stem>-latency.png`` and ``<stem>-accuracy.png``; [] without matplotlib or timed rows."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    rows = [row for row in r.rows if row.p50_ms]
    if not rows:
        return []
    out = [Path(f"{stem}-latency.png"), Path(f"{stem}-accuracy.png")]
    _latency_plot(plt, rows, r.header, out[0])
    _accuracy_plot(plt, rows, out[1])
    return out


def _label(row: SuiteRow) -> str:
    return f"{row.app} {row.level} {row.method[:40]} t{row.threads}"


def _latency_plot(plt: Any, rows: list[SuiteRow], header: dict[str, Any], path: Path) -> None:
    """One line per row on a log axis: thick p50-p99 bar, thin min-max, dot p50, tick p90."""
    fig, ax = plt.subplots(figsize=(10, 0.28 * len(rows) + 1.6))
    colors = {"face": "tab:blue", "inspect": "tab:orange", "vibration": "tab:green"}
    for i, row in enumerate(rows):
        c = colors.get(row.app, "tab:gray")
        s = row.spread_ms
        if "min" in s and "max" in s:
            ax.plot([s["min"], s["max"]], [i, i], color=c, lw=0.8, alpha=0.6)
        if row.p99_ms:
            ax.plot([row.p50_ms, row.p99_ms], [i, i], color=c, lw=4, alpha=0.8)
        if "p90" in s:
            ax.plot([s["p90"]], [i], marker="|", color="k", ms=8)
        ax.plot([row.p50_ms], [i], marker="o", color="k", ms=3)
    ax.set_yticks(range(len(rows)), [_label(row) for row in rows], fontsize=6)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("latency ms, log scale (dot p50, bar p50-p99, tick p90, thin line min-max)")
    ax.grid(axis="x", which="both", alpha=0.25)
    ax.set_title(f"latency per variant: {header.get('cpu')}, {header.get('cores')} cores", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _accuracy_plot(plt: Any, rows: list[SuiteRow], path: Path) -> None:
    """Per application: metric against p50 latency, one point per row, peers hollow."""
    apps = [a for a in dict.fromkeys(row.app for row in rows) if any(x.value is not None for x in rows
                                                                   if x.app == a)]
    if not apps:
        return
    fig, axes = plt.subplots(1, len(apps), figsize=(5 * len(apps), 4.2), squeeze=False)
    for ax, app in zip(axes[0], apps, strict=True):
        for row in (x for x in rows if x.app == app and x.value is not None):
            face = "none" if row.peer else ("tab:blue" if row.level == "pipeline" else "tab:orange")
            ax.scatter([row.p50_ms], [row.value], facecolors=face, edgecolors="k", s=22)
            ax.annotate(f"{row.method[:22]} t{row.threads}", (row.p50_ms, row.value), fontsize=5,
                        xytext=(3, 2), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_xlabel("p50 ms (log)")
        ax.set_ylabel("metric (higher is better)")
        ax.set_title(f"{app}: accuracy vs latency (hollow: peers; orange: model level)", fontsize=8)
        ax.grid(alpha=0.25)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
