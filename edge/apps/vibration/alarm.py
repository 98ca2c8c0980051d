"""The alarm: N-of-M debounce with hysteresis over per-window anomaly scores.

One window over the threshold is not a fault: a knock on the machine, a cable touched.
The alarm is raised when ``n`` of the last ``m`` windows are over the threshold and cleared
when ``n`` of the last ``m`` are under a lower clear threshold, so a score hovering at the
threshold does not make it flicker. How many windows and how much hysteresis are part of
the trained model's meaning (they set its false-alarm rate per hour), so they come from the
bundle (``config.alarm``) through ``AlarmConfig``, never from a default on the device.

>>> a = AlarmState(1.0, n=2, m=3, clear_threshold=0.5)
>>> [a.update(s) for s in (2.0, 0.1, 2.0, 0.7, 0.2, 0.1)]
[None, None, 'raised', None, None, 'cleared']
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

__all__ = ["AlarmState", "AlarmConfig"]


class AlarmState:
    """N-of-M debounce with hysteresis.

    The alarm is raised when at least ``n`` of the last ``m`` window scores exceed
    ``threshold``; once raised it clears only when at least ``n`` of the last ``m`` scores are
    below ``clear_threshold`` (<= ``threshold``). Scores between the two keep the current
    state, so a score hovering at the threshold does not make the alarm flicker.
    """

    def __init__(self, threshold: float, *, n: int = 3, m: int = 5, clear_threshold: float | None = None):
        if not 1 <= n <= m:
            raise ValueError(f"debounce needs 1 <= n <= m, got n={n} m={m}")
        clear = threshold if clear_threshold is None else clear_threshold
        if clear > threshold:
            raise ValueError(f"clear threshold {clear} must not exceed the alarm threshold {threshold}")
        self.threshold, self.clear_threshold, self.n, self.m = float(threshold), float(clear), n, m
        self.active = False
        self._hist: deque[float] = deque(maxlen=m)

    def update(self, score: float) -> str | None:
        """Feed one score; returns "raised", "cleared" or None (no change)."""
        self._hist.append(float(score))
        if not self.active and sum(s > self.threshold for s in self._hist) >= self.n:
            self.active = True
            self._hist.clear()
            return "raised"
        if self.active and sum(s < self.clear_threshold for s in self._hist) >= self.n:
            self.active = False
            self._hist.clear()
            return "cleared"
        return None


@dataclass(frozen=True)
class AlarmConfig:
    """The bundle's alarm settings (``config.alarm``): ``n`` of ``m`` windows, and the clear
    threshold as a fraction ``clear_ratio`` of the alarm threshold."""

    n: int
    m: int
    clear_ratio: float

    @classmethod
    def from_bundle(cls, d: dict[str, Any] | None) -> AlarmConfig:
        """Read ``config.alarm``; every key is required, unknown keys are refused."""
        d = dict(d or {})
        fields = ("n", "m", "clear_ratio")
        missing = [k for k in fields if k not in d]
        if missing:
            raise ValueError(f"bundle.json config.alarm lacks {', '.join(missing)}")
        unknown = sorted(set(d) - set(fields))
        if unknown:
            raise ValueError(f"unknown alarm settings {unknown}; valid: {', '.join(fields)}")
        ratio = float(d["clear_ratio"])
        if not 0 < ratio <= 1:
            raise ValueError(f"config.alarm.clear_ratio must be in (0, 1], got {ratio:g}")
        return cls(int(d["n"]), int(d["m"]), ratio)

    def state(self, threshold: float, *, n: int | None = None, m: int | None = None) -> AlarmState:
        """A fresh alarm at ``threshold``; ``n``/``m`` override the bundle's (``--alarm-n/-m``)."""
        return AlarmState(
            threshold, n=self.n if n is None else n, m=self.m if m is None else m,
            clear_threshold=threshold * self.clear_ratio,
        )
