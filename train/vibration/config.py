"""The settings of one vibration training run, stored in the bundle (``config.training``)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from edgewise.edge.apps.vibration import AlarmConfig, FeatureConfig

__all__ = ["VibrationConfig", "EVAL_VARIANTS"]

# the converted variants scored on every window (thresholds per variant, report columns)
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
    # the healthy train and validation splits also enter resampled to these shaft speeds (a
    # motor's speed moves a few per cent with its load); () = off. Test windows never are.
    speed_augment: tuple[float, ...] = (0.98, 0.99, 1.01, 1.02)

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["features"] = self.features.to_dict()
        d["split"], d["hidden"] = list(self.split), list(self.hidden)
        d["speed_augment"] = list(self.speed_augment)
        return d

    def alarm(self) -> AlarmConfig:
        """The device's alarm settings (``config.alarm``), checked by the class the device reads."""
        return AlarmConfig.from_bundle({"n": self.alarm_n, "m": self.alarm_m,
                                        "clear_ratio": self.clear_ratio})

    def for_window(self, window: int) -> VibrationConfig:
        """The same run at another window length; hops scale with it (normal: window/32, faults:
        window/4) so every length sees the same stretch of signal."""
        return replace(self, window=window, hop_normal=max(32, window // 32), hop_fault=max(128, window // 4))
