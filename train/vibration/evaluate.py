"""Detection figures from scores: AUROC and recall per fault file, false-alarm rate, the targets."""

from __future__ import annotations

from typing import Any

import numpy as np

from edgewise.edge.evaluate import auroc, threshold_for_false_alarm

from .fit import Scores

__all__ = ["evaluate_scores", "empirical_figures", "auroc_delta", "check_targets", "compact"]


def evaluate_scores(
    normal_test: np.ndarray, faults: dict[str, np.ndarray], threshold: float
) -> dict[str, Any]:
    """AUROC per fault file and overall, recall per file and FAR at ``threshold`` (score > t)."""
    n = np.asarray(normal_test, np.float64)
    per = {}
    for name, s in faults.items():
        s = np.asarray(s, np.float64)
        per[name] = {
            "auroc": auroc(np.r_[n, s], np.r_[np.zeros(len(n)), np.ones(len(s))]),
            "recall": float((s > threshold).mean()),
            "windows": int(len(s)),
        }
    alls = np.concatenate([np.asarray(s, np.float64) for s in faults.values()])
    return {
        "threshold": float(threshold),
        "far": float((n > threshold).mean()),
        "normal_windows": int(len(n)),
        "auroc_overall": auroc(np.r_[n, alls], np.r_[np.zeros(len(n)), np.ones(len(alls))]),
        "auroc_min": float(min(v["auroc"] for v in per.values())),
        "recall_min": float(min(v["recall"] for v in per.values())),
        "recall_overall": float((alls > threshold).mean()),
        "per_file": per,
    }


def empirical_figures(s: Scores, target_far: float) -> dict[str, float]:
    """FAR and worst recall at the plain empirical-quantile threshold of the validation scores,
    for comparison with the bundle's (extrapolated) threshold."""
    te = threshold_for_false_alarm(s["val"], target_far)
    return {
        "threshold": te,
        "far": float((s["test"] > te).mean()),
        "recall_min": float(min((f > te).mean() for f in s["faults"].values())),
    }


def auroc_delta(results: dict[str, Any], a: str, b: str) -> dict[str, float] | None:
    """AUROC of scorer ``a`` minus ``b``: overall and the largest per-file difference."""
    if a not in results or b not in results:
        return None
    per = {
        k: results[a]["per_file"][k]["auroc"] - results[b]["per_file"][k]["auroc"]
        for k in results[a]["per_file"]
    }
    return {
        "overall": results[a]["auroc_overall"] - results[b]["auroc_overall"],
        "max_abs_per_file": float(max(abs(v) for v in per.values())),
    }


def check_targets(m: dict[str, Any]) -> dict[str, Any]:
    """The issue's targets, each with the measured figure and pass/fail."""
    res = m["results"]
    t: dict[str, Any] = {}
    q = res.get("tflite_int8")
    if q:
        t["int8_auroc_min>=0.999"] = {"value": q["auroc_min"], "pass": q["auroc_min"] >= 0.999}
        t["int8_recall_min>=0.99"] = {"value": q["recall_min"], "pass": q["recall_min"] >= 0.99}
        t["int8_far<=0.01"] = {"value": q["far"], "pass": q["far"] <= 0.01}
    dl = m.get("int8_vs_float32_auroc_delta")
    if dl:
        t["int8_vs_float32_auroc_within_0.005"] = {
            "value": dl["max_abs_per_file"],
            "pass": dl["max_abs_per_file"] <= 0.005,
        }
    return t


def compact(m: dict[str, Any]) -> dict[str, Any]:
    """What goes into bundle.json metrics (the full per-file table is in report/metrics.json)."""
    return {
        "synthetic": m["synthetic"],
        "window": m["window"],
        "target_far": m["target_far"],
        "summary": {
            k: {kk: v[kk] for kk in ("auroc_min", "auroc_overall", "recall_min", "far", "threshold")}
            for k, v in m["results"].items()
        },
        "targets": m["targets"],
    }
