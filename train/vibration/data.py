"""Windows and features: the healthy recording split in time, every fault file whole.

Features come from ``edgewise.edge.apps.vibration.FeatureExtractor``, the code the device runs,
so the model is trained and evaluated on exactly what it reads on the Pi.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgewise.edge.apps.vibration import (
    INDICATORS,
    FeatureExtractor,
    frame_signal,
    robust_moments,
    split_in_time,
)
from edgewise.edge.sources.recordings import Recording

from .config import VibrationConfig

__all__ = ["prepare", "window_features", "feature_moments", "split_recordings"]


def window_features(
    fx: FeatureExtractor, windows: np.ndarray, chunk: int = 512
) -> tuple[np.ndarray, np.ndarray]:
    """Features and indicators of many windows, ``chunk`` windows at a time (bounded memory)."""
    if len(windows) == 0:
        return np.empty((0, fx.dim), np.float32), np.empty((0, len(INDICATORS)))
    parts = [fx.transform(windows[i : i + chunk]) for i in range(0, len(windows), chunk)]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def feature_moments(feats: np.ndarray, scale_floor: float) -> tuple[np.ndarray, np.ndarray]:
    """The bundle's standardization of the training features: median and robust spread
    (``robust_moments``), stored as input.normalization mean/std."""
    return robust_moments(feats, scale_floor)


def speed_windows(
    x: np.ndarray, start: int, fs: float, cfg: VibrationConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Windows of ``x`` resampled to each speed of ``cfg.speed_augment`` (every frequency times
    the factor), at twice the normal hop; their start times (s) mapped back onto the original
    signal so folds in time keep them with the samples they came from."""
    from fractions import Fraction

    from scipy.signal import resample_poly

    ws, ts = [], []
    hop = 2 * cfg.hop_normal
    for s in cfg.speed_augment:
        fr = Fraction(s).limit_denominator(200)
        w = frame_signal(resample_poly(x, fr.denominator, fr.numerator), cfg.window, hop)
        ws.append(w)
        ts.append((start + np.arange(len(w)) * hop * float(fr)) / fs)
    if not ws:
        return np.empty((0, cfg.window)), np.empty(0)
    return np.concatenate(ws), np.concatenate(ts)


def split_recordings(recs: list[Recording]) -> tuple[Recording, list[Recording]]:
    """The one healthy recording and the fault recordings, all at one rate; ValueError otherwise."""
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
    return normal[0], faults


def prepare(recs: list[Recording], cfg: VibrationConfig) -> dict[str, Any]:
    """Windows and features: healthy split in time, every fault file whole.

    Returns feats/ind for "train", "val", "test" and per fault recording, plus the window
    start times (s) for the score-over-time plots.
    """
    normal, faults = split_recordings(recs)
    fs = normal.fs
    fx = FeatureExtractor(fs, cfg.window, cfg.features)
    sig = normal.signal
    out: dict[str, Any] = {"fs": fs, "fx": fx, "normal": normal.name, "sets": {}, "faults": {}}
    for name, (a, b) in zip(("train", "val", "test"), split_in_time(len(sig), cfg.split), strict=True):
        w = frame_signal(sig[a:b], cfg.window, cfg.hop_normal)
        if len(w) < 4:
            raise ValueError(
                f"healthy {name} split has {len(w)} windows of {cfg.window} samples; "
                "use a shorter window or a longer recording"
            )
        t = (a + np.arange(len(w)) * cfg.hop_normal) / fs
        n_plain = len(w)
        if name != "test" and cfg.speed_augment:
            wa, ta = speed_windows(sig[a:b], a, fs, cfg)
            w, t = np.concatenate([w, wa]), np.r_[t, ta]
        f, ind = window_features(fx, w)
        out["sets"][name] = {"feats": f, "ind": ind, "t": t, "range_s": (a / fs, b / fs), "plain": n_plain}
    for r in faults:
        w = frame_signal(r.signal, cfg.window, cfg.hop_fault)
        if len(w) == 0:
            continue
        f, ind = window_features(fx, w)
        out["faults"][r.name] = {
            "feats": f,
            "ind": ind,
            "t": np.arange(len(w)) * cfg.hop_fault / fs,
            "label": r.label,
        }
    return out
