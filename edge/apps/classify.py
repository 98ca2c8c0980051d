"""Generic image classification on the pipeline: any classifier bundle, any image source.

Preprocessing follows the bundle's input spec (size, colour, normalization), so a bundle
made by ``edgewise convert`` runs without extra code.

>>> # edgewise run classify --bundle digits.bundle --source digits_png/
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from ..backends import load_model
from ..bundle import Bundle, load_bundle
from ..pipeline import Frame
from .common import run_app, run_parser

__all__ = ["ClassifyApp", "prepare_image", "run_main"]


def prepare_image(img: np.ndarray, spec: dict[str, Any]) -> np.ndarray:
    """Resize / convert colour / normalize one image to the bundle's (1, H, W, C) input."""
    import cv2

    if img is None or img.size == 0:
        raise ValueError("empty image")
    _, h, w, c = spec["shape"]
    if c == 1 and img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    elif c == 3 and img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    if c == 3 and spec.get("color") == "rgb":
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    if img.shape[:2] != (h, w):
        img = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
    norm = spec.get("normalization") or {}
    x = img.astype(np.float32)
    if "scale" in norm:
        x = x * np.float32(norm["scale"]) + np.float32(norm.get("offset", 0.0))
    if "mean" in norm:
        x = (x - np.float32(norm["mean"])) / np.float32(norm.get("std", 1.0))
    return x.reshape(1, h, w, c)


class ClassifyApp:
    name = "classify"

    def __init__(self, bundle: Bundle, variant: str | None = None, threads: int | None = None):
        self.bundle = bundle
        self.model = load_model(bundle, variant, threads=threads)
        self.labels = bundle.labels

    def preprocess(self, frame: Frame) -> np.ndarray:
        return prepare_image(frame.data, self.bundle.input)

    def infer(self, x: np.ndarray) -> np.ndarray:
        return self.model.predict(x)[0]

    def postprocess(self, frame: Frame, y: np.ndarray) -> dict[str, Any]:
        k = int(np.argmax(y))
        return {
            "ts": time.time(),
            "app": self.name,
            "kind": "prediction",
            "label": self.labels[k] if k < len(self.labels) else str(k),
            "probability": round(float(y[k]), 5),
            "path": frame.meta.get("path"),
        }


def run_main(argv: list[str]) -> int:
    p = run_parser(
        "classify",
        "Classify every frame with a classifier bundle.",
        "edgewise run classify --bundle digits.bundle --source images/ --jsonl events.jsonl",
    )
    a = p.parse_args(argv)
    bundle = load_bundle(a.bundle)
    app = ClassifyApp(bundle, a.variant, a.threads)
    gray = bundle.input["shape"][-1] == 1
    return run_app(app, a, **({"gray": True} if gray and _is_folder(a.source) else {}))


def _is_folder(s: str) -> bool:
    from pathlib import Path

    return Path(s).is_dir()
