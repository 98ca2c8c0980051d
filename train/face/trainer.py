"""``FaceTrainer``: align -> fit -> calibrate the unknown threshold -> export one sealed bundle.

Scikit-learn manners: ``__init__`` stores the settings, ``fit(data)`` checks them, trains and
keeps what it learned in attributes ending in ``_``, ``export(out)`` converts and seals the
bundle once, complete with its thresholds and report. ORL is never used here: it is the
benchmark's unseen-identity set, reported after training and used for no choice.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from edgewise.edge.apps.face import TTA_MODES, YuNetDetector
from edgewise.edge.apps.face.match import SCORE_RULES
from edgewise.edge.jsonenc import to_plain
from edgewise.edge.progress import log

from ..data.faces import load_orl, load_training_faces
from .asnorm import COHORT_FILE, asnorm_entry, asnorm_modes, cohort_templates, npy_bytes
from .augment import AUGMENTATIONS
from .calibrate import FARS, by_tta, calibrate_modes, open_set_rank1, pair_auc, same_source, tta_scores
from .fit import train_embedding
from .prep import NORMALIZATION, SIZE, FaceData, faces_root, prepare, split_identities, to_input, yunet_path
from .report import report_files
from .scoring import fusion_entry

__all__ = ["FaceTrainer", "train_face"]


class FaceTrainer:
    """The face embedding training; see the module docstring for its manners.

    After ``fit``: ``net_`` (Keras embedding network), ``history_`` (per-epoch loss and held-out
    rank-1 / pair AUROC), ``train_`` / ``heldout_`` (aligned crops), ``calibration_by_tta_``
    (every TTA mode x FAR), ``threshold_`` (the chosen mode and FAR), ``scores_`` (held-out
    template scores at the chosen mode), ``same_set_`` and ``metrics_``.
    """

    def __init__(self, *, epochs: int = 90, far: float = 0.001, holdout: int = 30, seed: int = 0,
                 threads: int = 2, detector_model: str | Path | None = None,
                 people: list[str | Path] | None = None, variants: list[str] | None = None,
                 width: float = 1.0, size: int = SIZE, sets: list[str] | None = None, margin: float = 0.35,
                 lr: float = 3e-3, tta: str = "flip", augmentation: str = "strong",
                 fars: tuple[float, ...] = FARS, score: str = "fused", quiet: bool = False) -> None:
        self.score = score
        self.epochs, self.far, self.holdout, self.seed, self.threads = epochs, far, holdout, seed, threads
        self.detector_model, self.people, self.variants, self.sets = detector_model, people, variants, sets
        self.width, self.size, self.margin, self.lr = width, size, margin, lr
        self.tta, self.augmentation, self.fars, self.quiet = tta, augmentation, fars, quiet

    def _check(self) -> None:
        """The settings a long run would otherwise trip over after aligning every image."""
        if self.tta not in TTA_MODES:
            raise ValueError(f"unknown --tta {self.tta!r}; valid: {', '.join(TTA_MODES)}")
        if self.score not in SCORE_RULES:
            raise ValueError(f"unknown --score {self.score!r}; valid: {', '.join(SCORE_RULES)}")
        if self.augmentation not in AUGMENTATIONS:
            raise ValueError(f"augmentation strength must be 'basic' or 'strong'; got {self.augmentation!r}")

    def fit(self, data: str | Path) -> FaceTrainer:
        """Align the face sets under ``data``, train on all but ``holdout`` identities, calibrate on those."""
        self._check()
        root = faces_root(data)
        det = YuNetDetector(yunet_path(self.detector_model, data))
        self.t_start_ = time.monotonic()
        full = prepare(load_training_faces(root, self.people, self.sets), det, self.size, quiet=self.quiet)
        tr, ho = self.train_, self.heldout_ = split_identities(full, self.holdout, self.seed)
        log(f"training identities {len(tr.names)} ({len(tr.x)} images); held out {len(ho.names)} "
            f"({len(ho.x)} images) for the unknown threshold", quiet=self.quiet)
        self.net_, self.history_ = train_embedding(
            tr, ho, epochs=self.epochs, seed=self.seed, threads=self.threads, width=self.width, lr=self.lr,
            margin=self.margin, augmentation=self.augmentation, quiet=self.quiet)
        e_ho, e_ho_mirror = self._embed(ho)
        fars = tuple(sorted({*self.fars, self.far}, reverse=True))
        self.calibration_by_tta_ = calibrate_modes(e_ho, e_ho_mirror, ho.y, ho.names, fars, self.seed)
        self.threshold_ = self.calibration_by_tta_[self.tta][f"{self.far:g}"]
        # AS-norm: the training identities are the cohort nobody enrolls; thresholds on the held-out ones
        self.cohort_ = cohort_templates(*self._embed(tr), tr.y)
        self.asnorm_by_tta_ = asnorm_modes(e_ho, e_ho_mirror, ho.y, ho.names, self.cohort_, fars, self.seed)
        self.fusion_ = fusion_entry(e_ho, e_ho_mirror, ho.x, ho.y, ho.names, self.cohort_, fars, self.seed)
        self.scores_ = tta_scores(e_ho, e_ho_mirror, ho.y, self.tta, self.seed)
        self.same_set_ = same_source(ho.names, self.scores_.ids, self.scores_.plab)
        self.metrics_: dict[str, Any] = {
            "train_identities": len(tr.names), "train_images": int(len(tr.x)),
            "heldout_identities": len(ho.names), "heldout_images": int(len(ho.x)),
            "heldout_rank1": open_set_rank1(e_ho, ho.y, 5, self.seed),
            "heldout_rank1_tta": self.scores_.rank1,
            "heldout_pair_auc": float(pair_auc(e_ho, ho.x, ho.y)),
            "calibration": self.threshold_, "calibration_by_tta": self.calibration_by_tta_, "tta": self.tta,
            "asnorm_calibration": self.asnorm_by_tta_[self.tta][f"{self.far:g}"], "score": self.score,
            "cohort_identities": int(len(self.cohort_)),
            "augmentation": self.augmentation, "epochs": self.epochs, "history": self.history_,
            "alignment": {k: full.how.count(k) for k in sorted(set(full.how))},
        }
        if (root / "orl").is_dir():  # reported only, never used for any choice (the benchmark's test set)
            self.metrics_.update(self._orl_metrics(root / "orl", det))
        self._log_fit()
        return self

    def _embed(self, d: FaceData) -> tuple[np.ndarray, np.ndarray]:
        """Keras embeddings of the crops and of their mirror images."""
        e = self.net_.predict(to_input(d.x), verbose=0, batch_size=256)
        return e, self.net_.predict(to_input(d.x[:, :, ::-1]), verbose=0, batch_size=256)

    def _orl_metrics(self, orl: Path, det: YuNetDetector) -> dict[str, float]:
        o = prepare(load_orl(orl), det, self.size, quiet=True)
        e = self.net_.predict(to_input(o.x), verbose=0)
        e_mirror = self.net_.predict(to_input(o.x[:, :, ::-1]), verbose=0)
        return {"orl_keras_rank1_5enrolled": open_set_rank1(e, o.y, 5, self.seed),
                "orl_keras_rank1_5enrolled_tta": tta_scores(e, e_mirror, o.y, self.tta, self.seed).rank1}

    def _log_fit(self) -> None:
        m, thr = self.metrics_, self.threshold_
        orl = m.get("orl_keras_rank1_5enrolled")
        log(f"held-out rank-1 {m['heldout_rank1']:.3f} (tta {self.tta}: {m['heldout_rank1_tta']:.3f}), "
            f"unknown threshold {thr['unknown']:.4f} "
            f"(FAR {thr['far_measured']:.4f}, TAR {thr['tar_at_threshold']:.3f})"
            + (f"; ORL rank-1 (keras) {orl:.3f}" if orl is not None else ""), quiet=self.quiet)

    def _conversion_spec(self) -> Any:
        from edgewise.converters import ConversionSpec
        from edgewise.edge.drift import image_reference
        from edgewise.edge.evaluate import Decider

        thr, tr, ho = self.threshold_, self.train_, self.heldout_
        return ConversionSpec(
            name="face-embed",
            task="embedding",
            app="face",
            input={"layout": "NHWC", "color": "gray", "normalization": dict(NORMALIZATION)},
            output={"meaning": "L2-normalized face embedding; cosine similarity = dot product",
                    "kind": "embedding"},
            thresholds={"unknown": thr["unknown"], "far_target": self.far, "tta": self.tta,
                        "unknown_by_tta": by_tta(self.calibration_by_tta_), "score": self.score,
                        "as_norm": asnorm_entry(self.asnorm_by_tta_), "fusion": self.fusion_},
            config={
                "crop": {"size": self.size, "landmarks": "arcface-112 scaled",
                         "fallback": "box / centre crop"},
                "matching": "cosine similarity to each person's mean template",
                "loss": f"CosFace s=30 m={self.margin}",
                "tta": self.tta,
                "augmentation": self.augmentation,
                "train_sets": sorted({n.split("/")[0] for n in tr.names}),
                "heldout_identities": ho.names,
                "seed": self.seed,
                # input drift reference (edge.drift): training crops, as the device's aligned crops
                "drift": image_reference(list(tr.x[:: max(1, len(tr.x) // 200)]), channels=1),
            },
            metrics={k: v for k, v in self.metrics_.items() if k != "history"},
            decider=Decider(kind="none", metric_fn=pair_auc, metric_name="pair_auroc"),
        )

    def export(self, out: str | Path, *, zip_path: str | Path | None = None) -> dict[str, Any]:
        """Convert to every variant, check parity, write the bundle with thresholds and report, seal it once.

        Returns the metrics of ``fit`` plus ``parity`` (one row per variant) and ``train_seconds``.
        """
        from edgewise.converters import build_bundle

        if not hasattr(self, "net_"):
            raise ValueError("FaceTrainer.export: call fit() first")
        rng = np.random.default_rng(self.seed)
        tr = self.train_
        calib = to_input(tr.x[rng.choice(len(tr.x), size=min(256, len(tr.x)), replace=False)])
        metrics = dict(self.metrics_)

        def report(parity: list[dict[str, Any]]) -> tuple[dict[str, bytes], dict[str, Any]]:
            metrics["parity"] = parity
            metrics["train_seconds"] = round(time.monotonic() - self.t_start_, 1)
            files = report_files(self.history_, self.scores_, self.same_set_, self.threshold_["unknown"],
                                 metrics)
            files[COHORT_FILE] = npy_bytes(self.cohort_)
            return files, {"train": to_plain({k: v for k, v in metrics.items() if k != "parity"})}

        build_bundle(self.net_, out, self._conversion_spec(), calib_x=calib, eval_x=to_input(self.heldout_.x),
                     eval_y=self.heldout_.y, variants=self.variants, threads=self.threads, zip_path=zip_path,
                     quiet=self.quiet, report=report)
        return metrics


def train_face(data: str | Path, out: str | Path, *, epochs: int = 90, far: float = 0.001,
               holdout: int = 30, seed: int = 0, threads: int = 2, detector_model: str | Path | None = None,
               people: list[str | Path] | None = None, variants: list[str] | None = None,
               width: float = 1.0, size: int = SIZE, sets: list[str] | None = None, margin: float = 0.35,
               lr: float = 3e-3, tta: str = "flip", augmentation: str = "strong",
               fars: tuple[float, ...] = FARS, score: str = "fused", quiet: bool = False) -> dict[str, Any]:
    """The whole workstation side: align -> train -> calibrate -> convert -> report. Returns metrics."""
    trainer = FaceTrainer(epochs=epochs, far=far, holdout=holdout, seed=seed, threads=threads,
                          detector_model=detector_model, people=people, variants=variants, width=width,
                          size=size, sets=sets, margin=margin, lr=lr, tta=tta, augmentation=augmentation,
                          fars=fars, score=score, quiet=quiet)
    return trainer.fit(data).export(out)
