"""Time per face: detect -> align -> embed -> match on a camera-sized frame, and the embedding
cost per variant measured with the calls interleaved."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from edgewise.edge.apps.face.align import face_crop
from edgewise.edge.apps.face.detect import largest, make_detector
from edgewise.edge.apps.face.embed import FaceEmbedder
from edgewise.edge.apps.face.match import match
from edgewise.edge.evaluate import percentiles

__all__ = ["compose_frame", "time_per_face", "embed_speed"]


def compose_frame(face: np.ndarray, seed: int = 0) -> np.ndarray:
    """A 640x480 BGR frame: a textured grey background with the ORL face scaled 2x in it."""
    import cv2

    rng = np.random.default_rng(seed)
    bg = cv2.GaussianBlur(rng.integers(60, 200, (480, 640), dtype=np.uint8), (0, 0), 6)
    f = cv2.resize(face, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)
    y0, x0 = 120, 230
    bg[y0 : y0 + f.shape[0], x0 : x0 + f.shape[1]] = f
    return cv2.cvtColor(bg, cv2.COLOR_GRAY2BGR)


def time_per_face(bundle: Any, variant: str, detector_model: Path, frame: np.ndarray, threads: int,
                  names: list[str], temps: np.ndarray, threshold: float, iterations: int = 50,
                  warmup: int = 5, flip: bool = False) -> dict[str, Any]:
    """detect -> align -> embed -> match on one frame, ``iterations`` times; per-stage p50 (ms)."""
    import cv2

    cv2.setNumThreads(threads)
    det = make_detector("yunet", detector_model, threads=threads)  # .onnx: OpenCV; .tflite: LiteRT
    emb = FaceEmbedder(bundle, variant, threads)
    stages: dict[str, list[float]] = {"detect": [], "align": [], "embed": [], "match": [], "total": []}
    found = 0
    for i in range(warmup + iterations):
        t0 = time.perf_counter()
        d = largest(det.detect(frame))
        t1 = time.perf_counter()
        crop, _ = face_crop(frame, d, emb.size)
        t2 = time.perf_counter()
        e = emb.embed([crop], flip=flip)[0]
        t3 = time.perf_counter()
        match(e, names, temps, threshold)
        t4 = time.perf_counter()
        if i >= warmup:
            found += d is not None
            for k, v in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t4 - t0), strict=True):
                stages[k].append(v)
    emb.model.close()
    return {"threads": threads, "variant": variant, "flip": flip, "face_found": f"{found}/{iterations}",
            **{f"{k}_ms_p50": percentiles(v)["p50_ms"] for k, v in stages.items()}}


def embed_speed(bundle: Any, variants: list[str], crop: np.ndarray, threads: int, iterations: int = 300,
                warmup: int = 20, flip: bool = False) -> dict[str, float]:
    """p50 embedding time per variant, calls interleaved so that load from other processes on a
    shared machine hits every variant alike (the ratio is what this measures). With ``flip``
    each variant is also timed with mirror averaging (key ``<variant>+flip``)."""
    models = {v: FaceEmbedder(bundle, v, threads) for v in variants}
    keys = [(v, f) for v in variants for f in ((False, True) if flip else (False,))]
    times: dict[str, list[float]] = {v + ("+flip" if f else ""): [] for v, f in keys}
    for i in range(warmup + iterations):
        for v, f in keys:
            t0 = time.perf_counter()
            models[v].embed([crop], flip=f)
            if i >= warmup:
                times[v + ("+flip" if f else "")].append(time.perf_counter() - t0)
    for m in models.values():
        m.model.close()
    return {v: percentiles(t)["p50_ms"] for v, t in times.items()}
