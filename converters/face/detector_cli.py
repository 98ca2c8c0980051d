"""``edgewise convert --task face-detector YUNET.onnx --calib DIR --eval DIR --out DIR``."""

from __future__ import annotations

import sys
from pathlib import Path

from edgewise.edge.cliargs import CliError, Parser, add_json, add_quiet, emit_json, require

__all__ = ["build_parser", "face_detector_main"]


def build_parser() -> Parser:
    p = Parser(
        prog="edgewise convert",
        description="Convert the face pipeline's YuNet detector (.onnx) for LiteRT: float32 and int8 .tflite "
        "files that `run face`, `enroll` and `project` take as --detector-model / --yunet. int8 is "
        "calibrated on --calib images; agreement with OpenCV's own YuNet (faces found, boxes, landmarks) is "
        "measured on --eval images, which should be other people than --calib. Each image is placed at "
        "three sizes on the detector's canvas, as tight face photos and as faces in a scene.",
        epilog="example:\n  edgewise convert --task face-detector $EDGEWISE_DATA/models/face_detection/"
        "yunet_n_320_320.onnx \\\n      --calib frames/day1 --eval frames/day2 --out detector/",
    )
    p.add_argument("model", help="YuNet .onnx (as published by OpenCV's model zoo / libfacedetection)")
    p.add_argument("--task", choices=["face-detector"], required=True, help="face-detector")
    p.add_argument("--calib", nargs="+", required=True, metavar="DIR",
                   help="folders of images (searched recursively) for int8 calibration: frames from the "
                   "camera that will run it are best")
    p.add_argument("--eval", nargs="+", required=True, metavar="DIR",
                   help="folders of other images to measure agreement on")
    p.add_argument("--out", required=True, help="folder for <name>_float32.tflite, <name>_int8.tflite and "
                   "<name>_agreement.json")
    p.add_argument("--limit", type=int, default=200, help="images read from --calib and from --eval, spread "
                   "over the folders (default 200)")
    p.add_argument("--threads", type=int, default=2, help="threads for the agreement runs")
    add_json(p, "the agreement report")
    add_quiet(p)
    return p


def face_detector_main(argv: list[str]) -> int:
    a = build_parser().parse_args(argv)
    if not Path(a.model).is_file() or Path(a.model).suffix != ".onnx":
        raise CliError(f"{a.model}: expected a YuNet .onnx file")
    if a.limit < 1 or a.threads < 1:
        raise CliError("--limit and --threads must be at least 1")
    from .detector import agreement_rows, convert_face_detector, image_files

    try:  # the folders first: a wrong path fails before TensorFlow loads
        image_files(a.calib, a.limit), image_files(a.eval, a.limit)
    except ValueError as e:
        raise CliError(str(e)) from None
    require("tensorflow", "keras", "onnx", what="converting the face detector")
    from edgewise.converters.tfenv import import_tensorflow

    import_tensorflow()
    try:
        report = convert_face_detector(a.model, a.out, a.calib, a.eval, limit=a.limit, threads=a.threads)
    except ValueError as e:
        raise CliError(str(e)) from None
    if emit_json(report, a.json):
        return 0
    out = Path(a.out)
    for name in report["files"].values():
        print(f"wrote {out / name}")
    if report["int8_non_int8_ops"]:
        print(f"int8 file keeps float ops: {', '.join(report['int8_non_int8_ops'])}", file=sys.stderr)
    for row in agreement_rows(report):
        print(row)
    return 0
