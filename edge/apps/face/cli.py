"""``edgewise run face`` (``run_main``) and ``edgewise enroll`` (``enroll_main``).

Both commands pick the detector and its model file with the same flags and lookup, so the
gallery is enrolled with the crops the live loop will produce.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path

from ...bundle import load_bundle
from ...cliargs import Parser, add_quiet, add_unpack_limit, fail
from ...signing import add_trusted_key
from ..base import add_option_flags, check_app, options_from
from ..run import run_app
from ..settings import RunSettings, run_parser
from .app import FaceApp, FaceOptions
from .detect import DETECTOR_FILES, DETECTORS, make_detector
from .embed import TTA_MODES, FaceEmbedder, bundle_tta, model_tag
from .enroll import camera_shots, enroll_person, gallery_separation, read_photo_folder
from .gallery import Gallery

__all__ = ["run_main", "enroll_main"]

log = logging.getLogger("edgewise.face")


def _tta_arg(p: argparse.ArgumentParser) -> None:
    """``enroll --tta``: the same flag, words and choices as ``run face --tta`` (``FaceOptions``)."""
    tta = next(f for f in dataclasses.fields(FaceOptions) if f.name == "tta")
    p.add_argument("--tta", choices=TTA_MODES, help=tta.metadata["help"])


def _detector_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--detector", choices=DETECTORS, default="yunet", help="face detector (default yunet)")
    p.add_argument("--detector-model", help="detector model file (.onnx for YuNet, .tflite/.onnx for "
                   "Ultra-Light without post-processing; Haar: optional cascade XML); default: "
                   f"$EDGEWISE_DATA/{DETECTOR_FILES['yunet']} (YuNet) or "
                   f"$EDGEWISE_DATA/{DETECTOR_FILES['ultralight']} (Ultra-Light)")


def run_main(argv: list[str]) -> int:
    """``edgewise run face``: recognise enrolled people in every frame of a source."""
    p = run_parser(
        "face",
        "Recognize enrolled people in every frame: detect, align, embed, match; strangers -> unknown.",
        "edgewise run face --bundle face.bundle --gallery people.db --source 0 \\\n"
        "      --detector yunet --detector-model models/yunet_n_320_320.onnx --jsonl events.jsonl",
    )
    p.add_argument("--gallery", required=True, help="SQLite gallery made by `edgewise enroll`")
    p.add_argument("--threshold", type=float, help="unknown threshold (default: the bundle's)")
    add_option_flags(p, FaceOptions)
    _detector_args(p)
    a = p.parse_args(argv)
    try:
        settings = RunSettings.from_args(a)
        options = options_from(a, FaceOptions)
        bundle = load_bundle(settings.bundle)
        detector = make_detector(a.detector, a.detector_model, threads=settings.threads or 1)
        with Gallery(a.gallery, create=False) as g:
            app = FaceApp(bundle, g, detector, settings.variant, settings.threads, threshold=a.threshold,
                          options=options)
    except (ValueError, OSError) as e:
        return fail("edgewise run face", e)
    if not app.names:
        log.warning("gallery %s has no people enrolled with model %s (re-enroll after retraining): "
                    "every face will be 'unknown'", a.gallery, model_tag(bundle))
    return run_app(app, settings)


def _enroll_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="edgewise enroll",
        description="Manage the face gallery: enroll a person from a folder of photos or the camera, "
        "list the people, or remove one completely (embeddings and any stored images).",
        epilog="examples:\n"
        "  edgewise enroll --gallery people.db --bundle face.bundle --name alice --images photos/alice \\\n"
        "      --detector-model models/yunet_n_320_320.onnx\n"
        "  edgewise enroll --gallery people.db --list\n"
        "  edgewise enroll --gallery people.db --remove alice",
    )
    add_quiet(p)
    p.add_argument("--gallery", required=True, help="SQLite gallery file (created if missing)")
    p.add_argument("--bundle", help="face embedding bundle (needed to enroll)")
    add_trusted_key(p)
    add_unpack_limit(p)
    p.add_argument("--name", help="person to enroll")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--images", help="folder of photos of the person")
    src.add_argument("--camera", nargs="?", const="0", help="camera (index, default 0) to take photos from")
    p.add_argument("--shots", type=int, default=5, help="camera photos to take (default 5)")
    p.add_argument("--list", action="store_true", help="list enrolled people")
    p.add_argument("--remove", metavar="NAME", help="forget a person completely")
    p.add_argument("--keep-images", action="store_true", help="also store the aligned crops (off by default)")
    p.add_argument("--variant", help="model variant (default: int8 if present)")
    p.add_argument("--threads", type=int, default=1, help="inference threads for detector and embedder")
    _tta_arg(p)
    _detector_args(p)
    return p


def enroll_main(argv: list[str]) -> int:
    """``edgewise enroll``: add a person from photos or the camera, list, or remove (forget)."""
    p = _enroll_parser()
    a = p.parse_args(argv)
    enrolling = not (a.list or a.remove)
    if enrolling:  # check the flags and files before the gallery is created
        if not (a.name and a.bundle and (a.images or a.camera)):
            p.error("enrolling needs --name, --bundle and --images DIR or --camera")
        for path, what in ((a.bundle, "bundle"), (a.images, "image folder")):
            if path and not Path(path).exists():
                return fail("edgewise enroll", f"{path}: no such {what}")
    try:
        with Gallery(a.gallery) as g:
            if a.list:
                for row in g.people():
                    print(f"{row['name']}\t{row['embeddings']} embeddings\t{row['model']}\t{row['created']}")
                return 0
            if a.remove:
                if not g.remove(a.remove):
                    return fail("edgewise enroll", f"'{a.remove}' is not in {a.gallery}", code=1)
                print(f"removed {a.remove} (embeddings and images deleted, database vacuumed)")
                return 0
            bundle = load_bundle(a.bundle)
            check_app(bundle, "face")
            emb = FaceEmbedder(bundle, a.variant, a.threads)
            det = make_detector(a.detector, a.detector_model, threads=a.threads)
            photos = read_photo_folder(a.images) if a.images else camera_shots(a.camera, a.shots)
            tta = bundle_tta(bundle) if a.tta is None else a.tta
            n = enroll_person(g, a.name, photos, emb, det, tta=tta, keep_images=a.keep_images)
            print(f"enrolled {a.name}: {n} embeddings from {len(photos)} images ({model_tag(bundle)})")
            sep = gallery_separation(g, bundle, tta)
            if sep is not None:
                print(sep.line())
                if sep.too_close:
                    print(f"edgewise enroll: warning: {sep.first} and {sep.second} are too close to tell "
                          "apart with this model: a photo of one may be named as the other (enroll more "
                          "varied photos of both, or retrain)", file=sys.stderr)
            return 0
    except (ValueError, OSError) as e:
        return fail("edgewise enroll", e)
