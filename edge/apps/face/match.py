"""Who is this face: the best gallery template by cosine similarity, or 'unknown' below the
bundle's calibrated threshold.

A threshold only holds for the embeddings it was calibrated on, so it is looked up by the
mirror-averaging mode and the target false-accept rate in the bundle, never guessed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...bundle import Bundle
from .embed import bundle_tta, l2n, model_tag
from .lbp import lbp_vectors

__all__ = ["UNKNOWN", "COHORT_TOP_K", "SCORE_RULES", "match", "unknown_threshold", "cohort_stats", "as_norm",
           "bundle_cohort", "bundle_score_rule", "bundle_fusion", "lbp_tag", "Matcher", "closest_pair"]

# raw cosine, cohort-normalised (AS-norm), or fused with the LBP histograms of the crop
SCORE_RULES = ("cosine", "as-norm", "fused")

COHORT_TOP_K = 20  # cohort scores per side that AS-norm averages (the closest non-enrolled identities)

UNKNOWN = "unknown"  # the answer for a face that matches nobody closely enough


def match(emb: np.ndarray, names: list[str], templates: np.ndarray, threshold: float) -> tuple[str, float]:
    """Best cosine similarity against the gallery templates; 'unknown' below ``threshold``.

    An empty gallery answers 'unknown' with similarity NaN: there is nobody to be similar to.
    """
    if len(names) == 0:
        return UNKNOWN, float("nan")
    sims = templates @ l2n(emb).ravel()
    k = int(np.argmax(sims))
    return (names[k] if sims[k] >= threshold else UNKNOWN), float(sims[k])


def cohort_stats(vecs: np.ndarray, cohort: np.ndarray, k: int = COHORT_TOP_K) -> np.ndarray:
    """(n, 2) mean and standard deviation of each row's ``k`` highest similarities to the cohort.

    The cohort is a set of identities nobody enrolls (the training identities' mean embeddings,
    stored in the bundle). How close a face or a template comes to its nearest strangers says how
    crowded its part of the embedding space is, under its capture conditions: that is what
    adaptive score normalisation divides out.
    """
    s = np.asarray(vecs, dtype=np.float32) @ np.asarray(cohort, dtype=np.float32).T
    k = max(1, min(k, s.shape[1]))
    top = -np.partition(-s, k - 1, axis=1)[:, :k] if k < s.shape[1] else s
    return np.stack([top.mean(1), np.maximum(top.std(1), 1e-3)], axis=1)


def as_norm(sims: np.ndarray, probe_stats: np.ndarray, template_stats: np.ndarray) -> np.ndarray:
    """Adaptive symmetric score normalisation (AS-norm) of (probes, templates) cosine similarities.

    The mean of the score z-normalised against the template's top cohort scores and against the
    probe's. A stranger photographed under conditions that make every face look alike (a new
    camera, light, dataset) comes close to the cohort too, so its normalised score stays low
    where its raw cosine would pass a fixed threshold.
    """
    s = np.asarray(sims, dtype=np.float32)
    zt = (s - template_stats[None, :, 0]) / template_stats[None, :, 1]
    zp = (s - probe_stats[:, None, 0]) / probe_stats[:, None, 1]
    return 0.5 * (zt + zp)


def _far_target(bundle: Bundle, far: float | None) -> float:
    """The false-accept rate asked for, else the one the bundle was calibrated for."""
    if far is not None:
        return float(far)
    target = bundle.spec.thresholds.get("far_target")
    if target is None:
        raise ValueError(f"{bundle.path}: bundle.json thresholds have no far_target (retrain, or pass --far)")
    return float(target)


def unknown_threshold(bundle: Bundle, tta: str | None = None, far: float | None = None) -> float:
    """The calibrated unknown threshold for a TTA mode and target false-accept rate.

    A threshold only holds for the embeddings it was calibrated on: flip-averaged similarities
    run higher than plain ones, so each mode has its own. Bundles without the per-mode table
    (older trainings) give their single ``unknown`` threshold, and only for their own mode.
    """
    th = bundle.spec.thresholds
    own = bundle_tta(bundle)
    mode = own if tta is None else tta
    table = th.get("unknown_by_tta") or {}
    if mode in table:
        target = _far_target(bundle, far)
        by = {float(k): float(v) for k, v in table[mode].items()}
        if target not in by:
            raise ValueError(f"no threshold calibrated for FAR {target:g} in {bundle.path}; "
                             f"calibrated: {', '.join(f'{k:g}' for k in sorted(by))}")
        return by[target]
    if mode == own and far is None:
        single = th.get("unknown")
        if single is None:
            raise ValueError(f"{bundle.path}: bundle.json has no unknown threshold "
                             "(retrain, or pass --threshold)")
        return float(single)
    target = _far_target(bundle, far)
    raise ValueError(f"{bundle.path}: no threshold calibrated for tta={mode}, FAR {target:g} "
                     "(retrain, or pass --threshold)")


def bundle_cohort(bundle: Bundle) -> np.ndarray | None:
    """The cohort of non-enrolled identities the bundle stores (``thresholds.as_norm.cohort``), or None."""
    spec = (bundle.spec.thresholds.get("as_norm") or {})
    rel = spec.get("cohort")
    if not rel:
        return None
    c = np.load(bundle.file(rel), allow_pickle=False).astype(np.float32)
    if c.ndim != 2 or len(c) < 2:
        raise ValueError(f"{bundle.path}: {rel} must hold an (identities, dim) array; got shape {c.shape}")
    return l2n(c)


def bundle_score_rule(bundle: Bundle) -> str:
    """The score the bundle's own operating point is on: ``as-norm`` when it stores a cohort and its
    thresholds and says so (``thresholds.score``), else ``cosine`` (older and converted bundles)."""
    rule = str(bundle.spec.thresholds.get("score", "cosine"))
    if rule not in SCORE_RULES:
        raise ValueError(f"{bundle.path}: unknown thresholds.score {rule!r}; valid: {', '.join(SCORE_RULES)}")
    return rule


def lbp_tag(bundle: Bundle) -> str:
    """Gallery tag of the LBP vectors enrolled for a bundle's crops (its fused rule needs them)."""
    return f"lbp:{model_tag(bundle)}"


def bundle_fusion(bundle: Bundle) -> dict[str, Any] | None:
    """The fused rule's standardisation and thresholds (``thresholds.fusion``), or None."""
    f = bundle.spec.thresholds.get("fusion")
    return dict(f) if f else None


class Matcher:
    """The decision for one live face: the gallery's most similar person, accepted or ``unknown``.

    ``score="cosine"``: the best template's cosine similarity against the bundle's unknown
    threshold. ``score="as-norm"``: the person chosen by cosine, accepted on its AS-norm score
    against the bundle's cohort. ``score="fused"``: person and acceptance on the mean of the
    cosine and the LBP-histogram affinity of the aligned crop, each standardised by statistics
    the bundle stores (the classic LBPH descriptor and the network fail on different faces). Each
    rule has its own threshold calibrated on held-out training identities for the same target
    FAR; ``threshold`` overrides it. ``lbp_templates`` (people, D) come from the gallery, in the
    order of ``names``; the fused rule needs them and the crop of every face.
    """

    def __init__(self, bundle: Bundle, names: list[str], templates: np.ndarray, *, tta: str,
                 far: float | None = None, score: str | None = None, threshold: float | None = None,
                 lbp_templates: np.ndarray | None = None) -> None:
        self.names, self.templates = list(names), np.asarray(templates, dtype=np.float32)
        self.score = bundle_score_rule(bundle) if score is None else score
        if self.score not in SCORE_RULES:
            raise ValueError(f"unknown score rule {self.score!r}; valid: {', '.join(SCORE_RULES)}")
        self.cohort = bundle_cohort(bundle) if self.score == "as-norm" else None
        if self.score == "as-norm" and self.cohort is None:
            raise ValueError(f"{bundle.path}: the bundle stores no cohort for AS-norm (use --score cosine)")
        self.top_k = int((bundle.spec.thresholds.get("as_norm") or {}).get("top_k", COHORT_TOP_K))
        self.template_stats = (cohort_stats(self.templates, self.cohort, self.top_k)
                               if self.cohort is not None and len(self.names) else None)
        self.fusion = bundle_fusion(bundle) if self.score == "fused" else None
        self.lbp_templates = None
        if self.score == "fused":
            if self.fusion is None:
                raise ValueError(f"{bundle.path}: the bundle stores no fusion statistics "
                                 "(use --score cosine)")
            if self.names and (lbp_templates is None or len(lbp_templates) != len(self.names)):
                raise ValueError("the fused rule needs every enrolled person's LBP vectors: re-enroll them "
                                 "with this bundle (or use --score cosine)")
            self.lbp_templates = None if lbp_templates is None else np.asarray(lbp_templates, np.float32)
        if threshold is not None:
            self.threshold = float(threshold)
        elif self.score == "as-norm":
            table = (bundle.spec.thresholds.get("as_norm") or {}).get("unknown_by_tta") or {}
            self.threshold = _stored(bundle, table.get(tta), far)
        elif self.score == "fused":
            if self.fusion is not None and tta != self.fusion.get("tta", "flip"):
                raise ValueError(f"{bundle.path}: the fused rule is calibrated for tta "
                                 f"{self.fusion.get('tta', 'flip')}, not {tta}")
            self.threshold = _stored(bundle, (self.fusion or {}).get("unknown_by_far"), far)
        else:
            self.threshold = unknown_threshold(bundle, tta, far)

    def scores(self, emb: np.ndarray, crop: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(cosine, decision score) against every enrolled person for one face."""
        e = l2n(emb).ravel()
        sims = self.templates @ e
        if self.cohort is not None and self.template_stats is not None:
            p = cohort_stats(e[None], self.cohort, self.top_k)
            return sims, as_norm(sims[None], p, self.template_stats)[0]
        if self.fusion is not None and self.lbp_templates is not None:
            if crop is None:
                raise ValueError("the fused rule needs the aligned crop of the face")
            f = self.fusion
            lbp = self.lbp_templates @ lbp_vectors(np.asarray(crop)[None], int(f.get("lbp_grid", 8)))[0]
            return sims, 0.5 * ((sims - f["cosine_mean"]) / f["cosine_sd"]
                                + (lbp - f["lbp_mean"]) / f["lbp_sd"])
        return sims, sims

    def __call__(self, emb: np.ndarray, crop: np.ndarray | None = None) -> tuple[str, float, float]:
        """(person or 'unknown', decision score, cosine similarity) of one face."""
        if not self.names:
            return UNKNOWN, float("nan"), float("nan")
        sims, dec = self.scores(emb, crop)
        # the person: best cosine (as-norm only re-scales the acceptance), best fused score (fused)
        k = int(np.argmax(dec if self.score == "fused" else sims))
        score = float(dec[k])
        return (self.names[k] if score >= self.threshold else UNKNOWN), score, float(sims[k])


def _stored(bundle: Bundle, table: dict[str, Any] | None, far: float | None) -> float:
    """The threshold for the target FAR from a FAR -> threshold table of the bundle."""
    target = _far_target(bundle, far)
    by = {float(k): float(v) for k, v in (table or {}).items()}
    if target not in by:
        raise ValueError(f"{bundle.path}: no threshold for FAR {target:g} for this score rule "
                         "(use --score cosine, or retrain)")
    return by[target]


def closest_pair(names: list[str], templates: np.ndarray) -> tuple[str, str, float] | None:
    """The two enrolled people whose templates are most alike (names, cosine); None with fewer than two."""
    if len(names) < 2:
        return None
    s = np.asarray(templates, dtype=np.float32) @ np.asarray(templates, dtype=np.float32).T
    np.fill_diagonal(s, -np.inf)
    i, j = np.unravel_index(int(np.argmax(s)), s.shape)
    return names[min(i, j)], names[max(i, j)], float(s[i, j])
