"""arm64 against this machine: the outputs of every variant, and the answers of the application.

The decision rules, metrics and limits are those of ``edge/evaluate.py`` (the converter's
parity check judges a variant against Keras by the same ones); what is specific to a device
lives here: differences in int8 quantization steps, the per-sample cosine of embeddings, and
the answers two runs of an application give about the same inputs, read through ``Event``.

>>> event_verdict({"app": "face", "kind": "person", "person": "alice", "similarity": 0.8})
('person', 'alice')
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..evaluate import DEVICE_REL_TOLERANCE, Decider, DeviceTolerance, agreement, unit_rows
from ..event import Event

__all__ = ["quantized_steps", "compare_outputs", "judge", "event_verdict", "compare_events", "VERDICT_EXTRAS",
           "COMMISSION_REL_TOLERANCE", "commissioning_figures", "compare_commissioning"]


def quantized_steps(a: np.ndarray, b: np.ndarray, scale: float) -> np.ndarray:
    """|a - b| in quantization steps of an int8 output dequantized with ``scale``.

    Both sides computed ``(q - zero_point) * scale``, so the difference is an integer number
    of steps up to float rounding; rounding recovers it exactly.
    """
    if not scale or scale <= 0:
        raise ValueError(f"quantization scale must be positive, got {scale}")
    d = np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)) / float(scale)
    return np.rint(d).astype(np.int64)


def compare_outputs(
    host: np.ndarray,
    arm: np.ndarray,
    *,
    x: np.ndarray,
    y: np.ndarray | None = None,
    decision: str = "argmax",
    score: str = "last",
    threshold: float | None = None,
    output_scale: float | None = None,
) -> dict[str, Any]:
    """Differences between the host's and the emulated Pi's outputs of one variant.

    ``output_scale`` (int8 outputs) adds the difference in quantization steps. Decisions
    follow the bundle's evaluation rule (``Decider``: top-1, or score >= threshold; without a
    stored threshold the host's median score), the metric is the task's (accuracy or AUROC).
    ``decision="pairs"`` (embeddings): every pair of samples is "same" when its cosine
    similarity >= threshold, and the metric is the same-identity pair AUROC.
    """
    host = np.asarray(host, np.float64)
    arm = np.asarray(arm, np.float64)
    row: dict[str, Any] = {"samples": int(len(host))}
    if host.shape != arm.shape:
        row["error"] = f"output shape {arm.shape} on arm64, {host.shape} on host"
        return row
    row["finite"] = bool(np.isfinite(arm).all())
    diff = np.abs(host - arm)
    row["max_abs_diff"] = float(diff.max()) if diff.size else 0.0
    row["mean_abs_diff"] = float(diff.mean()) if diff.size else 0.0
    row["output_range"] = float(host.max() - host.min()) if host.size else 0.0
    if output_scale:
        steps = quantized_steps(host, arm, output_scale)
        row["max_steps"] = int(steps.max()) if steps.size else 0
        row["values_off_by_steps"] = int((steps > 0).sum())
        row["output_scale"] = float(output_scale)
    if len(host) and host.ndim == 2:
        row["min_cosine"] = float((unit_rows(host) * unit_rows(arm)).sum(axis=1).min())
    rule = Decider(decision, score, threshold)
    thr = rule.threshold_for(x, host)
    row["decision_agreement"] = agreement(rule.decisions(x, host, thr), rule.decisions(x, arm, thr))
    m_host, m_arm = rule.metric(x, host, y), rule.metric(x, arm, y)
    row["metric"] = (rule.name or None) if m_host is not None else None
    row["metric_host"] = m_host
    row["metric_arm"] = m_arm
    row["metric_delta"] = None if m_host is None or m_arm is None else m_arm - m_host
    return row


def judge(row: dict[str, Any], precision: str, tol: DeviceTolerance, decision: str = "argmax") -> list[str]:
    """The reasons a variant fails (empty: it agrees within tolerance)."""
    if "error" in row:
        return [row["error"]]
    reasons = []
    if not row.get("finite", True):
        reasons.append("non-finite outputs on arm64")
    by_direction = decision == "pairs" and row.get("min_cosine") is not None
    if by_direction and row["min_cosine"] < tol.min_cosine:
        reasons.append(f"min cosine host vs arm64 {row['min_cosine']:.4f} < {tol.min_cosine}")
    if "max_steps" in row:  # embeddings: the direction bound above replaces the step bound
        if not by_direction and row["max_steps"] > tol.max_steps:
            reasons.append(f"max difference {row['max_steps']} quantization steps > {tol.max_steps}")
    elif precision in DEVICE_REL_TOLERANCE:
        rel = DEVICE_REL_TOLERANCE[precision]
        limit = rel * (row.get("output_range") or 1.0)
        if row["max_abs_diff"] > limit:
            reasons.append(f"max abs diff {row['max_abs_diff']:.3g} > {rel} x output range")
    min_agree, max_drop = tol.agreement_for(precision), tol.metric_drop_for(precision)
    agree = row.get("decision_agreement")
    if agree is not None and agree < min_agree:
        reasons.append(f"decision agreement {agree:.4f} < {min_agree}")
    delta = row.get("metric_delta")
    if delta is not None and -delta > max_drop:
        reasons.append(f"{row['metric']} drop {-delta:.4f} > {max_drop}")
    keras_agree = (row.get("vs_keras") or {}).get("arm64_agreement")
    if keras_agree is not None and keras_agree < min_agree:
        reasons.append(f"arm64 vs Keras decision agreement {keras_agree:.4f} < {min_agree}")
    return reasons


# Verdicts an application states beside its answer that the two runs must also agree on:
# vibration's answer is the alarm state (it changes only after several windows), and each
# window's own verdict is ``anomalous``.
VERDICT_EXTRAS: dict[str, tuple[str, ...]] = {"vibration": ("anomalous",)}


def event_verdict(wire: Mapping[str, Any]) -> tuple[Any, ...]:
    """What arm64 and this machine must agree on for one event: its kind and its answer
    (classify's label, inspect's PASS/FAIL, face's person, vibration's alarm state), then the
    app's ``VERDICT_EXTRAS``. Scores are not compared: they differ by rounding."""
    e = Event.from_dict(wire)
    return (e.kind, e.answer, *(e.extra.get(k) for k in VERDICT_EXTRAS.get(e.app, ())))


def compare_events(arm: Sequence[Mapping[str, Any]], host: Sequence[Mapping[str, Any]],
                   show: int = 3) -> dict[str, Any]:
    """Event by event (same files, same order, no pacing: the i-th events are about the same
    input): how many agree, and the first ``show`` that do not."""
    pairs = list(zip(arm, host, strict=False))
    verdicts = [(event_verdict(a), event_verdict(h)) for a, h in pairs]
    differ = [{"event": i, "arm64": list(va), "host": list(vh)}
              for i, (va, vh) in enumerate(verdicts) if va != vh]
    return {"compared": len(pairs), "agree": len(pairs) - len(differ), "disagreements": differ[:show]}


# Commissioning learns float64 statistics of the same windows on both sides, and its thresholds
# from the same variants' scores: what may differ is rounding (numpy's FFT and libm per
# architecture, an int8 input landing on the other side of a rounding boundary), measured at
# about 1e-7 relative; 1e-4 leaves room for that and still catches a wrong window or feature.
COMMISSION_REL_TOLERANCE = 1e-4


def commissioning_figures(c: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The learned numbers of a commissioning file (``Commissioning.body()``), by name: the
    threshold of every variant and of the baseline, the feature normalisation, the baseline's
    Mahalanobis model and the level channel."""
    thr = c["thresholds"]
    out = {f"threshold {v}": np.array([t], np.float64) for v, t in thr["per_variant"].items()}
    out["threshold baseline"] = np.array([thr["baseline"]], np.float64)
    out["normalization mean"] = np.asarray(c["normalization"]["mean"], np.float64)
    out["normalization std"] = np.asarray(c["normalization"]["std"], np.float64)
    out["baseline mean"] = np.asarray(c["baseline"]["mean"], np.float64)
    out["baseline icov"] = np.asarray(c["baseline"]["icov"], np.float64)
    if c.get("levels"):
        out["levels centre"] = np.asarray(c["levels"]["centre"], np.float64)
        out["levels spread"] = np.asarray(c["levels"]["spread"], np.float64)
    return out


def compare_commissioning(arm: Mapping[str, Any], host: Mapping[str, Any],
                          rtol: float = COMMISSION_REL_TOLERANCE) -> dict[str, Any]:
    """The two sides' commissionings of the same healthy signal, figure by figure.

    Each figure's difference is relative to its largest magnitude on this machine
    (``max |arm - host| / max |host|``), so a feature whose median is near zero is judged against
    the scale of its neighbours, not divided by almost nothing. Fails on a difference beyond
    ``rtol``, a figure on one side only, another shape, or another number of windows learned from.
    """
    fa, fh = commissioning_figures(arm), commissioning_figures(host)
    rows: list[dict[str, Any]] = []
    reasons: list[str] = []
    wa, wh = arm["report"]["windows"], host["report"]["windows"]
    if wa != wh:
        reasons.append(f"learned from {wa} windows on arm64, {wh} on this machine")
    for name in sorted(set(fa) | set(fh)):
        if name not in fa or name not in fh:
            reasons.append(f"{name}: only on {'this machine' if name in fh else 'arm64'}")
            continue
        a, h = fa[name], fh[name]
        if a.shape != h.shape:
            reasons.append(f"{name}: shape {a.shape} on arm64, {h.shape} on this machine")
            continue
        scale = float(np.abs(h).max()) if h.size else 0.0
        diff = float(np.abs(a - h).max()) if h.size else 0.0
        rel = diff / scale if scale > 0 else (0.0 if diff == 0 else float("inf"))
        if not np.isfinite(a).all():
            reasons.append(f"{name}: non-finite on arm64")
        elif rel > rtol:
            reasons.append(f"{name} differs by {rel:.3g} relative > {rtol:g}")
        row: dict[str, Any] = {"name": name, "size": int(h.size), "max_abs_diff": diff, "max_rel_diff": rel}
        if h.size == 1:
            row.update(host=float(h[0]), arm64=float(a[0]))
        rows.append(row)
    return {
        "windows": {"arm64": wa, "host": wh},
        "rtol": rtol,
        "max_rel_diff": max((r["max_rel_diff"] for r in rows), default=0.0),
        "figures": rows,
        "reasons": reasons,
    }
