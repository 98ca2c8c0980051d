"""The cohort a bundle stores for AS-norm, and the AS-norm unknown thresholds for every TTA mode.

The cohort is one mean embedding per training identity: people the network knows well and
nobody will enroll. Thresholds on the AS-norm score are set exactly like the cosine ones
(identities held out of training, 5-photo templates, impostor pairs within one source set,
ten enrollment draws pooled), so the two rules are compared at the same target FAR.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from edgewise.edge.apps.face import TTA_MODES, l2n, tta_pair
from edgewise.edge.apps.face.match import COHORT_TOP_K, as_norm, cohort_stats

from .scoring import unbounded_threshold

__all__ = ["COHORT_FILE", "cohort_templates", "asnorm_modes", "asnorm_entry", "npy_bytes"]

COHORT_FILE = "cohort.npy"


def cohort_templates(e: np.ndarray, e_mirror: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(identities, d) float32: each training identity's flip-averaged mean embedding, unit length."""
    both = l2n(l2n(e) + l2n(e_mirror))
    return l2n(np.stack([both[y == k].mean(0) for k in np.unique(y)])).astype(np.float32)


def _draw(enr: np.ndarray, prb: np.ndarray, y: np.ndarray, names: list[str], cohort: np.ndarray, seed: int,
          k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """AS-norm scores (probes, people) of one draw of 5 enrollment photos, genuine and same-source masks."""
    rng = np.random.default_rng(seed)
    ids = [i for i in np.unique(y) if (y == i).sum() > 5]
    temps, probes, plab = [], [], []
    for j, i in enumerate(ids):
        idx = rng.permutation(np.flatnonzero(y == i))
        temps.append(l2n(enr[idx[:5]].mean(0)))
        probes.append(prb[idx[5:]])
        plab += [j] * (len(idx) - 5)
    t, p, pl = np.stack(temps), np.concatenate(probes), np.array(plab)
    s = as_norm(p @ t.T, cohort_stats(p, cohort, k), cohort_stats(t, cohort, k))
    gen = np.zeros_like(s, dtype=bool)
    gen[np.arange(len(pl)), pl] = True
    src = np.array([n.split("/")[0] for n in names])[ids]
    return s, gen, src[pl][:, None] == src[None, :]


def asnorm_modes(e: np.ndarray, e_mirror: np.ndarray, y: np.ndarray, names: list[str], cohort: np.ndarray,
                 fars: tuple[float, ...], seed: int = 0, draws: int = 10, k: int = COHORT_TOP_K
                 ) -> dict[str, dict[str, Any]]:
    """Per TTA mode and FAR, the AS-norm threshold on held-out identities (``draws`` draws pooled)."""
    out: dict[str, dict[str, Any]] = {}
    for mode in TTA_MODES:
        enr, prb = tta_pair(e, e_mirror, mode)
        parts = [_draw(l2n(enr), l2n(prb), y, names, cohort, seed + d, k) for d in range(draws)]
        s, gen, same = (np.concatenate([p[i] for p in parts]) for i in range(3))
        out[mode] = {f"{far:g}": unbounded_threshold(s, gen, far, same) for far in fars}
    return out


def asnorm_entry(modes: dict[str, dict[str, Any]], k: int = COHORT_TOP_K) -> dict[str, Any]:
    """What ``bundle.json`` stores under ``thresholds.as_norm``."""
    return {"cohort": COHORT_FILE, "top_k": k,
            "unknown_by_tta": {m: {f: c["unknown"] for f, c in t.items()} for m, t in modes.items()}}


def npy_bytes(a: np.ndarray) -> bytes:
    """An array as the bytes of a .npy file (for the bundle writer)."""
    buf = io.BytesIO()
    np.save(buf, np.asarray(a, dtype=np.float32), allow_pickle=False)
    return buf.getvalue()
