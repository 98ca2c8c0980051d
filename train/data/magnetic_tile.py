"""Inspection datasets: the public magnetic-tile set and a generic good/ vs defect/ folder layout.

Magnetic tile (Huang, Qiu, Yuan, The Visual Computer 2020), as published: ``MT_<Kind>/Imgs/X.jpg``
with a pixel mask ``X.png`` (white = defect) beside it; ``MT_Free`` holds the good parts.

Generic layout for users' own parts::

    DIR/good/*.jpg                      good parts (sub-folders allowed)
    DIR/defect/<kind>/*.jpg             defective parts, one sub-folder per defect kind
    DIR/defect/*.jpg                    ... or flat (kind "defect")
    masks (optional): X.png beside X.jpg, X_mask.png, or DIR/masks/<same relative path>.png

Folders with other names (``ok_front/``, ``def_front/``, several of each) are named by a
``FolderLayout``: from flags (``--good-dir``, ``--defect-dir``) or a small JSON/YAML file
(``good: [...]``, ``defect: [...]``). A flat defect folder's kind is its own name. Symbolic
links to folders and files are followed (each real folder is read once).

``split_samples`` is a stratified (per kind) train/validation/test split; the seed and the
file lists go into the bundle so every figure can be reproduced on the same held-out parts.

>>> samples = load_inspection_dataset("data/inspection/magnetic_tile")   # doctest: +SKIP
>>> split = split_samples(samples, seed=0)                                # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "Sample",
    "GOOD",
    "FolderLayout",
    "find_magnetic_tile",
    "load_magnetic_tile",
    "load_folder_dataset",
    "load_inspection_dataset",
    "split_samples",
    "read_sample",
    "describe",
]

GOOD = "good"
_IMG = {".jpg", ".jpeg", ".png", ".bmp", ".pgm", ".tif", ".tiff"}
log = logging.getLogger("edgewise.train")


@dataclass(frozen=True)
class Sample:
    """One part image: its file, optional defect mask, defect kind ("good" for good parts)."""

    path: Path
    kind: str
    mask: Path | None = None

    @property
    def label(self) -> int:
        return 0 if self.kind == GOOD else 1


def find_magnetic_tile(root: str | Path) -> Path | None:
    """The magnetic-tile folder under ``root`` (the folder itself, or a datasets root)."""
    root = Path(root)
    for cand in (root, root / "magnetic_tile", root / "inspection" / "magnetic_tile"):
        if (cand / "MT_Free").is_dir():
            return cand
    return None


def load_magnetic_tile(root: str | Path) -> list[Sample]:
    """All images of the magnetic-tile set with their masks; kinds from the folder names."""
    base = find_magnetic_tile(root)
    if base is None:
        raise ValueError(f"{root}: no magnetic-tile dataset (expected MT_Free/Imgs, MT_<Kind>/Imgs)")
    out: list[Sample] = []
    for d in sorted(base.glob("MT_*")):
        imgs = d / "Imgs" if (d / "Imgs").is_dir() else d
        kind = GOOD if d.name == "MT_Free" else d.name[3:].lower()
        for p in sorted(imgs.glob("*.jpg")):
            m = p.with_suffix(".png")
            out.append(Sample(p, kind, m if m.is_file() and kind != GOOD else None))
    if not any(s.label for s in out) or all(s.label for s in out):
        raise ValueError(f"{base}: need both good (MT_Free) and defective images")
    return out


def _mask_for(img: Path, root: Path) -> Path | None:
    cands = [
        img.with_name(img.stem + "_mask.png"),
        root / "masks" / img.relative_to(root).with_suffix(".png"),
    ]
    if img.suffix.lower() != ".png":
        cands.insert(0, img.with_suffix(".png"))
    return next((c for c in cands if c.is_file()), None)


def _is_mask(p: Path) -> bool:
    return p.stem.endswith("_mask") or (
        p.suffix.lower() == ".png"
        and any(p.with_suffix(s).is_file() for s in (".jpg", ".jpeg", ".bmp", ".tif", ".tiff"))
    )


@dataclass(frozen=True)
class FolderLayout:
    """Which folders hold good parts and which hold defective ones (one or more of each)."""

    good: tuple[Path, ...]
    defect: tuple[Path, ...]

    @classmethod
    def default(cls, root: str | Path) -> FolderLayout:
        """``root/good`` and ``root/defect``: the layout used when nothing else is named."""
        root = Path(root)
        if not (root / "good").is_dir() or not (root / "defect").is_dir():
            raise ValueError(
                f"{root}: expected sub-folders good/ and defect/ (or the magnetic-tile layout MT_Free/, "
                "MT_<Kind>/); name other folders with --good-dir DIR --defect-dir DIR or --layout FILE"
            )
        return cls((root / "good",), (root / "defect",))

    @classmethod
    def from_dirs(
        cls, good: list[str | Path], defect: list[str | Path], base: str | Path | None = None
    ) -> FolderLayout:
        """Named folders; relative ones are taken below ``base`` (the --data folder) when given."""
        if not good or not defect:
            raise ValueError("name at least one good and one defect folder (--good-dir DIR --defect-dir DIR)")

        def where(d: str | Path) -> Path:
            d = Path(d).expanduser()
            return d if d.is_absolute() or base is None else Path(base) / d

        return cls(tuple(where(d) for d in good), tuple(where(d) for d in defect))

    @classmethod
    def from_file(cls, path: str | Path) -> FolderLayout:
        """A JSON or YAML mapping ``{"good": [dirs], "defect": [dirs]}``; paths relative to the file."""
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as e:
            raise ValueError(f"{path}: cannot read the layout file ({e.strerror or e})") from None
        spec = _parse_layout(path, text)
        if not isinstance(spec, dict) or set(spec) - {"good", "defect"}:
            extra = sorted(set(spec) - {"good", "defect"}) if isinstance(spec, dict) else None
            raise ValueError(
                f"{path}: expected a mapping with keys good and defect"
                + (f" only, found also {', '.join(map(str, extra))}" if extra else "")
            )
        lists = {}
        for key in ("good", "defect"):
            v = spec.get(key)
            v = [v] if isinstance(v, str) else v
            if not v or not isinstance(v, list) or not all(isinstance(d, str) and d for d in v):
                raise ValueError(f"{path}: '{key}' must name one folder or a list of folders")
            lists[key] = v
        return cls.from_dirs(lists["good"], lists["defect"], base=path.parent)

    def check(self) -> None:
        """Every folder exists, and none holds another's parts (a part would count twice)."""
        for role, dirs in (("good", self.good), ("defect", self.defect)):
            for d in dirs:
                if not d.is_dir():
                    raise ValueError(f"{d}: no such folder (named as a {role} folder)")
        for g in self.good:
            for d in self.defect:
                rg, rd = g.resolve(), d.resolve()
                if rg == rd or rg in rd.parents or rd in rg.parents:
                    raise ValueError(f"{g} and {d}: named both good and defect, or one inside the other")


def _parse_layout(path: Path, text: str) -> Any:
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            try:
                return json.loads(text)  # JSON is valid YAML: no PyYAML needed for it
            except ValueError:
                raise ValueError(
                    f"{path}: reading YAML needs PyYAML (pip install pyyaml), or write the same as JSON: "
                    '{"good": ["ok_front"], "defect": ["def_front"]}'
                ) from None
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ValueError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    try:
        return json.loads(text)
    except ValueError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None


def _walk_images(folder: Path, broken: list[Path]) -> list[Path]:
    """Image files below ``folder``, following symbolic links to folders (each real folder once,
    so a link back up the tree cannot loop); dangling links are collected in ``broken``."""
    seen: set[str] = set()
    out: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames.sort()
        for name in filenames:
            p = Path(dirpath, name)
            if p.suffix.lower() not in _IMG:
                continue
            if not p.is_file():
                broken.append(p)
            elif not _is_mask(p):
                out.append(p)
    return sorted(out)


def load_folder_dataset(root: str | Path | FolderLayout) -> list[Sample]:
    """Good vs defective parts: ``root/good`` + ``root/defect``, or the folders a ``FolderLayout``
    names. Defect kinds come from the sub-folders of a defect folder (a flat one: its own name);
    masks optional."""
    layout = root if isinstance(root, FolderLayout) else FolderLayout.default(root)
    layout.check()
    broken: list[Path] = []
    out = [Sample(p, GOOD) for g in layout.good for p in _walk_images(g, broken)]
    for bad in layout.defect:
        for p in _walk_images(bad, broken):
            rel = p.relative_to(bad)
            kind = rel.parts[0].lower() if len(rel.parts) > 1 else bad.name.lower()
            out.append(Sample(p, kind, _mask_for(p, bad.parent)))
    if broken:
        log.warning("skipped %d dangling symbolic link(s), e.g. %s", len(broken), broken[0])
    n_good = sum(1 for s in out if not s.label)
    if n_good == 0 or n_good == len(out):
        names = ", ".join(str(d) for d in (*layout.good, *layout.defect))
        raise ValueError(
            f"need images in both the good and the defect folders ({names}): found {n_good} good, "
            f"{len(out) - n_good} defective"
            + (f"; {len(broken)} dangling link(s), e.g. {broken[0]}" if broken else "")
        )
    return out


def load_inspection_dataset(root: str | Path | None, layout: FolderLayout | None = None) -> list[Sample]:
    """The folders ``layout`` names, else either layout under ``root``, detected from its contents."""
    if layout is not None:
        return load_folder_dataset(layout)
    if root is None:
        raise ValueError("no data: pass --data DIR (or --good-dir/--defect-dir, or --layout FILE)")
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"{root}: no such data folder")
    if find_magnetic_tile(root) is not None:
        return load_magnetic_tile(root)
    return load_folder_dataset(root)


def split_samples(
    samples: list[Sample], seed: int = 0, fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)
) -> dict[str, list[Sample]]:
    """Stratified by kind: each kind is shuffled with ``seed`` and cut by ``fractions``."""
    if len(fractions) != 3 or abs(sum(fractions) - 1) > 1e-6 or min(fractions) <= 0:
        raise ValueError(f"fractions must be three positive numbers summing to 1, got {fractions}")
    rng = np.random.default_rng(seed)
    parts: dict[str, list[Sample]] = {"train": [], "val": [], "test": []}
    for kind in sorted({s.kind for s in samples}):
        group = [s for s in samples if s.kind == kind]
        idx = rng.permutation(len(group))
        n_tr = round(fractions[0] * len(group))
        n_va = round(fractions[1] * len(group))
        if len(group) >= 3:  # every kind present in every part when possible
            n_tr, n_va = min(max(n_tr, 1), len(group) - 2), max(n_va, 1)
        for name, sl in (
            ("train", idx[:n_tr]),
            ("val", idx[n_tr : n_tr + n_va]),
            ("test", idx[n_tr + n_va :]),
        ):
            parts[name].extend(group[i] for i in sl)
    return parts


def read_sample(s: Sample, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """(grey uint8 image, bool defect mask) at the given fixed scale; ValueError if unreadable."""
    import cv2

    from edgewise.edge.apps.inspect import rescale
    from edgewise.edge.sources.files import read_image

    img = read_image(s.path, gray=True)
    if s.mask is not None:
        m = read_image(s.mask, gray=True)
        if m.shape != img.shape:
            m = cv2.resize(m, (img.shape[1], img.shape[0]), interpolation=cv2.INTER_NEAREST)
    else:
        m = np.zeros_like(img)
    img = rescale(img, scale)
    m = rescale(m, scale) if scale != 1.0 else m
    return img, m > 127


def describe(samples: list[Sample]) -> dict[str, int]:
    """Count per kind, good first."""
    c = Counter(s.kind for s in samples)
    return {k: c[k] for k in sorted(c, key=lambda k: (k != GOOD, k))}
