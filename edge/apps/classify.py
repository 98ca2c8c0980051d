"""Generic image classification on the pipeline: any classifier bundle, any image source.

Preprocessing follows the bundle's input spec (size, colour, normalization), so a bundle
made by ``edgewise convert`` runs without extra code.

>>> # edgewise run classify --bundle digits.bundle --source digits_png/
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..bundle import load_bundle
from ..event import Event
from ..pipeline import Frame
from ..spec import Input
from .base import BundleApp
from .run import run_app
from .settings import RunSettings, run_parser

__all__ = ["ClassifyApp", "prepare_image", "run_main"]


def prepare_image(img: np.ndarray, spec: Input | Mapping[str, Any]) -> np.ndarray:
    """Resize / convert colour / normalize one image to the bundle's (1, H, W, C) input."""
    import cv2

    if isinstance(spec, Mapping):
        spec = Input.from_json(spec)
    if img is None or img.size == 0:
        raise ValueError("empty image")
    h, w, c = spec.hwc
    if c == 1 and img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    elif c == 3 and img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    if c == 3 and spec.color == "rgb":
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    if img.shape[:2] != (h, w):
        img = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
    return spec.normalization.apply(img).reshape(1, h, w, c)


class ClassifyApp(BundleApp):
    """Top-1 class of every frame: ``answer`` is the label, ``score`` its probability."""

    name = "classify"
    bundle_apps = ("generic", "classify")

    def preprocess(self, frame: Frame) -> np.ndarray:
        return prepare_image(frame.data, self.spec.input)

    def postprocess(self, frame: Frame, y: np.ndarray) -> Event:
        k = int(np.argmax(y))
        labels = self.spec.labels
        return Event(
            app=self.name,
            kind="prediction",
            answer=labels[k] if k < len(labels) else str(k),
            score=round(float(y[k]), 5),
            path=frame.meta.get("path"),
        )


def run_main(argv: list[str]) -> int:
    p = run_parser(
        "classify",
        "Classify every frame with a classifier bundle.",
        "edgewise run classify --bundle digits.bundle --source images/ --jsonl events.jsonl",
    )
    settings = RunSettings.from_args(p.parse_args(argv))
    bundle = load_bundle(settings.bundle)
    app = ClassifyApp(bundle, settings.variant, settings.threads)
    # a grey model reads a folder's images as grey (no colour round trip)
    gray = bundle.spec.input.shape[-1] == 1 and Path(settings.source.source).is_dir()
    return run_app(app, settings.with_gray(gray))
