"""The alarm: N-of-M debounce and hysteresis."""

from __future__ import annotations

import pytest

from edgewise.edge.apps.vibration import AlarmConfig, AlarmState


def feed(a: AlarmState, scores: list[float]) -> list[str | None]:
    return [a.update(s) for s in scores]


def test_single_spike_does_not_raise_the_alarm():
    a = AlarmState(1.0, n=3, m=5)
    assert feed(a, [0.1, 5.0, 0.1, 0.1, 0.1, 0.1]) == [None] * 6
    assert not a.active


def test_three_of_five_above_threshold_raise_it():
    a = AlarmState(1.0, n=3, m=5)
    assert feed(a, [2.0, 0.1, 2.0, 0.1, 2.0]) == [None, None, None, None, "raised"]
    assert a.active


def test_scores_between_clear_and_alarm_threshold_keep_the_alarm():
    a = AlarmState(1.0, n=2, m=3, clear_threshold=0.5)
    feed(a, [2.0, 2.0])
    assert a.active
    assert feed(a, [0.8, 0.9, 0.7, 0.8]) == [None] * 4  # below 1.0 but above 0.5: hysteresis
    assert a.active
    assert feed(a, [0.1, 0.1]) == [None, "cleared"]
    assert not a.active


def test_bad_debounce_settings_are_refused():
    with pytest.raises(ValueError, match="1 <= n <= m"):
        AlarmState(1.0, n=4, m=3)
    with pytest.raises(ValueError, match="must not exceed"):
        AlarmState(1.0, clear_threshold=2.0)


def test_bundle_alarm_settings_are_all_required_so_no_device_default_applies():
    with pytest.raises(ValueError, match="config.alarm lacks m, clear_ratio"):
        AlarmConfig.from_bundle({"n": 3})
    with pytest.raises(ValueError, match="unknown alarm settings"):
        AlarmConfig.from_bundle({"n": 3, "m": 5, "clear_ratio": 0.8, "debounce": 2})
    a = AlarmConfig.from_bundle({"n": 2, "m": 4, "clear_ratio": 0.5}).state(1.0)
    assert (a.n, a.m, a.clear_threshold) == (2, 4, 0.5)
    b = AlarmConfig.from_bundle({"n": 2, "m": 4, "clear_ratio": 0.5}).state(1.0, n=1, m=2)
    assert (b.n, b.m) == (1, 2)
