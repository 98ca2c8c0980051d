"""K folds by part: no part in two folds, every part in one, each kind spread evenly."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from edgewise.train.data.magnetic_tile import Sample
from edgewise.train.inspect.config import InspectConfig
from edgewise.train.inspect.folds import fold_parts


def _samples() -> list[Sample]:
    counts = {"good": 57, "blowhole": 23, "crack": 11, "fray": 5}
    return [Sample(Path(f"{k}/{i}.jpg"), k) for k, n in counts.items() for i in range(n)]


@pytest.mark.parametrize("k", [2, 4, 5])
def test_every_part_is_in_exactly_one_fold(k: int) -> None:
    parts = _samples()
    folds = fold_parts(parts, k, seed=1)
    assert len(folds) == k
    flat = [i for f in folds for i in f]
    assert sorted(flat) == list(range(len(parts)))  # no part in two folds, none left out
    paths = [{parts[i].path for i in f} for f in folds]
    assert all(not (a & b) for j, a in enumerate(paths) for b in paths[j + 1 :])


def test_each_kind_is_spread_evenly_and_the_split_is_seeded() -> None:
    parts = _samples()
    folds = fold_parts(parts, 4, seed=0)
    for kind in ("good", "blowhole", "crack", "fray"):
        per = [Counter(parts[i].kind for i in f)[kind] for f in folds]
        assert max(per) - min(per) <= 1, (kind, per)
    sizes = [len(f) for f in folds]
    assert max(sizes) - min(sizes) <= 1
    assert fold_parts(parts, 4, seed=0) == folds
    assert fold_parts(parts, 4, seed=1) != folds


def test_too_few_parts_of_a_kind_or_one_fold_is_refused() -> None:
    with pytest.raises(ValueError, match="fray has only 5 parts"):
        fold_parts(_samples(), 6)
    with pytest.raises(ValueError, match="at least 2"):
        fold_parts(_samples(), 1)


def test_fold_settings_are_checked_before_any_training() -> None:
    assert InspectConfig(folds=4).folds == 4
    for kw, msg in (({"folds": 1}, "at least 2"), ({"folds": 4, "mode": "good-only"}, "supervised mode"),
                    ({"min_recall_per_kind": "0.9"}, "needs --folds"),
                    ({"folds": 4, "min_recall_per_kind": "crack=2"}, "in \\(0, 1\\)"),
                    ({"folds": 4, "recall": 1.0}, "lower bound")):
        with pytest.raises(ValueError, match=msg):
            InspectConfig(**kw)
