"""Canonical face crop -> L2-normalized embedding, and the mirror averaging (TTA) rule.

The embedding network's input normalisation comes from the bundle's spec alone (the spec
refuses a bundle without one): a crop normalised differently from training is a different
model, so there is no default to fall back on. ``tta_pair`` is the one rule for mirror averaging that training
calibrates with, the benchmark measures with and the device runs.
"""

from __future__ import annotations

import numpy as np

from ...backends import Model, load_model
from ...bundle import Bundle
from ...evaluate import unit_rows

__all__ = ["TTA_MODES", "l2n", "model_tag", "bundle_tta", "tta_pair", "FaceEmbedder"]

# none: plain embeddings; flip: crop and mirror averaged at enrollment and per live face;
# enroll: averaged at enrollment only (no cost per live face).
TTA_MODES = ("none", "flip", "enroll")


def l2n(e: np.ndarray) -> np.ndarray:
    """Unit rows in float32, so a dot product is the cosine similarity the thresholds are set on."""
    return unit_rows(np.asarray(e, dtype=np.float32))


def model_tag(bundle: Bundle) -> str:
    """Which network made an embedding: name + creation time, since two trainings never agree."""
    return f"{bundle.spec.name}@{bundle.spec.created}"


def bundle_tta(bundle: Bundle) -> str:
    """The test-time augmentation the bundle was calibrated for (``none`` for older bundles)."""
    spec = bundle.spec
    mode = str(spec.config.get("tta", spec.thresholds.get("tta", "none")))
    if mode not in TTA_MODES:
        raise ValueError(f"{bundle.path}: unknown tta mode {mode!r} in bundle.json; "
                         f"valid: {', '.join(TTA_MODES)}")
    return mode


def tta_pair(e: np.ndarray, e_mirror: np.ndarray, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """(enrollment, probe) embeddings of the same images for a test-time-augmentation mode.

    ``e`` / ``e_mirror``: embeddings of the crops and of their mirror images. ``flip``: the two
    averaged on both sides; ``enroll``: averaged at enrollment only (no cost per live face);
    ``none``: plain embeddings. Training calibrates, the benchmark measures, with this one rule.
    """
    if mode not in TTA_MODES:
        raise ValueError(f"unknown tta mode {mode!r}; valid: {', '.join(TTA_MODES)}")
    both = l2n(np.asarray(e) + np.asarray(e_mirror))
    return {"none": (e, e), "flip": (both, both), "enroll": (both, e)}[mode]


class FaceEmbedder:
    """The bundle's embedding network: canonical crop -> L2-normalized embedding.

    ``flip=True`` embeds every crop and its mirror image and averages the two (re-normalized):
    a near-frontal face and its mirror are the same person, and the average cancels part of
    the pose and lighting asymmetry. It doubles the embedding time (about 1 ms per face here).
    """

    def __init__(self, bundle: Bundle, variant: str | None = None, threads: int | None = None, *,
                 model: Model | None = None) -> None:
        """``model``: the variant already open (``FaceApp`` shares its own), else it is loaded."""
        self.bundle = bundle
        self.normalization = bundle.spec.input.normalization
        self.variant = bundle.variant(variant).name
        self.model = model if model is not None else load_model(bundle, self.variant, threads=threads)
        self.size = int(bundle.spec.input.hwc[0])
        self.dim = int(bundle.spec.output.shape[-1])

    def prepare(self, crops: list[np.ndarray] | np.ndarray) -> np.ndarray:
        """Grey crops (n, size, size) -> the network's input (n, size, size, 1), normalised."""
        x = np.asarray(crops, dtype=np.float32)
        if x.ndim != 3 or x.shape[1:] != (self.size, self.size):
            raise ValueError(f"face crops must be ({self.size}, {self.size}) grey; got {x.shape[1:]}")
        return self.normalization.apply(x)[..., None]

    def embed(self, crops: list[np.ndarray] | np.ndarray, flip: bool = False) -> np.ndarray:
        """(n, d) unit embeddings, one inference per crop."""
        x = self.prepare(crops)
        if len(x) == 0:
            return np.zeros((0, self.dim), np.float32)
        e = l2n(np.concatenate([self.model.predict(x[i : i + 1]) for i in range(len(x))]))
        if flip:
            xm = np.ascontiguousarray(x[:, :, ::-1])
            e = e + l2n(np.concatenate([self.model.predict(xm[i : i + 1]) for i in range(len(xm))]))
        return l2n(e)
