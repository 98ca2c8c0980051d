"""Enrollment: photos of one person -> embeddings in the gallery, with the live loop's crops.

Enrollment embeds with the same detector, crop and network as ``run face``, and mirror-averages
when the TTA mode says so (``flip`` and ``enroll``), so templates and live faces are comparable.
Photos without a face are skipped by name on stderr; none at all is an error, not an empty person.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...bundle import Bundle
from .detect import Detector, largest
from .embed import FaceEmbedder, model_tag
from .gallery import Gallery
from .lbp import lbp_vectors
from .match import Matcher, bundle_fusion, bundle_score_rule, closest_pair, lbp_tag

__all__ = ["read_photo_folder", "camera_shots", "enroll_person", "Separation", "gallery_separation"]


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
    from ...pipeline import FrameError
    from ...sources import open_source

    shots = []
    with open_source(spec) as src:
        frames = (f for f in src if not isinstance(f, FrameError))  # a failed read: the next frame
        for i, frame in enumerate(frames):
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
        crops.append(embedder.crop(img, d)[0])
        used.append(source)
    if not crops:
        raise ValueError(f"no face found in any of {len(photos)} images; nothing enrolled")
    vecs = embedder.embed(crops, flip=tta in ("flip", "enroll"))
    if bundle_fusion(embedder.bundle) is not None:  # the fused rule compares the crops' LBP histograms too
        gallery.add(name, lbp_vectors(np.stack(crops)), model=lbp_tag(embedder.bundle), sources=used)
    return gallery.add(name, vecs, model=model_tag(embedder.bundle), sources=used,
                       images=crops if keep_images else None)


@dataclass(frozen=True)
class Separation:
    """The gallery's closest pair of enrolled people and whether the model can keep them apart.

    ``score`` is the decision score one person's template gets against the other's (the same
    rule and threshold as the live loop); at or above ``threshold`` a typical photo of one could
    be named as the other.
    """

    first: str
    second: str
    cosine: float
    score: float
    threshold: float
    rule: str

    @property
    def too_close(self) -> bool:
        return self.score >= self.threshold

    def line(self) -> str:
        extra = f", {self.rule} score {self.score:.3f}" if self.rule != "cosine" else ""
        return (f"closest pair: {self.first} / {self.second}, cosine {self.cosine:.3f}{extra} "
                f"(accept threshold {self.threshold:.3f})")


def gallery_separation(gallery: Gallery, bundle: Bundle, tta: str) -> Separation | None:
    """How far apart the two most alike enrolled people are for this bundle; None below two people.

    One person's template is scored against the other's with the live loop's rule and threshold
    (for the fused rule, their LBP templates stand in for a crop's histogram).
    """
    names, temps = gallery.templates(model=model_tag(bundle))
    pair = closest_pair(names, temps)
    if pair is None:
        return None
    a, b, cos = pair
    ia, ib = names.index(a), names.index(b)
    fusion = bundle_fusion(bundle)
    rule = bundle_score_rule(bundle)
    if rule == "fused" and fusion is not None:
        lbp_names, lbp = gallery.templates(model=lbp_tag(bundle))
        if {a, b} <= set(lbp_names):
            m = Matcher(bundle, [], temps[:0], tta=tta)
            la, lb = lbp[lbp_names.index(a)], lbp[lbp_names.index(b)]
            score = 0.5 * ((cos - fusion["cosine_mean"]) / fusion["cosine_sd"]
                           + (float(la @ lb) - fusion["lbp_mean"]) / fusion["lbp_sd"])
            return Separation(a, b, cos, score, m.threshold, m.score)
        rule = "cosine"
    m = Matcher(bundle, [b], temps[ib : ib + 1], tta=tta, score=rule)
    _, score, _ = m(temps[ia])
    return Separation(a, b, cos, score, m.threshold, m.score)
