"""``edgewise convert``: a Keras model and real samples in, a bundle with parity-checked variants out.

TensorFlow is imported only after the flags and files are checked, so a typo costs no start-up.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edgewise.edge.cliargs import CliError, Parser, add_json, add_quiet, emit_json, error_line, require

__all__ = ["convert_main", "parse_normalization", "NORMALIZATIONS"]

# --normalization NAME -> bundle.json input.normalization, as the training bundles store it:
# the device feeds x * scale + offset for 0-255 pixels (edge/spec.py, Normalization.apply).
NORMALIZATIONS: dict[str, dict[str, float] | None] = {
    "none": None,
    "0-1": {"scale": 1 / 255, "offset": 0.0},
    "-1-1": {"scale": 1 / 127.5, "offset": -1.0},
}


def parse_normalization(text: str) -> dict[str, float] | None:
    """``none``, ``0-1``, ``-1-1`` or ``SCALE,OFFSET`` -> the bundle's normalization (None: raw)."""
    if text in NORMALIZATIONS:
        return NORMALIZATIONS[text]
    parts = text.split(",")
    try:
        scale, offset = (float(v) for v in parts)
    except ValueError:
        scale = offset = float("nan")
    if len(parts) != 2 or not all(abs(v) < float("inf") for v in (scale, offset)) or scale == 0:
        raise argparse.ArgumentTypeError(
            f"'{text}': expected none, 0-1, -1-1 or SCALE,OFFSET (two numbers, SCALE not 0)"
        )
    return {"scale": scale, "offset": offset}


def build_parser() -> argparse.ArgumentParser:
    s = Parser(
        prog="edgewise convert",
        description="Keras model -> TFLite/ONNX variants with parity checks, in a bundle.",
        epilog="example:\n  edgewise convert model.keras --data samples.npz --out model.bundle --strict",
    )
    s.add_argument("model", help="Keras model file (.keras or .h5)")
    s.add_argument("--data", required=True,
                   help=".npz with 'x' (and 'y'), or 'x_calib', 'x_eval', 'y_eval': real samples")
    s.add_argument("--out", required=True, help="bundle directory to write")
    s.add_argument("--zip", help="also write the bundle as this .zip")
    s.add_argument("--name", help="bundle name (default: model file stem)")
    s.add_argument("--task", default="classification",
                   help="task stored in bundle.json (classification, anomaly, embedding, ...); "
                   "face-embedding wraps a pretrained face embedder (.onnx/.tflite/.keras) into a face "
                   "bundle and has flags of its own: edgewise convert --task face-embedding --help; "
                   "face-detector converts YuNet for LiteRT: edgewise convert --task face-detector --help")
    s.add_argument("--decision", choices=["argmax", "threshold", "none"], default="argmax",
                   help="how an output becomes a decision, for the parity check")
    s.add_argument("--score", default="last", help="score for --decision threshold: last|max|mse")
    s.add_argument("--threshold", type=float, help="decision threshold stored in the bundle")
    s.add_argument("--labels", help="comma-separated class labels")
    s.add_argument("--layout", default="NHWC", help="input layout stored in bundle.json (NHWC, NC, ...)")
    s.add_argument("--color", default="none", help="input colour order stored in bundle.json: rgb, bgr, gray "
                   "or none")
    s.add_argument("--normalization", type=parse_normalization, default="none", metavar="NORM",
                   help="how the device turns 0-255 pixels into the model's input, stored in bundle.json: "
                   "0-1 (x/255), -1-1 (x/127.5 - 1; write --normalization=-1-1), SCALE,OFFSET "
                   "(x*SCALE + OFFSET) or none (raw pixels). The --data samples are already in this range")
    s.add_argument("--variants", nargs="+", help="subset of variants (default: all six)")
    s.add_argument("--threads", type=int, default=2, help="threads for the parity runs of each variant")
    s.add_argument("--strict", action="store_true", help="exit 1 when a variant is flagged")
    add_json(s, "the bundle path and parity rows")
    add_quiet(s)
    return s


def _is_face_embedding(argv: list[str]) -> bool:
    """``--task face-embedding`` (either spelling): a pretrained embedder file, its own flags."""
    return _is_task(argv, "face-embedding")


def _is_task(argv: list[str], task: str) -> bool:
    return any(t == f"--task={task}" or (t == "--task" and argv[i + 1 : i + 2] == [task])
               for i, t in enumerate(argv))


def convert_main(argv: list[str]) -> int:
    if _is_face_embedding(argv):
        from .face.cli import face_convert_main

        return face_convert_main(argv)
    if _is_task(argv, "face-detector"):
        from .face.detector_cli import face_detector_main

        return face_detector_main(argv)
    a = build_parser().parse_args(argv)
    for f, flag in ((a.model, "model"), (a.data, "--data")):
        if not Path(f).is_file():
            raise CliError(f"{flag} {f}: no such file")
    if a.threads < 1:
        raise CliError(f"--threads {a.threads}: must be at least 1")
    require("tensorflow", "keras", "tf2onnx", what="converting a Keras model")
    import numpy as np

    from . import ConversionSpec, build_bundle
    from .parity import Decider
    from .tfenv import import_tensorflow

    try:
        data = np.load(a.data)
    except (OSError, ValueError) as e:
        raise CliError(f"{a.data}: cannot read samples ({error_line(e)})") from None
    if "x" not in data and "x_calib" not in data:
        raise CliError(f"{a.data}: needs array 'x' (or 'x_calib' and 'x_eval'), has {list(data)}")
    import_tensorflow()
    import keras

    keras.utils.set_random_seed(0)  # seeded as every trainer seeds (train.keras_utils.tf_setup)
    try:
        model = keras.models.load_model(a.model, compile=False)
    except (OSError, ValueError) as e:
        raise CliError(f"{a.model}: cannot load Keras model ({error_line(e)})") from None
    calib = data["x_calib"] if "x_calib" in data else data["x"]
    ev = data["x_eval"] if "x_eval" in data else data["x"]
    y = data["y_eval"] if "y_eval" in data else (data["y"] if "y" in data else None)
    decider = Decider(kind=a.decision, score=a.score, threshold=a.threshold)
    spec = ConversionSpec(
        name=a.name or a.model.rsplit("/", 1)[-1].split(".")[0],
        task=a.task, app="generic",
        input={"layout": a.layout, "color": a.color,
               "normalization": a.normalization},  # None: raw inputs, stored as such
        thresholds={"decision": a.threshold} if a.threshold is not None else {},
        labels=a.labels.split(",") if a.labels else [],
        decider=decider,
    )
    res = build_bundle(
        model, a.out, spec, calib_x=calib, eval_x=ev, eval_y=y, variants=a.variants,
        threads=a.threads, zip_path=a.zip, quiet=a.quiet,
    )
    if not emit_json({"bundle": str(res.path), "parity": res.parity}, a.json):
        print((res.path / "report" / "parity.md").read_text())
        print(f"bundle written: {res.path}")
    if res.flagged:
        print(f"flagged variants: {', '.join(res.flagged)}", file=sys.stderr)
        return 1 if a.strict else 0
    return 0
