"""Who is this face: the best gallery template by cosine similarity, or 'unknown' below the
bundle's calibrated threshold.

A threshold only holds for the embeddings it was calibrated on, so it is looked up by the
mirror-averaging mode and the target false-accept rate in the bundle, never guessed.
"""

from __future__ import annotations

import numpy as np

from ...bundle import Bundle
from .embed import bundle_tta, l2n

__all__ = ["UNKNOWN", "match", "unknown_threshold"]

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
