"""K folds by part (never by tile), stratified by defect kind.

Every tile of a part lands in the part's fold, so no part is scored by a model that trained on
any of its tiles; each kind is spread evenly over the folds, so every fold model sees every
kind and every fold scores some of each.

>>> from edgewise.train.data.magnetic_tile import Sample
>>> parts = [Sample(Path(f"{i}.jpg"), "good" if i % 2 else "crack") for i in range(8)]
>>> sorted(len(f) for f in fold_parts(parts, 4, seed=0))
[2, 2, 2, 2]
"""

from __future__ import annotations

from pathlib import Path  # noqa: F401 - used by the doctest

import numpy as np

from ..data.magnetic_tile import Sample

__all__ = ["fold_parts"]


def fold_parts(samples: list[Sample], k: int, seed: int = 0) -> list[list[int]]:
    """Indices into ``samples`` of each of ``k`` folds: each kind shuffled with ``seed`` and dealt
    round-robin (the fold that is shortest overall gets the next part), so fold sizes differ by
    at most one per kind."""
    if k < 2:
        raise ValueError(f"--folds must be at least 2, got {k}")
    kinds = sorted({s.kind for s in samples})
    for kind in kinds:
        n = sum(1 for s in samples if s.kind == kind)
        if n < k and kind != "good":
            raise ValueError(f"--folds {k}: kind {kind} has only {n} parts to spread over {k} folds")
    rng = np.random.default_rng(seed)
    folds: list[list[int]] = [[] for _ in range(k)]
    start = 0
    for kind in kinds:
        idx = [i for i, s in enumerate(samples) if s.kind == kind]
        for j, i in enumerate(rng.permutation(idx)):
            folds[(start + j) % k].append(int(i))
        start = (start + len(idx)) % k  # the next kind starts where this one stopped: sizes stay even
    return [sorted(f) for f in folds]
