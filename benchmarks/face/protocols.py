"""The two recognition protocols: the reference's 6-person table (counts pooled over random
draws, strangers included) and the open set of all 40 ORL people (rank-1, TAR at a FAR, ROC)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from edgewise.edge.evaluate import percentiles, roc_curve

from .classic import CLASSIC, recognizer
from .data import splits, templates

__all__ = ["six_person_protocol", "open_set"]


class _Tally:
    """Pooled counts for one table row."""

    def __init__(self) -> None:
        self.probes = self.correct = self.accepted_probes = self.accepted_correct = 0
        self.strangers = self.accepted_strangers = 0
        self.has_rejection = False
        self.times: list[float] = []

    def add(self, pred: np.ndarray, truth: np.ndarray, accept: np.ndarray | None,
            s_accept: np.ndarray | None) -> None:
        ok = pred == truth
        self.probes += len(truth)
        self.correct += int(ok.sum())
        if accept is not None and s_accept is not None:
            self.has_rejection = True
            self.accepted_probes += int(accept.sum())
            self.accepted_correct += int((ok & accept).sum())
            self.strangers += len(s_accept)
            self.accepted_strangers += int(s_accept.sum())

    def row(self) -> dict[str, Any]:
        r: dict[str, Any] = {"probes": self.probes,
                             "accuracy_no_rejection": self.correct / max(self.probes, 1)}
        if self.has_rejection:
            acc = self.accepted_probes + self.accepted_strangers
            r.update(
                accuracy_with_rejection=self.accepted_correct / max(acc, 1),
                # the reference's own reading: no strangers, correct / accepted enrolled probes
                accuracy_with_rejection_probes_only=self.accepted_correct / max(self.accepted_probes, 1),
                enrollment_rate=self.accepted_probes / max(self.probes, 1),
                accepted=f"{self.accepted_probes}/{self.probes}",
                strangers=self.strangers,
                strangers_accepted=self.accepted_strangers,
                false_accept_rate=self.accepted_strangers / max(self.strangers, 1),
            )
        if self.times:
            r["classification_ms_p50"] = percentiles(self.times)["p50_ms"]
        return r


def six_person_protocol(embs: dict[str, Any], thresholds: dict[str, float], aligned: np.ndarray,
                        unaligned: np.ndarray, labels: np.ndarray, *, repeats: int = 10, n_people: int = 6,
                        n_enroll: int = 5, p0: float = 0.85, seed: int = 0) -> dict[str, dict[str, Any]]:
    """The reference table's protocol, ``repeats`` random draws of the 6 people, counts pooled.

    ``embs[name]`` is one (n, d) array, or an (enrollment, probe) pair of arrays over the same
    images when enrollment and probes are embedded differently (``tta_pair``). The closed-set
    classifier is trained on the first entry's enrollment embeddings.
    """
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(seed)
    ids = np.unique(labels)
    tallies: dict[str, _Tally] = {}

    def t(name: str) -> _Tally:
        return tallies.setdefault(name, _Tally())

    for _ in range(repeats):
        people = sorted(rng.choice(ids, size=n_people, replace=False).tolist())
        enroll, probe, strangers = splits(labels, people, n_enroll, rng)
        truth = np.array([people.index(labels[i]) for i in probe])
        for name, e in embs.items():
            en_e, pr_e = e if isinstance(e, tuple) else (e, e)
            temps = templates(en_e, labels, people, enroll)
            ps = pr_e[probe] @ temps.T
            ss = pr_e[strangers] @ temps.T
            t(f"embedding {name}").add(ps.argmax(1), truth, ps.max(1) >= thresholds[name],
                                       ss.max(1) >= thresholds[name])
        base = embs[next(iter(embs))]  # closed-set classifier on the first (float32) embedding
        en_e, pr_e = base if isinstance(base, tuple) else (base, base)
        y_en = [people.index(labels[i]) for i in enroll]
        clf = LogisticRegression(C=10.0, max_iter=2000).fit(en_e[enroll], y_en)
        pp, sp = clf.predict_proba(pr_e[probe]), clf.predict_proba(pr_e[strangers])
        t(f"closed-set CNN classifier, p0={p0}").add(pp.argmax(1), truth, pp.max(1) >= p0, sp.max(1) >= p0)
        for kind in CLASSIC:
            for al, imgs in (("aligned", aligned), ("unaligned", unaligned)):
                rec = recognizer(kind)
                rec.train([imgs[i] for i in enroll], np.array(y_en, np.int32))
                pred = []
                for i in probe:
                    tm = time.perf_counter()
                    pred.append(rec.predict(imgs[i])[0])
                    t(f"{kind} {al}").times.append(time.perf_counter() - tm)
                t(f"{kind} {al}").add(np.array(pred), truth, None, None)
    return {k: v.row() for k, v in tallies.items()}


def open_set(emb: np.ndarray, labels: np.ndarray, n_enroll: int = 5, far: float = 0.01, seed: int = 0,
             threshold: float | None = None, probe_emb: np.ndarray | None = None) -> dict[str, Any]:
    """All identities enrolled from ``n_enroll`` images: rank-1, TAR at ``far``, ROC points.

    ``probe_emb`` embeds the probes differently from the enrollment images (same rows as ``emb``).
    """
    rng = np.random.default_rng(seed)
    ids = np.unique(labels).tolist()
    enroll, probe, _ = splits(labels, ids, n_enroll, rng)
    temps = templates(emb, labels, ids, enroll)
    sims = (emb if probe_emb is None else probe_emb)[probe] @ temps.T
    truth = np.array([ids.index(labels[i]) for i in probe])
    gen = np.zeros_like(sims, dtype=bool)
    gen[np.arange(len(truth)), truth] = True
    imp = np.sort(sims[~gen])
    thr = float(imp[int(np.ceil((1 - far) * len(imp))) - 1])
    fpr, tpr, _ = roc_curve(sims.ravel(), gen.ravel().astype(int))
    out = {
        "identities": len(ids), "probes": len(probe),
        "rank1": float((sims.argmax(1) == truth).mean()),
        f"tar_at_far_{far:g}": float((sims[gen] > thr).mean()),
        "threshold_at_far": thr,
        "_roc": (sims.ravel(), gen.ravel().astype(int)),
        "_fpr_tpr": (fpr, tpr),
    }
    if threshold is not None:
        out["at_bundle_threshold"] = {"threshold": threshold, "tar": float((sims[gen] >= threshold).mean()),
                                      "far": float((sims[~gen] >= threshold).mean())}
    return out
