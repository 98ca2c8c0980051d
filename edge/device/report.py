"""The verify report for people: markdown tables of the variants and their kernels, the CPU
check and the pipeline run. ``--json`` writes the same report as data (``cliargs.emit_json``).

Emulated timings say nothing about a Pi: the only time shown is the verification's own wall
time, labelled as emulated.
"""

from __future__ import annotations

from typing import Any

from .kernels import kernels_text
from .rootfs import SUITE

__all__ = ["report_text", "fmt"]


def fmt(v: Any, nd: int = 4) -> str:
    """A table cell: ``-`` for None, small floats in 3 significant digits."""
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3g}" if (v != 0 and abs(v) < 1e-3) else f"{v:.{nd}f}"
    return str(v)


def _cpu_lines(rep: dict[str, Any]) -> list[str]:
    c = rep.get("cpu") or {}
    hw = c.get("hwcap")
    dot = ("yes (asimddp): int8 kernels can use SDOT" if c.get("dotprod")
           else "no (no asimddp on this core)")
    lines = [
        f"  emulated CPU {rep['target']['qemu_cpu']}: HWCAP {' '.join(hw) if hw else '-'}; "
        f"dot product {dot}",
        f"  /proc/cpuinfo Features (the Pi's): {' '.join(c.get('cpuinfo_features') or []) or '-'}; "
        f"/sys CPUs possible: {c.get('sys_cpus_possible') or 'none (no /sys)'}",
    ]
    lines += [f"  CPU check FAILED: {p}" for p in c.get("problems", [])]
    return lines


def _variant_lines(rep: dict[str, Any]) -> list[str]:
    lines = [
        "| variant | precision | status | max steps | max abs diff | agreement | metric | host | arm64 "
        "| delta | vs Keras agreement host / arm64 | notes |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rep["variants"]:
        k = r.get("vs_keras") or {}
        notes = ([f"min cosine {r['min_cosine']:.5f}"] if rep.get("decision") == "pairs"
                 and r.get("min_cosine") is not None else []) + r.get("reasons", [])
        lines.append(
            f"| {r['variant']} | {r['precision']} | {r['status']} | {fmt(r.get('max_steps'))} | "
            f"{fmt(r.get('max_abs_diff'))} | {fmt(r.get('decision_agreement'))} | "
            f"{r.get('metric') or '-'} | {fmt(r.get('metric_host'))} | {fmt(r.get('metric_arm'))} | "
            f"{fmt(r.get('metric_delta'))} | {fmt(k.get('host_agreement'))} / "
            f"{fmt(k.get('arm64_agreement'))} | " + "; ".join(notes) + " |"
        )
    lines += ["", "| variant | kernels on this machine | kernels on arm64 (emulated) |", "|---|---|---|"]
    for r in rep["variants"]:
        k = r.get("kernels") or {}
        lines.append(f"| {r['variant']} | {kernels_text(k.get('host'))} | {kernels_text(k.get('arm64'))} |")
    said = dict.fromkeys(m for r in rep["variants"] for m in ((r.get("kernels") or {}).get("arm64") or {})
                         .get("log", []) if "created tensorflow lite xnnpack" not in m.lower())
    return lines + [f"  arm64 runtime said: {m}" for m in said]


def _app_lines(app: dict[str, Any] | None) -> list[str]:
    if not app:
        return []
    if app.get("status") == "skipped":
        return [f"\nedge pipeline: skipped ({app['reason']})"]
    lines = [
        f"\nedge pipeline: `edgewise run {app['app']}` inside the root on {app['inputs']} "
        f"inputs: exit {app['rc']}, {app['events']} events, answers agree with this machine "
        f"{app['agree']}/{app['compared']}, TensorFlow imported: {app['tensorflow_imported']} "
        f"-> {app['status']}"
    ]
    if app.get("reason"):
        lines.append(f"  {app['reason']}")
    for d in app.get("disagreements") or []:
        lines.append(f"  event {d['event']}: arm64 {tuple(d['arm64'])} vs this machine {tuple(d['host'])}")
    return _commission_lines(app.get("commissioning")) + lines


def _commission_lines(c: dict[str, Any] | None) -> list[str]:
    """Commissioning on both sides before the run: the thresholds and the largest differences."""
    if not c:
        return []
    if "figures" not in c:  # failed before there was anything to compare
        return [f"\ncommissioning: `edgewise commission vibration` on {c['source']} -> FAIL"]
    w = c["windows"]
    lines = [
        f"\ncommissioning: `edgewise commission vibration` on {c['source']} on both sides: {w['arm64']} "
        f"windows on arm64, {w['host']} here; largest relative difference {fmt(c['max_rel_diff'])} "
        f"(limit {c['rtol']:g}); applied by each run: {(c.get('applied') or {}).get('arm64', '-')} / "
        f"{(c.get('applied') or {}).get('host', '-')}; TensorFlow imported: {c['tensorflow_imported']}; "
        f"{c['seconds_emulated']}s in the root (emulated) -> {c['status']}",
        "",
        "| figure | values | this machine | arm64 | max rel diff |",
        "|---|---|---|---|---|",
    ]
    for r in c["figures"]:
        lines.append(f"| {r['name']} | {r['size']} | {fmt(r.get('host'))} | {fmt(r.get('arm64'))} | "
                     f"{fmt(r['max_rel_diff'])} |")
    return lines + [f"  {m}" for m in c.get("reasons", [])]


def report_text(rep: dict[str, Any]) -> str:
    f = rep["arm64"]
    lines = [
        f"edgewise verify: {rep['bundle']} on an emulated {rep['target']['model']} "
        f"({rep['target']['qemu_cpu']}, QEMU user mode, arm64 Debian {SUITE}, Python {f.get('python')})",
        f"  arm64 runtime: numpy {f['versions'].get('numpy')}, ai-edge-litert "
        f"{f['versions'].get('ai-edge-litert')}, onnxruntime {f['versions'].get('onnxruntime')}; "
        f"CPU features seen: {' '.join(f.get('cpu_features', [])) or '-'}",
        *_cpu_lines(rep),
        f"  compared with this machine ({rep['host']['machine']}, same edge runtime) on "
        f"{rep['samples']} evaluation samples of the bundle",
        "",
        *_variant_lines(rep),
        *_app_lines(rep.get("app")),
        f"\nresult: {rep['result']} ({rep['passed']} passed, {rep['failed']} failed, "
        f"{rep['skipped']} skipped). Emulated timings say nothing about a Pi and are not reported "
        f"as Pi timings (verification wall time {rep['wall_seconds']}s, emulated).",
    ]
    return "\n".join(lines)
