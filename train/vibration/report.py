"""The bundle's report: score-over-time plots, histograms, ROC, window sweep, vibration.md."""

from __future__ import annotations

from typing import Any

import numpy as np

from edgewise.edge.jsonenc import dumps

from .. import report as plots
from .fit import Scores

__all__ = ["report_files", "report_markdown", "sweep_table", "robustness_table"]

SCORERS = ("keras", "tflite_float32", "tflite_int8", "onnx_int8", "baseline")


def _plot_score_time(scores: Scores, d: dict[str, Any], thr: float, title: str) -> bytes:
    plt = plots._plt()
    names = ["healthy", *d["faults"]]
    cols = 4
    rows = int(np.ceil(len(names) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.2 * rows), sharey=True, squeeze=False)
    floor = 1e-6
    for ax, name in zip(axes.ravel(), names, strict=False):
        if name == "healthy":
            for part, color in (("train", "tab:gray"), ("val", "tab:blue"), ("test", "tab:green")):
                s = scores.get(part)
                if s is None:
                    continue
                ax.plot(d["sets"][part]["t"], np.maximum(s, floor), ".", ms=2, color=color, label=part)
            ax.legend(fontsize=6)
        else:
            ax.plot(
                d["faults"][name]["t"], np.maximum(scores["faults"][name], floor), ".", ms=2, color="tab:red"
            )
        ax.axhline(thr, color="k", linestyle="--", lw=0.8)
        ax.set_yscale("log")
        ax.set_title(name, fontsize=8)
        ax.tick_params(labelsize=6)
    for ax in axes.ravel()[len(names) :]:
        ax.axis("off")
    fig.suptitle(title, fontsize=9)
    fig.supxlabel("time in recording (s)", fontsize=8)
    return plots.figure_png(fig, dpi=90)


def _plot_sweep(rows: list[dict[str, Any]]) -> bytes:
    plt = plots._plt()
    ok = [r for r in rows if "error" not in r]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    L = [r["window"] for r in ok]
    for k, style in (("autoencoder_keras", "o-"), ("baseline", "s--")):
        ax.plot(L, [r[k]["auroc_min"] for r in ok], style, label=f"{k} min AUROC")
        ax.plot(L, [r[k]["recall_min"] for r in ok], style, alpha=0.5, label=f"{k} min recall")
    ax.set_xscale("log")
    ax.set_xlabel("window (samples at 12 kHz)")
    ax.legend(fontsize=7)
    ax.set_title("detection vs window length (worst fault file)")
    return plots.figure_png(fig, dpi=90)


def _log10(s: np.ndarray) -> np.ndarray:
    return np.log10(np.maximum(s, 1e-9))


def report_files(
    m: dict[str, Any],
    scores: dict[str, Scores],
    thr: dict[str, float],
    d: dict[str, Any],
    history: dict[str, list[float]],
) -> dict[str, bytes]:
    """Every report file, path in the bundle -> bytes; ``m`` is the metrics (report/metrics.json)."""
    files: dict[str, bytes] = {}
    files["report/learning_curves.png"] = plots.plot_png(
        plots.plot_learning_curves, history, title="autoencoder (mse)"
    )
    lab = "SYNTHETIC " if m["synthetic"] else ""
    for k in ("tflite_int8", "keras", "baseline"):
        if k not in scores:
            continue
        s = scores[k]
        files[f"report/score_time_{k}.png"] = _plot_score_time(
            s, d, thr[k], f"{lab}{k} score per window over time (dashed: bundle threshold)"
        )
        allf = np.concatenate(list(s["faults"].values()))
        files[f"report/histogram_{k}.png"] = plots.plot_png(
            plots.plot_score_histogram,
            {"healthy test": _log10(s["test"]), "healthy val": _log10(s["val"]),
             "faults (all files)": _log10(allf)},
            threshold=float(np.log10(thr[k])),
            title=f"{lab}{k}: log10 score",
        )
    curves = {}
    for k, s in scores.items():
        allf = np.concatenate(list(s["faults"].values()))
        curves[k] = (np.r_[s["test"], allf], np.r_[np.zeros(len(s["test"])), np.ones(len(allf))])
    files["report/roc.png"] = plots.plot_png(
        plots.plot_roc, curves, title=f"{lab}healthy test vs all fault files"
    )
    if m.get("window_sweep"):
        files["report/window_sweep.png"] = _plot_sweep(m["window_sweep"])
    files["report/metrics.json"] = dumps(m, indent=2).encode()
    files["report/vibration.md"] = report_markdown(m).encode()
    return files


def _calibration_text(c: dict[str, Any] | None) -> str:
    if not c:
        return "validation windows"
    if not c.get("out_of_fold_windows"):
        return f"{c['validation_windows']} validation windows"
    return (f"{c['validation_windows']} validation windows + {c['out_of_fold_windows']} training windows "
            f"scored out of fold ({c['folds']} folds in time, see out_of_fold_scores)")


def _header(m: dict[str, Any]) -> list[str]:
    """Title, data and protocol lines."""
    ds = m["dataset"]
    lines = [f"# Vibration anomaly detection report{' (SYNTHETIC DATA)' if m['synthetic'] else ''}", ""]
    if m["synthetic"]:
        lines += [
            "**All figures below are on SYNTHETIC signals (edgewise.train.data.synthetic_vibration), "
            "not measurements.**",
            "",
        ]
    lines += [
        f"- data: {ds.get('name', 'recordings')}; healthy recording `{ds.get('normal')}`"
        + (f" read at {ds['normal_fs']:g} Hz (`--normal-fs`)" if ds.get("normal_fs") else "")
        + f", all signals at {m['fs']:g} Hz, channel {ds.get('channel', '-')}",
    ]
    if ds.get("rate_evidence"):
        ev = ", ".join(f"{k} Hz: r={v:.3f}" for k, v in ds["rate_evidence"].items())
        lines.append(f"- healthy-rate check (spectral-line correlation with the fault files): {ev}")
    w = m["windows"]
    sp = m["split_seconds"]
    lines += [
        f"- window {m['window']} samples ({m['window'] / m['fs'] * 1e3:.0f} ms); healthy split in time: "
        + ", ".join(
            f"{k} {sp[k][0]:.2f}-{sp[k][1]:.2f} s ({w[k]} windows)" for k in ("train", "val", "test")
        ),
        f"- {sum(w['faults'].values())} fault windows in {len(w['faults'])} files; thresholds from "
        f"held-out normal scores for a target false-alarm rate of {m['target_far']:.2%}, one per scorer "
        f"(rule: {m.get('threshold_rule', '-')}, see train/vibration/threshold.py normal_threshold): "
        + _calibration_text(m.get("threshold_calibration")),
        "",
    ]
    return lines


def _results_table(res: dict[str, Any]) -> list[str]:
    """Per fault file AUROC / recall, then the summary rows, one column per scorer."""
    order = [k for k in SCORERS if k in res]
    lines = [
        "## Per fault file: AUROC (healthy test vs file) / recall at the bundle threshold",
        "",
        "| file | " + " | ".join(order) + " |",
        "|---|" + "---|" * len(order),
    ]
    for f in res[order[0]]["per_file"]:
        cells = [
            f"{res[k]['per_file'][f]['auroc']:.4f} / {res[k]['per_file'][f]['recall']:.3f}" for k in order
        ]
        lines.append(f"| {f} | " + " | ".join(cells) + " |")

    def row(label: str, cell: Any) -> str:
        return f"| {label} | " + " | ".join(cell(res[k]) for k in order) + " |"

    lines += [
        row("**overall AUROC**", lambda r: f"{r['auroc_overall']:.4f}"),
        row("**min AUROC**", lambda r: f"{r['auroc_min']:.4f}"),
        row("**min recall**", lambda r: f"{r['recall_min']:.3f}"),
        row("**FAR (healthy test)**",
            lambda r: f"{r['far']:.3f} ({round(r['far'] * r['normal_windows'])}/{r['normal_windows']})"),
        row("threshold", lambda r: f"{r['threshold']:.4g}"),
    ]
    if all("empirical_threshold" in res[k] for k in order):
        lines.append(row("FAR at the plain empirical-quantile threshold",
                         lambda r: f"{r['empirical_threshold']['far']:.3f}"))
    return lines


def sweep_table(
    rows: list[dict[str, Any]],
    title: str = "## Detection vs window length (Keras float32 AE and baseline, retrained per length)",
) -> list[str]:
    """The detection-vs-window-length table (Markdown lines), as the training report shows it."""
    lines = [
        title,
        "",
        "| window | ms | healthy test windows | AE min AUROC | AE min recall | AE FAR | "
        "baseline min AUROC | baseline min recall | baseline FAR |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['window']} | - | {r['error']} | | | | | | |")
            continue
        a, b = r["autoencoder_keras"], r["baseline"]
        lines.append(
            f"| {r['window']} | {r['seconds'] * 1e3:.0f} | {r['normal_test_windows']} | "
            f"{a['auroc_min']:.4f} | {a['recall_min']:.3f} | {a['far']:.3f} | "
            f"{b['auroc_min']:.4f} | {b['recall_min']:.3f} | {b['far']:.3f} |"
        )
    return lines


def robustness_table(rows: list[dict[str, Any]]) -> list[str]:
    """Per perturbation and scorer: FAR on the held-out healthy windows, worst recall over the
    fault files, margins over the threshold and the largest single-feature share of a flagged
    window's score (model only). Markdown lines."""
    if not rows:
        return []
    order = list(rows[0]["scorers"])
    head = "| perturbation | " + " | ".join(
        f"{k} FAR | {k} min recall | {k} healthy max / thr | {k} fault min / thr" for k in order)
    lines = [head + " | model max band share |", "|---|" + "---|---|---|---|" * len(order) + "---|"]
    for r in rows:
        cells = []
        share = "-"
        for k in order:
            s = r["scorers"][k]

            def num(v: float | None, fmt: str) -> str:
                return "-" if v is None else format(v, fmt)

            far = "-" if s["far"] is None else f"{s['far']:.3f} ({s['false_alarms']}/{s['healthy_windows']})"
            cells.append(
                f"{far} | {num(s['recall_min'], '.3f')} | {num(s['healthy_max_over_threshold'], '.2f')} | "
                f"{num(s['fault_min_over_threshold'], '.2f')}")
            if s.get("band_share_max") is not None:
                share = f"{s['band_share_max']:.2f} (median {s['band_share_median']:.2f})"
        lines.append(f"| {r['perturbation']} | " + " | ".join(cells) + f" | {share} |")
    return lines


def _robustness_section(m: dict[str, Any]) -> list[str]:
    if not m.get("robustness"):
        return []
    return [
        "## Robustness: held-out healthy windows and every fault file under perturbations",
        "",
        "Each scorer at its bundle threshold. Gain multiplies the signal; noise is white at the "
        "SNR of the whole recording; the DC offset is 5x the RMS; the IIR resampling filter brings "
        "the signal up 4x and back down through scipy's Chebyshev decimator instead of edgewise's "
        "FIR; speed resamples every frequency by +-2 % (the training split also enters resampled "
        "to 0.98-1.02x speed, so that row is within the design range). Band share: the largest "
        "share one feature has of a flagged fault window's reconstruction error.",
        "",
        *robustness_table(m["robustness"]),
        "",
    ]


def _diagnosis_section(m: dict[str, Any]) -> list[str]:
    dg = m.get("diagnosis")
    if not dg:
        return []
    from .diagnosis import diagnosis_markdown

    c = dg["config"]
    return [
        "## Diagnosis: the failing part named from the envelope spectrum (no labels fitted)",
        "",
        f"First {c['seconds']:g} s of each fault file; bearing orders {c['geometry']}; nominal shaft "
        f"speed {c['shaft_hz']:.2f} Hz; evidence level of the healthy train + validation signal "
        f"{c['healthy_evidence']} ('clear' = above it). Figure: envelope_spectra.png.",
        "",
        *diagnosis_markdown(dg["rows"], dg["summary"]),
    ]


def report_markdown(m: dict[str, Any]) -> str:
    """The Markdown report: data, protocol, per-file table, robustness, diagnosis, targets, sweep."""
    lines = _header(m) + _results_table(m["results"])
    lines += ["", *_robustness_section(m), *_diagnosis_section(m)]
    lines += ["", "## Targets", ""]
    for name, t in m["targets"].items():
        lines.append(f"- {name}: {t['value']:.4g} -> {'PASS' if t['pass'] else 'FAIL'}")
    if m.get("window_sweep"):
        lines += ["", *sweep_table(m["window_sweep"])]
    lines += [
        "",
        "Figures: score_time_*.png (score per window over time, every recording), histogram_*.png, "
        "roc.png, learning_curves.png"
        + (", window_sweep.png" if m.get("window_sweep") else "")
        + "; conversion parity: parity.md.",
        "",
    ]
    return "\n".join(lines)
