"""``FaceApp``: detect -> align -> embed -> match on the shared pipeline runner.

Each frame gives one ``Event`` whose answer is the person of its largest face (a name,
'unknown', or None with kind ``no_face``) and whose score is that face's similarity; every
face found, up to ``max_faces``, is listed in ``faces``, and the face stages' own timings
(detect, align, embed, match) go into ``latency_ms``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ...backends import Model
from ...bundle import Bundle
from ...event import Event
from ...pipeline import Frame
from ..base import BundleApp
from ..base import Options as BaseOptions
from .detect import Detector, to_bgr
from .embed import TTA_MODES, FaceEmbedder, bundle_tta, model_tag
from .gallery import Gallery
from .match import SCORE_RULES, UNKNOWN, Matcher, bundle_fusion, lbp_tag

__all__ = ["FaceApp", "FaceOptions"]


@dataclass(frozen=True)
class FaceOptions(BaseOptions):
    """What an operator may change without changing the model; each field is a ``run face`` flag."""

    tta: str | None = field(default=None, metadata={
        "choices": TTA_MODES,
        "help": "mirror averaging: flip = at enrollment and per live face (2 embeddings per face), "
        "enroll = at enrollment only, none; default: the mode the bundle was calibrated for"})
    far: float | None = field(default=None, metadata={
        "help": "pick the bundle threshold calibrated for this false-accept rate "
        "(e.g. 0.0001; default: the bundle's far_target)"})
    score: str | None = field(default=None, metadata={
        "choices": SCORE_RULES,
        "help": "what the unknown threshold applies to: fused = cosine and LBP histograms of the crop, "
        "standardised and averaged; cosine = the raw similarity; as-norm = the cosine normalised against "
        "the bundle's cohort of non-enrolled identities; default: the bundle's"})
    max_faces: int = field(default=5, metadata={"help": "faces matched per frame, largest first (default 5)"})
    preview: str | None = field(default=None, metadata={
        "help": "write annotated frames (boxes, names) into this folder"})


def _lbp_templates(gallery: Gallery, bundle: Bundle, names: list[str]) -> np.ndarray | None:
    """The enrolled people's LBP templates in the order of ``names`` (None when the bundle has no fused
    rule, or when someone was enrolled without them: the fused rule then says so)."""
    if bundle_fusion(bundle) is None:
        return None
    lbp_names, temps = gallery.templates(model=lbp_tag(bundle))
    if set(names) - set(lbp_names):
        return None
    return temps[[lbp_names.index(n) for n in names]]


class FaceApp(BundleApp):
    """Detect -> align -> embed -> match, on the shared pipeline runner.

    The gallery is read once, here: its templates made by this bundle's network (``model_tag``)
    are the only ones comparable with its embeddings. ``threshold`` overrides the bundle's
    unknown threshold, which otherwise is the one calibrated for the TTA mode (``options.tta``,
    default the bundle's) and false-accept rate (``options.far``, default the bundle's target).
    """

    name = "face"
    bundle_apps = ("face",)
    Options = FaceOptions
    options: FaceOptions

    def __init__(self, bundle: Bundle, gallery: Gallery, detector: Detector, variant: str | None = None,
                 threads: int | None = None, *, threshold: float | None = None,
                 options: FaceOptions | None = None, model: Model | None = None) -> None:
        super().__init__(bundle, variant, threads, threshold=threshold, options=options, model=model)
        self.embedder = FaceEmbedder(bundle, self.variant, model=self.model)
        self.detector = detector
        if self.options.max_faces < 1:
            raise ValueError(f"--max-faces must be at least 1, got {self.options.max_faces}")
        self.tta = bundle_tta(bundle) if self.options.tta is None else self.options.tta
        if self.tta not in TTA_MODES:
            raise ValueError(f"unknown tta mode {self.tta!r}; valid: {', '.join(TTA_MODES)}")
        self.flip = self.tta == "flip"  # "enroll": mirror averaging at enrollment only
        self.names, self.templates = gallery.templates(model=model_tag(bundle))
        self.matcher = Matcher(bundle, self.names, self.templates, tta=self.tta, far=self.options.far,
                               score=self.options.score, threshold=self.threshold,
                               lbp_templates=_lbp_templates(gallery, bundle, self.names))
        self.threshold: float = self.matcher.threshold
        self.size = self.embedder.size
        self.preview = Path(self.options.preview) if self.options.preview else None
        if self.preview:
            self.preview.mkdir(parents=True, exist_ok=True)

    def preprocess(self, frame: Frame) -> dict[str, Any]:
        """Detect the largest ``max_faces`` faces and crop each as the network was trained on."""
        img = frame.data
        t0 = time.monotonic()
        dets = sorted(self.detector.detect(img), key=lambda d: -d.box[2] * d.box[3])[: self.options.max_faces]
        t1 = time.monotonic()
        crops = [self.embedder.crop(img, d) for d in dets]
        t2 = time.monotonic()
        return {"dets": dets, "crops": crops, "t": {"detect": t1 - t0, "align": t2 - t1}}

    def drift_samples(self, frame: Frame, x: dict[str, Any]) -> list[Any]:
        """What input drift compares with the training crops (``edge.drift``): the aligned face
        crops the network sees, not the whole camera frame."""
        return [c for c, _ in x["crops"]]

    def infer(self, x: dict[str, Any]) -> dict[str, Any]:
        """Embed every crop (and its mirror in ``flip`` mode)."""
        t0 = time.monotonic()
        x["emb"] = self.embedder.embed([c for c, _ in x["crops"]], flip=self.flip)
        x["t"]["embed"] = time.monotonic() - t0
        return x

    def postprocess(self, frame: Frame, y: dict[str, Any]) -> Event:
        """Match every face against the gallery; the event's answer is the largest face's person."""
        t0 = time.monotonic()
        faces = []
        for d, (crop, how), e in zip(y["dets"], y["crops"], y["emb"], strict=True):
            who, score, sim = self.matcher(e, crop)
            faces.append({
                "person": who, "similarity": round(sim, 4), "score": round(score, 4),
                "box": [round(v, 1) for v in d.box],
                "detector_score": round(d.score, 3), "crop": how,
            })
        y["t"]["match"] = time.monotonic() - t0
        if self.preview is not None:
            self._annotate(frame, faces)
        top = faces[0] if faces else None
        kind = "no_face" if top is None else (UNKNOWN if top["person"] == UNKNOWN else "person")
        return Event(
            app=self.name, kind=kind,
            answer=top["person"] if top else None,
            score=top["similarity"] if top else None,
            extra={"box": top["box"] if top else None, "faces": faces},
            path=frame.meta.get("path"),
            latency_ms={k: round(v * 1e3, 3) for k, v in y["t"].items()},
        )

    def _annotate(self, frame: Frame, faces: list[dict[str, Any]]) -> None:
        """Write the frame with boxes and names (green: enrolled, red: unknown) to the preview folder."""
        import cv2

        if self.preview is None:
            return
        img = to_bgr(frame.data).copy()
        for f in faces:
            x, y, w, h = (int(round(v)) for v in f["box"])
            col = (0, 200, 0) if f["person"] != UNKNOWN else (0, 0, 230)
            cv2.rectangle(img, (x, y), (x + w, y + h), col, 2)
            cv2.putText(img, f"{f['person']} {f['similarity']:.2f}", (x, max(12, y - 4)),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.5, col, 1, cv2.LINE_AA)
        cv2.imwrite(str(self.preview / f"frame_{frame.index:06d}.jpg"), img)
