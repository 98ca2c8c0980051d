"""Out-of-fold scores: every labelled part scored by a model that never trained on it.

The training and validation parts are cut into K folds by part (``folds.fold_parts``); for each
fold a model is trained with the same recipe on the other K-1 folds (fixed epochs, last epoch:
no part of the held-out fold chooses anything), converted to int8 like the deployed model, and
scores the held-out fold with the device's code. The K sets of scores together cover every
labelled part once, so the threshold and its recall bound rest on every labelled defect, not
on the validation ones alone. The deployed model is then trained on all of these parts with
the same recipe.
"""

from __future__ import annotations

import contextlib
import io
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgewise.edge.apps.inspect import score_tiles
from edgewise.edge.evaluate import auroc
from edgewise.edge.progress import log

from ..data.magnetic_tile import Sample
from .data import Parts
from .folds import fold_parts
from .scores import image_scores, tile_sets

if TYPE_CHECKING:
    from .trainer import InspectTrainer

__all__ = ["OutOfFold", "out_of_fold"]

FOLD_SEED_STEP = 1000  # fold i trains with seed + 1000 * (i + 1): its own crops and augmentation


@dataclass
class OutOfFold:
    """Image scores of every pooled part from the fold model that did not train on it.

    ``scores`` maps a variant name to image scores (``tflite_float32`` = the Keras model's
    float scores, ``tflite_int8`` = the fold model converted to int8 as the deployed one is);
    ``tiles`` holds the int8 tile scores (for the misses montage); ``fold`` each part's fold.
    """

    samples: list[Sample]
    fold: np.ndarray
    scores: dict[str, np.ndarray]
    tiles: list[np.ndarray]
    k: int

    @property
    def labels(self) -> np.ndarray:
        return np.array([s.label for s in self.samples])

    @property
    def kinds(self) -> list[str]:
        return [s.kind for s in self.samples]

    def summary(self) -> dict[str, Any]:
        y = self.labels
        return {"folds": self.k, "parts": len(y), "defects": int(y.sum()),
                "image_auroc": {n: auroc(s, y) for n, s in self.scores.items()},
                "fold_sizes": [int((self.fold == i).sum()) for i in range(self.k)]}


def out_of_fold(trainer: InspectTrainer, keras: Any, parts: Parts) -> OutOfFold:
    """Train ``cfg.folds`` fold models on ``parts.train`` (the pooled training + validation
    parts) and score each held-out fold, Keras float and int8 TFLite."""
    from edgewise.converters.tflite import to_tflite
    from edgewise.edge.backends import open_model

    from .export import calibration_tiles

    cfg = trainer.cfg
    pool = parts.split["train"]
    if len(parts.train) != len(pool):
        raise ValueError("out-of-fold scores need every pooled part's image (supervised mode)")
    tiling = cfg.tiling
    tiles = tile_sets(pool, tiling)
    folds = fold_parts(pool, cfg.folds, cfg.seed)
    n = len(pool)
    fold_of = np.full(n, -1)
    s_keras, s_int8 = np.zeros(n), np.zeros(n)
    tile_scores: list[np.ndarray] = [np.zeros(0)] * n
    for i, held in enumerate(folds):
        fold_of[held] = i
        rest = sorted(set(range(n)) - set(held))
        sub = Parts({"train": [pool[j] for j in rest], "val": [], "test": []},
                    [parts.train[j] for j in rest], [], [])
        model = trainer._compiled_model(keras)
        good = sub.good_train_tiles(tiling) if cfg.hard_negatives > 0 else None
        trainer._train(model, sub, None, good, select=False, seed=cfg.seed + FOLD_SEED_STEP * (i + 1),
                       label=f"fold {i + 1}/{cfg.folds}")
        held_tiles = [tiles[j] for j in held]
        sk, _ = image_scores(lambda b, m=model: m(b, training=False).numpy(), held_tiles, top_k=cfg.top_k)
        calib = calibration_tiles(trainer, sub, np.random.default_rng(cfg.seed + 2 + i))
        with tempfile.TemporaryDirectory(prefix="edgewise-fold-") as tmp:
            path = Path(tmp) / "fold_int8.tflite"
            path.write_bytes(_quiet_int8(to_tflite, model, calib))
            m8 = open_model(path, backend="litert", threads=cfg.threads)
            try:
                si, per = image_scores(lambda b, m=m8: score_tiles(m, b, batch=len(b)), held_tiles,
                                       batch=256, top_k=cfg.top_k)
            finally:
                m8.close()
        s_keras[held], s_int8[held] = sk, si
        for j, t in zip(held, per, strict=True):
            tile_scores[j] = t
        y = np.array([pool[j].label for j in held])
        log(f"inspect[{cfg.mode}] fold {i + 1}/{cfg.folds}: {len(rest)} training parts, scored "
            f"{len(held)} held-out parts ({int(y.sum())} defective), int8 image AUROC {auroc(si, y):.4f}",
            quiet=trainer.quiet)
    return OutOfFold(list(pool), fold_of, {"tflite_float32": s_keras, "tflite_int8": s_int8},
                     tile_scores, cfg.folds)


def _quiet_int8(to_tflite: Any, model: Any, calib: np.ndarray) -> bytes:
    """int8 conversion without the converter's chatter (stdout signature dump, native log lines,
    the expected float-statistics warning), as the bundle's own conversion does it."""
    from edgewise.edge import progress

    chatter = io.StringIO()
    try:
        with contextlib.redirect_stdout(chatter), progress.native_stderr(), warnings.catch_warnings():
            if not progress.VERBOSE:
                warnings.filterwarnings("ignore", message="Statistics for quantized inputs were expected")
            return to_tflite(model, "int8", calib)
    except Exception:
        sys.stderr.write(chatter.getvalue()[-4000:])
        raise
