"""Parity: does a converted variant still give the Keras model's answers on real samples?

For every variant: max and mean absolute output difference, agreement of decisions (top-1 or
thresholded scores), and the task metric next to the Keras one. A variant beyond tolerance is
flagged, with the reason, so a quantization that silently loses accuracy cannot hide.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# Decision rules and tolerances live with the runtime, so verify and the benchmarks judge by
# the very same rules; re-exported here for the conversion API.
from edgewise.edge.evaluate import DEFAULT_TOLERANCES, Decider, Tolerance, agreement

__all__ = ["Tolerance", "DEFAULT_TOLERANCES", "Decider", "compare", "parity_markdown"]


def compare(
    variant: str,
    precision: str,
    ref: np.ndarray,
    out: np.ndarray,
    x: np.ndarray,
    y: np.ndarray | None,
    decider: Decider,
    tolerance: Tolerance,
) -> dict[str, Any]:
    """One parity row: differences, agreement, metric delta, flag and reasons."""
    ref = np.asarray(ref, dtype=np.float64)
    out = np.asarray(out, dtype=np.float64)
    if ref.shape != out.shape:
        return {"variant": variant, "flagged": True, "reasons": [f"shape {out.shape} != {ref.shape}"]}
    diff = np.abs(ref - out)
    threshold = decider.threshold_for(x, ref)
    agree = agreement(decider.decisions(x, ref, threshold), decider.decisions(x, out, threshold))
    m_ref = decider.metric(x, ref, y)
    m_out = decider.metric(x, out, y)
    delta = None if m_ref is None or m_out is None else m_out - m_ref
    reasons = []
    if not np.isfinite(out).all():
        reasons.append("non-finite outputs")
    if agree is not None and agree < tolerance.min_agreement:
        reasons.append(f"decision agreement {agree:.4f} < {tolerance.min_agreement}")
    if delta is not None and np.isfinite(delta) and -delta > tolerance.max_metric_drop:
        reasons.append(f"{decider.name} drop {-delta:.4f} > {tolerance.max_metric_drop}")
    span = float(ref.max() - ref.min()) or 1.0
    if tolerance.max_abs_rel is not None and diff.max() > tolerance.max_abs_rel * span:
        reasons.append(f"max abs diff {diff.max():.3g} > {tolerance.max_abs_rel} x output range")
    return {
        "variant": variant,
        "precision": precision,
        "samples": int(len(ref)),
        "max_abs_diff": float(diff.max()),
        "mean_abs_diff": float(diff.mean()),
        "decision_agreement": agree,
        "metric": decider.name or None,
        "metric_keras": m_ref,
        "metric_variant": m_out,
        "metric_delta": delta,
        "flagged": bool(reasons),
        "reasons": reasons,
    }


def _fmt(v: Any, nd: int = 4) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{nd}g}" if abs(v) < 1e-3 and v != 0 else f"{v:.{nd}f}"
    return str(v)


def parity_markdown(rows: list[dict[str, Any]]) -> str:
    """The parity table as Markdown, one row per variant."""
    head = (
        "| variant | size KiB | max abs diff | mean abs diff | agreement | metric | keras | "
        "variant | delta | status |\n|---|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = []
    for r in rows:
        status = "FLAGGED: " + "; ".join(r["reasons"]) if r.get("flagged") else "ok"
        lines.append(
            f"| {r['variant']} | {_fmt(r.get('size_bytes', 0) / 1024, 1)} | "
            f"{_fmt(r.get('max_abs_diff'))} | {_fmt(r.get('mean_abs_diff'))} | "
            f"{_fmt(r.get('decision_agreement'))} | {r.get('metric') or '-'} | "
            f"{_fmt(r.get('metric_keras'))} | {_fmt(r.get('metric_variant'))} | "
            f"{_fmt(r.get('metric_delta'))} | {status} |"
        )
    return head + "\n".join(lines) + "\n"
