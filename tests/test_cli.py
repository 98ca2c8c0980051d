"""The edgewise command: help with examples, info verifies, bench prints percentiles, convert --strict."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgewise.edge.cli import main

SUBCOMMANDS = ["info", "convert", "bench", "demo"]


def _cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(
        [sys.executable, "-m", "edgewise.edge.cli", *args],
        capture_output=True, text=True, timeout=timeout, env=env,
    )


def test_top_level_help_lists_every_subcommand_with_examples() -> None:
    r = _cli("--help")
    assert r.returncode == 0
    for sub in ["train", "convert", "bench", "run", "enroll", "deploy", "demo", "info", "verify"]:
        assert sub in r.stdout
    assert "examples:" in r.stdout and "edgewise info model.bundle" in r.stdout


@pytest.mark.parametrize("sub", SUBCOMMANDS)
def test_subcommand_help_works(sub: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as e:
        main([sub, "--help"])
    assert e.value.code == 0
    assert "usage: edgewise" in capsys.readouterr().out


def test_train_and_run_help_reach_the_application(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as e:
        main(["run", "classify", "--help"])
    assert e.value.code == 0
    assert "edgewise run classify" in capsys.readouterr().out


def test_info_prints_metadata_and_verifies_checksums(digits_bundle: Path) -> None:
    r = _cli("info", str(digits_bundle))
    assert r.returncode == 0, r.stderr
    assert "digits-cnn" in r.stdout and "tflite_int8" in r.stdout
    assert "verified (size + sha256)" in r.stdout


def test_info_on_tampered_bundle_fails_with_one_line(digits_bundle: Path, tmp_path: Path) -> None:
    import shutil

    dst = Path(shutil.copytree(digits_bundle, tmp_path / "b"))
    p = dst / "model_int8.tflite"
    p.write_bytes(p.read_bytes()[:-10])
    r = _cli("info", str(dst))
    assert r.returncode == 2
    err = [ln for ln in r.stderr.splitlines() if ln.startswith("edgewise")]
    assert len(err) == 1 and "model_int8.tflite: size" in err[0]


def test_bench_prints_p50_p90_p99_per_variant_and_json(digits_bundle: Path, tmp_path: Path) -> None:
    r = _cli("-q", "bench", str(digits_bundle), "--threads", "1", "--iterations", "30",
             "--warmup", "3", "--json", "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["host"]["cores"] >= 1
    assert {row["variant"] for row in res["rows"]} == {
        "tflite_float32", "tflite_float16", "tflite_dynamic", "tflite_int8", "onnx_float32", "onnx_int8"
    }
    for row in res["rows"]:
        assert 0 < row["p50_ms"] <= row["p90_ms"] <= row["p99_ms"]
        assert row["accuracy"] > 0.85
    assert "p99 ms" in (tmp_path / "latency.md").read_text()
    assert (tmp_path / "latency.png").stat().st_size > 1000


def test_convert_writes_bundle_and_strict_fails_on_flagged_variant(tmp_path: Path) -> None:
    from edgewise.train.classify import build_model, load_digits_split
    from edgewise.train.keras_utils import tf_setup

    keras = tf_setup(0)
    d = load_digits_split()
    m = build_model(keras)
    m.compile("adam", "sparse_categorical_crossentropy")
    m.fit(d["x_train"], d["y_train"], epochs=3, verbose=0)
    m.save(tmp_path / "m.keras")
    np.savez(tmp_path / "s.npz", x_calib=d["x_train"][:100], x_eval=d["x_test"], y_eval=d["y_test"])
    r = _cli("-q", "convert", str(tmp_path / "m.keras"), "--data", str(tmp_path / "s.npz"),
             "--out", str(tmp_path / "b"), "--variants", "tflite_float32", "tflite_int8", "--json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)["parity"]
    assert [x["variant"] for x in rows] == ["tflite_float32", "tflite_int8"]
    # a tolerance that cannot be met must flag the variant in bundle.json and the report
    from edgewise.converters import ConversionSpec, build_bundle
    from edgewise.converters.parity import Tolerance

    spec = ConversionSpec("strict", "classification")
    spec.tolerances["int8"] = Tolerance(min_agreement=1.01, max_metric_drop=0.0)
    res = build_bundle(m, tmp_path / "b2", spec, calib_x=d["x_train"][:50], eval_x=d["x_test"],
                       eval_y=d["y_test"], variants=["tflite_int8"], quiet=True)
    assert res.flagged == ["tflite_int8"]
    assert "FLAGGED" in (res.path / "report" / "parity.md").read_text()
    meta = json.loads((res.path / "bundle.json").read_text())
    assert meta["variants"]["tflite_int8"]["flagged"] is True


def test_convert_reports_missing_sample_arrays_clearly(tmp_path: Path) -> None:
    np.savez(tmp_path / "s.npz", foo=np.zeros(3))
    (tmp_path / "m.keras").write_bytes(b"junk")
    r = _cli("convert", str(tmp_path / "m.keras"), "--data", str(tmp_path / "s.npz"),
             "--out", str(tmp_path / "b"))
    assert r.returncode == 2
    assert "m.keras: cannot load Keras model" in r.stderr


def test_unbuilt_subcommand_says_so_plainly(
    capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from edgewise.edge import cli

    monkeypatch.setitem(cli.FORWARDED, "verify", ("edgewise.edge.not_there", "verify_main", 7))
    assert main(["verify", "x"]) == 2
    assert "not built yet (tracked in issue #7)" in capsys.readouterr().err
