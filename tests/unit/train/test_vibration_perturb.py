"""The perturbations the robustness table is built from do what their names say."""

from __future__ import annotations

import numpy as np
import pytest

from edgewise.train.vibration.perturb import PERTURBATIONS, QUICK_PERTURBATIONS, Perturbation
from edgewise.train.vibration.robustness import band_share, robustness_targets

FS = 12000.0


def _sine(f: float, seconds: float = 2.0) -> np.ndarray:
    return np.sin(2 * np.pi * f * np.arange(int(seconds * FS)) / FS)


def _peak_hz(x: np.ndarray) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / FS)[np.argmax(spec)])


def test_noise_is_added_at_the_stated_snr():
    x = _sine(500.0)
    y = Perturbation("snr_db", 20.0).apply(x, seed=1)
    snr = 10 * np.log10(np.mean(x**2) / np.mean((y - x) ** 2))
    assert snr == pytest.approx(20.0, abs=0.3)


def test_speed_moves_every_frequency_by_its_factor():
    for factor in (0.98, 1.02):
        y = Perturbation("speed", factor).apply(_sine(1000.0, 4.0))
        assert _peak_hz(y) == pytest.approx(1000.0 * factor, abs=1.0)


def test_gain_dc_and_resampling_filter_keep_the_length():
    x = _sine(300.0) + 0.1 * np.random.default_rng(0).normal(size=int(2 * FS))
    assert np.allclose(Perturbation("gain", 1.25).apply(x), 1.25 * x)
    y = Perturbation("dc", 5.0).apply(x)
    assert y.mean() - x.mean() == pytest.approx(5 * x.std(), rel=1e-6)
    z = Perturbation("resample_iir").apply(x)
    assert len(z) == len(x) and _peak_hz(z) == pytest.approx(300.0, abs=1.0)


def test_table_holds_every_condition_and_quick_holds_the_targets():
    names = [p.name for p in PERTURBATIONS]
    want = {"gain x0.5", "gain x2", "noise 10 dB SNR", "speed -2%", "speed +2%", "IIR resampling filter"}
    assert want <= set(names)
    assert [p.name for p in QUICK_PERTURBATIONS] == ["clean", "gain x0.8", "gain x1.25", "noise 20 dB SNR"]


def test_band_share_is_the_largest_feature_share_of_the_error():
    z = np.array([[3.0, 1.0, 0.0, 0.0]])
    assert band_share(z, np.zeros_like(z))[0] == pytest.approx(0.9)


def test_targets_are_judged_only_on_the_target_conditions():
    def row(kind: str, value: float, far: float) -> dict:
        return {"kind": kind, "value": value, "perturbation": Perturbation(kind, value).name,
                "scorers": {"m": {"far": far, "recall_min": 1.0}}}

    t = robustness_targets([row("gain", 2.0, 0.5), row("gain", 1.25, 0.0), row("snr_db", 10.0, 0.9)], "m")
    assert set(t) == {"m FAR <= 0.01 (gain x1.25)", "m recall >= 0.99 every fault file (gain x1.25)"}
    assert all(v["pass"] for v in t.values())
