"""Every method of the one summary table, scored the same way: who is it, and how sure.

A method turns enrollment photos of some people and a set of query photos into two
(queries, people) matrices: ``ident`` (the largest names the person) and ``decision`` (the
score the method's threshold applies to). The embedding with cosine uses the cosine for both;
AS-norm names the person by cosine and accepts on the cohort-normalised score, as
``edge.apps.face.match.Matcher`` does; the fused method names and accepts on the standardised
mean of the cosine and the LBP affinity; the classic ``cv2.face`` recognizers score a person by
minus their smallest distance to any of that person's enrollment photos and have no threshold.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgewise.edge.apps.face.embed import l2n
from edgewise.edge.apps.face.match import as_norm, cohort_stats

from .classic import recognizer

__all__ = ["ScoreMethod", "cosine_method", "asnorm_method", "fused_method", "classic_method",
           "open_set_summary", "six_person_summary"]


@dataclass
class ScoreMethod:
    """A named scoring rule with its operating point (None: the method has no rejection rule)."""

    name: str
    score: Any  # (enroll_idx per person, query_idx) -> (ident, decision) matrices
    threshold: float | None
    info: dict[str, Any] = field(default_factory=dict)


def _templates(v: np.ndarray, enroll: list[np.ndarray]) -> np.ndarray:
    return l2n(np.stack([v[i].mean(0) for i in enroll]))


def cosine_method(name: str, enr: np.ndarray, prb: np.ndarray, threshold: float | None) -> ScoreMethod:
    """The embedding's cosine similarity to each person's mean template (enrollment / probe embeddings)."""
    def score(enroll: list[np.ndarray], q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        s = prb[q] @ _templates(enr, enroll).T
        return s, s
    return ScoreMethod(name, score, threshold)


def asnorm_method(name: str, enr: np.ndarray, prb: np.ndarray, cohort: np.ndarray, k: int,
                  threshold: float) -> ScoreMethod:
    """Person by cosine, acceptance on the AS-norm score against the bundle's cohort."""
    def score(enroll: list[np.ndarray], q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        t = _templates(enr, enroll)
        s = prb[q] @ t.T
        return s, as_norm(s, cohort_stats(prb[q], cohort, k), cohort_stats(t, cohort, k))
    return ScoreMethod(name, score, threshold)


def fused_method(name: str, enr: np.ndarray, prb: np.ndarray, lbp: np.ndarray, fusion: dict[str, Any],
                 threshold: float | None) -> ScoreMethod:
    """Standardised mean of the cosine and the LBP affinity (statistics stored in the bundle)."""
    def score(enroll: list[np.ndarray], q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        c = prb[q] @ _templates(enr, enroll).T
        b = lbp[q] @ _templates(lbp, enroll).T
        f = 0.5 * ((c - fusion["cosine_mean"]) / fusion["cosine_sd"]
                   + (b - fusion["lbp_mean"]) / fusion["lbp_sd"])
        return f, f
    return ScoreMethod(name, score, threshold)


def classic_method(name: str, kind: str, imgs: np.ndarray) -> ScoreMethod:
    """A ``cv2.face`` recognizer: minus the smallest distance to each person's enrollment photos."""
    import cv2

    def score(enroll: list[np.ndarray], q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rec = recognizer(kind)
        idx = np.concatenate(enroll)
        lab = np.concatenate([[j] * len(e) for j, e in enumerate(enroll)]).astype(np.int32)
        rec.train([imgs[i] for i in idx], lab)
        s = np.full((len(q), len(enroll)), -np.inf)
        for r, i in enumerate(q):
            col = cv2.face.StandardCollector_create()
            rec.predict_collect(imgs[i], col)
            for j, d in col.getResults(sorted=False):
                s[r, j] = max(s[r, j], -d)
        return s, s
    return ScoreMethod(name, score, None)


def _split(labels: np.ndarray, people: list[int], n_enroll: int, rng: np.random.Generator
           ) -> tuple[list[np.ndarray], np.ndarray, np.ndarray, np.ndarray]:
    """The same draw as ``data.splits``: enrollment rows per person, probes, their person, strangers."""
    enroll, probe, truth = [], [], []
    for j, p in enumerate(people):
        idx = rng.permutation(np.flatnonzero(labels == p))
        enroll.append(idx[:n_enroll])
        probe += idx[n_enroll:].tolist()
        truth += [j] * (len(idx) - n_enroll)
    strangers = np.flatnonzero(~np.isin(labels, people))
    return enroll, np.array(probe), np.array(truth), strangers


def _tar_at_far(decision: np.ndarray, truth: np.ndarray, far: float = 0.01) -> float:
    gen = np.zeros_like(decision, dtype=bool)
    gen[np.arange(len(truth)), truth] = True
    imp = np.sort(decision[~gen])
    thr = imp[int(np.ceil((1 - far) * len(imp))) - 1]
    return float((decision[gen] > thr).mean())


def open_set_summary(m: ScoreMethod, labels: np.ndarray, repeats: int, seed: int = 0) -> dict[str, Any]:
    """All people enrolled from 5 photos, the other 5 probe: rank-1 and TAR at FAR 1 %, per split and mean.

    Split ``k`` draws with ``default_rng(seed + k)`` as ``protocols.open_set`` does, so split 0
    and the mean are the same draws as the rest of the benchmark.
    """
    ids = np.unique(labels).tolist()
    r1, tar = [], []
    for k in range(repeats):
        enroll, probe, truth, _ = _split(labels, ids, 5, np.random.default_rng(seed + k))
        ident, dec = m.score(enroll, probe)
        r1.append(float((ident.argmax(1) == truth).mean()))
        tar.append(_tar_at_far(dec, truth))
    return {"rank1": float(np.mean(r1)), "rank1_min": float(np.min(r1)), "rank1_max": float(np.max(r1)),
            "rank1_split0": r1[0], "tar_at_far_0.01": float(np.mean(tar)), "splits": repeats}


def six_person_summary(m: ScoreMethod, labels: np.ndarray, repeats: int, seed: int = 0, n_people: int = 6
                       ) -> dict[str, Any]:
    """The 6-person protocol with strangers (draws as ``protocols.six_person_protocol``), counts pooled.

    Accuracy with strangers = correct accepted probes / all accepted faces (an accepted stranger is
    an error); a method without a threshold accepts every face.
    """
    rng = np.random.default_rng(seed)
    ids = np.unique(labels)
    probes = correct = acc_probes = acc_correct = strangers = acc_strangers = 0
    for _ in range(repeats):
        people = sorted(rng.choice(ids, size=n_people, replace=False).tolist())
        enroll, probe, truth, strange = _split(labels, people, 5, rng)
        q = np.concatenate([probe, strange])
        ident, dec = m.score(enroll, q)
        pred = ident.argmax(1)
        best = dec[np.arange(len(q)), pred]
        ok = pred[: len(probe)] == truth
        accept = np.ones(len(q), bool) if m.threshold is None else best >= m.threshold
        probes += len(probe)
        correct += int(ok.sum())
        acc_probes += int(accept[: len(probe)].sum())
        acc_correct += int((ok & accept[: len(probe)]).sum())
        strangers += len(strange)
        acc_strangers += int(accept[len(probe):].sum())
    return {"accuracy_no_rejection": correct / probes,
            "accuracy_with_strangers": acc_correct / max(acc_probes + acc_strangers, 1),
            "accuracy_probes_only": acc_correct / max(acc_probes, 1),
            "enrollment_rate": acc_probes / probes, "stranger_acceptance": acc_strangers / strangers,
            "strangers_accepted": f"{acc_strangers}/{strangers}", "probes_accepted": f"{acc_probes}/{probes}",
            "threshold": m.threshold}
