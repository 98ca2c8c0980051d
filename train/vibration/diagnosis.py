"""Diagnosis judged: the part named per fault file against its label, and the envelope spectra.

The labels are used here only to count; ``edge.apps.vibration.diagnosis`` has nothing fitted to
them. Each fault file is diagnosed from its first ``seconds`` of signal, as the device would on
its first alarm, twice: with the shaft speed known (the recording's RPM; the bundle's nominal
speed for a file that carries none, as an operator's ``--rpm`` would give it) and estimated from
the spectrum near the bundle's nominal speed.

>>> rows = diagnosis_table(recordings, DiagnosisConfig(BearingGeometry.skf6205(), 29.95))  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgewise.edge.apps.vibration.diagnosis import (
    PARTS,
    DiagnosisConfig,
    diagnose,
    envelope_spectrum,
    impulsive_band,
)

__all__ = ["diagnosis_table", "diagnosis_summary", "plot_envelopes", "diagnosis_markdown"]

_SRC = {"given": "known", "estimated": "estimated"}


def diagnosis_table(
    signals: dict[str, tuple[np.ndarray, str, float | None]], fs: float, cfg: DiagnosisConfig
) -> list[dict[str, Any]]:
    """Per recording name -> (signal, true part, shaft Hz or None): the part named with the speed
    known (the recording's, else the nominal one) and with the speed estimated, confidence,
    clear flag and evidence."""
    rows = []
    for name, (x, truth, shaft) in signals.items():
        x = np.asarray(x)[: int(cfg.seconds * fs)]
        row: dict[str, Any] = {"file": name, "truth": truth}
        known = shaft if shaft is not None else cfg.shaft_hz
        if known is not None:
            row["given"] = diagnose(x, fs, cfg, known).to_dict()
            row["given"]["shaft_source"] = "recording" if shaft is not None else "nominal"
        if cfg.shaft_hz is not None:
            row["estimated"] = diagnose(x, fs, cfg, None).to_dict()
        rows.append(row)
    return rows


def diagnosis_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Right / clear counts and the confusion (true part -> named part), per speed source."""
    out: dict[str, Any] = {"files": len(rows)}
    for src in ("given", "estimated"):
        have = [r for r in rows if src in r]
        if not have:
            continue
        conf: dict[str, dict[str, int]] = {}
        for r in have:
            conf.setdefault(r["truth"], {}).setdefault(r[src]["part"], 0)
            conf[r["truth"]][r[src]["part"]] += 1
        out[src] = {
            "right": sum(r[src]["part"] == r["truth"] for r in have),
            "right_and_clear": sum(r[src]["part"] == r["truth"] and bool(r[src].get("clear")) for r in have),
            "wrong_but_clear": sum(r[src]["part"] != r["truth"] and bool(r[src].get("clear")) for r in have),
            "confusion": conf,
        }
    return out


def plot_envelopes(
    signals: dict[str, tuple[np.ndarray, str, float | None]], fs: float, cfg: DiagnosisConfig,
    rows: list[dict[str, Any]], title: str = "",
) -> bytes:
    """One panel per file: squared-envelope spectrum (pre-whitened, the chosen band) to 500 Hz
    with BPFO / BPFI / 2xBSF / FTF and their harmonics marked at the speed used."""
    from .. import report as plots

    plt = plots._plt()
    names = list(signals)
    cols = 3
    nrows = int(np.ceil(len(names) / cols))
    fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 2.1 * nrows), squeeze=False)
    colors = {"outer_race": "tab:red", "inner_race": "tab:blue", "ball": "tab:green", "cage": "tab:purple"}
    by = {r["file"]: r for r in rows}
    for ax, name in zip(axes.ravel(), names, strict=False):
        x, truth, shaft = signals[name]
        x = np.asarray(x)[: int(cfg.seconds * fs)]
        r = by.get(name, {})
        d = r.get("given") or r.get("estimated") or {}
        shaft_hz = d.get("shaft_hz") or shaft or cfg.shaft_hz or 30.0
        band = tuple(d.get("band_hz") or impulsive_band(x, fs, cfg.bands))
        f, a = envelope_spectrum(x, fs, band, cfg.segment)
        keep = f <= 500
        ax.plot(f[keep], a[keep] / np.median(a[keep]), lw=0.6, color="k")
        g = cfg.geometry.frequencies(shaft_hz)
        marks = {"outer_race": g["outer_race"], "inner_race": g["inner_race"], "ball": 2 * g["ball"],
                 "cage": g["cage"]}
        for part, f0 in marks.items():
            for k in (1, 2, 3):
                if k * f0 <= 500:
                    ax.axvline(k * f0, color=colors[part], lw=0.7, alpha=0.8 if k == 1 else 0.4,
                               label=part if k == 1 else None)
        ax.set_title(f"{name} ({truth}) -> {d.get('part', '?')} {d.get('confidence', 0):.2f}", fontsize=7)
        ax.tick_params(labelsize=6)
    axes.ravel()[0].legend(fontsize=5, loc="upper right")
    for ax in axes.ravel()[len(names):]:
        ax.axis("off")
    fig.suptitle(title or "squared-envelope spectra (pre-whitened), fault frequencies marked", fontsize=9)
    fig.supxlabel("Hz", fontsize=8)
    return plots.figure_png(fig, dpi=90)


def diagnosis_markdown(rows: list[dict[str, Any]], summary: dict[str, Any]) -> list[str]:
    """The per-file table and the confusion, Markdown lines."""
    lines = ["| file | true part | speed known (Hz, from) | named | conf. | clear | "
             "named (speed estimated) | est. Hz | conf. | clear |", "|---" * 10 + "|"]
    for r in rows:
        g, e = r.get("given", {}), r.get("estimated", {})
        lines.append(
            f"| {r['file']} | {r['truth']} | {g.get('shaft_hz', 0):.2f} ({g.get('shaft_source', '-')}) | "
            f"{g.get('part', '-')} | {g.get('confidence', 0):.2f} | "
            f"{g.get('clear', '-')} | {e.get('part', '-')} | {e.get('shaft_hz', 0):.2f} | "
            f"{e.get('confidence', 0):.2f} | {e.get('clear', '-')} |"
        )
    lines.append("")
    for src in ("given", "estimated"):
        s = summary.get(src)
        if not s:
            continue
        lines.append(f"- speed {_SRC[src]}: right part for **{s['right']}/{summary['files']}** files; "
                     f"right and clear (evidence above the healthy level) {s['right_and_clear']}; "
                     f"wrong but clear {s['wrong_but_clear']}")
        named = [*PARTS, "none"]
        lines += ["", f"Confusion (speed {_SRC[src]}): rows true part, columns named part", "",
                  "| true \\ named | " + " | ".join(named) + " |", "|---|" + "---|" * len(named)]
        for t, c in s["confusion"].items():
            lines.append(f"| {t} | " + " | ".join(str(c.get(n, 0)) for n in named) + " |")
        lines.append("")
    return lines
