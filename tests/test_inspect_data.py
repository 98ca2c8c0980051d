"""Inspection data: the magnetic-tile loader on the real files, the generic folder layout, the split."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edgewise.train.data.magnetic_tile import (
    describe,
    load_folder_dataset,
    load_inspection_dataset,
    load_magnetic_tile,
    read_sample,
    split_samples,
)


def test_magnetic_tile_loader_finds_every_image_kind_and_mask(data_dir: Path) -> None:
    samples = load_magnetic_tile(data_dir)  # the datasets root works, not only the folder itself
    assert describe(samples) == {
        "good": 952,
        "blowhole": 115,
        "break": 85,
        "crack": 57,
        "fray": 32,
        "uneven": 103,
    }
    assert all(s.mask is not None for s in samples if s.label == 1)
    assert all(s.mask is None for s in samples if s.label == 0)
    blow = next(s for s in samples if s.kind == "blowhole")
    img, mask = read_sample(blow)
    assert img.dtype == np.uint8 and img.ndim == 2 and mask.shape == img.shape and mask.any()
    half, mhalf = read_sample(blow, scale=0.5)
    assert abs(half.shape[0] - img.shape[0] / 2) <= 1 and mhalf.shape == half.shape


def test_split_is_stratified_disjoint_and_repeatable(data_dir: Path) -> None:
    samples = load_magnetic_tile(data_dir)
    a, b = split_samples(samples, seed=0), split_samples(samples, seed=0)
    assert [s.path for s in a["test"]] == [s.path for s in b["test"]]
    paths = [set(s.path for s in a[p]) for p in ("train", "val", "test")]
    assert not (paths[0] & paths[1]) and not (paths[0] & paths[2]) and not (paths[1] & paths[2])
    assert sum(len(p) for p in paths) == len(samples)
    total = describe(samples)
    for part, frac in (("train", 0.6), ("val", 0.2), ("test", 0.2)):
        counts = describe(a[part])
        for kind, n in total.items():
            assert abs(counts[kind] - frac * n) <= 1.5, (part, kind)
    c = split_samples(samples, seed=1)
    assert [s.path for s in c["test"]] != [s.path for s in a["test"]]


def _img(path: Path, value: int = 120) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((40, 50), value, np.uint8))


def test_folder_layout_kinds_from_subfolders_and_optional_masks(tmp_path: Path) -> None:
    _img(tmp_path / "good" / "a.jpg")
    _img(tmp_path / "good" / "line2" / "b.png")
    _img(tmp_path / "defect" / "scratch" / "c.jpg")
    _img(tmp_path / "defect" / "scratch" / "c.png", 255)  # its mask (same stem, beside it)
    _img(tmp_path / "defect" / "dent" / "d.bmp")
    _img(tmp_path / "masks" / "defect" / "dent" / "d.png", 255)  # mask in the masks/ mirror
    _img(tmp_path / "defect" / "e.jpg")
    samples = load_inspection_dataset(tmp_path)
    by = {s.path.name: s for s in samples}
    assert set(by) == {"a.jpg", "b.png", "c.jpg", "d.bmp", "e.jpg"}  # c.png is a mask, not a part
    assert by["a.jpg"].kind == "good" and by["b.png"].kind == "good"
    assert by["c.jpg"].kind == "scratch" and by["c.jpg"].mask == tmp_path / "defect" / "scratch" / "c.png"
    assert by["d.bmp"].mask == tmp_path / "masks" / "defect" / "dent" / "d.png"
    assert by["e.jpg"].kind == "defect" and by["e.jpg"].mask is None
    _, m = read_sample(by["e.jpg"])
    assert not m.any()


def test_folder_layout_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="expected sub-folders good/ and defect/"):
        load_folder_dataset(tmp_path)
    _img(tmp_path / "good" / "a.jpg")
    (tmp_path / "defect").mkdir()
    with pytest.raises(
        ValueError, match=r"need images in both good/ and defect/ \(found 1 good, 0 defective\)"
    ):
        load_folder_dataset(tmp_path)
    with pytest.raises(ValueError, match="no such data folder"):
        load_inspection_dataset(tmp_path / "missing")


def test_split_rejects_bad_fractions(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="fractions must be three positive numbers summing to 1"):
        split_samples([], fractions=(0.5, 0.5, 0.5))
