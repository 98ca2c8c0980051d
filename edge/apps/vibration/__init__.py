"""Vibration anomaly detection on the edge: one signal window at a time, numpy only.

- ``features``: windowing and the ONE implementation of the spectral features and classical
  indicators, shared with training (``edgewise.train.vibration``);
- ``baseline``: the classical Mahalanobis distance the autoencoder is compared with;
- ``alarm``: N-of-M debounce with hysteresis;
- ``diagnosis``: the likely failing bearing part from envelope-spectrum peaks (on an alarm);
- ``app``: ``VibrationApp``, the three pipeline stages, and the autoencoder's score;
- ``cli``: ``edgewise run vibration`` (``run_main``);
- ``cost``: the edge cost per window on one core (``edge_cost``), for benchmarks and the demo;
- ``commission``: ``edgewise commission vibration``, this machine's healthy state learned on the
  device and applied by the app (imported where used: it is not needed to run a bundle).

The names below are the package's public surface; training, benchmarks and tests import
them from here.

>>> # edgewise run vibration --bundle vib.bundle --source IR007_0.npy --fs 12000 --realtime
"""

from __future__ import annotations

from .alarm import AlarmConfig, AlarmState
from .app import VibrationApp, reconstruction_error
from .baseline import Mahalanobis
from .cli import run_main
from .features import (
    INDICATORS,
    LEVELS,
    FeatureConfig,
    FeatureExtractor,
    check_window,
    frame_signal,
    levels,
    robust_moments,
    robust_z,
    split_in_time,
    standardize,
)

__all__ = [
    "INDICATORS",
    "FeatureConfig",
    "FeatureExtractor",
    "frame_signal",
    "split_in_time",
    "standardize",
    "robust_z",
    "robust_moments",
    "levels",
    "LEVELS",
    "reconstruction_error",
    "check_window",
    "Mahalanobis",
    "AlarmState",
    "AlarmConfig",
    "VibrationApp",
    "run_main",
]
