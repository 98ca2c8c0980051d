"""What runs inside the emulated root under the block-count plugin: N inferences between markers.

``python -m edgewise.edge.device.project.inside --bundle B --variant V --runs N --out F.json``
(or ``--model FILE`` for a bare ``.tflite`` / ``.onnx``, or ``--yunet FILE`` for the face
pipeline's detector as it runs it: ``cv2.FaceDetectorYN`` on a 320x320 frame, one OpenCV
thread) opens the model with one thread, runs
it a few times untimed (XNNPACK packs weights and ONNX Runtime plans on the first call), then
calls the runtime's own ``invoke()`` / ``run()`` N times between two marker system calls that
the plugin watches. Only the inference is between the markers: the input is prepared before
(quantized once, as ``predict`` does), so what is counted is what the Pi's core executes per
inference. numpy and the edge runtime only: no TensorFlow in the root.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ...jsonenc import dumps

__all__ = ["MODULE", "MAGIC_START", "MAGIC_STOP", "marker", "prepare_call", "inside_main"]

MODULE = "edgewise.edge.device.project.inside"
# lseek(-1, MAGIC, SEEK_SET) fails with EBADF everywhere; the plugin (blockcount.c) watches for it
MAGIC_START, MAGIC_STOP = 0x45444745, 0x53544F50
WARMUP = 3


def marker(magic: int) -> None:
    """One marker system call: harmless on any kernel, seen by the plugin."""
    try:
        os.lseek(-1, magic, os.SEEK_SET)
    except OSError:
        pass


def _sample(model: Any, x: np.ndarray | None) -> np.ndarray:
    """One input: the bundle's first evaluation sample, else a fixed pseudo-random one."""
    if x is not None:
        return x[:1]
    shape = [1 if d is None else d for d in model.input_shape]
    shape[0] = 1
    return np.random.default_rng(0).uniform(0, 1, size=shape).astype(np.float32)


def prepare_call(model: Any, x: np.ndarray | None) -> Callable[[], Any]:
    """The bare inference call of a loaded model, its input already in place.

    ``predict`` once sets (and quantizes) the input exactly as the application does; the call
    returned then repeats only the runtime's work: LiteRT ``invoke()``, ONNX Runtime ``run``.
    """
    sample = _sample(model, x)
    model.predict(sample)
    if model.backend == "litert":
        return model._it.invoke  # noqa: SLF001 - the inference alone, input already set
    feed = {model._in_name: model._check_input(sample).astype(model.input_dtype, copy=False)}  # noqa: SLF001
    sess = model._sess  # noqa: SLF001
    return lambda: sess.run(None, feed)


def _open(a: argparse.Namespace) -> tuple[Any, np.ndarray | None, dict[str, Any]]:
    from ...backends import load_model, open_model
    from ...bundle import load_bundle

    if a.model:
        return open_model(a.model, threads=a.threads), None, {"model": Path(a.model).name}
    bundle = load_bundle(a.bundle)
    v = bundle.variant(a.variant)
    ev = bundle.spec.evaluation
    x = np.load(bundle.file(ev.x), allow_pickle=False)[:1] if ev is not None and ev.x else None
    return load_model(bundle, v.name, threads=a.threads), x, {"variant": v.name}


def yunet_call(path: str) -> tuple[Callable[[], Any], Any]:
    """The face pipeline's detector on one 320x320 frame, one thread, as ``make_detector`` opens
    it (``.onnx``: ``cv2.FaceDetectorYN``; ``.tflite``: LiteRT); (the call, the detector).

    The frame is fixed pseudo-random noise (synthetic): YuNet's network costs the same on any
    content; only its few candidate boxes' decoding would differ on a real face."""
    import cv2

    from ...apps.face.detect import make_detector

    cv2.setNumThreads(1)
    det = make_detector("yunet", path, threads=1)
    frame = np.random.default_rng(0).integers(0, 256, size=(320, 320, 3), dtype=np.uint8)
    det.detect(frame)
    return (lambda: det.detect(frame)), det


def inside_main(argv: list[str]) -> int:
    """Run one model N times between the markers; write what ran to ``--out``."""
    from ..kernels import cpu_facts, model_kernels

    p = argparse.ArgumentParser(prog=f"python -m {MODULE}")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--bundle")
    src.add_argument("--model")
    src.add_argument("--yunet")
    p.add_argument("--variant")
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    if a.yunet:
        call, det = yunet_call(a.yunet)
        _measure(call, a.runs)
        lite = det.model if Path(a.yunet).suffix == ".tflite" else None  # LiteYuNetDetector's model
        opencv = {"runtime": "opencv", "providers": ["OpenCV DNN (cv2.FaceDetectorYN)"]}
        info = {"model": Path(a.yunet).name, "backend": lite.backend if lite else "opencv", "runs": a.runs,
                "threads": 1, "input_shape": [1, 320, 320, 3], "input_dtype": "uint8",
                "kernels": model_kernels(lite) if lite else opencv,
                "cpu": cpu_facts(), "tensorflow_imported": "tensorflow" in sys.modules}
        Path(a.out).write_text(dumps(info))
        return 0
    model, x, what = _open(a)
    try:
        _measure(prepare_call(model, x), a.runs)
        info = {**what, "backend": model.backend, "runs": a.runs, "threads": a.threads,
                "input_shape": list(model.input_shape), "input_dtype": model.input_dtype.name,
                "kernels": model_kernels(model), "cpu": cpu_facts(),
                "tensorflow_imported": "tensorflow" in sys.modules}
    finally:
        model.close()
    Path(a.out).write_text(dumps(info))
    return 0


def _measure(call: Callable[[], Any], runs: int) -> None:
    """Warm up untimed, then ``runs`` calls between the two markers the plugin counts between."""
    for _ in range(WARMUP):
        call()
    marker(MAGIC_START)
    for _ in range(runs):
        call()
    marker(MAGIC_STOP)


if __name__ == "__main__":
    sys.exit(inside_main(sys.argv[1:]))
