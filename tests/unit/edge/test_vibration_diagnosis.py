"""Naming the failing bearing part from envelope-spectrum peaks: physics only, on SYNTHETIC signals."""

from __future__ import annotations

import numpy as np
import pytest

from edgewise.edge.apps.vibration.diagnosis import (
    BearingGeometry,
    DiagnosisConfig,
    SignalBuffer,
    diagnose,
    estimate_shaft_hz,
)
from edgewise.train.data.synthetic_vibration import synthesize

FS = 12000.0
SHAFT = 1797 / 60


@pytest.mark.parametrize("part", ["outer_race", "inner_race", "ball"])
def test_synthetic_fault_is_named_with_the_speed_given_and_estimated(part: str):
    """Impacts at BPFO / BPFI / 2xBSF ringing a resonance (SYNTHETIC) name their own part."""
    x = synthesize(part, seconds=2.0, seed=5).signal
    cfg = DiagnosisConfig(BearingGeometry.skf6205(), shaft_hz=SHAFT * 1.03)  # nominal speed 3 % off
    given = diagnose(x, FS, cfg, shaft_hz=SHAFT)
    estimated = diagnose(x, FS, cfg)
    assert given.part == part and given.shaft_source == "given"
    assert estimated.part == part and estimated.shaft_source == "estimated"
    assert abs(estimated.shaft_hz - SHAFT) < 0.3
    assert given.confidence > 1 / 4  # above a four-way tie


def test_healthy_signal_has_less_evidence_than_a_fault():
    cfg = DiagnosisConfig(BearingGeometry.skf6205(), shaft_hz=SHAFT)
    healthy = diagnose(synthesize("normal", seconds=2.0, seed=1).signal, FS, cfg, SHAFT)
    fault = diagnose(synthesize("outer_race", seconds=2.0, seed=1).signal, FS, cfg, SHAFT)
    assert max(healthy.evidence.values()) < fault.evidence["outer_race"]


def test_shaft_speed_is_found_from_its_harmonics():
    t = np.arange(int(4 * FS)) / FS
    x = sum(a * np.sin(2 * np.pi * k * 24.7 * t) for k, a in ((1, 1.0), (2, 0.5), (3, 0.3)))
    x = x + np.random.default_rng(0).normal(0, 0.5, t.size)
    assert abs(estimate_shaft_hz(x, FS, around=25.0) - 24.7) < 0.1


def test_no_speed_at_all_is_a_one_line_error():
    with pytest.raises(ValueError, match="--rpm"):
        diagnose(np.zeros(4096), FS, DiagnosisConfig(BearingGeometry.skf6205()))


def test_signal_buffer_rebuilds_a_contiguous_signal_from_overlapping_windows():
    x = np.arange(10000, dtype=float)
    buf = SignalBuffer(fs=1000.0, seconds=3.0)
    for start in range(0, 10000 - 1000 + 1, 250):  # windows of 1000 samples, hop 250
        buf.add(x[start : start + 1000], start / 1000.0)
    np.testing.assert_array_equal(buf.signal(), x[-3000:])
    buf.add(x[:1000], 0.0)  # a replay from the start: a fresh stretch, no splice
    np.testing.assert_array_equal(buf.signal(), x[:1000])


def test_bundle_geometry_must_be_complete():
    with pytest.raises(ValueError, match="lacks ftf"):
        BearingGeometry.from_dict({"bpfo": 3.5, "bpfi": 5.4, "bsf": 2.3})
    with pytest.raises(ValueError, match="unknown diagnosis settings"):
        DiagnosisConfig.from_bundle({"geometry": BearingGeometry.skf6205().to_dict(), "rpm": 1797})
    cfg = DiagnosisConfig(BearingGeometry.skf6205(), shaft_hz=29.95, healthy_evidence=0.2)
    assert DiagnosisConfig.from_bundle(cfg.to_dict()) == cfg
