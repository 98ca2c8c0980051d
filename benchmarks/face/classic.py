"""The classic baselines of the reference table: Fisherfaces, Eigenfaces and LBPH (``cv2.face``)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from edgewise.edge.evaluate import percentiles

from .data import splits

__all__ = ["CLASSIC", "recognizer", "classic_open_set"]

CLASSIC = ("fisherfaces", "eigenfaces", "lbph")


def recognizer(kind: str) -> Any:
    """A fresh, untrained ``cv2.face`` recognizer of ``kind`` (one of ``CLASSIC``)."""
    import cv2

    if not hasattr(cv2, "face"):
        raise RuntimeError("cv2.face missing: install opencv-contrib-python-headless")
    makers = {"fisherfaces": cv2.face.FisherFaceRecognizer_create,
              "eigenfaces": cv2.face.EigenFaceRecognizer_create,
              "lbph": cv2.face.LBPHFaceRecognizer_create}
    return makers[kind]()


def classic_open_set(kind: str, imgs: np.ndarray, labels: np.ndarray, n_enroll: int = 5, seed: int = 0
                     ) -> dict[str, Any]:
    """Closed-set rank-1 of a classic recognizer over all 40 people, and its p50 prediction time."""
    rng = np.random.default_rng(seed)
    ids = np.unique(labels).tolist()
    enroll, probe, _ = splits(labels, ids, n_enroll, rng)
    rec = recognizer(kind)
    rec.train([imgs[i] for i in enroll], labels[enroll].astype(np.int32))
    times, ok = [], 0
    for i in probe:
        t0 = time.perf_counter()
        ok += int(rec.predict(imgs[i])[0] == labels[i])
        times.append(time.perf_counter() - t0)
    return {"rank1": ok / len(probe), "ms_p50": percentiles(times)["p50_ms"]}
