"""``edgewise train inspect``: arguments, the data folders, the mode's defaults, the summary."""

from __future__ import annotations

import argparse
from pathlib import Path

from edgewise.edge.jsonenc import dumps

from ..data.magnetic_tile import FolderLayout, load_inspection_dataset
from .config import MODES, InspectConfig
from .data import check_unseen_kinds
from .guarantee import parse_kind_floors
from .model import ARCHS
from .modes import TRAINERS, train_inspect

__all__ = ["train_main"]

def _data_args(a: argparse.Namespace) -> tuple[Path | None, FolderLayout | None]:
    """--data / --good-dir / --defect-dir / --layout -> (data folder, folder layout or None)."""
    from ..data import data_root

    if a.layout and (a.good_dir or a.defect_dir):
        raise ValueError("--layout and --good-dir/--defect-dir name the same thing: use one of them")
    if a.layout:
        return None, FolderLayout.from_file(a.layout)
    if a.good_dir or a.defect_dir:
        if not (a.good_dir and a.defect_dir):
            raise ValueError("--good-dir and --defect-dir go together: name at least one folder of each")
        return None, FolderLayout.from_dirs(a.good_dir, a.defect_dir, base=a.data)
    if a.data is not None:
        return Path(a.data), None
    root = data_root(None)
    if root is None:
        raise ValueError("no data: pass --data DIR (or --good-dir DIR --defect-dir DIR) or set EDGEWISE_DATA")
    return root / "inspection" / "magnetic_tile", None


def train_main(argv: list[str]) -> int:
    from edgewise.edge.cliargs import Parser, add_quiet

    p = Parser(
        prog="edgewise train inspect",
        description="Train a tile defect model (supervised, or from good parts only), choose the "
        "threshold on validation (supervised: for a target recall; good-only: for a false-alarm rate "
        "on good parts alone), convert to int8 and write a bundle with a report.",
        epilog="example:\n  edgewise train inspect --data $EDGEWISE_DATA/inspection/magnetic_tile "
        "--mode supervised --out mt_supervised.bundle",
    )
    p.add_argument(
        "--data",
        help="magnetic-tile folder or good/ + defect/ folder (default: "
        "$EDGEWISE_DATA/inspection/magnetic_tile); with --good-dir/--defect-dir: the folder they are in",
    )
    p.add_argument(
        "--good-dir", action="append", metavar="DIR",
        help="a folder of good parts, any name (repeatable; relative to --data when given)",
    )
    p.add_argument(
        "--defect-dir", action="append", metavar="DIR",
        help="a folder of defective parts, flat or one sub-folder per defect kind (repeatable)",
    )
    p.add_argument(
        "--layout", metavar="FILE",
        help='JSON or YAML file naming the folders: {"good": [DIR, ...], "defect": [DIR, ...]}, '
        "paths relative to the file",
    )
    p.add_argument("--mode", choices=MODES, default="supervised",
                   help="supervised: good and defect images; good-only: trained on good parts alone")
    p.add_argument("--out", required=True, help="bundle directory")
    p.add_argument("--weights", metavar="FILE",
                   help="start from these weights (.weights.h5 trained for this network; default: scratch); "
                   "with --epochs 0 they are used as they are (e.g. a good-only memory bank on the "
                   "features of a supervised model)")
    p.add_argument("--save-weights", metavar="FILE.weights.h5",
                   help="also write the trained tile classifier's weights here, for --weights of a later "
                   "training")
    d = InspectConfig()
    p.add_argument("--epochs", type=int, default=None,
                   help="default 30 (supervised) / 25 (good-only); 0: no training, --weights as they are")
    p.add_argument("--tile", type=int, default=d.tile, help="tile size in pixels after scaling")
    p.add_argument("--stride", type=int, default=d.stride, help="pixels between tile starts after scaling")
    p.add_argument("--scale", type=float, default=d.scale, help="fixed scale factor (1 = native)")
    p.add_argument("--width", type=float, default=d.width, help="channel width multiplier")
    p.add_argument(
        "--arch", choices=ARCHS, default=d.arch,
        help="first stage: s2d (space-to-depth, then 4-channel convs at half resolution: int8 gains "
        "more on the Pi) or fullres (1-channel 3x3 conv at full resolution, then pooling)",
    )
    p.add_argument(
        "--norm",
        choices=("none", "image"),
        default=None,
        help="per-image intensity normalisation before tiling (default: none supervised, image good-only)",
    )
    p.add_argument(
        "--top-k", type=int, default=None, help="image score = mean of the k highest tile scores (default 1)"
    )
    p.add_argument(
        "--rotate",
        choices=("yes", "no"),
        default=None,
        help="90-degree rotations in augmentation (default: yes supervised, no good-only: the "
        "surface's streak direction is part of what 'good' looks like)",
    )
    p.add_argument("--recall", "--min-recall", dest="recall", type=float, default=d.recall,
                   help="supervised: target recall; with --folds, the target of its 95%% lower bound")
    p.add_argument(
        "--folds", type=int, default=None, metavar="K",
        help="supervised: choose the threshold on out-of-fold scores of the training + validation parts "
        "(K folds by part; K fold models, then the deployed model on all of them); 0 = on the "
        "validation split (default 4 supervised, 0 good-only)",
    )
    p.add_argument(
        "--min-recall-per-kind", metavar="R|KIND=R,...",
        help="with --folds: lower-bound floors per defect kind, e.g. 0.9 or crack=0.9,fray=0.85",
    )
    p.add_argument(
        "--seeds", type=int, nargs="+", metavar="SEED",
        help="run the recipe once per seed (split, weights, augmentation): OUT/seed_N.bundle each, "
        "and OUT/seeds.md + seeds.json with mean +- sd of test AUROC, recall and precision",
    )
    p.add_argument(
        "--false-alarm",
        type=float,
        default=d.false_alarm,
        help="good-only: threshold for this false-alarm rate on good validation parts",
    )
    p.add_argument(
        "--memory",
        type=int,
        default=d.memory,
        help="good-only: score tiles by cosine distance to the nearest of this many good training "
        "tiles (k-centre coreset, stored in the bundle); 0 = the classifier's logit",
    )
    p.add_argument(
        "--hard-negatives", type=int, default=d.hard_negatives, metavar="N",
        help="at most N good training tiles the model scores highest, fed back as negatives every few "
        "epochs (0: no hard-negative mining)",
    )
    p.add_argument(
        "--unseen-kinds", nargs="+", default=[], metavar="KIND",
        help="defect kinds left out of training and validation (the split is unchanged, so the test "
        "split holds parts of a kind the model never saw): how it does on other faults",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (split, weights, augmentation)")
    p.add_argument("--threads", type=int, default=2, help="TensorFlow and parity-check threads")
    p.add_argument("--limit", type=int, help="at most N images per kind per split part (quick runs)")
    p.add_argument("--all-variants", action="store_true", help="also float16/dynamic/ONNX variants")
    add_quiet(p)
    a = p.parse_args(argv)
    try:
        data, layout = _data_args(a)
        samples = load_inspection_dataset(data, layout)  # the layout is checked before TensorFlow loads
        parse_kind_floors(a.min_recall_per_kind, sorted({s.kind for s in samples if s.label}))
        check_unseen_kinds(samples, a.unseen_kinds)
        if a.weights and not Path(a.weights).is_file():
            raise ValueError(f"--weights {a.weights}: no such file")
        if a.save_weights and not a.save_weights.endswith(".weights.h5"):
            raise ValueError(f"--save-weights {a.save_weights}: the name must end in .weights.h5")
        if a.save_weights and a.seeds:
            raise ValueError("--save-weights writes one model's weights: not with --seeds")
    except ValueError as e:
        p.exit(2, f"edgewise train inspect: error: {e}\n")
    mode_default = TRAINERS[a.mode].defaults
    try:
        cfg = InspectConfig(
            mode=a.mode,
            tile=a.tile,
            stride=a.stride,
            scale=a.scale,
            width=a.width,
            arch=a.arch,
            norm=a.norm or mode_default["norm"],
            top_k=a.top_k or d.top_k,
            rotate=a.rotate == "yes" if a.rotate else mode_default["rotate"],
            false_alarm=a.false_alarm,
            memory=a.memory,
            hard_negatives=a.hard_negatives,
            unseen_kinds=a.unseen_kinds,
            epochs=mode_default["epochs"] if a.epochs is None else a.epochs,
            recall=a.recall,
            folds=mode_default["folds"] if a.folds is None else a.folds,
            min_recall_per_kind=a.min_recall_per_kind,
            seed=a.seed,
            threads=a.threads,
            limit=a.limit,
            weights=a.weights,
            variants=(None if a.all_variants else ["tflite_float32", "tflite_int8"]),  # type: ignore[arg-type]
        )
        cfg.tiling  # noqa: B018 - validates tile/stride/scale
        if a.seeds:
            from .seeds import train_seeds

            print(train_seeds(data, a.out, cfg, a.seeds, quiet=a.quiet, layout=layout))
            return 0
        m = train_inspect(data, a.out, cfg, quiet=a.quiet, layout=layout, save_weights=a.save_weights)
    except (ValueError, OSError) as e:
        p.exit(2, f"edgewise train inspect: error: {e}\n")
    keys = ("test_image_auroc", "operating_point", "test_at_threshold", "recall_per_kind_test")
    print(dumps({k: m.get(k) for k in keys}, indent=2))
    return 0
