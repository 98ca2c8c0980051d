"""What the bundle holds besides the converted model: calibration tiles, every variant scored
as the device scores it, the operating point chosen on the deployed variant, per-variant
memory banks, the metrics and the report; written into the bundle before it is sealed."""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgewise.edge.apps.inspect import NearestGood, make_tiles, predict_rows, score_tiles
from edgewise.edge.evaluate import auroc, unit_rows

from .crops import to_input
from .data import Parts
from .scores import at_threshold, image_scores, recall_per_kind

if TYPE_CHECKING:
    from edgewise.edge.bundle import BundleWriter

    from .trainer import InspectTrainer

__all__ = ["MEMORY_FILE", "SCORED_VARIANTS", "calibration_tiles", "VariantScores", "Evaluation", "seal"]

MEMORY_FILE = "memory_{variant}.npy"  # good-only: each variant's features of the bank's tiles
SCORED_VARIANTS = ("tflite_float32", "tflite_int8")  # scored on whole parts; int8 is deployed


def calibration_tiles(trainer: InspectTrainer, parts: Parts, rng: np.random.Generator) -> np.ndarray:
    """int8 calibration = what the device sees: crops of the mode's kind plus whole-part tilings
    of training parts (250 of each)."""
    xc = trainer.calibration_crops(parts.calibration_images(150), rng)
    tiling = trainer.cfg.tiling
    whole = np.concatenate([make_tiles(im, tiling)[0] for im, _, _ in parts.calibration_images(12)])
    xc = np.concatenate([xc[rng.permutation(len(xc))[:250]], whole[rng.permutation(len(whole))[:250]]])
    return to_input(xc)


@dataclass
class VariantScores:
    """One converted variant's image scores (validation, test), test tile scores, threshold."""

    val: np.ndarray | None
    test: np.ndarray
    test_tiles: list[np.ndarray]
    op: dict[str, Any]


class Evaluation:
    """The converted variants scored with the device's code, and what their scores decide."""

    def __init__(self, trainer: InspectTrainer) -> None:
        self.trainer = trainer
        self.banks: dict[str, np.ndarray] = {}
        self.variants: dict[str, VariantScores] = {}

    def score(self, root: Path, variants: dict[str, dict[str, Any]]) -> None:
        """Score every variant the device may run; each gets its own memory bank (its features
        of the kept good tiles) when the bundle has a nearest-good head."""
        from edgewise.edge.backends import open_model

        t, parts = self.trainer, self.trainer.parts_
        x_pool = to_input(t.bank_tiles_) if t.head_ is not None else None
        for name, v in variants.items():
            scored = name in SCORED_VARIANTS
            if x_pool is None and not scored:
                continue
            m = open_model(root / v["file"], backend=v["backend"], threads=t.cfg.threads)
            try:
                head = None
                if x_pool is not None:
                    self.banks[name] = unit_rows(predict_rows(m, x_pool, batch=256))
                    head = NearestGood(self.banks[name])
                if scored:  # the device's scoring

                    def fn(b: np.ndarray, m: Any = m, head: Any = head) -> np.ndarray:
                        return score_tiles(m, b, batch=len(b), head=head)

                    sv = (image_scores(fn, parts.val_tiles, batch=256, top_k=t.cfg.top_k)[0]
                          if parts.val_tiles else None)  # with folds: no validation part
                    st, st_tiles = image_scores(fn, parts.test_tiles, batch=256, top_k=t.cfg.top_k)
                    op = t.variant_operating_point(name, sv, parts.y_val)
                    self.variants[name] = VariantScores(sv, st, st_tiles, op)
            finally:
                m.close()

    @property
    def deployed(self) -> str:
        return "tflite_int8" if "tflite_int8" in self.variants else next(iter(self.variants))

    @property
    def op(self) -> dict[str, Any]:
        """The operating point of the deployed variant (chosen on validation or out-of-fold parts)."""
        return self.variants[self.deployed].op

    @property
    def threshold(self) -> float:
        return self.op["threshold"]

    @property
    def test_op(self) -> dict[str, Any]:
        return at_threshold(self.variants[self.deployed].test, self.trainer.parts_.y_test, self.threshold)

    @property
    def thresholds(self) -> dict[str, Any]:
        """The bundle's ``thresholds``: the deployed decision, per-variant ones, what they imply."""
        op = self.op
        out = {
            "decision": self.threshold,
            **self.trainer.threshold_target(),
            "rule": op["rule"],
            "per_variant": {n: v.op["threshold"] for n, v in self.variants.items()},
        }
        if self.trainer.oof_ is None:
            out.update(val_precision=op["precision"], val_recall=op["recall"])
        if op.get("guarantee"):
            out["operating_point"] = op["guarantee"]
        return out

    @cached_property
    def metrics(self) -> dict[str, Any]:
        """What training and the converted variants measured (``metrics.inspect`` of the bundle)."""
        t, parts = self.trainer, self.trainer.parts_
        y_val, y_test = parts.y_val, parts.y_test
        op = {k: v for k, v in self.op.items() if k != "guarantee"}
        held_out = {
            # with folds the validation parts are training parts: their figures come out of fold
            "val_tile_auroc_keras": t.val_tile_auroc_,
            "val_tiles": {"defect": int(np.sum(t.val_crops_[1] == 1)),
                          "good": int(np.sum(t.val_crops_[1] == 0))},
            "val_image_auroc": {n: auroc(v.val, y_val) for n, v in self.variants.items()},
            "operating_point_val": op,
        } if t.oof_ is None else {"out_of_fold": t.oof_.summary(), "operating_point_oof": op}
        return {
            "mode": t.cfg.mode,
            "deployed_variant": self.deployed,
            "train_seconds": round(t.train_seconds_, 1),
            **held_out,
            "operating_point": self.op.get("guarantee"),
            "test_image_auroc": {
                "keras": auroc(t.keras_test_scores_, y_test),
                **{n: auroc(v.test, y_test) for n, v in self.variants.items()},
            },
            "test_at_threshold": self.test_op,
            "recall_per_kind_test": recall_per_kind(
                self.variants[self.deployed].test, [s.kind for s in parts.test], self.threshold
            ),
            "history": t.history_,
        }


def seal(w: BundleWriter, evaluation: Evaluation) -> None:
    """Complete the converted bundle before its one seal: score the variants, then write the
    thresholds, the memory banks, the metrics and the report."""
    from .report import report_files

    evaluation.score(w.root, w.meta["variants"])
    w.meta["thresholds"] = evaluation.thresholds
    for name, bank in evaluation.banks.items():
        file = MEMORY_FILE.format(variant=name)
        w.add_bytes(file, _npy(bank))
        w.meta["output"]["head"].setdefault("banks", {})[name] = file
    metrics = evaluation.metrics
    for rel, data in report_files(evaluation, metrics).items():
        w.add_bytes(rel, data)
    w.meta["metrics"]["inspect"] = metrics


def _npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()
