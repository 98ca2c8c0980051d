"""Vibration anomaly detection: train on normal windows only, convert, evaluate, report.

``edgewise train vibration --data DIR --out BUNDLE`` runs the whole protocol on CWRU:

1. read the healthy recording and every fault file at their own rates, bring them to 12 kHz
   (the healthy 97.mat is read at ``--normal-fs``, default 48 kHz, see ``data/cwru.py``);
2. split the healthy recording in time into train / validation / test (disjoint ranges);
3. features per window with ``edgewise.edge.apps.vibration.FeatureExtractor`` (the code the
   device runs), standardized with the training mean/std (stored in the bundle);
4. a dense Keras autoencoder on normal training windows; a Mahalanobis baseline on the five
   classical indicators (numpy, runs on the device too);
5. thresholds from held-out normal scores for a target false-alarm rate, one per variant,
   stored in the bundle; conversion through ``converters.build_bundle``;
6. test = held-out normal windows vs every fault file: AUROC per file and overall, false-alarm
   rate and recall at the bundle threshold for Keras, TFLite float32, TFLite int8, ONNX int8
   and the baseline; plots and ``report/vibration.md``, figures in ``report/metrics.json``;
7. optionally detection vs window length (Keras float32 + baseline, retrained per length).

Modules, one job each: ``config`` (the run's settings), ``data`` (windows and features),
``model`` (the autoencoder), ``threshold`` (the operating point), ``fit`` (one window length
fitted and scored), ``evaluate`` (detection figures, targets), ``sweep`` (window lengths),
``report`` (plots, vibration.md), ``trainer`` (``VibrationTrainer``: fit, then export one
sealed bundle), ``cli`` (``train_main``).

>>> # edgewise train vibration --data $EDGEWISE_DATA --out vib.bundle
"""

from __future__ import annotations

from .cli import train_main
from .config import EVAL_VARIANTS, VibrationConfig
from .data import feature_moments, prepare
from .evaluate import check_targets, evaluate_scores
from .model import build_autoencoder
from .report import report_markdown
from .sweep import sweep_window_lengths
from .threshold import normal_threshold, out_of_fold_scores, time_folds
from .trainer import VibrationTrainer, train_vibration

__all__ = [
    "EVAL_VARIANTS",
    "VibrationConfig",
    "VibrationTrainer",
    "prepare",
    "feature_moments",
    "build_autoencoder",
    "normal_threshold",
    "time_folds",
    "out_of_fold_scores",
    "train_vibration",
    "evaluate_scores",
    "check_targets",
    "sweep_window_lengths",
    "report_markdown",
    "train_main",
]
