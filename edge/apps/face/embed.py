"""Canonical face crop -> L2-normalized embedding, and the mirror averaging (TTA) rule.

The embedding network's input normalisation comes from the bundle's spec alone (the spec
refuses a bundle without one): a crop normalised differently from training is a different
model, so there is no default to fall back on. ``tta_pair`` is the one rule for mirror averaging that training
calibrates with, the benchmark measures with and the device runs. A bundle whose network takes three
channels (a pretrained embedder, ``edgewise convert --task face-embedding``) gets colour crops in the
order its ``input.color`` names, and grey crops repeated into three channels.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ...backends import Model, load_model
from ...bundle import Bundle
from ...evaluate import unit_rows
from .align import check_template, face_crop

if TYPE_CHECKING:
    from ...spec import Normalization
    from .detect import Detection

__all__ = ["TTA_MODES", "l2n", "model_tag", "bundle_tta", "tta_pair", "crop_template", "crop_color",
           "face_input", "FaceEmbedder"]

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


def crop_template(bundle: Bundle) -> np.ndarray | None:
    """The bundle's own 5-point landmark template (``config.crop.template``, crop pixels), or None
    for the ArcFace layout every trained bundle uses."""
    crop = bundle.spec.config.get("crop") or {}
    t = crop.get("template") if isinstance(crop, dict) else None
    if t is None:
        return None
    try:
        return check_template(t, int(bundle.spec.input.hwc[0]))
    except ValueError as e:
        raise ValueError(f"{bundle.path}: config.crop.template: {e}") from None


def crop_color(channels: int, color: str | None) -> str:
    """The colour crops are cut in: BGR for a colour network, grey otherwise (also for a 3-channel
    network that says ``gray``: it gets the grey crop in every channel)."""
    return "bgr" if channels == 3 and color in ("rgb", "bgr") else "gray"


def face_input(crops: list[np.ndarray] | np.ndarray, size: int, channels: int, color: str | None,
               normalization: Normalization) -> np.ndarray:
    """Crops -> the network's NHWC float input: grey (n, size, size) or BGR (n, size, size, 3).

    A 3-channel network gets grey crops repeated into its channels and BGR crops in its own
    colour order (``rgb`` swaps); then the bundle's normalisation, per channel if it says so.
    """
    x = np.asarray(crops, dtype=np.float32)
    if x.ndim == 3 and x.shape[1:] == (size, size):
        x = np.repeat(x[..., None], channels, axis=-1) if channels != 1 else x[..., None]
    elif x.ndim == 4 and x.shape[1:] == (size, size, 3) and channels == 3:
        x = x[..., ::-1] if color == "rgb" else x
    else:
        want = f"({size}, {size}) grey" + (f" or ({size}, {size}, 3) BGR" if channels == 3 else "")
        raise ValueError(f"face crops must be {want}; got {x.shape[1:]}")
    return normalization.apply(x)


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
        self.size, _, self.channels = (int(v) for v in bundle.spec.input.hwc)
        self.dim = int(bundle.spec.output.shape[-1])
        self.color = bundle.spec.input.color
        self.crop_color = crop_color(self.channels, self.color)
        self.template = crop_template(bundle)

    def crop(self, img: np.ndarray, det: Detection | None) -> tuple[np.ndarray, str]:
        """``face_crop`` as this network wants it: its size, colour and landmark template."""
        return face_crop(img, det, self.size, color=self.crop_color, template=self.template)

    def prepare(self, crops: list[np.ndarray] | np.ndarray) -> np.ndarray:
        """Crops (n, size, size) grey or (n, size, size, 3) BGR -> the network's input, normalised."""
        return face_input(crops, self.size, self.channels, self.color, self.normalization)

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
