"""Inspection data: the magnetic-tile loader on the real files, the generic folder layout, the split."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgewise.train.data.magnetic_tile import (
    FolderLayout,
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
    with pytest.raises(ValueError, match=r"need images in both the good and the defect .*found 1 good, 0 "):
        load_folder_dataset(tmp_path)
    with pytest.raises(ValueError, match="no such data folder"):
        load_inspection_dataset(tmp_path / "missing")


def test_split_rejects_bad_fractions(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="fractions must be three positive numbers summing to 1"):
        split_samples([], fractions=(0.5, 0.5, 0.5))


# The folder tests below use small SYNTHETIC images (flat grey squares): they check which files are
# found and how they are labelled, not what a model learns from them.


def _parts(tmp_path: Path) -> Path:
    """A user's own layout with other folder names: ok_front/, def_front/<kind>/, def_back/ (flat)."""
    _img(tmp_path / "ok_front" / "a.jpg")
    _img(tmp_path / "ok_front" / "b.jpg")
    _img(tmp_path / "def_front" / "scratch" / "c.jpg")
    _img(tmp_path / "def_back" / "d.jpg")
    return tmp_path


def test_named_good_and_defect_folders_from_flags_or_a_layout_file(tmp_path: Path) -> None:
    root = _parts(tmp_path)
    flags = FolderLayout.from_dirs(["ok_front"], ["def_front", "def_back"], base=root)
    (root / "layout.json").write_text(json.dumps({"good": "ok_front", "defect": ["def_front", "def_back"]}))
    from_file = FolderLayout.from_file(root / "layout.json")  # paths relative to the file
    assert from_file == flags
    samples = load_inspection_dataset(None, flags)
    kinds = {s.path.name: s.kind for s in samples}
    assert kinds == {"a.jpg": "good", "b.jpg": "good", "c.jpg": "scratch", "d.jpg": "def_back"}


def test_layout_file_in_yaml(tmp_path: Path) -> None:
    root = _parts(tmp_path)
    yaml_file = root / "layout.yaml"
    yaml_file.write_text("good: [ok_front]\ndefect:\n  - def_front\n  - def_back\n")
    try:
        import yaml  # noqa: F401
    except ImportError:
        with pytest.raises(ValueError, match=r"reading YAML needs PyYAML \(pip install pyyaml\), or write"):
            FolderLayout.from_file(yaml_file)
        yaml_file.write_text('{"good": ["ok_front"], "defect": ["def_front", "def_back"]}')  # JSON is YAML
    assert describe(load_folder_dataset(FolderLayout.from_file(yaml_file))) == {
        "good": 2, "def_back": 1, "scratch": 1,
    }


def test_layout_errors_name_the_folder_or_key(tmp_path: Path) -> None:
    root = _parts(tmp_path)
    with pytest.raises(ValueError, match=r"missing: no such folder \(named as a defect folder\)"):
        load_folder_dataset(FolderLayout.from_dirs(["ok_front"], ["missing"], base=root))
    with pytest.raises(ValueError, match="named both good and defect, or one inside the other"):
        load_folder_dataset(FolderLayout.from_dirs([root], ["def_back"], base=root))
    (root / "bad.json").write_text('{"good": ["ok_front"], "defects": ["def_back"]}')
    with pytest.raises(ValueError, match="keys good and defect only, found also defects"):
        FolderLayout.from_file(root / "bad.json")
    with pytest.raises(ValueError, match="expected sub-folders good/ and defect/ .* --good-dir DIR"):
        load_inspection_dataset(root)


def test_symlinked_subfolders_are_read_and_a_link_cycle_ends(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _img(data / "good" / "a.jpg")
    _img(tmp_path / "elsewhere" / "dents" / "b.jpg")
    _img(tmp_path / "elsewhere" / "dents" / "c.jpg")
    (data / "defect").mkdir()
    (data / "defect" / "dents").symlink_to(tmp_path / "elsewhere" / "dents", target_is_directory=True)
    (data / "good" / "loop").symlink_to(data / "good", target_is_directory=True)  # a cycle
    samples = load_inspection_dataset(data)
    assert describe(samples) == {"good": 1, "dents": 2}  # the cycle read good/ once


def _train_cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    code = (
        "import sys\n"
        "from edgewise.edge.cli import main\n"
        "try:\n"
        f"    rc = main(['train', 'inspect', *{args!r}])\n"
        "except SystemExit as e:\n"
        "    rc = e.code\n"
        "print('TF' if 'tensorflow' in sys.modules else 'no TF', rc)\n"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=cwd)


def test_train_inspect_refuses_a_wrong_layout_before_importing_tensorflow(tmp_path: Path) -> None:
    r = _train_cli(["--data", str(tmp_path), "--out", str(tmp_path / "x.bundle")], tmp_path)
    assert r.stdout.split() == ["no", "TF", "2"], r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgewise train inspect: error: ")
    assert "expected sub-folders good/ and defect/" in lines[0]


def test_train_inspect_accepts_named_folders(tmp_path: Path) -> None:
    """The layout is accepted: the next check (here a bad --epochs) is what stops the run, still
    before TensorFlow."""
    _parts(tmp_path)
    args = ["--data", str(tmp_path), "--good-dir", "ok_front", "--defect-dir", "def_front", "--defect-dir",
            "def_back", "--epochs", "-1", "--out", str(tmp_path / "x.bundle")]
    r = _train_cli(args, tmp_path)
    assert r.stdout.split() == ["no", "TF", "2"], r.stderr
    assert "epochs must be >= 1" in r.stderr
    r = _train_cli(["--good-dir", "ok_front", "--out", "x.bundle"], tmp_path)
    assert "--good-dir and --defect-dir go together" in r.stderr
