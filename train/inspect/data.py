"""The parts a training sees: split, subset, scaled training images, evaluation tiles.

Every image goes through the edge's own preprocessing (``condition``/``prepare_part``), so
what the model is trained and judged on is what the device will feed it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgewise.edge.apps.inspect import TileConfig, condition, make_tiles

from ..data.magnetic_tile import GOOD, FolderLayout, Sample, describe, read_sample, split_samples
from .crops import Image
from .scores import tile_sets

__all__ = ["Parts", "load_images", "limit_split", "dataset_name", "check_unseen_kinds"]

SPLIT_FRACTIONS = (0.6, 0.2, 0.2)  # split_samples' default: train / validation / test


def load_images(samples: list[Sample], tiling: TileConfig) -> list[Image]:
    """Scaled (and normalised, as on the device) images with their masks and labels."""
    out = []
    for s in samples:
        img, mask = read_sample(s, tiling.scale)
        out.append((condition(img, tiling.norm), mask, s.label))
    return out


def check_unseen_kinds(samples: list[Sample], kinds: tuple[str, ...] | list[str]) -> None:
    """ValueError naming any ``--unseen-kinds`` entry that is not a defect kind of the data."""
    missing = set(kinds) - {s.kind for s in samples if s.label}
    if missing:
        raise ValueError(f"--unseen-kinds: no defect kind {', '.join(sorted(missing))} in the data")


def limit_split(split: dict[str, list[Sample]], n: int | None) -> dict[str, list[Sample]]:
    """At most ``n`` parts per defect kind (``3 n`` good parts) in every split part; quick runs."""
    if not n:
        return split
    out = {}
    for part, ss in split.items():
        keep: list[Sample] = []
        for k in sorted({s.kind for s in ss}):
            keep.extend([s for s in ss if s.kind == k][: (n * 3 if k == GOOD else n)])
        out[part] = keep
    return out


def dataset_name(data: str | Path | None, layout: FolderLayout | None) -> str:
    """What the bundle's config calls the data: the --data folder's name, else the named folders."""
    if data is not None:
        return Path(data).name
    if layout is None:
        return "-"
    return ", ".join(p.name for p in (*layout.good, *layout.defect))


@dataclass
class Parts:
    """One split of the parts and what training and evaluation read from it.

    ``train`` holds the scaled training images the mode may see (good-only: good parts only,
    not even int8 calibration sees a defective one); validation and test parts are tiled as on
    the device.
    """

    split: dict[str, list[Sample]]
    train: list[Image]
    val_tiles: list[np.ndarray]
    test_tiles: list[np.ndarray]

    @classmethod
    def prepare(cls, samples: list[Sample], tiling: TileConfig, seed: int, limit: int | None,
                good_only: bool, pool_val: bool = False, unseen_kinds: tuple[str, ...] = ()) -> Parts:
        """The seeded split; ``pool_val``: the validation parts join the training parts (the
        threshold then comes from out-of-fold scores), the test parts stay held out as always.
        ``unseen_kinds``: defect kinds removed from training and validation after the split, so
        the test split (unchanged) holds a kind the model never saw, and every other part is
        where it would be without the option."""
        split = limit_split(split_samples(samples, seed, SPLIT_FRACTIONS), limit)
        check_unseen_kinds(samples, unseen_kinds)
        if unseen_kinds:
            split = {p: (ss if p == "test" else [s for s in ss if s.kind not in unseen_kinds])
                     for p, ss in split.items()}
        if pool_val:
            split = {"train": split["train"] + split["val"], "val": [], "test": split["test"]}
        train = [s for s in split["train"] if s.label == 0] if good_only else split["train"]
        return cls(split, load_images(train, tiling), tile_sets(split["val"], tiling),
                   tile_sets(split["test"], tiling))

    @property
    def val(self) -> list[Sample]:
        return self.split["val"]

    @property
    def test(self) -> list[Sample]:
        return self.split["test"]

    @property
    def y_val(self) -> np.ndarray:
        return np.array([s.label for s in self.val])

    @property
    def y_test(self) -> np.ndarray:
        return np.array([s.label for s in self.test])

    def good_train_tiles(self, tiling: TileConfig) -> np.ndarray:
        """Every tile of the good training parts (uint8): the image score is a max over tiles,
        so one good tile that looks defective fails a whole good part."""
        return np.concatenate([make_tiles(im, tiling)[0] for im, _, lab in self.train if lab == 0])

    def every_train_tile(self, tiling: TileConfig) -> np.ndarray:
        return np.concatenate([make_tiles(im, tiling)[0] for im, _, _ in self.train])

    def calibration_images(self, n: int) -> list[Image]:
        """About ``n`` training images, evenly spread over the training parts."""
        return self.train[:: max(1, len(self.train) // n)]

    def describe(self) -> dict[str, dict[str, int]]:
        return {p: describe(v) for p, v in self.split.items()}
