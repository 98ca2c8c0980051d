"""Data preparation: the datasets folder, the edge's detector + alignment on every image, the split.

Every training image goes through the edge's own detector and alignment
(``edge.apps.face.face_crops``), so the network learns on exactly the crops the device gives it.
Whole identities are held out of training: the unknown-person threshold is calibrated on them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgewise.edge.apps.face import detector_model_path, face_crops
from edgewise.edge.progress import log

from ..data.faces import FaceSet

__all__ = ["SIZE", "NORMALIZATION", "FaceData", "faces_root", "default_yunet", "prepare", "to_input",
           "split_identities"]

SIZE = 64
# what the bundle stores and the device applies: pixels 0..255 -> -1..1
NORMALIZATION = {"scale": 1 / 127.5, "offset": -1.0}


def faces_root(data: str | Path) -> Path:
    """``DATA/faces`` if it exists (the EDGEWISE_DATA layout), else ``DATA`` itself."""
    d = Path(data)
    if (d / "faces" / "extra").is_dir():
        return d / "faces"
    if (d / "extra").is_dir():
        return d
    raise ValueError(f"{d}: no faces/extra folder with the .mat face sets")


def default_yunet(data: str | Path | None) -> Path | None:
    """YuNet under the datasets folder (the same lookup as ``run face``), or None when absent."""
    if data is None:
        return None
    try:
        return detector_model_path("yunet", data=data)
    except ValueError:
        return None


def yunet_path(detector_model: str | Path | None, data: str | Path) -> Path:
    """The YuNet model a training aligns with: ``detector_model``, else the datasets folder's."""
    yunet = Path(detector_model) if detector_model else default_yunet(Path(data))
    if yunet is None:
        raise ValueError("YuNet model not found: pass --detector-model yunet_n_320_320.onnx")
    return yunet


@dataclass
class FaceData:
    """Aligned grey crops (n, S, S) uint8, labels, identity names, and how each crop was made."""

    x: np.ndarray
    y: np.ndarray
    names: list[str]
    how: list[str]


def prepare(s: FaceSet, detector: Any, size: int = SIZE, quiet: bool = True) -> FaceData:
    """Detect + align every image of a face set with the edge code (one crop per image)."""
    t0 = time.monotonic()
    crops, how = face_crops(s.images, detector, size)
    counts = {k: how.count(k) for k in sorted(set(how))}
    log(f"aligned {len(s)} faces in {time.monotonic() - t0:.1f}s: {counts}", quiet=quiet)
    return FaceData(crops, s.labels.copy(), list(s.names), how)


def to_input(x: np.ndarray) -> np.ndarray:
    """uint8 crops (n, S, S) -> the network's float input (n, S, S, 1), normalized as the bundle says."""
    scale, offset = np.float32(NORMALIZATION["scale"]), np.float32(NORMALIZATION["offset"])
    return (x.astype(np.float32) * scale + offset)[..., None]


def split_identities(d: FaceData, n_holdout: int, seed: int = 0) -> tuple[FaceData, FaceData]:
    """Hold out ``n_holdout`` whole identities (with >= 6 images), spread over the source sets."""
    rng = np.random.default_rng(seed)
    counts = np.bincount(d.y, minlength=len(d.names))
    eligible = [k for k in range(len(d.names)) if counts[k] >= 6]
    held = set(rng.choice(eligible, size=min(n_holdout, len(eligible)), replace=False).tolist())
    tr_ids = [k for k in range(len(d.names)) if k not in held]
    ho_ids = sorted(held)

    def take(ids: list[int]) -> FaceData:
        remap = {k: i for i, k in enumerate(ids)}
        m = np.isin(d.y, ids)
        return FaceData(d.x[m], np.array([remap[k] for k in d.y[m]]), [d.names[k] for k in ids],
                        [h for h, keep in zip(d.how, m, strict=True) if keep])

    return take(tr_ids), take(ho_ids)
