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

__all__ = ["quantized_steps", "compare_outputs", "judge", "event_verdict", "compare_events", "VERDICT_EXTRAS"]


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
