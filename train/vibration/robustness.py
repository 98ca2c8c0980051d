"""The robustness table: false alarms and recall per perturbation, model and baseline side by side.

Held-out healthy signal and every fault file go through each ``perturb.Perturbation``, then
through the device's feature code and each scorer at its bundle threshold. Per perturbation
and scorer: the false-alarm rate on the healthy windows, recall per fault file, the margins
(highest healthy score and lowest fault score over the threshold) and, for the autoencoder,
the largest share one feature has of a flagged window's score (``band_share``).

>>> rows = robustness(healthy, faults, setup, scorers)        # doctest: +SKIP
>>> rows[0]["scorers"]["tflite_int8"]["far"]                  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgewise.edge.apps.vibration import FeatureExtractor, frame_signal, robust_z
from edgewise.edge.progress import log

from .data import window_features
from .perturb import Perturbation, perturbations

__all__ = ["ScoreSetup", "Scorer", "robustness", "band_share", "model_scorer", "baseline_scorer",
           "robustness_targets"]

# (standardized, capped features z; raw indicators) -> (scores, per-window largest feature share or None)
ScoreFn = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray | None]]


@dataclass(frozen=True)
class Scorer:
    """A scorer at its bundle threshold."""

    score: ScoreFn
    threshold: float


@dataclass(frozen=True)
class ScoreSetup:
    """How windows become model inputs: the device's extractor, the bundle's centre/spread/cap."""

    fx: FeatureExtractor
    centre: np.ndarray
    spread: np.ndarray
    hop_normal: int
    hop_fault: int

    def inputs(self, x: np.ndarray, hop: int) -> tuple[np.ndarray, np.ndarray]:
        f, ind = window_features(self.fx, frame_signal(x, self.fx.window, hop))
        return robust_z(f, self.centre, self.spread, self.fx.cfg.z_cap), ind


def band_share(z: np.ndarray, recon: np.ndarray) -> np.ndarray:
    """Per window, the largest share one feature has of the squared reconstruction error."""
    d2 = (np.asarray(z, np.float64) - np.asarray(recon, np.float64)) ** 2
    return d2.max(axis=1) / np.maximum(d2.sum(axis=1), 1e-30)


def model_scorer(predict: Callable[[np.ndarray], np.ndarray], threshold: float, chunk: int = 256) -> Scorer:
    """The autoencoder's reconstruction error (and band shares) under ``predict``."""

    def score(z: np.ndarray, ind: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        if len(z) == 0:
            return np.empty(0), np.empty(0)
        rec = np.concatenate([np.asarray(predict(z[i : i + chunk])) for i in range(0, len(z), chunk)])
        d = np.asarray(z, np.float64) - rec
        return (d * d).mean(axis=1), band_share(z, rec)

    return Scorer(score, float(threshold))


def baseline_scorer(maha: Any, threshold: float) -> Scorer:
    """The classical Mahalanobis baseline on the raw indicators."""
    return Scorer(lambda z, ind: (maha.score(ind), None), float(threshold))


def _figures(sn: np.ndarray, faults: dict[str, tuple[np.ndarray, np.ndarray | None]], t: float) -> dict:
    allf = np.concatenate([s for s, _ in faults.values()]) if faults else np.empty(0)
    out: dict[str, Any] = {
        "far": float((sn > t).mean()) if len(sn) else None,
        "false_alarms": int((sn > t).sum()),
        "healthy_windows": int(len(sn)),
        "healthy_max_over_threshold": float(sn.max() / t) if len(sn) else None,
        "recall": {k: float((s > t).mean()) for k, (s, _) in faults.items()},
        "fault_min_over_threshold": float(allf.min() / t) if len(allf) else None,
    }
    out["recall_min"] = min(out["recall"].values()) if faults else None
    shares = [sh[s > t] for s, sh in faults.values() if sh is not None]
    if shares:
        sh = np.concatenate(shares)
        out["band_share_max"] = float(sh.max()) if len(sh) else None
        out["band_share_median"] = float(np.median(sh)) if len(sh) else None
    return out


def robustness(
    healthy: np.ndarray | list[np.ndarray],
    faults: dict[str, np.ndarray],
    setup: ScoreSetup,
    scorers: dict[str, Scorer],
    *,
    quick: bool = False,
    seed: int = 0,
    quiet: bool = True,
) -> list[dict[str, Any]]:
    """One row per perturbation: per scorer the FAR on ``healthy`` (held-out signal, or several
    recordings, each perturbed and windowed on its own, at ``hop_normal``), recall per fault
    file (``hop_fault``), margins and band shares."""
    parts = [healthy] if isinstance(healthy, np.ndarray) else list(healthy)
    rows = []
    for i, p in enumerate(perturbations(quick)):
        hz = [setup.inputs(p.apply(x, seed + 100 * k + i), setup.hop_normal) for k, x in enumerate(parts)
              if len(x)] or [setup.inputs(np.empty(0), setup.hop_normal)]  # none: recall only
        zh, ih = np.concatenate([z for z, _ in hz]), np.concatenate([d for _, d in hz])
        fz = {k: setup.inputs(p.apply(x, seed + 1000 * (j + 1) + i), setup.hop_fault)
              for j, (k, x) in enumerate(faults.items())}
        row: dict[str, Any] = {"perturbation": p.name, "kind": p.kind, "value": p.value, "scorers": {}}
        for name, sc in scorers.items():
            sn, _ = sc.score(zh, ih)
            row["scorers"][name] = _figures(sn, {k: sc.score(z, ind) for k, (z, ind) in fz.items()},
                                            sc.threshold)
        rows.append(row)
        log(f"robustness: {p.name}: " + ", ".join(
            f"{k} FAR {v['far'] if v['far'] is None else round(v['far'], 3)} recall_min "
            f"{v['recall_min'] if v['recall_min'] is None else round(v['recall_min'], 3)}"
            for k, v in row["scorers"].items()), quiet=quiet)
    return rows


def _target_row(p: Perturbation) -> bool:
    """The issue's target conditions: clean, gain 0.8..1.25x, 20 dB SNR."""
    return p.kind == "clean" or (p.kind == "gain" and 0.8 <= p.value <= 1.25) or (
        p.kind == "snr_db" and p.value == 20.0)


def robustness_targets(rows: list[dict[str, Any]], scorer: str = "tflite_int8") -> dict[str, Any]:
    """FAR <= 1 % and recall >= 0.99 on every fault file, under gain 0.8-1.25x and 20 dB SNR."""
    t: dict[str, Any] = {}
    for r in rows:
        if scorer not in r["scorers"] or not _target_row(Perturbation(r["kind"], r["value"])):
            continue
        s = r["scorers"][scorer]
        if s["far"] is not None:  # healthy recordings were scored
            t[f"{scorer} FAR <= 0.01 ({r['perturbation']})"] = {"value": s["far"], "pass": s["far"] <= 0.01}
        if s["recall_min"] is not None:  # fault recordings were scored
            t[f"{scorer} recall >= 0.99 every fault file ({r['perturbation']})"] = {
                "value": s["recall_min"], "pass": s["recall_min"] >= 0.99}
    return t
