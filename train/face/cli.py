"""``edgewise train face``: flags, the checks that need no TensorFlow, then train or recalibrate."""

from __future__ import annotations

import argparse
from pathlib import Path

from edgewise.edge.apps.face import TTA_MODES
from edgewise.edge.apps.face.match import SCORE_RULES
from edgewise.edge.jsonenc import dumps

from .augment import AUGMENTATIONS
from .prep import SIZE, default_yunet, faces_root

__all__ = ["train_main"]

PROG = "edgewise train face"


def checked_args(a: argparse.Namespace) -> Path:
    """The datasets folder, after checking every flag and file ``train face`` will need.

    Runs before TensorFlow is imported, so a wrong path fails in well under a second.
    """
    from ..data import data_root

    for bad, why in ((a.epochs < 1, "--epochs must be at least 1"),
                     (a.threads < 1, "--threads must be at least 1"),
                     (not 0 < a.far < 1, "--far must be between 0 and 1"),
                     (a.holdout < 2, "--holdout must be at least 2 identities"),
                     (a.size < 16 or a.size % 16, "--size must be a multiple of 16"),
                     (a.width <= 0, "--width must be positive")):
        if bad:
            raise ValueError(why)
    data = data_root(a.data)
    if data is None:
        raise ValueError("no data: pass --data DIR or set EDGEWISE_DATA (needs faces/extra/*.mat)")
    if a.recalibrate and not Path(a.recalibrate).exists():
        raise ValueError(f"--recalibrate {a.recalibrate}: no such bundle")
    if not a.recalibrate and not list((faces_root(data) / "extra").glob("*.mat")):
        raise ValueError(f"{faces_root(data) / 'extra'}: no .mat face sets")
    yunet = Path(a.detector_model) if a.detector_model else default_yunet(data)
    if yunet is None or not yunet.is_file():
        raise ValueError(f"{yunet or 'YuNet model'}: not found (--detector-model yunet_n_320_320.onnx)")
    for tree in a.people or []:
        if not Path(tree).is_dir():
            raise ValueError(f"--people {tree}: no such folder")
    return data


def _parser() -> argparse.ArgumentParser:
    from edgewise.edge.cliargs import Parser, add_quiet

    p = Parser(
        prog=PROG,
        description="Train the face embedding network on the .mat face sets (+ person/*.jpg trees), "
        "calibrate the unknown threshold on held-out identities, write a bundle with int8.",
        epilog="example:\n  nice -n 10 edgewise train face --data $EDGEWISE_DATA --out face.bundle \\\n"
        "      --epochs 90 --threads 1",
    )
    p.add_argument("--data", help="datasets folder with faces/extra (default $EDGEWISE_DATA)")
    p.add_argument("--out", required=True, help="bundle directory")
    p.add_argument("--recalibrate", metavar="BUNDLE",
                   help="no training: copy BUNDLE to --out with its unknown thresholds re-derived (every "
                   "--tta mode x FAR) on the identities it held out of its training")
    p.add_argument("--lodo", action="store_true",
                   help="no bundle: leave-one-dataset-out campaign (train on all .mat collections but one, "
                   "test on that one and on ORL, every --seeds); writes lodo.json and lodo.md into --out")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds of --lodo")
    p.add_argument("--only", nargs="+", metavar="COLLECTION",
                   help="--lodo: hold out only these collections (by file stem, e.g. IMM)")
    p.add_argument("--people", action="append", help="extra person/*.jpg tree (repeatable)")
    p.add_argument("--epochs", type=int, default=90,
                   help="90 is the delivered recipe (about 30 min at 1 thread on a 2-core x86; "
                   "chosen on held-out identities, docs/face.md)")
    p.add_argument("--far", type=float, default=0.001,
                   help="target false-accept rate for the unknown threshold")
    p.add_argument("--holdout", type=int, default=30, help="identities kept out of training for calibration")
    p.add_argument("--width", type=float, default=1.0, help="channel width multiplier")
    p.add_argument("--size", type=int, default=SIZE, help="crop size in pixels (multiple of 16)")
    p.add_argument("--tta", choices=TTA_MODES, default="flip",
                   help="test-time augmentation the bundle asks the edge for: flip = image + mirror "
                   "averaged at enrollment and per live face, enroll = at enrollment only, none")
    p.add_argument("--score", choices=SCORE_RULES, default="fused",
                   help="the rule of the bundle's default operating point: fused = cosine and LBP-histogram "
                   "affinity of the aligned crop, standardised and averaged (chosen on the leave-one-dataset-"
                   "out tables, docs/face.md); cosine = the raw similarity; as-norm = the cosine normalised "
                   "against a stored cohort of training identities. All three are calibrated and stored; "
                   "`run face --score` picks another")
    p.add_argument("--augmentation", choices=AUGMENTATIONS, default="strong",
                   help="training augmentation: strong adds blur, noise and stronger geometry/light changes")
    p.add_argument("--detector-model", help="YuNet .onnx used to align the training faces "
                   "(default: DATA/models/face_detection/yunet_n_320_320.onnx)")
    p.add_argument("--threads", type=int, default=2, help="TensorFlow threads")
    p.add_argument("--seed", type=int, default=0, help="random seed (split, weights, augmentation)")
    add_quiet(p)
    return p


def train_main(argv: list[str]) -> int:
    from edgewise.edge.cliargs import fail, require

    from .recalibrate import recalibrate
    from .trainer import FaceTrainer

    a = _parser().parse_args(argv)
    try:  # everything the data and flags can get wrong, before TensorFlow is imported (seconds)
        data = checked_args(a)
    except ValueError as e:
        return fail(PROG, e)
    require("tensorflow", "keras", "tf2onnx", what="training")
    try:
        if a.lodo:
            from .lodo import lodo

            r = lodo(data, a.out, epochs=a.epochs, seeds=a.seeds, size=a.size, threads=a.threads,
                     holdout=a.holdout, augmentation=a.augmentation, detector_model=a.detector_model,
                     only=a.only, quiet=a.quiet)
            print(Path(a.out, "lodo.md").read_text())
            return 0 if r["runs"] else 1
        if a.recalibrate:
            rec = recalibrate(a.recalibrate, data, a.out, far=a.far, tta=a.tta,
                              detector_model=a.detector_model, people=a.people, threads=a.threads,
                              seed=a.seed, score=a.score, quiet=a.quiet)
            brief = {"calibration": rec["calibration"], "heldout_images": rec["heldout_images"]}
            print(dumps(brief, indent=2))
            return 0
        trainer = FaceTrainer(epochs=a.epochs, far=a.far, holdout=a.holdout, seed=a.seed, threads=a.threads,
                              detector_model=a.detector_model, people=a.people, width=a.width, size=a.size,
                              tta=a.tta, augmentation=a.augmentation, score=a.score, quiet=a.quiet)
        m = trainer.fit(data).export(a.out)
    except ValueError as e:
        return fail(PROG, e)
    print(Path(a.out, "report", "parity.md").read_text())
    print(dumps({k: m[k] for k in ("heldout_rank1", "heldout_rank1_tta", "calibration", "train_seconds")},
                indent=2))
    return 0
