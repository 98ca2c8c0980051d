"""Scores of every recognition method on one face set, and each method's calibrated operating point.

One set of enrollment draws (5 photos per person make a template, the other photos probe every
template) is scored by each method on the same pairs:

- ``cosine``: the embedding's cosine similarity (flip-averaged as the bundle asks);
- ``as-norm``: that cosine, adaptive-symmetric normalised against a cohort of training identities;
- ``lbp``: the LBP-histogram affinity of the aligned crops (the classic LBPH descriptor);
- ``fused``: the mean of the cosine and the LBP affinity, each standardised by its impostor
  mean and spread on the calibration identities (two numbers per score, stored in the bundle).

Thresholds are set on identities held out of training, from impostor pairs within one source
set (``calibrate.calibrate_threshold``), and then measured on face sets the network never saw.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgewise.edge.apps.face import l2n
from edgewise.edge.apps.face.match import as_norm, cohort_stats

from .calibrate import calibrate_threshold

__all__ = ["METHODS", "FaceViews", "DrawScores", "draw_scores", "fusion_stats", "calibrate_methods",
           "unbounded_threshold", "evaluate_methods", "tar_at_far", "fusion_entry"]

METHODS = ("cosine", "as-norm", "lbp", "fused")


@dataclass
class FaceViews:
    """One face set as the methods see it: flip-averaged unit embeddings, LBP vectors, labels, names."""

    emb: np.ndarray
    lbp: np.ndarray
    y: np.ndarray
    names: list[str]


@dataclass
class DrawScores:
    """(probes, people) scores of every method for one enrollment draw, genuine and same-source masks."""

    sims: dict[str, np.ndarray]
    genuine: np.ndarray
    same: np.ndarray
    plab: np.ndarray = field(default_factory=lambda: np.zeros(0, int))


def _templates(v: np.ndarray, idx: list[np.ndarray]) -> np.ndarray:
    return l2n(np.stack([v[i].mean(0) for i in idx]))


def draw_scores(f: FaceViews, cohort: np.ndarray, fusion: dict[str, float] | None, seed: int,
                n_enroll: int = 5) -> DrawScores:
    """Every method's scores for one random draw of ``n_enroll`` enrollment photos per person.

    ``fusion`` (from ``fusion_stats``) standardises the two scores before the ``fused`` mean;
    without it the ``fused`` scores are left out (the calibration set computes it first).
    """
    rng = np.random.default_rng(seed)
    ids = [k for k in np.unique(f.y) if (f.y == k).sum() > n_enroll]
    enr, prb, plab = [], [], []
    for j, k in enumerate(ids):
        idx = rng.permutation(np.flatnonzero(f.y == k))
        enr.append(idx[:n_enroll])
        prb += idx[n_enroll:].tolist()
        plab += [j] * (len(idx) - n_enroll)
    prb_a, plab_a = np.array(prb), np.array(plab)
    t_e, t_l = _templates(f.emb, enr), _templates(f.lbp, enr)
    cos = f.emb[prb_a] @ t_e.T
    lbp = f.lbp[prb_a] @ t_l.T
    sims = {"cosine": cos, "lbp": lbp,
            "as-norm": as_norm(cos, cohort_stats(f.emb[prb_a], cohort), cohort_stats(t_e, cohort))}
    if fusion is not None:
        sims["fused"] = 0.5 * ((cos - fusion["cosine_mean"]) / fusion["cosine_sd"]
                               + (lbp - fusion["lbp_mean"]) / fusion["lbp_sd"])
    genuine = np.zeros_like(cos, dtype=bool)
    genuine[np.arange(len(plab_a)), plab_a] = True
    source = np.array([n.split("/")[0] for n in f.names])[ids]
    same = source[plab_a][:, None] == source[None, :]
    return DrawScores(sims, genuine, same, plab_a)


def fusion_stats(draws: list[DrawScores]) -> dict[str, float]:
    """Impostor mean and spread of the cosine and the LBP affinity (the fused score's standardisation)."""
    out = {}
    for m in ("cosine", "lbp"):
        imp = np.concatenate([d.sims[m][~d.genuine & d.same] for d in draws])
        out[f"{m}_mean"], out[f"{m}_sd"] = float(imp.mean()), float(max(imp.std(), 1e-6))
    return out


def calibrate_methods(cal: FaceViews, cohort: np.ndarray, fars: tuple[float, ...], seed: int = 0,
                      draws: int = 10) -> tuple[dict[str, dict[str, Any]], dict[str, float]]:
    """Per method and FAR, the threshold on the calibration identities (``draws`` draws pooled), and
    the fusion standardisation."""
    parts = [draw_scores(cal, cohort, None, seed + d) for d in range(draws)]
    fusion = fusion_stats(parts)
    parts = [draw_scores(cal, cohort, fusion, seed + d) for d in range(draws)]
    gen = np.concatenate([p.genuine for p in parts])
    same = np.concatenate([p.same for p in parts])
    out: dict[str, dict[str, Any]] = {}
    for m in METHODS:
        s = np.concatenate([p.sims[m] for p in parts])
        out[m] = {f"{far:g}": (calibrate_threshold(s, gen, far, same) if m in ("cosine", "lbp")
                               else unbounded_threshold(s, gen, far, same)) for far in fars}
    return out, fusion


def unbounded_threshold(sims: np.ndarray, genuine: np.ndarray, far: float, same: np.ndarray
                         ) -> dict[str, Any]:
    """``calibrate_threshold`` for normalised scores, which have no upper bound of 1: shifted below 1,
    calibrated, shifted back (same pairs, same rule)."""
    shift = float(sims.max()) - 0.5
    c = calibrate_threshold(sims - shift, genuine, far, same)
    return {**c, "unknown": round(c["unknown"] + shift, 6)}


def tar_at_far(sims: np.ndarray, genuine: np.ndarray, far: float = 0.01) -> float:
    """Share of genuine pairs above the score that ``far`` of this set's impostor pairs reach (an oracle
    threshold, set on the test pairs themselves: the separation, not the stored operating point)."""
    imp = np.sort(sims[~genuine])
    thr = imp[int(np.ceil((1 - far) * len(imp))) - 1]
    return float((sims[genuine] > thr).mean())


def evaluate_methods(test: FaceViews, cohort: np.ndarray, fusion: dict[str, float],
                     thresholds: dict[str, dict[str, Any]], seed: int = 0, draws: int = 5
                     ) -> dict[str, dict[str, Any]]:
    """Per method on a face set: rank-1 and TAR at FAR 1 % (means over ``draws``), and at each stored
    threshold the measured impostor-pair acceptance (pooled) against its target, and the TAR there."""
    parts = [draw_scores(test, cohort, fusion, seed + d) for d in range(draws)]
    out: dict[str, dict[str, Any]] = {}
    for m in METHODS:
        s_all = np.concatenate([p.sims[m] for p in parts])
        g_all = np.concatenate([p.genuine for p in parts])
        row: dict[str, Any] = {
            "rank1": float(np.mean([(p.sims[m].argmax(1) == p.plab).mean() for p in parts])),
            "tar_at_far_0.01": float(np.mean([tar_at_far(p.sims[m], p.genuine) for p in parts])),
            "impostor_pairs": int((~g_all).sum()),
        }
        for far, cal in thresholds[m].items():
            thr = cal["unknown"]
            row[f"far_at_{far}"] = float((s_all[~g_all] >= thr).mean())
            row[f"tar_at_{far}"] = float((s_all[g_all] >= thr).mean())
        out[m] = row
    return out


def fusion_entry(e: np.ndarray, e_mirror: np.ndarray, crops: np.ndarray, y: np.ndarray, names: list[str],
                 cohort: np.ndarray, fars: tuple[float, ...], seed: int = 0) -> dict[str, Any]:
    """What ``bundle.json`` stores under ``thresholds.fusion``: the standardisation of the cosine
    (flip-averaged) and of the LBP affinity, and the fused score's threshold per FAR, all set on the
    held-out identities (embeddings ``e`` / ``e_mirror`` and aligned ``crops`` of the same images)."""
    from edgewise.edge.apps.face.lbp import LBP_GRID, lbp_vectors

    views = FaceViews(l2n(l2n(e) + l2n(e_mirror)), lbp_vectors(crops), y, names)
    cal, stats = calibrate_methods(views, cohort, fars, seed)
    return {**stats, "tta": "flip", "lbp_grid": LBP_GRID,
            "unknown_by_far": {f: c["unknown"] for f, c in cal["fused"].items()}}
