"""Vibration features and the classical baseline: one implementation, sane physics, clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from edgewise.edge.apps.vibration import (
    INDICATORS,
    FeatureConfig,
    FeatureExtractor,
    Mahalanobis,
    check_window,
    frame_signal,
    levels,
    robust_moments,
    robust_z,
    split_in_time,
)
from edgewise.train.data.synthetic_vibration import FAULT_ORDERS, synthesize

FS = 12000.0


def test_batch_and_single_window_features_are_identical():
    """Training computes features in batches, the device one window at a time: same numbers."""
    rng = np.random.default_rng(1)
    w = rng.normal(size=(5, 2048)) + 9.81  # gravity offset, as an accelerometer reads it
    w[:, ::200] += 8 + rng.exponential(4.0, size=(5, 11))  # impulses: kurtosis and skewness matter
    fx = FeatureExtractor(FS, 2048)
    batch, ind_b = fx.transform(w)
    singles = [fx.transform(w[i]) for i in range(5)]
    np.testing.assert_allclose(batch, np.concatenate([f for f, _ in singles]), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(ind_b, np.concatenate([i for _, i in singles]), rtol=1e-12)
    assert ind_b.shape == (5, len(INDICATORS)) and (ind_b[:, 3] > 20).all() and (ind_b[:, 4] > 2).all()


def test_feature_length_does_not_depend_on_window_length():
    dims = {n: FeatureExtractor(FS, n).dim for n in (1024, 2048, 4096, 12000)}
    assert len(set(dims.values())) == 1


def test_white_noise_has_a_flat_spectral_shape():
    """White noise puts the same power density in every band: each band at the mean band,
    log10(1 + shape_floor), whatever the noise level."""
    x = np.random.default_rng(0).normal(size=(64, 4096))
    fx = FeatureExtractor(FS, 4096)
    f, _ = fx.transform(x * 0.003)
    flat = np.log10(1 + fx.cfg.shape_floor)
    assert abs(float(np.median(f[:, : fx.cfg.spec_bands])) - flat) < 0.02


def test_features_do_not_change_with_sensor_gain_or_dc_offset():
    """Gain (mounting, cable, ADC range) and a DC offset (gravity) move the level channel only."""
    rng = np.random.default_rng(2)
    w = rng.normal(size=(4, 2048))
    w[:, ::300] += 6.0
    fx = FeatureExtractor(FS, 2048)
    f, ind = fx.transform(w)
    for g in (0.5, 1.25, 10.0):
        fg, indg = fx.transform(w * g + 9.81)
        np.testing.assert_allclose(fg, f, atol=2e-5)
        np.testing.assert_allclose(levels(indg) - levels(ind), np.log10(g), atol=1e-9)


def test_robust_normalisation_floors_the_spread_and_caps_each_feature():
    rng = np.random.default_rng(3)
    feats = np.c_[rng.normal(0, 1, 500), np.full(500, 2.0)]  # the second never moved in training
    centre, spread = robust_moments(feats, scale_floor=0.15)
    assert spread[1] == np.float32(0.15) and abs(spread[0] - 1) < 0.1 and abs(centre[1] - 2) < 1e-6
    z = robust_z(np.array([[0.0, 100.0], [0.0, 2.3]]), centre, spread, cap=6.0)
    assert z[0, 1] == 6.0 and abs(z[1, 1] - 2.0) < 1e-4  # 0.3 / 0.15, not 0.3 / 0


def test_sine_lands_in_its_spectrum_band():
    fx = FeatureExtractor(FS, 2048)
    t = np.arange(2048) / FS
    f, ind = fx.transform(np.sin(2 * np.pi * 1000.0 * t))
    band = int(np.argmin(np.abs(fx.spec_centres - 1000.0)))
    assert int(np.argmax(f[0, : fx.cfg.spec_bands])) == band
    assert ind[0, 0] == pytest.approx(1 / np.sqrt(2), rel=0.01)  # RMS of a unit sine
    assert ind[0, 2] == pytest.approx(np.sqrt(2), rel=0.01)  # crest factor
    assert ind[0, 3] == pytest.approx(1.5, rel=0.02)  # kurtosis of a sine


def test_envelope_spectrum_shows_the_outer_race_fault_frequency():
    """Impacts at BPFO ringing a 3.2 kHz resonance: the envelope band holding BPFO stands out."""
    rec = synthesize("outer_race", seconds=2.0, seed=3)
    fx = FeatureExtractor(FS, 12000)
    f, _ = fx.transform(rec.signal[:12000])
    env = f[0, fx.cfg.spec_bands : fx.cfg.spec_bands + fx.cfg.env_bands]
    bpfo = FAULT_ORDERS["outer_race"] * 1797 / 60
    width = fx.cfg.env_fmax / fx.cfg.env_bands
    assert int(np.argmax(env[1:])) + 1 == int(bpfo // width)


def test_nan_window_gives_a_one_line_error():
    w = np.zeros(2048)
    w[10:13] = np.nan
    with pytest.raises(ValueError, match=r"^window has 3 NaN/infinite samples of 2048$"):
        check_window(w, 2048)
    with pytest.raises(ValueError, match="window has 100 samples, the bundle expects 2048"):
        check_window(np.zeros(100), 2048)


def test_bands_above_nyquist_are_refused():
    with pytest.raises(ValueError, match="above Nyquist"):
        FeatureExtractor(3200.0, 1024)


def test_time_split_is_disjoint_and_ordered():
    parts = split_in_time(1000, (0.5, 0.2, 0.3))
    assert parts == [(0, 500), (500, 700), (700, 1000)]
    with pytest.raises(ValueError, match="sum to 1"):
        split_in_time(1000, (0.5, 0.2))


def test_windows_overlap_by_the_hop():
    w = frame_signal(np.arange(10.0), 4, 2)
    assert w.tolist() == [[0, 1, 2, 3], [2, 3, 4, 5], [4, 5, 6, 7], [6, 7, 8, 9]]


def test_mahalanobis_scores_shifted_indicators_higher_and_round_trips():
    rng = np.random.default_rng(0)
    normal = rng.normal(size=(200, 5))
    m = Mahalanobis().fit(normal)
    assert np.median(m.score(normal + 3.0)) > 10 * np.median(m.score(normal))
    m2 = Mahalanobis.from_dict(m.to_dict())
    np.testing.assert_allclose(m2.score(normal[:3]), m.score(normal[:3]))


def test_bundle_feature_settings_are_all_required_so_no_device_default_applies():
    full = FeatureConfig().to_dict()
    assert FeatureConfig.from_bundle(full) == FeatureConfig()
    with pytest.raises(ValueError, match="config.features lacks env_fmax"):
        FeatureConfig.from_bundle({k: v for k, v in full.items() if k != "env_fmax"})


def test_mahalanobis_one_window_path_equals_the_batch_path():
    rng = np.random.default_rng(1)
    m = Mahalanobis().fit(rng.normal(size=(100, 5)))
    rows = rng.normal(size=(4, 5)) * 2
    one = [m.score_one(r) for r in rows]
    np.testing.assert_allclose(one, m.score(rows), rtol=1e-12)
