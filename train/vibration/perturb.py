"""What changes between a training rig and a real installation, as signal perturbations.

A bundle trained on one recording meets other sensors, mountings, cables and ADC ranges
(gain), noisier electronics (additive noise), a gravity or bias offset (DC), another
recorder's anti-alias filter (resampling) and a motor whose speed moves with its load (slip,
a few per cent). Each ``Perturbation`` applies one of these to a whole signal at its rate,
seeded, so the robustness table is reproducible. scipy is used (training and benchmark side
only; the device never perturbs).

>>> [p.name for p in PERTURBATIONS][:3]
['clean', 'gain x0.5', 'gain x0.8']
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Perturbation", "PERTURBATIONS", "QUICK_PERTURBATIONS", "perturbations"]


@dataclass(frozen=True)
class Perturbation:
    """One change of conditions: ``kind`` in clean, gain, snr_db, dc, resample_iir, speed."""

    kind: str
    value: float = 0.0

    @property
    def name(self) -> str:
        return {
            "clean": "clean",
            "gain": f"gain x{self.value:g}",
            "snr_db": f"noise {self.value:g} dB SNR",
            "dc": f"DC offset {self.value:g} x RMS",
            "resample_iir": "IIR resampling filter",
            "speed": f"speed {self.value - 1:+.0%}",
        }[self.kind]

    def apply(self, x: np.ndarray, seed: int = 0) -> np.ndarray:
        """The perturbed signal (same rate; ``speed`` changes its length)."""
        from scipy import signal as ss

        x = np.asarray(x, np.float64)
        if self.kind == "clean":
            return x
        if self.kind == "gain":
            return x * self.value
        rms = float(np.sqrt(np.mean((x - x.mean()) ** 2)))
        if self.kind == "snr_db":  # white noise at this signal-to-noise ratio (of the whole signal)
            rng = np.random.default_rng(seed)
            return x + rng.normal(0.0, rms / 10 ** (self.value / 20), size=x.shape)
        if self.kind == "dc":
            return x + self.value * rms
        if self.kind == "resample_iir":
            # the signal as another recorder would deliver it: at 4x the rate, brought back down
            # through scipy's default decimator (Chebyshev I, order 8, zero phase) instead of
            # the windowed-sinc FIR edgewise uses
            return ss.decimate(ss.resample_poly(x, 4, 1), 4, ftype="iir", zero_phase=True)
        if self.kind == "speed":  # every frequency x value: resampled by the rational 50/51 etc.
            from fractions import Fraction

            fr = Fraction(self.value).limit_denominator(200)
            return ss.resample_poly(x, fr.denominator, fr.numerator)
        raise ValueError(f"unknown perturbation kind '{self.kind}'")


PERTURBATIONS: tuple[Perturbation, ...] = (
    Perturbation("clean"),
    *(Perturbation("gain", g) for g in (0.5, 0.8, 0.9, 1.1, 1.25, 2.0)),
    *(Perturbation("snr_db", s) for s in (30.0, 20.0, 10.0)),
    Perturbation("dc", 5.0),
    Perturbation("resample_iir"),
    Perturbation("speed", 0.98),
    Perturbation("speed", 1.02),
)
# the targets' conditions only (``--quick``)
QUICK_PERTURBATIONS: tuple[Perturbation, ...] = (
    Perturbation("clean"),
    Perturbation("gain", 0.8),
    Perturbation("gain", 1.25),
    Perturbation("snr_db", 20.0),
)


def perturbations(quick: bool = False) -> tuple[Perturbation, ...]:
    return QUICK_PERTURBATIONS if quick else PERTURBATIONS
