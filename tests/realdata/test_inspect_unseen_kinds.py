"""``--unseen-kinds``: a defect kind is kept out of training and validation without moving any
other part, so the test split measures a kind the model never saw."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgewise.edge.apps.inspect import TileConfig
from edgewise.train.data.magnetic_tile import load_magnetic_tile
from edgewise.train.inspect.data import Parts


def _paths(ss: list) -> list[str]:
    return [str(s.path) for s in ss]


def test_unseen_kind_leaves_training_and_validation_and_nothing_else_moves(data_dir: Path) -> None:
    samples = load_magnetic_tile(data_dir)
    tiling = TileConfig(tile=64, stride=32, scale=0.25)
    full = Parts.prepare(samples, tiling, seed=0, limit=3, good_only=False)
    cut = Parts.prepare(samples, tiling, seed=0, limit=3, good_only=False, unseen_kinds=("uneven",))
    assert not [s for p in ("train", "val") for s in cut.split[p] if s.kind == "uneven"]
    assert any(s.kind == "uneven" for s in cut.test)
    assert _paths(cut.test) == _paths(full.test)
    for p in ("train", "val"):
        assert _paths(cut.split[p]) == [str(s.path) for s in full.split[p] if s.kind != "uneven"]
    assert len(cut.train) == len(cut.split["train"])  # the images the model trains on


def test_an_unknown_unseen_kind_is_refused_naming_it(data_dir: Path) -> None:
    with pytest.raises(ValueError, match=r"--unseen-kinds: no defect kind scratch in the data"):
        Parts.prepare(load_magnetic_tile(data_dir), TileConfig(tile=64, stride=32, scale=0.25), seed=0,
                      limit=1, good_only=False, unseen_kinds=("scratch",))
