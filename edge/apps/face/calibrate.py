"""The operating point: open-set rank-1, and the unknown-person threshold for a target false-accept rate.

Thresholds are set on identities nobody enrolls (the identities held out of a training, or the
people a user gives ``edgewise convert --task face-embedding --calib``): each person's first
photos make a mean template (as ``edgewise enroll`` does), the others probe it and every other
template. Numpy only, so the trainer and the converter of a pretrained embedder calibrate with
this one routine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...evaluate import auroc
from .embed import TTA_MODES, l2n, tta_pair

__all__ = ["FARS", "TemplateScores", "template_scores", "tta_scores", "same_source", "calibrate_threshold",
           "calibrate_modes", "by_tta", "open_set_rank1", "pair_auc"]

FARS = (0.01, 0.001, 0.0001)


def template_scores(emb: np.ndarray, y: np.ndarray, n_enroll: int = 5, seed: int = 0,
                    probe_emb: np.ndarray | None = None
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Enroll ``n_enroll`` images per identity as a mean template; probe with the rest.

    ``probe_emb`` (same rows as ``emb``) embeds the probes differently from the enrollment
    images (flip averaging at enrollment only). Returns (similarities (probes, ids), probe
    labels (index into ids), ids, genuine mask). Identities with fewer than ``n_enroll + 1``
    images are skipped.
    """
    rng = np.random.default_rng(seed)
    ids = [k for k in np.unique(y) if (y == k).sum() > n_enroll]
    temps, probes, plab = [], [], []
    for j, k in enumerate(ids):
        idx = rng.permutation(np.flatnonzero(y == k))
        temps.append(l2n(emb[idx[:n_enroll]].mean(0)))
        probes.append((emb if probe_emb is None else probe_emb)[idx[n_enroll:]])
        plab += [j] * (len(idx) - n_enroll)
    t = np.stack(temps)
    p = np.concatenate(probes)
    sims = p @ t.T
    plab_a = np.array(plab)
    genuine = np.zeros_like(sims, dtype=bool)
    genuine[np.arange(len(plab_a)), plab_a] = True
    return sims, plab_a, np.array(ids), genuine


@dataclass
class TemplateScores:
    """``template_scores`` as named fields: (probes, ids) similarities, each probe's own id, masks."""

    sims: np.ndarray
    plab: np.ndarray
    ids: np.ndarray
    genuine: np.ndarray

    @property
    def rank1(self) -> float:
        """Share of probes most similar to their own person's template."""
        return float((self.sims.argmax(1) == self.plab).mean())


def tta_scores(e: np.ndarray, e_mirror: np.ndarray, y: np.ndarray, tta: str, seed: int = 0
               ) -> TemplateScores:
    """Template scores with 5 enrolled photos per person, embedded as the ``tta`` mode asks."""
    enr, prb = tta_pair(e, e_mirror, tta)
    return TemplateScores(*template_scores(enr, y, 5, seed, probe_emb=prb))


def same_source(names: list[str], ids: np.ndarray, plab: np.ndarray) -> np.ndarray:
    """(probes, ids) mask: probe and template come from the same source set (``UMIST/...``)."""
    source = np.array([n.split("/")[0] for n in names])
    return source[ids[plab]][:, None] == source[ids][None, :]


def calibrate_threshold(sims: np.ndarray, genuine: np.ndarray, far: float,
                        comparable: np.ndarray | None = None) -> dict[str, float]:
    """Threshold so that at most ``far`` of impostor (probe, other template) pairs are accepted.

    ``comparable`` (same shape as ``sims``) keeps only impostor pairs from the same source set:
    a stranger in front of the camera shares its lighting and background with the enrolled
    people, and pairs across two different datasets would make the threshold far too lenient.
    """
    keep = ~genuine if comparable is None else (~genuine & comparable)
    imp = np.sort(sims[keep])
    gen = sims[genuine]
    k = int(math.floor(far * len(imp)))
    thr = float(imp[len(imp) - k - 1]) + 1e-6 if k < len(imp) else float(imp[0])
    thr = min(thr, 1.0)  # cosine similarity never exceeds 1: at 1.0 nobody but exact copies match
    return {
        "unknown": round(thr, 6),
        "far_target": far,
        "far_measured": float((imp >= thr).mean()),
        "tar_at_threshold": float((gen >= thr).mean()),
        "impostor_pairs": int(len(imp)),
        "genuine_pairs": int(len(gen)),
    }


def calibrate_modes(e: np.ndarray, e_mirror: np.ndarray, y: np.ndarray, names: list[str],
                    fars: tuple[float, ...], seed: int = 0, draws: int = 10) -> dict[str, dict[str, Any]]:
    """Unknown thresholds for every TTA mode and target FAR on held-out identities.

    ``draws`` random enrollment draws are pooled (each identity's template made from different
    photos), which multiplies the impostor pairs so that a FAR of 0.01 % still rests on a few
    pairs rather than none. Impostor pairs stay within one source set (see ``calibrate_threshold``).
    """
    out: dict[str, dict[str, Any]] = {}
    for mode in TTA_MODES:
        enr, prb = tta_pair(e, e_mirror, mode)
        parts = [template_scores(enr, y, 5, seed + d, probe_emb=prb) for d in range(draws)]
        sims = np.concatenate([p[0] for p in parts])
        genuine = np.concatenate([p[3] for p in parts])
        same = np.concatenate([same_source(names, p[2], p[1]) for p in parts])
        out[mode] = {f"{far:g}": calibrate_threshold(sims, genuine, far, same) for far in fars}
        out[mode]["rank1"] = float(np.mean([(p[0].argmax(1) == p[1]).mean() for p in parts]))
    return out


def by_tta(modes: dict[str, dict[str, Any]]) -> dict[str, dict[str, float]]:
    """``calibrate_modes`` reduced to what the bundle stores: mode -> FAR -> unknown threshold."""
    return {m: {k: v["unknown"] for k, v in c.items() if k != "rank1"} for m, c in modes.items()}


def open_set_rank1(emb: np.ndarray, y: np.ndarray, n_enroll: int = 5, seed: int = 0) -> float:
    """Share of probes whose best template is their own person's (``n_enroll`` photos per template)."""
    sims, plab, _, _ = template_scores(emb, y, n_enroll, seed)
    return float((sims.argmax(1) == plab).mean())


def pair_auc(out: np.ndarray, x: np.ndarray, y: np.ndarray | None) -> float:
    """Verification AUROC of all pairs of the evaluation set (metric for the parity table).

    Similarities in float32, as the device matches (``l2n``): the bundle's figure is the one a
    device would reproduce. ``x`` is unused; the signature is ``Decider.metric_fn``'s.
    """
    if y is None:
        return float("nan")
    e = l2n(out.reshape(len(out), -1))
    s = e @ e.T
    iu = np.triu_indices(len(e), 1)
    same = (y.ravel()[:, None] == y.ravel()[None, :])[iu]
    return auroc(s[iu], same.astype(int))
