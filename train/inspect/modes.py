"""The two training modes, each a trainer: what it trains on, how it picks its best epoch and
its threshold, and what it deploys.

- ``supervised``: defect-centred crops (from the masks) and good crops of real parts; the best
  epoch has the highest validation image AUROC; the threshold reaches the target recall on the
  validation parts.
- ``good-only``: good crops against synthetic defects, no real defect anywhere (not in training,
  model selection, calibration or the threshold); the best epoch has the lowest validation loss
  on synthetic crops; the threshold is set for a false-alarm rate on the good validation parts;
  with a memory bank the deployed model gives features scored by their distance to the
  nearest good training tile.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from edgewise.edge.apps.inspect import NearestGood
from edgewise.edge.evaluate import Decider, auroc, unit_rows
from edgewise.edge.progress import log

from ..data.magnetic_tile import GOOD, FolderLayout
from .config import InspectConfig
from .crops import Crops, Image, good_only_crops, sample_crops, to_input
from .data import Parts
from .guarantee import choose_threshold, guarantee_at, parse_kind_floors
from .model import coreset, feature_model, loo_nearest_good
from .scores import at_threshold, image_scores, operating_point
from .trainer import InspectTrainer

__all__ = ["SupervisedTrainer", "GoodOnlyTrainer", "trainer_for", "train_inspect"]


class SupervisedTrainer(InspectTrainer):
    """Good and defective parts with masks; recall-first threshold on the int8 model."""

    mode = "supervised"
    task = "defect-detection"
    first_mining_epoch = 3
    sees_defects = True
    defaults: ClassVar[dict[str, Any]] = {"epochs": 30, "norm": "none", "rotate": True, "folds": 4}

    def validation_crops(self, images: list[Image], rng: np.random.Generator) -> Crops:
        return sample_crops(images, self.cfg, rng, defect_crops=4, good_crops=2)

    def epoch_crops(self, images: list[Image], rng: np.random.Generator,
                    hard: np.ndarray) -> Crops:
        x, y = sample_crops(images, self.cfg, rng)
        if len(hard):
            x, y = np.concatenate([x, hard]), np.r_[y, np.zeros(len(hard), np.float32)]
        return x, y

    def calibration_crops(self, images: list[Image], rng: np.random.Generator) -> np.ndarray:
        return sample_crops(images, self.cfg, rng, 2, 2)[0]

    def new_history(self) -> dict[str, list[float]]:
        return {**super().new_history(), "val_image_auroc": []}

    def criterion(self, model: Any, parts: Parts, history: dict[str, list[float]],
                  figures: dict[str, Any]) -> float:
        """Validation image AUROC: whole parts, max over tiles, as the device decides."""
        s, _ = image_scores(lambda b: model(b, training=False).numpy(), parts.val_tiles, top_k=self.cfg.top_k)
        a = auroc(s, parts.y_val)
        history["val_image_auroc"].append(a)
        figures["val_image_auroc"] = a
        return a

    def output_spec(self) -> dict[str, Any]:
        return {"meaning": "defect logit per tile (P = sigmoid)", "kind": "logit"}

    def operating_point(self, val_scores: np.ndarray, y_val: np.ndarray) -> dict[str, Any]:
        return operating_point(val_scores, y_val, self.cfg.recall)

    def threshold_target(self) -> dict[str, Any]:
        return {"target_recall": self.cfg.recall}

    def variant_operating_point(self, variant: str, val_scores: np.ndarray | None,
                                y_val: np.ndarray) -> dict[str, Any]:
        """With folds: the highest threshold whose recall lower bound on the out-of-fold scores of
        this variant meets the target (``guarantee.choose_threshold``). Without: the validation
        threshold as before, with the lower bound its validation recall carries."""
        cfg = self.cfg
        if self.oof_ is None:
            assert val_scores is not None
            op = operating_point(val_scores, y_val, cfg.recall)
            if cfg.recall >= 1:  # no finite number of defects bounds a recall of 1
                return op
            kinds = [s.kind for s in self.parts_.val]
            g = guarantee_at(val_scores, y_val, kinds, op["threshold"], cfg.recall, None, cfg.confidence,
                             rule=f"threshold for validation recall >= {cfg.recall:g}")
            return {**op, "guarantee": {"source": "validation", "folds": None, "variant": variant,
                                        **g.as_dict()}}
        oof = self.oof_
        scores = oof.scores["tflite_int8" if variant.endswith("int8") else "tflite_float32"]
        floors = parse_kind_floors(cfg.min_recall_per_kind, sorted(set(k for k in oof.kinds if k != GOOD)))
        g = choose_threshold(scores, oof.labels, oof.kinds, cfg.recall, floors, cfg.confidence)
        implied = at_threshold(scores, oof.labels, g.threshold)
        return {**implied, "rule": f"out-of-fold ({oof.k} folds): {g.rule}",
                "guarantee": {"source": "out-of-fold", "folds": oof.k, "variant": variant, **g.as_dict(),
                              "rule": f"out-of-fold ({oof.k} folds): {g.rule}"}}


class GoodOnlyTrainer(InspectTrainer):
    """Good parts only (CutPaste/DRAEM-style synthetic defects); false-alarm-rate threshold."""

    mode = "good-only"
    task = "anomaly"
    first_mining_epoch = 2
    sees_defects = False
    # per-image normalisation; flips only: the surface's streak direction is part of "good"
    defaults: ClassVar[dict[str, Any]] = {"epochs": 25, "norm": "image", "rotate": False, "folds": 0}

    def validation_crops(self, images: list[Image], rng: np.random.Generator) -> Crops:
        """Synthetic too: good-only never looks at a real defect."""
        return good_only_crops(images, self.cfg, rng, per_image=2)

    def epoch_crops(self, images: list[Image], rng: np.random.Generator,
                    hard: np.ndarray) -> Crops:
        """Hard negatives are good training tiles: still no real defect anywhere."""
        x, y = good_only_crops(images, self.cfg, rng)
        if len(hard):
            hh = hard[rng.permutation(len(hard))[: len(x) // 4]]
            x, y = np.concatenate([x, hh]), np.r_[y, np.zeros(len(hh), np.float32)]
        return x, y

    def calibration_crops(self, images: list[Image], rng: np.random.Generator) -> np.ndarray:
        return good_only_crops(images, self.cfg, rng, per_image=2)[0]

    def criterion(self, model: Any, parts: Parts, history: dict[str, list[float]],
                  figures: dict[str, Any]) -> float:
        return -history["val_loss"][-1]

    def deployed(self, keras: Any, model: Any, parts: Parts,
                 good_tiles: np.ndarray | None) -> tuple[Any, NearestGood | None, np.ndarray | None]:
        """With ``memory``: the feature model and a k-centre bank of good training tiles, chosen
        once on the Keras features (each variant embeds the same tiles at export)."""
        if not self.cfg.knn:
            return model, None, None
        net = feature_model(keras, model)
        pool = good_tiles if good_tiles is not None else parts.every_train_tile(self.cfg.tiling)
        f = unit_rows(net.predict(to_input(pool), batch_size=512, verbose=0))
        kept = coreset(f, self.cfg.memory, self.cfg.seed)
        head = NearestGood(f[kept])
        log(f"inspect[{self.mode}] memory bank: {len(head.bank)} of {len(f)} good training tiles",
            quiet=self.quiet)
        return net, head, pool[kept]

    def output_spec(self) -> dict[str, Any]:
        if self.head_ is None:
            return {"meaning": "anomaly score per tile (good vs synthetic defect classifier)",
                    "kind": "logit"}
        return {"meaning": "cosine distance of the tile's features to the nearest good training tile",
                "kind": "distance", "head": {"kind": NearestGood.KIND, "size": len(self.head_.bank)}}

    def decider(self) -> Decider:
        """Parity on features: each variant's own nearest-good AUROC on the crops."""
        if self.head_ is None:
            return super().decider()
        return Decider(kind="none", metric_fn=lambda o, _x, y: auroc(loo_nearest_good(o, y), y),
                       metric_name="tile_auroc")

    def operating_point(self, val_scores: np.ndarray, y_val: np.ndarray) -> dict[str, Any]:
        """From the good validation parts only; what it implies on all validation parts is
        reported, never used to choose."""
        good = val_scores[y_val == 0]
        op = operating_point(good, np.zeros(len(good)), self.cfg.recall, self.cfg.false_alarm)
        implied = at_threshold(val_scores, y_val, op["threshold"])
        op.update({k: implied[k] for k in ("recall", "precision", "tp", "fp", "fn", "tn",
                                           "false_alarm_rate")})
        return op

    def threshold_target(self) -> dict[str, Any]:
        return {"target_false_alarm": self.cfg.false_alarm}


TRAINERS: dict[str, type[InspectTrainer]] = {t.mode: t for t in (SupervisedTrainer, GoodOnlyTrainer)}


def trainer_for(cfg: InspectConfig, *, quiet: bool = False) -> InspectTrainer:
    """The trainer of ``cfg.mode``."""
    return TRAINERS[cfg.mode](cfg, quiet=quiet)


def train_inspect(
    data: str | Path | None, out: str | Path, cfg: InspectConfig, quiet: bool = False,
    layout: FolderLayout | None = None, save_weights: str | Path | None = None,
) -> dict[str, Any]:
    """Train, convert, choose the operating point, write the report; returns the metrics.
    ``save_weights``: also keep the trained tile classifier there (a ``.weights.h5`` file), for
    ``weights`` of a later training."""
    trainer = trainer_for(cfg, quiet=quiet).fit(data, layout)
    if save_weights:
        Path(save_weights).parent.mkdir(parents=True, exist_ok=True)
        trainer.model_.save_weights(str(save_weights))
    return trainer.export(out)
