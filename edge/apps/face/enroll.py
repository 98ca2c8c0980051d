"""Enrollment: photos of one person -> embeddings in the gallery, with the live loop's crops.

Enrollment embeds with the same detector, crop and network as ``run face``, and mirror-averages
when the TTA mode says so (``flip`` and ``enroll``), so templates and live faces are comparable.
Photos without a face are skipped by name on stderr; none at all is an error, not an empty person.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from .align import face_crop
from .detect import Detector, largest
from .embed import FaceEmbedder, model_tag
from .gallery import Gallery

__all__ = ["read_photo_folder", "camera_shots", "enroll_person"]


def read_photo_folder(folder: str | Path) -> list[tuple[str, np.ndarray]]:
    """Every readable image below ``folder`` (sorted); unreadable ones are skipped by name on stderr."""
    from ...sources.files import IMAGE_SUFFIXES, read_image

    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder}: no such image folder")
    imgs: list[tuple[str, np.ndarray]] = []
    for f in sorted(q for q in folder.rglob("*") if q.suffix.lower() in IMAGE_SUFFIXES):
        try:
            imgs.append((str(f), read_image(f)))
        except ValueError as e:
            print(f"skipped: {e}", file=sys.stderr)
    return imgs


def camera_shots(spec: str, n: int) -> list[tuple[str, np.ndarray]]:
    """``n`` photos from a camera, every 10th frame (~1/3 s apart at 30 fps) so the shots differ a little."""
    from ...sources import open_source

    shots = []
    with open_source(spec) as src:
        for i, frame in enumerate(src):
            if i % 10 == 0:
                shots.append((f"camera:{spec}#{frame.index}", frame.data))
            if len(shots) >= n:
                break
    return shots


def enroll_person(gallery: Gallery, name: str, photos: list[tuple[str, np.ndarray]], embedder: FaceEmbedder,
                  detector: Detector, *, tta: str, keep_images: bool = False) -> int:
    """Add ``name``'s largest face in each photo to ``gallery``; returns how many embeddings were stored.

    ``keep_images`` also stores the aligned crops (off by default, so the gallery holds no
    photo of anyone unless asked to).
    """
    crops, used = [], []
    for source, img in photos:
        d = largest(detector.detect(img))
        if d is None:
            print(f"skipped: {source}: no face found", file=sys.stderr)
            continue
        crops.append(face_crop(img, d, embedder.size)[0])
        used.append(source)
    if not crops:
        raise ValueError(f"no face found in any of {len(photos)} images; nothing enrolled")
    vecs = embedder.embed(crops, flip=tta in ("flip", "enroll"))
    return gallery.add(name, vecs, model=model_tag(embedder.bundle), sources=used,
                       images=crops if keep_images else None)
