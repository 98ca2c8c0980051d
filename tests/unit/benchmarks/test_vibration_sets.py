"""`edgewise bench vibration --files/--healthy`: any recordings, each with its own rate and channel."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgewise.benchmarks.vibration_sets import bench_set, parse_spec


def test_spec_carries_rate_channel_speed_and_part():
    s = parse_spec("rig/run*.npy:fs=25600:ch=1:rpm=1500:part=inner_race")
    assert (s.pattern, s.fs, s.channel, s.rpm, s.part) == ("rig/run*.npy", 25600.0, "1", 1500.0, "inner_race")
    d = parse_spec("a.csv", fs=3200.0, channel="x")  # --fs / --channel as defaults
    assert (d.fs, d.channel, d.rpm) == (3200.0, "x", None)


@pytest.mark.parametrize(("spec", "message"), [
    ("a.npy:rate=100", "unknown or empty setting 'rate=100'"),
    ("a.npy:fs=fast", "take numbers"),
    ("a.npy:part=bearing", "part must be one of"),
])
def test_bad_specs_are_refused_in_one_line(spec: str, message: str):
    with pytest.raises(ValueError, match=message):
        parse_spec(spec)


def test_globs_are_read_at_their_own_rates_and_brought_to_the_bundle_rate(tmp_path: Path):
    rng = np.random.default_rng(0)
    for i in range(2):
        np.save(tmp_path / f"pump{i}.npy", rng.normal(size=24000 * 2))  # 24 kHz, 2 s
    np.save(tmp_path / "ok.npy", rng.normal(size=12000))  # 12 kHz, 1 s
    s = bench_set([f"{tmp_path}/pump*.npy:fs=24000:part=outer_race"], [f"{tmp_path}/ok.npy:fs=12000"],
                  12000.0, None, None)
    assert sorted(s.faults) == ["pump0", "pump1"] and list(s.healthy) == ["ok"]
    assert all(len(x) == 24000 for x in s.faults.values())  # decimated by 2
    assert s.part["pump0"] == "outer_race" and s.shaft_hz["pump0"] is None


def test_missing_rate_unmatched_glob_and_non_integer_ratio_are_errors(tmp_path: Path):
    np.save(tmp_path / "x.npy", np.zeros(5000))
    with pytest.raises(ValueError, match="--fs"):
        bench_set([str(tmp_path / "x.npy")], [], 12000.0, None, None)
    with pytest.raises(ValueError, match="no recording matches"):
        bench_set([str(tmp_path / "nothing*.wav")], [], 12000.0, None, None)
    with pytest.raises(ValueError, match="integer decimation"):
        bench_set([str(tmp_path / "x.npy") + ":fs=10000"], [], 12000.0, None, None)


def test_default_variants_skip_one_the_bundle_lacks_and_a_named_one_is_refused(capsys: pytest.CaptureFixture):
    from types import SimpleNamespace

    from edgewise.benchmarks.vibration import _runnable_variants

    tflite = SimpleNamespace(backend="tflite")
    b = SimpleNamespace(path="v.bundle", variants={"tflite_int8": tflite, "tflite_float32": tflite})
    assert _runnable_variants(b, None) == ["tflite_int8", "tflite_float32"]  # no ONNX variant: skipped
    assert "onnx_int8: skipped, not in v.bundle" in capsys.readouterr().err
    with pytest.raises(ValueError, match="'onnx_int8' is not in v.bundle"):
        _runnable_variants(b, "tflite_int8,onnx_int8")
