"""The inspection trainer: what both modes share (data, tiling, training loop, export).

Scikit-learn manners: ``__init__`` only stores the settings; ``fit(data)`` trains and keeps
what it learned in attributes ending in ``_``; ``export(out)`` converts, chooses the operating
point on the converted model the device runs, and seals the bundle once, complete with its
thresholds, memory banks and report. What differs between the modes (which crops, how the
best epoch is chosen, the threshold rule, what is deployed) is a method each mode overrides
(``modes.py``), not a branch on the mode.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from edgewise.edge.apps.inspect import NearestGood
from edgewise.edge.drift import image_reference
from edgewise.edge.evaluate import Decider, auroc
from edgewise.edge.progress import Bar, debug, log

from ..data.magnetic_tile import FolderLayout, describe, load_inspection_dataset
from .config import InspectConfig
from .crops import Crops, Image, augment, to_input
from .data import SPLIT_FRACTIONS, Parts, dataset_name, load_images
from .export import Evaluation, calibration_tiles, seal
from .model import build_model
from .scores import image_scores

__all__ = ["InspectTrainer"]

HARD_LOGIT = -1.5  # good tiles scored at/above logit -1.5 (P 0.18) are re-fed as hard negatives


class InspectTrainer:
    """Train the tile network of one mode and export it as a bundle.

    Learned attributes after ``fit``: ``parts_`` (the split and its tiles), ``model_`` (the
    trained tile classifier), ``net_`` (the Keras model the bundle deploys), ``head_`` (the
    nearest-good head, or None when the model's output is the score), ``bank_tiles_`` (the good
    tiles behind the head), ``history_``, ``val_crops_`` (tile-level validation crops and
    labels), ``keras_test_scores_``, ``val_tile_auroc_``, ``train_seconds_``, ``oof_``
    (out-of-fold scores with ``cfg.folds``).
    After ``export``: ``metrics_`` and ``bundle_``.
    """

    mode: ClassVar[str]
    task: ClassVar[str]
    first_mining_epoch: ClassVar[int]  # hard negatives are mined from this epoch on
    defaults: ClassVar[dict[str, Any]]  # the mode's own defaults of the command's settings
    sees_defects: ClassVar[bool]  # False: no defective part is read for training or calibration

    def __init__(self, cfg: InspectConfig, *, quiet: bool = False) -> None:
        self.cfg = cfg
        self.quiet = quiet

    # ------------------------------------------------------------ what each mode decides

    def validation_crops(self, images: list[Image], rng: np.random.Generator) -> Crops:
        """Fixed tile-level validation crops (uint8) and labels, for the learning curves."""
        raise NotImplementedError

    def epoch_crops(self, images: list[Image], rng: np.random.Generator,
                    hard: np.ndarray) -> Crops:
        """One epoch's training crops (uint8) and labels, the mined hard negatives included."""
        raise NotImplementedError

    def calibration_crops(self, images: list[Image], rng: np.random.Generator) -> np.ndarray:
        """Crops for int8 calibration besides whole-part tilings."""
        raise NotImplementedError

    def new_history(self) -> dict[str, list[float]]:
        return {"loss": [], "acc": [], "val_loss": [], "val_acc": []}

    def criterion(self, model: Any, parts: Parts, history: dict[str, list[float]],
                  figures: dict[str, Any]) -> float:
        """The figure the best epoch maximises (recorded in ``history``/``figures`` as needed)."""
        raise NotImplementedError

    def deployed(self, keras: Any, model: Any, parts: Parts,
                 good_tiles: np.ndarray | None) -> tuple[Any, NearestGood | None, np.ndarray | None]:
        """(model to deploy, its head or None, the good tiles of the head's bank or None)."""
        return model, None, None

    def output_spec(self) -> dict[str, Any]:
        """The bundle's ``output`` object (meaning, kind, head)."""
        raise NotImplementedError

    def decider(self) -> Decider:
        """The parity rule on the tile crops: the logit's sign (P 0.5)."""
        return Decider(kind="threshold", score="last", threshold=0.0)

    def operating_point(self, val_scores: np.ndarray, y_val: np.ndarray) -> dict[str, Any]:
        """The threshold chosen on one variant's validation image scores, and what it implies."""
        raise NotImplementedError

    def threshold_target(self) -> dict[str, Any]:
        """What the threshold was chosen for (stored next to it in the bundle)."""
        raise NotImplementedError

    def variant_operating_point(self, variant: str, val_scores: np.ndarray | None,
                                y_val: np.ndarray) -> dict[str, Any]:
        """The operating point of one converted variant: by default chosen on its validation
        scores; a mode with out-of-fold scores chooses on those instead."""
        if val_scores is None:
            raise ValueError(f"{self.mode}: no validation parts to choose the threshold on")
        return self.operating_point(val_scores, y_val)

    # ------------------------------------------------------------ shared

    def fit(self, data: str | Path | None, layout: FolderLayout | None = None) -> InspectTrainer:
        """Train on the parts under ``data`` (or the folders ``layout`` names); returns self.

        The images are found before TensorFlow is imported, so a wrong folder is reported in a
        second, not after the import.
        """
        from ..keras_utils import tf_setup

        cfg = self.cfg
        if cfg.mode != self.mode:
            raise ValueError(f"{type(self).__name__} trains mode '{self.mode}', not '{cfg.mode}'")
        t_start = time.monotonic()
        samples = load_inspection_dataset(data, layout)
        keras = tf_setup(cfg.seed, threads=cfg.threads)
        tiling = cfg.tiling
        parts = Parts.prepare(samples, tiling, cfg.seed, cfg.limit, good_only=not self.sees_defects,
                              pool_val=cfg.folds > 0, unseen_kinds=tuple(cfg.unseen_kinds))
        sizes = "/".join(str(len(parts.split[p])) for p in ("train", "val", "test"))
        log(f"inspect[{cfg.mode}]: data {describe(samples)}; split train/val/test = {sizes} "
            f"(seed {cfg.seed})", quiet=self.quiet)
        model = self._compiled_model(keras)
        # with folds the validation parts are training parts: tile crops of training parts remain,
        # for the parity check only (nothing is selected on them)
        held_out = bool(parts.val)
        xv, yv = self.validation_crops(load_images(parts.val, tiling) if held_out else parts.train[::4],
                                       np.random.default_rng(cfg.seed + 1))
        xv = to_input(xv)
        good_tiles = parts.good_train_tiles(tiling) if cfg.hard_negatives > 0 else None
        self.oof_ = None
        if cfg.folds:
            from .oof import out_of_fold

            self.oof_ = out_of_fold(self, keras, parts)
        self.history_ = self._train(model, parts, (xv, yv) if held_out else None, good_tiles,
                                    select=held_out)
        self.model_ = model
        self.net_, self.head_, self.bank_tiles_ = self.deployed(keras, model, parts, good_tiles)
        self.train_seconds_ = time.monotonic() - t_start
        self.parts_, self.val_crops_, self.data_name_ = parts, (xv, yv), dataset_name(data, layout)
        self.keras_test_scores_, _ = image_scores(self.keras_scores, parts.test_tiles, top_k=cfg.top_k)
        self.val_tile_auroc_ = auroc(self.keras_scores(xv).ravel(), yv) if held_out else None
        return self

    def keras_scores(self, x: np.ndarray) -> np.ndarray:
        """Tile scores of the fitted Keras model (through the head when there is one)."""
        out = self.net_(x, training=False).numpy()
        return self.head_(out) if self.head_ is not None else out

    def export(self, out: str | Path) -> dict[str, Any]:
        """Convert, choose the operating point on the converted variants, write the report, and
        seal the bundle at ``out`` once; returns the metrics (also in ``metrics_``)."""
        from edgewise.converters import ConversionSpec, build_bundle

        if not hasattr(self, "net_"):
            raise ValueError("export() needs a fitted trainer: call fit() first")
        cfg, parts = self.cfg, self.parts_
        xv, yv = self.val_crops_
        calib = calibration_tiles(self, parts, np.random.default_rng(cfg.seed + 2))
        ev = np.random.default_rng(cfg.seed + 3).permutation(len(xv))[:256]
        spec = ConversionSpec(
            name=f"inspect-{cfg.mode}",
            task=self.task,
            app="inspect",
            input={"layout": "NHWC", "color": "gray", "normalization": {"scale": 1 / 255, "offset": 0},
                   "tile": cfg.tile},
            output=self.output_spec(),
            labels=["good", "defect"],
            config=self._bundle_config(),
            decider=self.decider(),
        )
        evaluation = Evaluation(self)
        res = build_bundle(self.net_, out, spec, calib_x=calib, eval_x=xv[ev], eval_y=yv[ev],
                           variants=cfg.variants, threads=cfg.threads, quiet=self.quiet,
                           before_seal=lambda w: seal(w, evaluation))
        self.metrics_, self.bundle_ = evaluation.metrics, res.path
        t, thr = evaluation.test_op, evaluation.threshold
        log(f"inspect[{cfg.mode}]: test image AUROC {self.metrics_['test_image_auroc']}; at threshold "
            f"{thr:.4f} ({evaluation.deployed}, {evaluation.op['rule']}"
            f"{'' if self.oof_ is not None else ' on validation'}): test recall "
            f"{t['recall']:.3f} precision {_f3(t['precision'])}", quiet=self.quiet)
        return self.metrics_

    def _compiled_model(self, keras: Any) -> Any:
        cfg = self.cfg
        model = build_model(keras, cfg.tile, cfg.width, cfg.arch)
        if cfg.weights:
            model.load_weights(cfg.weights)
        model.compile(
            optimizer=keras.optimizers.Adam(cfg.lr),
            loss=keras.losses.BinaryCrossentropy(from_logits=True),
            metrics=[keras.metrics.BinaryAccuracy(name="acc", threshold=0.0)],
        )
        return model

    def _train(self, model: Any, parts: Parts, val: tuple[np.ndarray, np.ndarray] | None,
               good_tiles: np.ndarray | None, *, select: bool = True, seed: int | None = None,
               label: str = "epochs") -> dict[str, list[float]]:
        """Cosine-decayed epochs of fresh crops, hard negatives mined every few epochs; the model
        ends with the weights of its best epoch (``criterion``), or of its last one when
        ``select`` is False (fold models and the model trained on every labelled part: no
        held-out part may choose anything). Returns the history."""
        cfg = self.cfg
        rng = np.random.default_rng(cfg.seed if seed is None else seed)
        history = self.new_history()
        if val is None:
            history = {k: v for k, v in history.items() if k in ("loss", "acc")}
        best, best_w = -np.inf, None
        hard = np.zeros((0, cfg.tile, cfg.tile), np.uint8)
        bar = Bar(cfg.epochs, f"inspect[{cfg.mode}] {label}", quiet=self.quiet, verbose_lines=True)
        for ep in range(cfg.epochs):
            model.optimizer.learning_rate.assign(cfg.lr * 0.5 * (1 + np.cos(np.pi * ep / cfg.epochs)))
            first = self.first_mining_epoch
            if good_tiles is not None and ep >= first and (ep - first) % cfg.mine_every == 0:
                hard = self._hard_negatives(model, good_tiles)
            x, y = self.epoch_crops(parts.train, rng, hard)
            n1 = max(float(y.sum()), 1.0)
            n0 = max(float(len(y) - y.sum()), 1.0)
            h = model.fit(augment(x, rng, rotate=cfg.rotate), y, batch_size=cfg.batch, epochs=1, verbose=0,
                          class_weight={0: len(y) / (2 * n0), 1: len(y) / (2 * n1)},  # class-weighted loss
                          validation_data=val, shuffle=True)
            for k in ("loss", "acc", "val_loss", "val_acc"):
                if k in history:
                    history[k].append(float(h.history[k][0]))
            figures = {"crops": len(y), "defect": int(n1),
                       **{k: history[k][-1] for k in ("loss", "acc", "val_loss") if k in history}}
            crit = self.criterion(model, parts, history, figures) if select else float(ep)
            if crit >= best:
                best, best_w = crit, model.get_weights()
            bar.update(1, **figures)
        bar.close()
        if best_w is not None:  # None: no epoch (--epochs 0), the given weights stay as they are
            model.set_weights(best_w)
        return history

    def _hard_negatives(self, model: Any, good_tiles: np.ndarray) -> np.ndarray:
        """The good training tiles the model scores highest (at most ``hard_negatives``)."""
        sg = model.predict(to_input(good_tiles), batch_size=512, verbose=0).ravel()
        top = np.argsort(-sg)[: self.cfg.hard_negatives]
        hard = good_tiles[top[sg[top] >= HARD_LOGIT]]
        debug(f"inspect[{self.cfg.mode}] hard negatives: {len(hard)} good tiles with P >= 0.18")
        return hard

    def _bundle_config(self) -> dict[str, Any]:
        cfg = self.cfg
        return {
            "tiling": cfg.tiling.as_dict(),
            "image_score": "max over tiles" if cfg.top_k == 1 else f"mean of the top {cfg.top_k} tiles",
            "mode": cfg.mode,
            "train": {k: v for k, v in asdict(cfg).items() if k not in ("variants",)},
            "split": {
                "seed": cfg.seed,
                "fractions": list(SPLIT_FRACTIONS),
                "stratified_by": "kind",
                "file": "report/split.json",
                "counts": self.parts_.describe(),
                **({"folds": cfg.folds, "validation": "pooled into training: the threshold comes from "
                    "out-of-fold scores of the training + validation parts (folds by part)"}
                   if cfg.folds else {}),
            },
            "dataset": self.data_name_,
            # input drift reference (edge.drift): the good training parts as the camera gives them
            "drift": image_reference([p.path for p in self.parts_.split["train"] if p.label == 0],
                                     channels=1),
        }


def _f3(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"
