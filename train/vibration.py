"""Vibration anomaly detection: train on normal windows only, convert, evaluate, report.

``edgewise train vibration --data DIR --out BUNDLE`` runs the whole protocol on CWRU:

1. read the healthy recording and every fault file at their own rates, bring them to 12 kHz
   (the healthy 97.mat is read at ``--normal-fs``, default 48 kHz, see ``data/cwru.py``);
2. split the healthy recording in time into train / validation / test (disjoint ranges);
3. features per window with ``edgewise.edge.apps.vibration.FeatureExtractor`` (the code the
   device runs), standardized with the training mean/std (stored in the bundle);
4. a dense Keras autoencoder on normal training windows; a Mahalanobis baseline on the five
   classical indicators (numpy, runs on the device too);
5. thresholds from held-out normal (validation) scores for a target false-alarm rate, one per
   variant, stored in the bundle; conversion through ``converters.build_bundle``;
6. test = held-out normal windows vs every fault file: AUROC per file and overall, false-alarm
   rate and recall at the bundle threshold for Keras, TFLite float32, TFLite int8, ONNX int8
   and the baseline; plots and ``report/vibration.md``, figures in ``report/metrics.json``;
7. optionally detection vs window length (Keras float32 + baseline, retrained per length).

>>> # edgewise train vibration --data $EDGEWISE_DATA --out vib.bundle
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgewise.edge.apps.vibration import (
    INDICATORS,
    FeatureConfig,
    FeatureExtractor,
    Mahalanobis,
    frame_signal,
    reconstruction_error,
    split_in_time,
    standardize,
)
from edgewise.edge.metrics import auroc, threshold_for_false_alarm
from edgewise.edge.progress import log
from edgewise.edge.sources.sensors import Recording

from .report import figure_png, plot_png

__all__ = [
    "VibrationConfig",
    "prepare",
    "build_autoencoder",
    "train_vibration",
    "evaluate_scores",
    "sweep_window_lengths",
    "train_main",
    "demo",
]

EVAL_VARIANTS = ("tflite_float32", "tflite_int8", "onnx_int8")


@dataclass
class VibrationConfig:
    """Everything that decides a training run; stored in the bundle (config.training)."""

    window: int = 2048
    hop_normal: int = 128  # healthy data is scarce (5 s): dense overlapping windows
    hop_fault: int = 512
    split: tuple[float, float, float] = (0.5, 0.2, 0.3)
    target_far: float = 0.01
    epochs: int = 200
    batch: int = 32
    hidden: tuple[int, ...] = (64, 16)
    seed: int = 0
    features: FeatureConfig = field(default_factory=FeatureConfig)
    threshold_rule: str = "lognormal"  # or "empirical"
    threshold_folds: int = 4  # out-of-fold training-split scores join validation; 0: validation only
    alarm_n: int = 3
    alarm_m: int = 5
    clear_ratio: float = 0.8

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["features"] = self.features.to_dict()
        d["split"], d["hidden"] = list(self.split), list(self.hidden)
        return d


def normal_threshold(val_scores: np.ndarray, target_far: float, rule: str = "lognormal") -> float:
    """The alarm threshold from held-out normal scores for a target false-alarm rate.

    "empirical": the (1 - far) quantile of the validation scores. With ~100 strongly
    overlapping (so correlated) validation windows that quantile is just their maximum and
    says little about the tail. "lognormal" (default): fit a normal distribution to the log
    scores and take its (1 - far) quantile, which extrapolates the tail from all scores; it is
    never below the empirical one. Both use validation windows only, never the test windows.
    """
    from statistics import NormalDist

    emp = threshold_for_false_alarm(val_scores, target_far)
    if rule == "empirical":
        return emp
    if rule != "lognormal":
        raise ValueError(f"threshold rule must be 'lognormal' or 'empirical', got '{rule}'")
    ls = np.log(np.maximum(np.asarray(val_scores, np.float64), 1e-12))
    z = NormalDist().inv_cdf(1.0 - target_far)
    return float(max(emp, np.exp(ls.mean() + z * ls.std(ddof=1))))


def _features(fx: FeatureExtractor, windows: np.ndarray, chunk: int = 512) -> tuple[np.ndarray, np.ndarray]:
    if len(windows) == 0:
        return np.empty((0, fx.dim), np.float32), np.empty((0, len(INDICATORS)))
    parts = [fx.transform(windows[i : i + chunk]) for i in range(0, len(windows), chunk)]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def prepare(recs: list[Recording], cfg: VibrationConfig) -> dict[str, Any]:
    """Windows and features: healthy split in time, every fault file whole.

    Returns feats/ind for "train", "val", "test" and per fault recording, plus the window
    start times (s) for the score-over-time plots.
    """
    normal = [r for r in recs if r.label.endswith("normal")]
    faults = [r for r in recs if not r.label.endswith("normal")]
    if len(normal) != 1:
        raise ValueError(f"expected exactly one healthy recording, got {len(normal)}")
    if not faults:
        raise ValueError("no fault recordings to evaluate against")
    fs = normal[0].fs
    for r in recs:
        if not np.isclose(r.fs, fs):
            raise ValueError(f"{r.name}: sampled at {r.fs:g} Hz, the healthy recording at {fs:g} Hz")
    fx = FeatureExtractor(fs, cfg.window, cfg.features)
    sig = normal[0].signal
    out: dict[str, Any] = {"fs": fs, "fx": fx, "normal": normal[0].name, "sets": {}, "faults": {}}
    for name, (a, b) in zip(("train", "val", "test"), split_in_time(len(sig), cfg.split), strict=True):
        w = frame_signal(sig[a:b], cfg.window, cfg.hop_normal)
        if len(w) < 4:
            raise ValueError(
                f"healthy {name} split has {len(w)} windows of {cfg.window} samples; "
                "use a shorter window or a longer recording"
            )
        f, ind = _features(fx, w)
        t = (a + np.arange(len(w)) * cfg.hop_normal) / fs
        out["sets"][name] = {"feats": f, "ind": ind, "t": t, "range_s": (a / fs, b / fs)}
    for r in faults:
        w = frame_signal(r.signal, cfg.window, cfg.hop_fault)
        if len(w) == 0:
            continue
        f, ind = _features(fx, w)
        out["faults"][r.name] = {
            "feats": f,
            "ind": ind,
            "t": np.arange(len(w)) * cfg.hop_fault / fs,
            "label": r.label,
        }
    return out


def build_autoencoder(keras: Any, dim: int, hidden: tuple[int, ...] = (64, 16)) -> Any:
    """A dense autoencoder: dim -> hidden... -> bottleneck -> ...hidden -> dim (linear out)."""
    inp = keras.Input((dim,), name="features")
    h = inp
    for i, u in enumerate(hidden):
        h = keras.layers.Dense(u, activation="relu", name=f"enc{i}")(h)
    for i, u in enumerate(reversed(hidden[:-1])):
        h = keras.layers.Dense(u, activation="relu", name=f"dec{i}")(h)
    out = keras.layers.Dense(dim, name="reconstruction")(h)
    return keras.Model(inp, out, name="vibration_autoencoder")


def feature_moments(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Training mean and std (floored at 1e-3) of the features: the bundle's standardization."""
    return feats.mean(axis=0), np.maximum(feats.std(axis=0), 1e-3).astype(np.float32)


def _fit_ae(
    keras: Any, ztr: np.ndarray, zva: np.ndarray | None, cfg: VibrationConfig, quiet: bool, desc: str
):
    """Fit the autoencoder; ``zva`` None (out-of-fold models) fits without validation."""
    from .keras_utils import EpochProgress

    model = build_autoencoder(keras, ztr.shape[1], cfg.hidden)
    model.compile(optimizer=keras.optimizers.Adam(2e-3), loss="mse")
    hist = model.fit(
        ztr,
        ztr,
        validation_data=None if zva is None else (zva, zva),
        epochs=cfg.epochs,
        batch_size=cfg.batch,
        shuffle=True,
        verbose=0,
        callbacks=[EpochProgress(cfg.epochs, quiet=quiet, desc=desc)],
    )
    return model, {k: [float(v) for v in vs] for k, vs in hist.history.items()}


def evaluate_scores(
    normal_test: np.ndarray, faults: dict[str, np.ndarray], threshold: float
) -> dict[str, Any]:
    """AUROC per fault file and overall, recall per file and FAR at ``threshold`` (score > t)."""
    n = np.asarray(normal_test, np.float64)
    per = {}
    for name, s in faults.items():
        s = np.asarray(s, np.float64)
        per[name] = {
            "auroc": auroc(np.r_[n, s], np.r_[np.zeros(len(n)), np.ones(len(s))]),
            "recall": float((s > threshold).mean()),
            "windows": int(len(s)),
        }
    alls = np.concatenate([np.asarray(s, np.float64) for s in faults.values()])
    return {
        "threshold": float(threshold),
        "far": float((n > threshold).mean()),
        "normal_windows": int(len(n)),
        "auroc_overall": auroc(np.r_[n, alls], np.r_[np.zeros(len(n)), np.ones(len(alls))]),
        "auroc_min": float(min(v["auroc"] for v in per.values())),
        "recall_min": float(min(v["recall"] for v in per.values())),
        "recall_overall": float((alls > threshold).mean()),
        "per_file": per,
    }


def _scores_model(predict: Any, z: np.ndarray, chunk: int = 256) -> np.ndarray:
    if len(z) == 0:
        return np.empty(0)
    rec = np.concatenate([np.asarray(predict(z[i : i + chunk])) for i in range(0, len(z), chunk)])
    return reconstruction_error(z, rec)


def _fit_window(recs: list[Recording], cfg: VibrationConfig, quiet: bool, keras: Any, desc: str) -> dict:
    """Prepare, standardize, fit the AE and the baseline for one window length."""
    d = prepare(recs, cfg)
    mean, std = feature_moments(d["sets"]["train"]["feats"])
    z = {k: standardize(v["feats"], mean, std) for k, v in d["sets"].items()}
    zf = {k: standardize(v["feats"], mean, std) for k, v in d["faults"].items()}
    model, hist = _fit_ae(keras, z["train"], z["val"], cfg, quiet, desc)
    maha = Mahalanobis().fit(d["sets"]["train"]["ind"])
    return {"d": d, "mean": mean, "std": std, "z": z, "zf": zf, "model": model, "history": hist, "maha": maha}


def time_folds(t: np.ndarray, win_s: float, k: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(held-out, fit) masks over windows starting at times ``t`` (s), ``k`` blocks in time.

    Fit windows share no sample with any held-out window: overlapping windows next to the
    block are dropped from the fit set rather than leaking the held-out signal.
    """
    edges = np.linspace(t.min(), t.max(), k + 1)
    edges[-1] = np.inf
    folds = []
    for i in range(k):
        held = (t >= edges[i]) & (t < edges[i + 1])
        if held.any():
            lo, hi = t[held].min(), t[held].max() + win_s
            folds.append((held, (t + win_s <= lo) | (t >= hi)))
        else:
            folds.append((held, np.zeros_like(held)))
    return folds


def out_of_fold_scores(r: dict[str, Any], cfg: VibrationConfig, keras: Any) -> dict[str, np.ndarray]:
    """Scores of the training split's windows by models that never saw them (folds in time).

    The threshold needs the tail of normal scores, and the validation split alone is about a
    second of signal (~80 strongly overlapping windows). Cutting the training split into
    ``cfg.threshold_folds`` blocks in time, fitting the autoencoder and the baseline on the
    other blocks (no window sharing a sample with the held-out block) and scoring the block
    triples the held-out normal scores the threshold is fitted on. The fold models are
    slightly weaker than the final one (less data), so their scores err on the high side:
    fewer false alarms, never a test window seen. Empty arrays when folds are off or too small.
    """
    k = cfg.threshold_folds
    sets = r["d"]["sets"]["train"]
    feats, ind, t = sets["feats"], sets["ind"], sets["t"]
    win_s = cfg.window / r["d"]["fs"]
    out: dict[str, list[np.ndarray]] = {"keras": [], "baseline": []}
    if k >= 2:
        for i, (held, fit) in enumerate(time_folds(t, win_s, k)):
            # a fold model fitted on less than a third of the training windows (long windows,
            # where the no-shared-sample gaps eat the split) is not representative: skip it
            if not held.any() or fit.sum() < max(8, len(t) / 3):
                continue
            mean, std = feature_moments(feats[fit])
            keras.utils.set_random_seed(cfg.seed + 1 + i)
            m, _ = _fit_ae(keras, standardize(feats[fit], mean, std), None, cfg, True, f"fold {i + 1}")
            out["keras"].append(_scores_model(_keras_predict(m), standardize(feats[held], mean, std)))
            out["baseline"].append(Mahalanobis().fit(ind[fit]).score(ind[held]))
    return {key: np.concatenate(v) if v else np.empty(0) for key, v in out.items()}


def _keras_predict(model: Any) -> Any:
    return lambda x: model.predict(x, verbose=0)


def sweep_window_lengths(
    recs: list[Recording], cfg: VibrationConfig, lengths: list[int], quiet: bool = False
) -> list[dict[str, Any]]:
    """Detection vs window length: Keras float32 AE and baseline retrained per length.

    Hops scale with the window (normal: window/32, faults: window/4) so every length sees
    the same stretch of signal; thresholds come from held-out normal scores as in the main run.
    """
    from .keras_utils import tf_setup

    keras = tf_setup(cfg.seed, threads=2)
    rows = []
    for L in lengths:
        c = VibrationConfig(
            **{**cfg.__dict__, "window": L, "hop_normal": max(32, L // 32), "hop_fault": max(128, L // 4)}
        )
        t0 = time.monotonic()
        try:
            r = _fit_window(recs, c, True, keras, f"window {L}")
        except ValueError as e:
            rows.append({"window": L, "error": str(e)})
            continue
        oof = out_of_fold_scores(r, c, keras)
        sv = np.r_[_scores_model(_keras_predict(r["model"]), r["z"]["val"]), oof["keras"]]
        st = _scores_model(_keras_predict(r["model"]), r["z"]["test"])
        sf = {k: _scores_model(_keras_predict(r["model"]), v) for k, v in r["zf"].items()}
        ae = evaluate_scores(st, sf, normal_threshold(sv, c.target_far, c.threshold_rule))
        bv = np.r_[r["maha"].score(r["d"]["sets"]["val"]["ind"]), oof["baseline"]]
        bt = r["maha"].score(r["d"]["sets"]["test"]["ind"])
        bf = {k: r["maha"].score(v["ind"]) for k, v in r["d"]["faults"].items()}
        base = evaluate_scores(bt, bf, normal_threshold(bv, c.target_far, c.threshold_rule))
        row = {
            "window": L,
            "seconds": L / r["d"]["fs"],
            "normal_test_windows": ae["normal_windows"],
            "autoencoder_keras": {k: ae[k] for k in ("auroc_min", "auroc_overall", "recall_min", "far")},
            "baseline": {k: base[k] for k in ("auroc_min", "auroc_overall", "recall_min", "far")},
            "seconds_to_train": round(time.monotonic() - t0, 1),
        }
        rows.append(row)
        log(
            f"window {L}: AE auroc_min={ae['auroc_min']:.4f} recall_min={ae['recall_min']:.3f} "
            f"far={ae['far']:.3f} | baseline auroc_min={base['auroc_min']:.4f} "
            f"recall_min={base['recall_min']:.3f} far={base['far']:.3f}",
            quiet=quiet,
        )
    return rows


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
    from edgewise.converters import ConversionSpec, build_bundle
    from edgewise.converters.package import add_report
    from edgewise.converters.parity import Decider
    from edgewise.edge.backends import load_model
    from edgewise.edge.bundle import load_bundle, reopen

    from .keras_utils import tf_setup

    cfg = cfg or VibrationConfig()
    dataset = dict(dataset or {})
    synthetic = any(r.meta.get("synthetic") for r in recs)
    keras = tf_setup(cfg.seed, threads=threads)
    t0 = time.monotonic()
    r = _fit_window(recs, cfg, quiet, keras, "autoencoder")
    d, z, zf, model, maha = r["d"], r["z"], r["zf"], r["model"], r["maha"]
    log(
        f"windows: train {len(z['train'])}, val {len(z['val'])}, test {len(z['test'])} healthy; "
        f"{sum(len(v) for v in zf.values())} fault windows in {len(zf)} files"
        + (" (SYNTHETIC data)" if synthetic else ""),
        quiet=quiet,
    )
    # scores of the Keras model and the baseline; thresholds from validation (held-out normal)
    scores: dict[str, dict[str, Any]] = {}
    kp = _keras_predict(model)
    scores["keras"] = {
        "train": _scores_model(kp, z["train"]),
        "val": _scores_model(kp, z["val"]),
        "test": _scores_model(kp, z["test"]),
        "faults": {k: _scores_model(kp, v) for k, v in zf.items()},
    }
    scores["baseline"] = {
        "train": maha.score(d["sets"]["train"]["ind"]),
        "val": maha.score(d["sets"]["val"]["ind"]),
        "test": maha.score(d["sets"]["test"]["ind"]),
        "faults": {k: maha.score(v["ind"]) for k, v in d["faults"].items()},
    }
    # thresholds from held-out normal scores: validation + out-of-fold training windows
    oof = out_of_fold_scores(r, cfg, keras)

    def calibration(name: str, val: np.ndarray) -> np.ndarray:
        return np.r_[val, oof["baseline" if name == "baseline" else "keras"]]

    thr = {
        k: normal_threshold(calibration(k, v["val"]), cfg.target_far, cfg.threshold_rule)
        for k, v in scores.items()
    }

    # evaluation samples in the bundle: held-out normal + a slice of every fault file
    rng = np.random.default_rng(cfg.seed)
    per_fault = max(1, 128 // len(zf))
    fault_eval = np.concatenate(
        [v[rng.choice(len(v), min(per_fault, len(v)), replace=False)] for v in zf.values()]
    )
    nt = z["test"][rng.choice(len(z["test"]), min(128, len(z["test"])), replace=False)]
    eval_x = np.concatenate([nt, fault_eval])
    eval_y = np.r_[np.zeros(len(nt)), np.ones(len(fault_eval))].astype(np.int64)
    config = {
        "fs": d["fs"],
        "window": cfg.window,
        "hop": cfg.window,
        "features": cfg.features.to_dict(),
        "feature_names": d["fx"].names,
        "baseline": maha.to_dict(),
        "alarm": {"n": cfg.alarm_n, "m": cfg.alarm_m, "clear_ratio": cfg.clear_ratio},
        "dataset": {**dataset, "synthetic": synthetic, "normal": d["normal"], "faults": list(zf)},
        "training": cfg.to_dict(),
    }
    spec = ConversionSpec(
        name="vibration-autoencoder" + ("-synthetic" if synthetic else ""),
        task="anomaly_detection",
        app="vibration",
        input={
            "layout": "NC",
            "color": "none",
            "normalization": {
                "mean": r["mean"].tolist(),
                "std": r["std"].tolist(),
                "of": "edge.apps.vibration.FeatureExtractor features",
            },
        },
        output={
            "meaning": "reconstruction of the standardized features",
            "kind": "reconstruction",
            "score": "mse",
        },
        labels=["normal", "anomaly"],
        thresholds={"decision": thr["keras"], "baseline": thr["baseline"], "target_far": cfg.target_far},
        config=config,
        metrics={"history": r["history"]},
        decider=Decider(kind="threshold", score="mse", threshold=thr["keras"]),
    )
    names = list(variants) if variants else None
    res = build_bundle(
        model,
        out,
        spec,
        calib_x=z["train"],
        eval_x=eval_x,
        eval_y=eval_y,
        variants=names,
        threads=threads,
        quiet=quiet,
    )
    bundle = load_bundle(res.path)
    for v in EVAL_VARIANTS:
        if v not in bundle.variants:
            continue
        m = load_model(bundle, v, threads=threads)
        scores[v] = {
            "train": _scores_model(m.predict, z["train"]),
            "val": _scores_model(m.predict, z["val"]),
            "test": _scores_model(m.predict, z["test"]),
            "faults": {k: _scores_model(m.predict, vv) for k, vv in zf.items()},
        }
        # the variant's own validation scores + the Keras fold models' out-of-fold scores
        thr[v] = normal_threshold(calibration(v, scores[v]["val"]), cfg.target_far, cfg.threshold_rule)
        m.close()
    w = reopen(res.path)
    w.meta["thresholds"]["per_variant"] = {k: v for k, v in thr.items() if k in bundle.variants}
    w.finish()

    results = {k: evaluate_scores(v["test"], v["faults"], thr[k]) for k, v in scores.items()}
    for k, v in scores.items():  # the same scores at the plain empirical-quantile threshold
        te = threshold_for_false_alarm(v["val"], cfg.target_far)
        results[k]["empirical_threshold"] = {
            "threshold": te,
            "far": float((v["test"] > te).mean()),
            "recall_min": float(min((f > te).mean() for f in v["faults"].values())),
        }
    metrics: dict[str, Any] = {
        "synthetic": synthetic,
        "dataset": config["dataset"],
        "fs": d["fs"],
        "window": cfg.window,
        "windows": {
            "train": len(z["train"]),
            "val": len(z["val"]),
            "test": len(z["test"]),
            "faults": {k: len(v) for k, v in zf.items()},
        },
        "split_seconds": {k: list(v["range_s"]) for k, v in d["sets"].items()},
        "target_far": cfg.target_far,
        "threshold_rule": cfg.threshold_rule,
        "threshold_calibration": {
            "validation_windows": len(z["val"]),
            "out_of_fold_windows": len(oof["keras"]),
            "folds": cfg.threshold_folds,
        },
        "results": results,
        "int8_vs_float32_auroc_delta": _delta(results, "tflite_int8", "tflite_float32"),
        "train_seconds": round(time.monotonic() - t0, 1),
    }
    if sweep:
        metrics["window_sweep"] = sweep_window_lengths(recs, cfg, sweep, quiet=quiet)
    metrics["targets"] = check_targets(metrics)
    files = _report_files(metrics, scores, thr, d, r["history"], res.parity)
    add_report(res.path, files, {"vibration": _compact(metrics)})
    return metrics


def _delta(results: dict[str, Any], a: str, b: str) -> dict[str, float] | None:
    if a not in results or b not in results:
        return None
    per = {
        k: results[a]["per_file"][k]["auroc"] - results[b]["per_file"][k]["auroc"]
        for k in results[a]["per_file"]
    }
    return {
        "overall": results[a]["auroc_overall"] - results[b]["auroc_overall"],
        "max_abs_per_file": float(max(abs(v) for v in per.values())),
    }


def check_targets(m: dict[str, Any]) -> dict[str, Any]:
    """The issue's targets, each with the measured figure and pass/fail."""
    res = m["results"]
    t: dict[str, Any] = {}
    q = res.get("tflite_int8")
    if q:
        t["int8_auroc_min>=0.999"] = {"value": q["auroc_min"], "pass": q["auroc_min"] >= 0.999}
        t["int8_recall_min>=0.99"] = {"value": q["recall_min"], "pass": q["recall_min"] >= 0.99}
        t["int8_far<=0.01"] = {"value": q["far"], "pass": q["far"] <= 0.01}
    dl = m.get("int8_vs_float32_auroc_delta")
    if dl:
        t["int8_vs_float32_auroc_within_0.005"] = {
            "value": dl["max_abs_per_file"],
            "pass": dl["max_abs_per_file"] <= 0.005,
        }
    return t


def _compact(m: dict[str, Any]) -> dict[str, Any]:
    """What goes into bundle.json metrics (the full per-file table is in report/metrics.json)."""
    return {
        "synthetic": m["synthetic"],
        "window": m["window"],
        "target_far": m["target_far"],
        "summary": {
            k: {kk: v[kk] for kk in ("auroc_min", "auroc_overall", "recall_min", "far", "threshold")}
            for k, v in m["results"].items()
        },
        "targets": m["targets"],
    }


def _plot_score_time(scores: dict[str, Any], d: dict[str, Any], thr: float, title: str) -> bytes:
    from .report import _plt

    plt = _plt()
    names = ["healthy", *d["faults"]]
    cols = 4
    rows = int(np.ceil(len(names) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.2 * rows), sharey=True, squeeze=False)
    floor = 1e-6
    for ax, name in zip(axes.ravel(), names, strict=False):
        if name == "healthy":
            for part, color in (("train", "tab:gray"), ("val", "tab:blue"), ("test", "tab:green")):
                s = scores.get(part)
                if s is None:
                    continue
                ax.plot(d["sets"][part]["t"], np.maximum(s, floor), ".", ms=2, color=color, label=part)
            ax.legend(fontsize=6)
        else:
            ax.plot(
                d["faults"][name]["t"], np.maximum(scores["faults"][name], floor), ".", ms=2, color="tab:red"
            )
        ax.axhline(thr, color="k", linestyle="--", lw=0.8)
        ax.set_yscale("log")
        ax.set_title(name, fontsize=8)
        ax.tick_params(labelsize=6)
    for ax in axes.ravel()[len(names) :]:
        ax.axis("off")
    fig.suptitle(title, fontsize=9)
    fig.supxlabel("time in recording (s)", fontsize=8)
    return figure_png(fig, dpi=90)


def _report_files(
    m: dict[str, Any],
    scores: dict[str, Any],
    thr: dict[str, float],
    d: dict[str, Any],
    history: dict[str, list[float]],
    parity: list[dict[str, Any]],
) -> dict[str, bytes]:
    from . import report

    files: dict[str, bytes] = {}
    files["report/learning_curves.png"] = plot_png(
        report.plot_learning_curves, history, title="autoencoder (mse)"
    )
    lab = "SYNTHETIC " if m["synthetic"] else ""
    for k in ("tflite_int8", "keras", "baseline"):
        if k not in scores:
            continue
        s = dict(scores[k])
        files[f"report/score_time_{k}.png"] = _plot_score_time(
            s, d, thr[k], f"{lab}{k} score per window over time (dashed: bundle threshold)"
        )
        allf = np.concatenate(list(s["faults"].values()))
        files[f"report/histogram_{k}.png"] = plot_png(
            report.plot_score_histogram,
            {
                "healthy test": np.log10(np.maximum(s["test"], 1e-9)),
                "healthy val": np.log10(np.maximum(s["val"], 1e-9)),
                "faults (all files)": np.log10(np.maximum(allf, 1e-9)),
            },
            threshold=float(np.log10(thr[k])),
            title=f"{lab}{k}: log10 score",
        )
    curves = {}
    for k, s in scores.items():
        allf = np.concatenate(list(s["faults"].values()))
        curves[k] = (np.r_[s["test"], allf], np.r_[np.zeros(len(s["test"])), np.ones(len(allf))])
    files["report/roc.png"] = plot_png(report.plot_roc, curves, title=f"{lab}healthy test vs all fault files")
    if m.get("window_sweep"):
        files["report/window_sweep.png"] = _plot_sweep(m["window_sweep"])
    files["report/metrics.json"] = json.dumps(m, indent=2, default=_plain).encode()
    files["report/vibration.md"] = report_markdown(m).encode()
    return files


def _plain(o: Any) -> Any:
    return o.tolist() if hasattr(o, "tolist") else str(o)


def _plot_sweep(rows: list[dict[str, Any]]) -> bytes:
    from .report import _plt

    plt = _plt()
    ok = [r for r in rows if "error" not in r]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    L = [r["window"] for r in ok]
    for k, style in (("autoencoder_keras", "o-"), ("baseline", "s--")):
        ax.plot(L, [r[k]["auroc_min"] for r in ok], style, label=f"{k} min AUROC")
        ax.plot(L, [r[k]["recall_min"] for r in ok], style, alpha=0.5, label=f"{k} min recall")
    ax.set_xscale("log")
    ax.set_xlabel("window (samples at 12 kHz)")
    ax.legend(fontsize=7)
    ax.set_title("detection vs window length (worst fault file)")
    return figure_png(fig, dpi=90)


def _calibration_text(c: dict[str, Any] | None) -> str:
    if not c:
        return "validation windows"
    if not c.get("out_of_fold_windows"):
        return f"{c['validation_windows']} validation windows"
    return (f"{c['validation_windows']} validation windows + {c['out_of_fold_windows']} training windows "
            f"scored out of fold ({c['folds']} folds in time, see out_of_fold_scores)")


def report_markdown(m: dict[str, Any]) -> str:
    """The Markdown report: data, protocol, per-file table, targets, window sweep."""
    res = m["results"]
    order = [k for k in ("keras", "tflite_float32", "tflite_int8", "onnx_int8", "baseline") if k in res]
    ds = m["dataset"]
    lines = [f"# Vibration anomaly detection report{' (SYNTHETIC DATA)' if m['synthetic'] else ''}", ""]
    if m["synthetic"]:
        lines += [
            "**All figures below are on SYNTHETIC signals (edgewise.train.data.synthetic_vibration), "
            "not measurements.**",
            "",
        ]
    lines += [
        f"- data: {ds.get('name', 'recordings')}; healthy recording `{ds.get('normal')}`"
        + (f" read at {ds['normal_fs']:g} Hz (`--normal-fs`)" if ds.get("normal_fs") else "")
        + f", all signals at {m['fs']:g} Hz, channel {ds.get('channel', '-')}",
    ]
    if ds.get("rate_evidence"):
        ev = ", ".join(f"{k} Hz: r={v:.3f}" for k, v in ds["rate_evidence"].items())
        lines.append(f"- healthy-rate check (spectral-line correlation with the fault files): {ev}")
    w = m["windows"]
    sp = m["split_seconds"]
    lines += [
        f"- window {m['window']} samples ({m['window'] / m['fs'] * 1e3:.0f} ms); healthy split in time: "
        + ", ".join(
            f"{k} {sp[k][0]:.2f}-{sp[k][1]:.2f} s ({w[k]} windows)" for k in ("train", "val", "test")
        ),
        f"- {sum(w['faults'].values())} fault windows in {len(w['faults'])} files; thresholds from "
        f"held-out normal scores for a target false-alarm rate of {m['target_far']:.2%}, one per scorer "
        f"(rule: {m.get('threshold_rule', '-')}, see train/vibration.py normal_threshold): "
        + _calibration_text(m.get("threshold_calibration")),
        "",
        "## Per fault file: AUROC (healthy test vs file) / recall at the bundle threshold",
        "",
        "| file | " + " | ".join(order) + " |",
        "|---|" + "---|" * len(order),
    ]
    for f in res[order[0]]["per_file"]:
        cells = [
            f"{res[k]['per_file'][f]['auroc']:.4f} / {res[k]['per_file'][f]['recall']:.3f}" for k in order
        ]
        lines.append(f"| {f} | " + " | ".join(cells) + " |")
    lines.append(
        "| **overall AUROC** | " + " | ".join(f"{res[k]['auroc_overall']:.4f}" for k in order) + " |"
    )
    lines.append("| **min AUROC** | " + " | ".join(f"{res[k]['auroc_min']:.4f}" for k in order) + " |")
    lines.append("| **min recall** | " + " | ".join(f"{res[k]['recall_min']:.3f}" for k in order) + " |")
    lines.append(
        "| **FAR (healthy test)** | "
        + " | ".join(
            f"{res[k]['far']:.3f} ({round(res[k]['far'] * res[k]['normal_windows'])}"
            f"/{res[k]['normal_windows']})"
            for k in order
        )
        + " |"
    )
    lines.append("| threshold | " + " | ".join(f"{res[k]['threshold']:.4g}" for k in order) + " |")
    if all("empirical_threshold" in res[k] for k in order):
        lines.append(
            "| FAR at the plain empirical-quantile threshold | "
            + " | ".join(f"{res[k]['empirical_threshold']['far']:.3f}" for k in order)
            + " |"
        )
    lines += ["", "## Targets", ""]
    for name, t in m["targets"].items():
        lines.append(f"- {name}: {t['value']:.4f} -> {'PASS' if t['pass'] else 'FAIL'}")
    if m.get("window_sweep"):
        lines += [
            "",
            "## Detection vs window length (Keras float32 AE and baseline, retrained per length)",
            "",
            "| window | ms | healthy test windows | AE min AUROC | AE min recall | AE FAR | "
            "baseline min AUROC | baseline min recall | baseline FAR |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in m["window_sweep"]:
            if "error" in r:
                lines.append(f"| {r['window']} | - | {r['error']} | | | | | | |")
                continue
            a, b = r["autoencoder_keras"], r["baseline"]
            lines.append(
                f"| {r['window']} | {r['seconds'] * 1e3:.0f} | {r['normal_test_windows']} | "
                f"{a['auroc_min']:.4f} | {a['recall_min']:.3f} | {a['far']:.3f} | "
                f"{b['auroc_min']:.4f} | {b['recall_min']:.3f} | "
                f"{b['far']:.3f} |"
            )
    lines += [
        "",
        "Figures: score_time_*.png (score per window over time, every recording), histogram_*.png, "
        "roc.png, learning_curves.png"
        + (", window_sweep.png" if m.get("window_sweep") else "")
        + "; conversion parity: parity.md.",
        "",
    ]
    return "\n".join(lines)


def load_cwru_recordings(
    data: str | Path, channel: str, normal_fs: float, quiet: bool = False
) -> tuple[list[Recording], dict[str, Any]]:
    from .data.cwru import FAULT_FS, cwru_dir, load_cwru, rate_evidence

    root = cwru_dir(data)
    recs = load_cwru(root, channel=channel, normal_fs=normal_fs)
    ev = rate_evidence(root)
    log(
        f"CWRU: healthy recording read at {normal_fs:g} Hz (--normal-fs); spectral-line correlation "
        f"with the fault files per candidate rate: {ev}",
        quiet=quiet,
    )
    ds = {
        "name": "CWRU bearing data, drive end, 0 HP",
        "root": str(root),
        "channel": channel,
        "normal_fs": normal_fs,
        "fault_fs": FAULT_FS,
        "rate_evidence": ev,
    }
    return recs, ds


def train_main(argv: list[str]) -> int:
    from edgewise.edge.cliargs import Parser, add_quiet, fail, require

    p = Parser(
        prog="edgewise train vibration",
        description="Train the vibration autoencoder on healthy CWRU windows only, the Mahalanobis "
        "baseline, convert every variant, evaluate per fault file and write the report into the bundle.",
        epilog="examples:\n  edgewise train vibration --data $EDGEWISE_DATA --out vib.bundle\n"
        "  edgewise train vibration --synthetic --out vib-synth.bundle   # SYNTHETIC signals",
    )
    p.add_argument(
        "--data", help="datasets folder (holding vibration/cwru) or the cwru folder; default $EDGEWISE_DATA"
    )
    p.add_argument("--synthetic", action="store_true", help="train on SYNTHETIC signals instead")
    p.add_argument("--out", required=True, help="bundle directory")
    p.add_argument("--channel", default="DE", choices=("DE", "FE"), help="accelerometer channel")
    p.add_argument(
        "--normal-fs",
        type=float,
        default=48000.0,
        help="sampling rate of the healthy 97.mat (disputed: 12000 per the CWRU index, "
        "48000 per its spectrum; default 48000, see docs/vibration.md)",
    )
    p.add_argument("--window", type=int, default=2048, help="samples per window the model scores")
    p.add_argument("--epochs", type=int, default=200, help="autoencoder training epochs")
    p.add_argument("--target-far", type=float, default=0.01,
                   help="false-alarm rate per window the threshold is set for, on held-out normal data")
    p.add_argument(
        "--threshold-rule",
        choices=("lognormal", "empirical"),
        default="lognormal",
        help="how the threshold is set from held-out normal scores (see normal_threshold)",
    )
    p.add_argument(
        "--threshold-folds",
        type=int,
        default=VibrationConfig.threshold_folds,
        help="folds in time over the training split whose out-of-fold scores join the validation "
        "scores for the threshold (0: validation only)",
    )
    p.add_argument(
        "--sweep",
        default="512,1024,2048,4096,8192,12000",
        help="window lengths for the detection-vs-window study ('' = skip)",
    )
    p.add_argument("--variants", help="comma-separated variants (default: all six)")
    p.add_argument("--threads", type=int, default=2, help="TensorFlow and parity-check threads")
    p.add_argument("--seed", type=int, default=0, help="random seed (split, weights)")
    add_quiet(p)
    a = p.parse_args(argv)
    for bad, why in ((a.window < 64, "--window must be at least 64 samples"),
                     (a.epochs < 1, "--epochs must be at least 1"),
                     (a.threads < 1, "--threads must be at least 1"),
                     (not 0 < a.target_far < 1, "--target-far must be between 0 and 1")):
        if bad:
            p.error(why)
    require("tensorflow", "keras", "tf2onnx", "scipy", what="training")
    from .data import data_root

    cfg = VibrationConfig(
        window=a.window,
        epochs=a.epochs,
        target_far=a.target_far,
        seed=a.seed,
        threshold_rule=a.threshold_rule,
        threshold_folds=a.threshold_folds,
    )
    try:
        if a.synthetic:
            from .data.synthetic_vibration import synthetic_dataset

            recs = synthetic_dataset(seed=a.seed)
            ds = {"name": "SYNTHETIC (edgewise.train.data.synthetic_vibration)", "channel": "-"}
        else:
            root = data_root(a.data)
            if root is None:
                p.error("no data: pass --data DIR or set EDGEWISE_DATA (or use --synthetic)")
            recs, ds = load_cwru_recordings(root, a.channel, a.normal_fs, a.quiet)
    except ValueError as e:
        return fail("edgewise train vibration", e)
    try:
        sweep = [int(s) for s in a.sweep.split(",") if s.strip()] if a.sweep else None
    except ValueError:
        p.error(f"--sweep must be comma-separated window lengths, got '{a.sweep}'")
    train_vibration(
        recs,
        a.out,
        cfg,
        dataset=ds,
        sweep=sweep,
        threads=a.threads,
        quiet=a.quiet,
        variants=a.variants.split(",") if a.variants else None,
    )
    print((Path(a.out) / "report" / "vibration.md").read_text())
    return 0  # targets are reported (PASS/FAIL) in the report, not turned into an exit code


def demo(out_dir: Path, data: Path | None, quiet: bool) -> dict:
    """Train -> convert -> bench -> run on the edge loop; real CWRU when ``data`` has it."""
    from edgewise.benchmarks.vibration import edge_cost
    from edgewise.edge.apps.vibration import VibrationApp
    from edgewise.edge.bundle import load_bundle
    from edgewise.edge.pipeline import Runner
    from edgewise.edge.sinks import JsonLinesSink, SQLiteSink
    from edgewise.edge.sources.sensors import RecordingSource

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    recs: list[Recording] | None = None
    if data is not None:
        try:
            recs, ds = load_cwru_recordings(data, "DE", 48000.0, quiet)
        except ValueError as e:
            log(f"vibration demo: {e}; using SYNTHETIC signals", quiet=quiet)
    if recs is None:
        from .data.synthetic_vibration import synthetic_dataset

        recs = synthetic_dataset()
        ds = {"name": "SYNTHETIC (edgewise.train.data.synthetic_vibration)", "channel": "-"}
        log("vibration demo on SYNTHETIC signals (no CWRU data given)", quiet=False)
    cfg = VibrationConfig(epochs=120)
    bundle_dir = out_dir / "vibration.bundle"
    m = train_vibration(
        recs,
        bundle_dir,
        cfg,
        dataset=ds,
        sweep=None,
        quiet=quiet,
        variants=["tflite_float32", "tflite_int8", "onnx_float32", "onnx_int8"],
    )
    print((bundle_dir / "report" / "vibration.md").read_text())
    bundle = load_bundle(bundle_dir)
    cost = edge_cost(bundle, "tflite_int8", iterations=500)
    log(
        f"edge cost per window (features + int8 model, 1 thread): p50 {cost['p50_ms']:.3f} ms, "
        f"p99 {cost['p99_ms']:.3f} ms, {cost['realtime_factor_p50']:.0f}x real time",
        quiet=False,
    )
    # the edge loop on a replayed fault recording preceded by healthy test signal
    normal = next(r for r in recs if r.label.endswith("normal"))
    fault = next(r for r in recs if not r.label.endswith("normal"))
    tail = normal.signal[int(len(normal.signal) * (1 - cfg.split[2])) :]
    sig = np.r_[tail, fault.signal[: len(tail)]]
    app = VibrationApp(bundle, "tflite_int8", threads=1)
    sinks = [JsonLinesSink(out_dir / "vibration_events.jsonl"), SQLiteSink(out_dir / "vibration_events.db")]
    stats = Runner(app, sinks).run(
        RecordingSource(sig, fs=normal.fs, window=app.window, name=f"healthy-test+{fault.name}")
    )
    s = stats.summary()
    log(
        f"edge loop: {s['frames']} windows (healthy test part, then {fault.name}), alarm at end: "
        f"{app.alarm.active}; events -> {out_dir / 'vibration_events.jsonl'}",
        quiet=False,
    )
    events = [json.loads(line) for line in (out_dir / "vibration_events.jsonl").read_text().splitlines()]
    res = m["results"]
    verdict = {
        "synthetic": m["synthetic"], "targets": m["targets"],
        "int8": {k: res["tflite_int8"][k] for k in ("auroc_min", "recall_min", "far")},
        "baseline": {k: res["baseline"][k] for k in ("auroc_min", "recall_min", "far")},
        "edge": _edge_alarm_figures(events, len(tail), app.window, normal.fs),
    }
    return {"synthetic": m["synthetic"], "targets": m["targets"], "edge_cost": cost, "run": s,
            "verdict": verdict}


def _edge_alarm_figures(events: list[dict], healthy: int, window: int, fs: float) -> dict[str, Any]:
    """Alarm state of the replayed edge loop: windows wholly in the healthy part that were in alarm,
    and how long after the fault began (end of the first window in alarm) the alarm stood."""
    wins = [e for e in events if e.get("t_signal_s") is not None]  # "window", "alarm_raised", ...
    start = [round(e["t_signal_s"] * fs) for e in wins]
    healthy_w = [e for e, s0 in zip(wins, start, strict=True) if s0 + window <= healthy]
    fault_alarm = [s0 for e, s0 in zip(wins, start, strict=True) if s0 + window > healthy and e.get("alarm")]
    return {
        "healthy_windows": len(healthy_w),
        "healthy_in_alarm": sum(bool(e.get("alarm")) for e in healthy_w),
        "alarm_on_fault": bool(fault_alarm),
        "seconds_to_alarm": (fault_alarm[0] + window - healthy) / fs if fault_alarm else None,
    }
