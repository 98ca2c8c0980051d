"""Face datasets in their public formats: ORL folders, the ``.mat`` face sets, person/*.jpg trees.

* ORL (AT&T): ``orl/s1 ... s40/1.pgm ... 10.pgm``, 92x112 grey.
* The ``.mat`` sets (``yuzhounh/Face-databases``: UMIST, IMM, GT, AR_II): uint8 ``x`` of
  shape (height, width, n) and ``label`` (n, 1).
* Any ``root/person_name/*.jpg`` tree (photos a user collected).

Every loader returns a ``FaceSet``: a list of grey uint8 images (sizes may differ), integer
labels, the identity names and where each image came from.

>>> s = load_orl(data_root() / "faces/orl")                # doctest: +SKIP
>>> len(s.images), s.n_ids
(400, 40)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["FaceSet", "load_orl", "load_mat_faces", "load_person_tree", "load_training_faces", "concat"]

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".pgm"}


@dataclass
class FaceSet:
    """Grey images (list, sizes may differ), labels 0..n_ids-1, identity names, sources."""

    images: list[np.ndarray]
    labels: np.ndarray
    names: list[str]
    sources: list[str] = field(default_factory=list)

    @property
    def n_ids(self) -> int:
        return len(self.names)

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, idx: np.ndarray | list[int]) -> FaceSet:
        idx = np.asarray(idx, dtype=int)
        return FaceSet([self.images[i] for i in idx], self.labels[idx], self.names,
                       [self.sources[i] for i in idx] if self.sources else [])


def _read_grey(path: Path) -> np.ndarray:
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise ValueError(f"{path}: corrupt or unsupported image")
    return img


def load_orl(root: str | Path) -> FaceSet:
    """ORL / AT&T faces: folders ``s1``..``s40`` of PGM files, labels in folder order s1 -> 0."""
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"{root}: no such ORL folder (expected s1 ... s40 with .pgm files)")
    dirs = sorted((d for d in root.iterdir() if d.is_dir() and d.name[:1] == "s" and d.name[1:].isdigit()),
                  key=lambda d: int(d.name[1:]))
    if not dirs:
        raise ValueError(f"{root}: no s1 ... s40 folders (is this the ORL database?)")
    images, labels, sources = [], [], []
    for k, d in enumerate(dirs):
        files = sorted(d.glob("*.pgm"), key=lambda p: (len(p.stem), p.stem))
        if not files:
            raise ValueError(f"{d}: no .pgm images")
        for f in files:
            images.append(_read_grey(f))
            labels.append(k)
            sources.append(str(f))
    return FaceSet(images, np.array(labels, dtype=np.int64), [d.name for d in dirs], sources)


def load_mat_faces(path: str | Path) -> FaceSet:
    """One ``.mat`` face set: uint8 ``x`` (h, w, n) and ``label`` (n, 1); names are ``<set>/<label>``."""
    from scipy.io import loadmat

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such .mat face set")
    try:
        m = loadmat(str(path))
    except Exception as e:  # scipy raises several types for damaged files
        raise ValueError(f"{path}: not a readable MATLAB file ({e})") from None
    if "x" not in m or "label" not in m:
        raise ValueError(f"{path}: expected variables 'x' (h, w, n) and 'label' (n, 1); "
                         f"found {sorted(k for k in m if not k.startswith('__'))}")
    x, lab = np.asarray(m["x"]), np.asarray(m["label"]).ravel()
    if x.ndim != 3 or x.shape[2] != len(lab):
        raise ValueError(f"{path}: 'x' has shape {x.shape} but 'label' has {len(lab)} entries")
    if x.dtype != np.uint8:
        x = np.clip(x, 0, 255).astype(np.uint8)
    uniq = np.unique(lab)
    index = {v: i for i, v in enumerate(uniq)}
    images = [np.ascontiguousarray(x[:, :, i]) for i in range(x.shape[2])]
    return FaceSet(images, np.array([index[v] for v in lab], dtype=np.int64),
                   [f"{path.stem}/{int(v)}" for v in uniq], [f"{path.name}#{i}" for i in range(len(lab))])


def load_person_tree(root: str | Path) -> FaceSet:
    """``root/<person>/*.jpg`` (any common image format); one identity per sub-folder."""
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"{root}: no such folder")
    images, labels, sources, names = [], [], [], []
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        files = sorted(f for f in d.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            continue
        names.append(d.name)
        for f in files:
            images.append(_read_grey(f))
            labels.append(len(names) - 1)
            sources.append(str(f))
    if not names:
        raise ValueError(f"{root}: no person folders with images")
    return FaceSet(images, np.array(labels, dtype=np.int64), names, sources)


def concat(sets: list[FaceSet]) -> FaceSet:
    """Several sets as one, labels offset so identities never collide."""
    images, labels, names, sources = [], [], [], []
    for s in sets:
        images += s.images
        labels.append(s.labels + len(names))
        names += s.names
        sources += s.sources or [""] * len(s)
    return FaceSet(images, np.concatenate(labels) if labels else np.zeros(0, np.int64), names, sources)


def load_training_faces(faces_root: str | Path, extra_trees: list[str | Path] | None = None,
                        sets: list[str] | None = None) -> FaceSet:
    """Every ``.mat`` set in ``faces_root/extra`` (or those named in ``sets``, by stem) plus any
    ``faces_root/people`` tree and ``extra_trees``.

    ORL is deliberately NOT included: its identities are the unseen test identities.
    """
    root = Path(faces_root)
    mats = sorted(m for m in (root / "extra").glob("*.mat") if sets is None or m.stem in sets)
    if not mats:
        raise ValueError(f"{root / 'extra'}: no .mat face sets (UMIST.mat, IMM.mat, GT.mat, AR_II.mat)")
    sets = [load_mat_faces(m) for m in mats]
    trees = [root / "people"] if (root / "people").is_dir() else []
    sets += [load_person_tree(t) for t in [*trees, *(extra_trees or [])]]
    return concat(sets)
