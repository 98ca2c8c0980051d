"""ORL for the face benchmark: the image set, the whole-image (unaligned) variant, and the
enroll / probe / stranger splits and per-person templates every protocol draws from."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgewise.edge.apps.face.embed import l2n

__all__ = ["orl_set", "unaligned_images", "splits", "templates"]


def orl_set(data: Path) -> Any:
    """ORL under the datasets folder (``faces/orl``), under ``orl``, or the folder itself."""
    from edgewise.train.data.faces import load_orl

    for c in (data / "faces" / "orl", data / "orl", data):
        if (c / "s1").is_dir():
            return load_orl(c)
    raise ValueError(f"{data}: no ORL folders (faces/orl/s1 ... s40)")


def unaligned_images(images: list[np.ndarray]) -> np.ndarray:
    """The classic setting: the whole 92x112 ORL image, downsized to 46x56."""
    import cv2

    return np.stack([cv2.resize(im, (46, 56), interpolation=cv2.INTER_AREA) for im in images])


def splits(labels: np.ndarray, people: list[int], n_enroll: int, rng: np.random.Generator
           ) -> tuple[list[int], list[int], list[int]]:
    """Enroll / probe indices of ``people``, and every other image as a stranger."""
    enroll, probe = [], []
    for p in people:
        idx = rng.permutation(np.flatnonzero(labels == p))
        enroll += idx[:n_enroll].tolist()
        probe += idx[n_enroll:].tolist()
    strangers = np.flatnonzero(~np.isin(labels, people)).tolist()
    return enroll, probe, strangers


def templates(emb: np.ndarray, labels: np.ndarray, people: list[int], idx: list[int]) -> np.ndarray:
    """One unit-length mean embedding per person over the enrollment images ``idx``, as a gallery holds."""
    idx_a = np.array(idx)
    return l2n(np.stack([emb[idx_a[labels[idx_a] == p]].mean(0) for p in people]))
