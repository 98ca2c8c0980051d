"""The user's calibration identities (``--calib DIR``: ``person/*.jpg``) as the crops the device makes.

Every photo goes through the edge's own detector and ``face_crop`` with the embedder's size,
colour and landmark template, so the thresholds are set on exactly what ``run face`` will see.
With ``--aligned`` the photos are already aligned crops: they are only resized to the network's
input. A photo without a face is skipped by name; a person left with too few photos is named.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgewise.edge.apps.face.align import face_crop
from edgewise.edge.apps.face.detect import YuNetDetector, detect_padded, detector_model_path, largest
from edgewise.edge.apps.face.embed import crop_color
from edgewise.edge.progress import log
from edgewise.edge.sources.files import IMAGE_SUFFIXES, read_image

from .spec import FaceInput

__all__ = ["N_ENROLL", "CalibFaces", "read_identities"]

N_ENROLL = 5  # photos per enrolled template in calibration, as the trainer calibrates


@dataclass
class CalibFaces:
    """Crops (n, size, size) grey or (n, size, size, 3) BGR, uint8; ``y`` indexes ``names``."""

    crops: np.ndarray
    y: np.ndarray
    names: list[str]
    how: dict[str, int] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.y)


def _aligned_crop(img: np.ndarray, size: int, color: str) -> np.ndarray:
    """A given aligned crop resized to the network's input, in the crop colour."""
    import cv2

    if img.shape[0] != img.shape[1]:
        raise ValueError(f"aligned crops must be square; got {img.shape[1]}x{img.shape[0]}")
    if color == "gray" and img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    elif color == "bgr" and img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    if img.shape[0] != size:
        interp = cv2.INTER_AREA if img.shape[0] > size else cv2.INTER_LINEAR
        img = cv2.resize(img, (size, size), interpolation=interp)
    return img


def read_identities(root: str | Path, face: FaceInput, *, aligned: bool = False,
                    detector_model: str | Path | None = None, quiet: bool = False) -> CalibFaces:
    """Every ``root/person/*`` image as a face crop; ValueError when fewer than two people keep
    more than ``N_ENROLL`` photos (a template and at least one probe each)."""
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"--calib {root}: no such folder (expected person/*.jpg)")
    people = sorted(d for d in root.iterdir() if d.is_dir())
    color = crop_color(face.channels, face.color)
    template = np.asarray(face.template, np.float32)
    det = None if aligned else YuNetDetector(detector_model_path("yunet", detector_model))
    crops: list[np.ndarray] = []
    y: list[int] = []
    names: list[str] = []
    how: dict[str, int] = {}
    skipped: list[str] = []
    for person in people:
        files = sorted(f for f in person.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        mine = []
        for f in files:
            try:
                img = read_image(f)
                if det is None:
                    mine.append(_aligned_crop(img, face.size, color))
                    how["given"] = how.get("given", 0) + 1
                    continue
                d = largest(detect_padded(det, img, 0.3, 160))
                if d is None:
                    skipped.append(f"{f}: no face found")
                    continue
                c, h = face_crop(img, d, face.size, color=color, template=template)
                mine.append(c)
                how[h] = how.get(h, 0) + 1
            except ValueError as e:
                skipped.append(str(e) if str(f) in str(e) else f"{f}: {e}")
        if len(mine) <= N_ENROLL:
            skipped.append(f"{person}: {len(mine)} usable photos; calibration needs more than {N_ENROLL}")
            continue
        names.append(f"calib/{person.name}")  # one source set: every impostor pair is comparable
        y += [len(names) - 1] * len(mine)
        crops += mine
    for s in skipped:
        log(f"skipped: {s}", quiet=quiet)
    if len(names) < 2:
        raise ValueError(f"--calib {root}: {len(names)} people with more than {N_ENROLL} usable face photos; "
                         "calibration needs at least 2 (better dozens)")
    return CalibFaces(np.stack(crops), np.asarray(y), names, how, skipped)
