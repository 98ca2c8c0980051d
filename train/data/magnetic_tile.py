"""Inspection datasets: the public magnetic-tile set and a generic good/ vs defect/ folder layout.

Magnetic tile (Huang, Qiu, Yuan, The Visual Computer 2020), as published: ``MT_<Kind>/Imgs/X.jpg``
with a pixel mask ``X.png`` (white = defect) beside it; ``MT_Free`` holds the good parts.

Generic layout for users' own parts::

    DIR/good/*.jpg                      good parts (sub-folders allowed)
    DIR/defect/<kind>/*.jpg             defective parts, one sub-folder per defect kind
    DIR/defect/*.jpg                    ... or flat (kind "defect")
    masks (optional): X.png beside X.jpg, X_mask.png, or DIR/masks/<same relative path>.png

``split_samples`` is a stratified (per kind) train/validation/test split; the seed and the
file lists go into the bundle so every figure can be reproduced on the same held-out parts.

>>> samples = load_inspection_dataset("data/inspection/magnetic_tile")   # doctest: +SKIP
>>> split = split_samples(samples, seed=0)                                # doctest: +SKIP
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "Sample",
    "GOOD",
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


def load_folder_dataset(root: str | Path) -> list[Sample]:
    """``good/`` vs ``defect/`` (kinds from sub-folders of defect/), masks optional."""
    root = Path(root)
    good, bad = root / "good", root / "defect"
    if not good.is_dir() or not bad.is_dir():
        raise ValueError(f"{root}: expected sub-folders good/ and defect/ (or the magnetic-tile layout)")
    out = [Sample(p, GOOD) for p in sorted(good.rglob("*")) if p.suffix.lower() in _IMG and not _is_mask(p)]
    for p in sorted(bad.rglob("*")):
        if p.suffix.lower() not in _IMG or _is_mask(p):
            continue
        rel = p.relative_to(bad)
        kind = rel.parts[0].lower() if len(rel.parts) > 1 else "defect"
        out.append(Sample(p, kind, _mask_for(p, root)))
    n_good = sum(1 for s in out if not s.label)
    if n_good == 0 or n_good == len(out):
        raise ValueError(
            f"{root}: need images in both good/ and defect/ (found {n_good} good, "
            f"{len(out) - n_good} defective)"
        )
    return out


def load_inspection_dataset(root: str | Path) -> list[Sample]:
    """Either layout, detected from the folder contents."""
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
