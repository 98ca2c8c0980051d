"""``edgewise convert --task face-embedding MODEL --out B.bundle --calib DIR``: the flags, checked first."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edgewise.edge.apps.face.embed import TTA_MODES
from edgewise.edge.cliargs import CliError, Parser, add_json, add_quiet, emit_json, require

from .spec import COLORS, LAYOUTS, FaceInputRequest, parse_normalization, parse_template, read_yaml

__all__ = ["face_convert_main", "build_parser"]


def _arg(fn):  # argparse type: a ValueError message becomes argparse's one-line error
    def wrap(text: str):
        try:
            return fn(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    wrap.__name__ = fn.__name__
    return wrap


def _floats(text: str) -> tuple[float, ...]:
    try:
        v = tuple(float(p) for p in text.split(","))
    except ValueError:
        raise ValueError(f"'{text}': expected comma-separated numbers") from None
    if not all(abs(x) < float("inf") for x in v):
        raise ValueError(f"'{text}': expected finite numbers")
    return v


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="edgewise convert",
        description="Wrap a pretrained face-embedding network (.onnx, .tflite, .keras) into a face bundle "
        "for `edgewise enroll`, `run face`, `bench face` and `verify`: its input contract is stored, int8 "
        "variants are made where the format allows, and the unknown-person thresholds are calibrated on "
        "people you provide (--calib DIR with one folder of photos per person).",
        epilog="example:\n  edgewise convert --task face-embedding mobilefacenet.onnx --out mfn.bundle \\\n"
        "      --calib people/ --color rgb --normalization=-1-1\n"
        "a --spec YAML holds the same keys: size, color, layout, normalization, mean, std, template",
    )
    p.add_argument("model", help="the embedder: .onnx, .tflite, .keras or .h5 (one image in, one vector out)")
    p.add_argument("--task", choices=["face-embedding"], required=True, help="face-embedding")
    p.add_argument("--out", required=True, help="bundle directory to write (must not exist)")
    p.add_argument("--calib", required=True, metavar="DIR",
                   help="calibration people: DIR/person/*.jpg, more than 5 photos per person, people nobody "
                   "will enroll; faces found with YuNet (or --aligned crops)")
    p.add_argument("--aligned", action="store_true",
                   help="the --calib photos are already aligned square crops: resize only, no detection")
    p.add_argument("--detector-model",
                   help="YuNet .onnx for the --calib photos (default: under $EDGEWISE_DATA)")
    p.add_argument("--spec", metavar="YAML", help="input contract as YAML; flags override its keys")
    p.add_argument("--size", type=int, help="input side in pixels (default: the model's input tensor)")
    p.add_argument("--color", choices=COLORS, help="colour order the network was trained on (3-channel "
                   "networks: required; gray repeats a grey crop into the channels)")
    p.add_argument("--layout", choices=LAYOUTS, help="the model file's input layout (default: read from its "
                   "input tensor); the bundle always takes NHWC, an NCHW network gets a transpose in front")
    p.add_argument("--normalization", type=_arg(parse_normalization), metavar="NORM",
                   help="0-255 pixels -> input: 0-1, -1-1 (write --normalization=-1-1), SCALE,OFFSET or "
                   "none; applied before --mean/--std")
    p.add_argument("--mean", type=_arg(_floats), help="subtracted after --normalization: one value or one "
                   "per channel, in the model's colour order (e.g. 127.5 or 0.485,0.456,0.406)")
    p.add_argument("--std", type=_arg(_floats), help="divided by after --mean, like --mean")
    p.add_argument("--template", type=_arg(parse_template), metavar="arcface|X1,Y1,...,X5,Y5",
                   help="where eyes, nose tip and mouth corners land in the crop, in crop pixels "
                   "(default: arcface, the ArcFace 112x112 layout scaled to the input size)")
    p.add_argument("--far", type=float, default=0.001, help="false-accept rate of the default unknown "
                   "threshold (thresholds for 1 %%, 0.1 %% and 0.01 %% are stored too)")
    p.add_argument("--tta", choices=TTA_MODES, default="flip", help="mirror averaging the bundle is "
                   "calibrated for by default (every mode is calibrated and stored)")
    p.add_argument("--variants", nargs="+", help="subset of the variants the format allows")
    p.add_argument("--name", help="bundle name (default: model file stem)")
    p.add_argument("--zip", help="also write the bundle as this .zip")
    p.add_argument("--threads", type=int, default=2, help="threads for the parity runs")
    p.add_argument("--seed", type=int, default=0, help="seed of the enrollment draws in calibration")
    p.add_argument("--strict", action="store_true", help="exit 1 when a variant is flagged")
    add_json(p, "the bundle path, thresholds and parity rows")
    add_quiet(p)
    return p


def face_convert_main(argv: list[str]) -> int:
    a = build_parser().parse_args(argv)
    model = Path(a.model)
    if not model.is_file():
        raise CliError(f"model {model}: no such file")
    if not Path(a.calib).is_dir():
        raise CliError(f"--calib {a.calib}: no such folder (expected one folder of photos per person)")
    if a.spec and not Path(a.spec).is_file():
        raise CliError(f"--spec {a.spec}: no such file")
    if a.threads < 1:
        raise CliError(f"--threads {a.threads}: must be at least 1")
    if a.size is not None and a.size < 8:
        raise CliError(f"--size {a.size}: too small for a face crop")
    need = {".onnx": ("onnx", "onnxruntime"), ".keras": ("tensorflow", "keras", "tf2onnx"),
            ".h5": ("tensorflow", "keras", "tf2onnx")}.get(model.suffix.lower(), ())
    if need:
        require(*need, what=f"converting a {model.suffix} embedder")
    req = FaceInputRequest(size=a.size, color=a.color, layout=a.layout, normalization=a.normalization,
                           mean=a.mean, std=a.std, template=a.template)
    if a.spec:
        req = req.over(read_yaml(a.spec))
    from .build import convert_face_embedder

    res = convert_face_embedder(model, a.out, req, calib=a.calib, aligned=a.aligned,
                                detector_model=a.detector_model, far=a.far, tta=a.tta, variants=a.variants,
                                threads=a.threads, name=a.name, zip_path=a.zip, seed=a.seed, quiet=a.quiet)
    out = {"bundle": str(res.path), "variants": res.variants, "not_made": res.not_made or None,
           "calibration": res.calibration, "parity": res.parity}
    if not emit_json(out, a.json):
        print((res.path / "report" / "parity.md").read_text())
        c = res.calibration
        print(f"unknown threshold {c['unknown']:.4f} (tta {a.tta}, FAR {a.far:g}; "
              f"TAR {c['tar_at_threshold']:.3f} on the calibration people)")
        print(f"bundle written: {res.path}")
    if res.flagged:
        print(f"flagged variants: {', '.join(res.flagged)}", file=sys.stderr)
        return 1 if a.strict else 0
    return 0
