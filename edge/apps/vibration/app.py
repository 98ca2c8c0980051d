"""The vibration application on the shared pipeline: features, autoencoder, score, alarm.

``VibrationApp`` configures the ``Runner``'s three stages for one signal window at a time:
``preprocess`` checks the window and computes its standardized features (``features``),
``infer`` runs the autoencoder in LiteRT / ONNX Runtime, ``postprocess`` scores the
reconstruction, feeds the alarm (``alarm``) and reports the classical baseline
(``baseline``) beside it. Everything that gives a score its meaning (sampling rate, window,
feature settings, standardization, thresholds, alarm settings) comes from the bundle's
typed spec; the operator options (``VibrationApp.Options``) only change how many windows
the alarm counts and which events are written.

>>> app = VibrationApp(load_bundle("vib.bundle"), threads=1)            # doctest: +SKIP
>>> Runner(app, [JsonLinesSink("-")]).run(RecordingSource(x, fs=12000, window=app.window))  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...evaluate import score_outputs
from ...event import Event
from ...pipeline import Frame
from ..base import BundleApp
from ..base import Options as _Options
from .alarm import AlarmConfig
from .baseline import Mahalanobis
from .diagnosis import DiagnosisConfig, SignalBuffer, diagnose
from .features import INDICATORS, FeatureConfig, FeatureExtractor, check_window, levels

__all__ = ["VibrationApp", "reconstruction_error"]


def reconstruction_error(x: np.ndarray, recon: np.ndarray) -> np.ndarray:
    """Mean squared error per row: the autoencoder's anomaly score (the ``mse`` score of
    edge.evaluate, which converters' parity and the device check use too).

    Training sets the thresholds on this batch form; ``VibrationApp.score`` is the same
    number for one window on the device.
    """
    return score_outputs("mse", x, recon)


@dataclass(frozen=True)
class VibrationOptions(_Options):
    """Operator settings of ``edgewise run vibration`` (each field is a flag of the same name)."""

    alarm_n: int | None = field(
        default=None, metadata={"help": "windows above threshold needed (default: bundle)"}
    )
    alarm_m: int | None = field(
        default=None, metadata={"help": "... out of this many recent windows (default: bundle)"}
    )
    changes_only: bool = field(default=False, metadata={"help": "emit only alarm raised/cleared events"})
    commissioning: str | None = field(
        default=None,
        metadata={"help": "commissioning file to apply (default: <bundle>.commissioning.json beside the "
                  "bundle, when present; see `edgewise commission vibration`)", "metavar": "FILE"},
    )
    rpm: float | None = field(
        default=None,
        metadata={"help": "shaft speed (rev/min) for naming the failing bearing part on an alarm "
                  "(default: estimated from the spectrum near the bundle's nominal speed)"},
    )

    def __post_init__(self) -> None:
        if self.rpm is not None and not 0 < self.rpm < 1e6:
            raise ValueError(f"--rpm {self.rpm:g}: the shaft speed must be a positive number of rev/min")


class VibrationApp(BundleApp):
    """The vibration application on the shared pipeline Runner.

    ``preprocess``: check the window, features, standardize; ``infer``: the autoencoder in
    LiteRT / ONNX Runtime; ``postprocess``: reconstruction error, baseline distance, alarm.
    Emits one event per window (``kind`` "window", or "alarm_raised"/"alarm_cleared" on a
    change), or only the changes with ``changes_only``. The event's answer is the alarm state
    (``alarm`` on the wire), its score the reconstruction error; whether this one window was
    over the threshold is ``anomalous`` beside them.
    """

    name = "vibration"
    bundle_apps = ("vibration",)
    uses_threshold = True
    Options = VibrationOptions

    def configure(self) -> None:
        # this machine's healthy state, learned on the device, in place of the training rig's
        from .commission import find_commissioning

        found = find_commissioning(self.bundle, getattr(self.options, "commissioning", None))
        self.commissioning = None if found is None else found[1]
        if found is not None:
            self.spec = found[0].apply(self.spec, str(found[1]))
            logging.getLogger("edgewise.run").info("commissioning: applied %s (%s)", found[1],
                                                   found[0].created)
        spec, where = self.spec, self.bundle.path
        cfg = spec.config
        for key in ("fs", "window", "features", "alarm"):
            if key not in cfg:
                raise ValueError(f"{where}: bundle.json config lacks '{key}' (not a vibration bundle?)")
        norm = spec.input.normalization
        if norm.mean is None or norm.std is None:
            raise ValueError(f"{where}: bundle.json lacks input.normalization mean/std (not vibration?)")
        self.fs = float(cfg["fs"])
        self.window = int(cfg["window"])
        self.fx = FeatureExtractor(self.fs, self.window, FeatureConfig.from_bundle(cfg["features"]))
        self.alarm_config = AlarmConfig.from_bundle(cfg["alarm"])
        self.baseline = Mahalanobis.from_dict(cfg["baseline"]) if "baseline" in cfg else None
        baseline_threshold = spec.thresholds.get("baseline")
        self.baseline_threshold = None if baseline_threshold is None else float(baseline_threshold)
        # the level channel (log10 RMS, peak): reported against the training level, not scored
        lv = cfg.get("levels")
        self.level_centre = None if lv is None else np.asarray(lv["centre"], np.float64)
        # naming the failing part on an alarm, from the last seconds of signal
        self.diagnosis = DiagnosisConfig.from_bundle(cfg["diagnosis"]) if cfg.get("diagnosis") else None
        self.buffer = None if self.diagnosis is None else SignalBuffer(self.fs, self.diagnosis.seconds)

    def ready(self) -> None:
        assert self.threshold is not None  # uses_threshold: BundleApp read it from the spec
        o = self.options
        assert isinstance(o, VibrationOptions)
        self.alarm = self.alarm_config.state(self.threshold, n=o.alarm_n, m=o.alarm_m)
        self.changes_only = o.changes_only

    def check_rate(self, fs: float) -> None:
        """Refuse a source at another sampling rate: the bands would mean other frequencies."""
        if fs != self.fs and abs(float(fs) - self.fs) > 1e-6 * self.fs:
            raise ValueError(
                f"source sampled at {fs:g} Hz but the bundle was trained at {self.fs:g} Hz: "
                "resample the source (an integer ratio is resampled automatically) or retrain"
            )

    def preprocess(self, frame: Frame) -> tuple[np.ndarray, np.ndarray]:
        """One window -> (standardized features (1, dim) float32, raw indicators (1, 5))."""
        fs = frame.meta.get("fs")
        if fs is not None:
            self.check_rate(fs)
        w = check_window(frame.data, self.window)
        if self.buffer is not None:
            self.buffer.add(w, frame.meta.get("t_signal"))
        feats, ind = self.fx.transform(w, checked=True)
        z = self.spec.input.normalization.apply(feats)
        return np.clip(z, -self.fx.cfg.z_cap, self.fx.cfg.z_cap, out=z), ind

    def infer(self, x: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        z, ind = x
        return z, self.model.predict(z), ind

    def score(self, z: np.ndarray, recon: np.ndarray) -> float:
        """``reconstruction_error`` for one window without its batch overhead, in float32 (94
        values: within 1e-6 relative of the float64 training score)."""
        d = z.ravel() - recon.ravel()
        return float(d @ d) / d.size

    def diagnose(self) -> dict[str, Any]:
        """The likely failing bearing part from the buffered signal (see ``diagnosis``); a
        failure to diagnose is reported in the event, never stops the loop."""
        assert self.diagnosis is not None and self.buffer is not None
        rpm = self.options.rpm if isinstance(self.options, VibrationOptions) else None
        try:
            d = diagnose(self.buffer.signal(), self.fs, self.diagnosis, None if rpm is None else rpm / 60.0)
        except ValueError as e:
            return {"part": None, "error": str(e)}
        return d.to_dict()

    def postprocess(self, frame: Frame, y: tuple[np.ndarray, np.ndarray, np.ndarray]) -> Event | None:
        z, recon, ind = y
        score = self.score(z, recon)
        threshold = self.alarm.threshold  # the decision threshold, as the alarm counts it
        change = self.alarm.update(score)
        if self.changes_only and change is None:
            return None
        extra: dict[str, Any] = {
            "t_signal_s": frame.meta.get("t_signal"),
            "threshold": round(threshold, 6),
            "anomalous": bool(score > threshold),
            "variant": self.variant,
        }
        if self.baseline is not None:
            b = self.baseline.score_one(ind[0])
            extra["baseline_score"] = round(b, 4)
            if self.baseline_threshold is not None:
                extra["baseline_anomalous"] = bool(b > self.baseline_threshold)
        extra["indicators"] = {k: round(v, 6) for k, v in zip(INDICATORS, ind[0].tolist(), strict=True)}
        if self.level_centre is not None:  # dB above (+) or below (-) the training level
            lv = 20.0 * (levels(ind)[0] - self.level_centre)
            extra["level_db"] = {"rms": round(float(lv[0]), 2), "peak": round(float(lv[1]), 2)}
        if change == "raised" and self.diagnosis is not None and self.buffer is not None:
            extra["diagnosis"] = self.diagnose()
        return Event(
            app=self.name,
            kind=f"alarm_{change}" if change else "window",
            answer=self.alarm.active,
            score=round(score, 6),
            extra=extra,
            source=frame.meta.get("source"),
        )
