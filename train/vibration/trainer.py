"""``VibrationTrainer``: fit on healthy windows, then export one sealed, complete bundle.

``fit`` trains the autoencoder and the baseline, scores every window and sets the thresholds
(learned state in attributes ending in ``_``). ``export`` converts every variant, scores the
windows again with the converted models the device runs (their own thresholds), evaluates,
writes the report and seals the bundle once, thresholds and report included.

>>> m = VibrationTrainer(VibrationConfig(epochs=40)).fit(recs).export("vib.bundle")  # doctest: +SKIP
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from edgewise.edge.apps.vibration import LEVELS, levels, robust_moments, split_in_time
from edgewise.edge.apps.vibration.diagnosis import BearingGeometry, DiagnosisConfig, healthy_evidence
from edgewise.edge.bundle import BundleWriter
from edgewise.edge.progress import log
from edgewise.edge.sources.recordings import Recording

from .config import EVAL_VARIANTS, VibrationConfig
from .data import split_recordings
from .diagnosis import diagnosis_summary, diagnosis_table, plot_envelopes
from .evaluate import auroc_delta, check_targets, compact, empirical_figures, evaluate_scores
from .fit import Scores, fit_window
from .model import keras_predict
from .report import report_files
from .robustness import Scorer, ScoreSetup, baseline_scorer, model_scorer, robustness, robustness_targets
from .sweep import sweep_window_lengths
from .threshold import normal_threshold

__all__ = ["VibrationTrainer", "train_vibration"]


class VibrationTrainer:
    """Train on normal windows only, convert, evaluate per fault file, report (scikit-learn manners).

    ``dataset`` describes the recordings for the report and ``config.dataset``; ``variants``
    limits the conversion (default: all six); ``sweep`` lists window lengths for the
    detection-vs-window study (retrains per length, part of ``fit``).
    """

    def __init__(
        self,
        config: VibrationConfig | None = None,
        *,
        dataset: dict[str, Any] | None = None,
        variants: list[str] | None = None,
        sweep: list[int] | None = None,
        threads: int = 2,
        quiet: bool = False,
    ) -> None:
        self.config = config
        self.dataset = dataset
        self.variants = variants
        self.sweep = sweep
        self.threads = threads
        self.quiet = quiet

    def _check(self, recs: list[Recording]) -> VibrationConfig:
        """Refuse bad settings and data before any training work; returns the config in use."""
        from edgewise.converters import ALL_VARIANTS

        cfg = self.config or VibrationConfig()
        split_recordings(recs)
        unknown = [v for v in self.variants or [] if v not in ALL_VARIANTS]
        if unknown:
            raise ValueError(f"unknown variants {unknown}; valid: {', '.join(ALL_VARIANTS)}")
        if cfg.threshold_rule not in ("lognormal", "empirical"):
            raise ValueError(f"threshold rule must be 'lognormal' or 'empirical', got '{cfg.threshold_rule}'")
        if not 0 < cfg.target_far < 1:
            raise ValueError(f"target false-alarm rate must be between 0 and 1, got {cfg.target_far:g}")
        if cfg.epochs < 1 or self.threads < 1:
            raise ValueError("epochs and threads must be at least 1")
        cfg.alarm()
        return cfg

    def fit(self, recs: list[Recording]) -> VibrationTrainer:
        """Autoencoder and baseline on the healthy training split, scores, thresholds, sweep."""
        from ..keras_utils import tf_setup

        cfg = self.config_ = self._check(recs)
        self.synthetic_ = any(r.meta.get("synthetic") for r in recs)
        keras = tf_setup(cfg.seed, threads=self.threads)
        t0 = time.monotonic()
        r = self.window_ = fit_window(recs, cfg, self.quiet, keras, "autoencoder")
        self.model_, self.baseline_ = r.model, r.baseline
        log(
            f"windows: train {len(r.z['train'])}, val {len(r.z['val'])}, test {len(r.z['test'])} healthy; "
            f"{sum(len(v) for v in r.zf.values())} fault windows in {len(r.zf)} files"
            + (" (SYNTHETIC data)" if self.synthetic_ else ""),
            quiet=self.quiet,
        )
        self.scores_: dict[str, Scores] = {
            "keras": r.scores(keras_predict(r.model)),
            "baseline": r.baseline_scores(),
        }
        # thresholds from held-out normal scores: validation + out-of-fold training windows
        self.out_of_fold_ = r.out_of_fold(cfg, keras)
        self.thresholds_ = {k: self._threshold(k, v["val"]) for k, v in self.scores_.items()}
        self.recordings_ = recs
        self.diagnosis_ = self._diagnosis_config(recs)
        self.fit_seconds_ = time.monotonic() - t0
        # detection vs window length: retrained per length, so part of the fit
        self.window_sweep_ = (
            sweep_window_lengths(recs, cfg, self.sweep, quiet=self.quiet) if self.sweep else None
        )
        return self

    def _diagnosis_config(self, recs: list[Recording]) -> DiagnosisConfig | None:
        """Bearing geometry from the dataset, the nominal shaft speed from the recordings' RPM,
        and the evidence level of the healthy train + validation signal (never the test part)."""
        geo = (self.dataset or {}).get("bearing")
        if not geo:
            return None
        normal, _ = split_recordings(recs)
        rpms = [float(r.meta["rpm"]) for r in recs if r.meta.get("rpm")]
        shaft = float(np.median(rpms)) / 60.0 if rpms else None
        cfg = DiagnosisConfig(BearingGeometry.from_dict(geo), shaft_hz=shaft)
        end = split_in_time(len(normal.signal), self.config_.split)[1][1]
        try:
            level = healthy_evidence(normal.signal[:end], normal.fs, cfg, shaft)
        except ValueError as e:
            log(f"diagnosis: no healthy evidence level ({e})", quiet=self.quiet)
            return cfg
        return DiagnosisConfig(cfg.geometry, shaft_hz=shaft, healthy_evidence=round(level, 4))

    def _threshold(self, scorer: str, val: np.ndarray) -> float:
        """A scorer's threshold: its validation scores + the fold models' out-of-fold scores
        (the Keras folds for every autoencoder variant)."""
        cfg = self.config_
        oof = self.out_of_fold_["baseline" if scorer == "baseline" else "keras"]
        return normal_threshold(np.r_[val, oof], cfg.target_far, cfg.threshold_rule)

    def export(self, out: str | Path) -> dict[str, Any]:
        """Convert, evaluate, report and seal the bundle at ``out`` once; returns the metrics
        written to report/metrics.json."""
        from edgewise.converters import build_bundle
        from edgewise.converters.parity import Decider

        if not hasattr(self, "window_"):
            raise RuntimeError("VibrationTrainer.export() needs fit() first")
        t0, r, thr = time.monotonic(), self.window_, self.thresholds_
        eval_x, eval_y = self._evaluation_samples()
        done: dict[str, Any] = {}

        def before_seal(w: BundleWriter) -> None:
            done["metrics"] = self._complete(w, self.fit_seconds_ + time.monotonic() - t0)

        build_bundle(
            r.model,
            out,
            self._conversion_spec(Decider(kind="threshold", score="mse", threshold=thr["keras"])),
            calib_x=r.z["train"],
            eval_x=eval_x,
            eval_y=eval_y,
            variants=list(self.variants) if self.variants else None,
            threads=self.threads,
            quiet=self.quiet,
            before_seal=before_seal,
        )
        return done["metrics"]

    def _evaluation_samples(self) -> tuple[np.ndarray, np.ndarray]:
        """The bundle's evaluation set: held-out normal + a slice of every fault file (seeded)."""
        z, zf = self.window_.z, self.window_.zf
        rng = np.random.default_rng(self.config_.seed)
        per_fault = max(1, 128 // len(zf))
        fault_eval = np.concatenate(
            [v[rng.choice(len(v), min(per_fault, len(v)), replace=False)] for v in zf.values()]
        )
        nt = z["test"][rng.choice(len(z["test"]), min(128, len(z["test"])), replace=False)]
        eval_y = np.r_[np.zeros(len(nt)), np.ones(len(fault_eval))].astype(np.int64)
        return np.concatenate([nt, fault_eval]), eval_y

    def _bundle_config(self) -> dict[str, Any]:
        """``config`` of bundle.json: what the device needs to compute the same score and alarm."""
        cfg, r = self.config_, self.window_
        d = r.data
        tr = d["sets"]["train"]
        centre, spread = robust_moments(levels(tr["ind"][: tr["plain"]]), 0.0)
        out = {
            "fs": d["fs"],
            "window": cfg.window,
            "hop": cfg.window,
            "features": cfg.features.to_dict(),
            "feature_names": d["fx"].names,
            "baseline": r.baseline.to_dict(),
            # the level channel (log10 RMS, peak), apart from the model: centre and spread of the
            # healthy training windows, to be re-learned where the sensor is mounted
            "levels": {"names": list(LEVELS), "centre": centre.tolist(), "spread": spread.tolist()},
            "alarm": asdict(cfg.alarm()),
            # input drift reference (edge.drift): level, centroid, spectrum of the healthy training part
            "drift": self._drift_reference(),
            "dataset": {**(self.dataset or {}), "synthetic": self.synthetic_, "normal": d["normal"],
                        "faults": list(r.zf)},
            "training": cfg.to_dict(),
        }
        if self.diagnosis_ is not None:
            out["diagnosis"] = self.diagnosis_.to_dict()
        return out

    def _drift_reference(self) -> dict[str, Any] | None:
        """The drift statistics of the healthy training split, half-overlapping windows (None
        when the split holds too few: the device then skips the drift check)."""
        from edgewise.edge.apps.vibration import frame_signal
        from edgewise.edge.drift import DriftReference

        normal, _ = split_recordings(self.recordings_)
        a, b = split_in_time(len(normal.signal), self.config_.split)[0]
        w = frame_signal(normal.signal[a:b], self.config_.window, max(1, self.config_.window // 2))
        try:
            return DriftReference.fit("vibration", w, fs=normal.fs).to_dict()
        except ValueError as e:
            log(f"drift reference: none ({e})", quiet=self.quiet)
            return None

    def _conversion_spec(self, decider: Any) -> Any:
        from edgewise.converters import ConversionSpec

        thr = self.thresholds_
        return ConversionSpec(
            name="vibration-autoencoder" + ("-synthetic" if self.synthetic_ else ""),
            task="anomaly_detection",
            app="vibration",
            input={
                "layout": "NC",
                "color": "none",
                "normalization": {
                    "mean": self.window_.mean.tolist(),
                    "std": self.window_.std.tolist(),
                    "of": "edge.apps.vibration.FeatureExtractor features",
                },
            },
            output={"meaning": "reconstruction of the standardized features", "kind": "reconstruction",
                    "score": "mse"},
            labels=["normal", "anomaly"],
            thresholds={"decision": thr["keras"], "baseline": thr["baseline"],
                        "target_far": self.config_.target_far},
            config=self._bundle_config(),
            metrics={"history": self.window_.history},
            decider=decider,
        )

    def _variant_scores(self, w: BundleWriter) -> tuple[dict[str, Scores], dict[str, float]]:
        """Scores and thresholds of Keras, the baseline and every converted variant evaluated."""
        from edgewise.edge.backends import open_model

        scores, thr = dict(self.scores_), dict(self.thresholds_)
        for v in EVAL_VARIANTS:
            meta = w.meta["variants"].get(v)
            if meta is None:
                continue
            m = open_model(w.root / meta["file"], backend=meta["backend"], threads=self.threads)
            scores[v] = self.window_.scores(m.predict)
            # the variant's own validation scores + the Keras fold models' out-of-fold scores
            thr[v] = self._threshold(v, scores[v]["val"])
            m.close()
        return scores, thr

    def _complete(self, w: BundleWriter, seconds: float) -> dict[str, Any]:
        """Per-variant thresholds, evaluation and report into the unsealed bundle; the metrics."""
        cfg, r = self.config_, self.window_
        scores, thr = self._variant_scores(w)
        w.meta["thresholds"]["per_variant"] = {k: v for k, v in thr.items() if k in w.meta["variants"]}
        results = {k: evaluate_scores(v["test"], v["faults"], thr[k]) for k, v in scores.items()}
        for k, v in scores.items():  # the same scores at the plain empirical-quantile threshold
            results[k]["empirical_threshold"] = empirical_figures(v, cfg.target_far)
        metrics: dict[str, Any] = {
            "synthetic": self.synthetic_,
            "dataset": w.meta["config"]["dataset"],
            "fs": r.data["fs"],
            "window": cfg.window,
            "windows": {**{k: len(r.z[k]) for k in ("train", "val", "test")},
                        "faults": {k: len(v) for k, v in r.zf.items()}},
            "split_seconds": {k: list(v["range_s"]) for k, v in r.data["sets"].items()},
            "target_far": cfg.target_far,
            "threshold_rule": cfg.threshold_rule,
            "threshold_calibration": {"validation_windows": len(r.z["val"]),
                                      "out_of_fold_windows": len(self.out_of_fold_["keras"]),
                                      "folds": cfg.threshold_folds},
            "results": results,
            "int8_vs_float32_auroc_delta": auroc_delta(results, "tflite_int8", "tflite_float32"),
            "train_seconds": round(seconds, 1),
        }
        if self.window_sweep_:
            metrics["window_sweep"] = self.window_sweep_
        extra_files = self._robustness_and_diagnosis(w, metrics, thr)
        metrics["targets"] = check_targets(metrics)
        if metrics.get("robustness"):
            scorer = "tflite_int8" if "tflite_int8" in metrics["robustness"][0]["scorers"] else "keras"
            metrics["targets"].update(robustness_targets(metrics["robustness"], scorer))
        if metrics.get("diagnosis"):
            right = metrics["diagnosis"]["summary"].get("given", {}).get("right", 0)
            files = metrics["diagnosis"]["summary"]["files"]
            key = f"diagnosis: right part for >= 80 % of the {files} fault files (speed known)"
            metrics["targets"][key] = {"value": right, "pass": right >= 0.8 * files}
        for rel, data in {**report_files(metrics, scores, thr, r.data, r.history), **extra_files}.items():
            w.add_bytes(rel, data)
        w.meta["metrics"]["vibration"] = compact(metrics)
        return metrics


    def _robustness_and_diagnosis(
        self, w: BundleWriter, metrics: dict[str, Any], thr: dict[str, float]
    ) -> dict[str, bytes]:
        """The perturbation table (int8 model and baseline at their bundle thresholds, on the
        held-out healthy test part and every fault file) and the diagnosis of every fault file
        into ``metrics``; returns the envelope-spectrum figure."""
        from edgewise.edge.backends import open_model

        cfg, r = self.config_, self.window_
        normal, faults = split_recordings(self.recordings_)
        a, b = split_in_time(len(normal.signal), cfg.split)[2]
        setup = ScoreSetup(r.data["fx"], r.mean, r.std, cfg.hop_normal, cfg.hop_fault)
        scorers: dict[str, Scorer] = {}
        meta = w.meta["variants"].get("tflite_int8")
        model = None
        if meta is not None:
            model = open_model(w.root / meta["file"], backend=meta["backend"], threads=self.threads)
            scorers["tflite_int8"] = model_scorer(model.predict, thr["tflite_int8"])
        else:
            scorers["keras"] = model_scorer(keras_predict(r.model), thr["keras"])
        scorers["baseline"] = baseline_scorer(r.baseline, thr["baseline"])
        log("robustness: perturbing the held-out healthy part and every fault file ...", quiet=self.quiet)
        metrics["robustness"] = robustness(normal.signal[a:b], {f.name: f.signal for f in faults}, setup,
                                           scorers, seed=cfg.seed, quiet=self.quiet)
        if model is not None:
            model.close()
        files: dict[str, bytes] = {}
        if self.diagnosis_ is not None:
            sig = {f.name: (f.signal, f.label.removeprefix("synthetic_"),
                            float(f.meta["rpm"]) / 60 if f.meta.get("rpm") else None) for f in faults}
            rows = diagnosis_table(sig, normal.fs, self.diagnosis_)
            metrics["diagnosis"] = {"rows": rows, "summary": diagnosis_summary(rows),
                                    "config": self.diagnosis_.to_dict()}
            lab = "SYNTHETIC " if self.synthetic_ else ""
            files["report/envelope_spectra.png"] = plot_envelopes(
                sig, normal.fs, self.diagnosis_, rows,
                f"{lab}squared-envelope spectra (pre-whitened, first {self.diagnosis_.seconds:g} s), "
                "fault frequencies marked")
        return files


def train_vibration(
    recs: list[Recording],
    out: str | Path,
    cfg: VibrationConfig | None = None,
    *,
    dataset: dict[str, Any] | None = None,
    variants: list[str] | None = None,
    sweep: list[int] | None = None,
    threads: int = 2,
    quiet: bool = False,
) -> dict[str, Any]:
    """Train, convert, evaluate and report; returns the metrics written to report/metrics.json."""
    trainer = VibrationTrainer(
        cfg, dataset=dataset, variants=variants, sweep=sweep, threads=threads, quiet=quiet
    )
    return trainer.fit(recs).export(out)
