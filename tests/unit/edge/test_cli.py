"""The edgewise command: help with examples, info verifies, bench prints percentiles, convert --strict."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgewise.edge import cliargs
from edgewise.edge.cli import main


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
    assert "examples:" in r.stdout and "edgewise info digits.bundle" in r.stdout


def test_info_prints_metadata_and_verifies_checksums(digits_bundle: Path) -> None:
    r = _cli("info", str(digits_bundle))
    assert r.returncode == 0, r.stderr
    assert "digits-cnn" in r.stdout and "tflite_int8" in r.stdout
    assert "verified (size + sha256)" in r.stdout
    # which samples each figure is on, rounded for people
    assert "conversion evaluation set, 360 samples" in r.stdout
    assert "stored in the bundle (eval/, scored by `edgewise bench`): 256" in r.stdout
    assert re.search(r"tflite_int8 .* agree=\d\.\d{4} accuracy=\d\.\d{4} \(delta [+-]\d\.\d{4}\) ", r.stdout)


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
             "--warmup", "3", "--json", "-", "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["host"]["cores"] >= 1
    assert {row["variant"] for row in res["rows"]} == {
        "tflite_float32", "tflite_float16", "tflite_dynamic", "tflite_int8", "onnx_float32", "onnx_int8"
    }
    for row in res["rows"]:
        assert 0 < row["p50_ms"] <= row["p90_ms"] <= row["p99_ms"]
        assert row["accuracy"] > 0.85
        # memory measured in a fresh process: the runtime import and the model each cost something
        assert row["memory_mib"]["runtime_mib"] > 0 and row["memory_mib"]["model_peak_mib"] > 0
    assert res["evaluation"]["samples"] == 256 and res["evaluation"]["conversion_samples"] == 360
    assert res["skipped"] == []
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
             "--out", str(tmp_path / "b"), "--variants", "tflite_float32", "tflite_int8", "--json", "-")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)["parity"]
    assert [x["variant"] for x in rows] == ["tflite_float32", "tflite_int8"]
    # a tolerance that cannot be met must flag the variant in bundle.json and the report
    from edgewise.converters import ConversionSpec, build_bundle
    from edgewise.converters.parity import Tolerance

    spec = ConversionSpec("strict", "classification", input={"normalization": None})  # raw inputs
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
    assert r.stderr.strip().splitlines() == [
        f"edgewise convert: error: {tmp_path / 's.npz'}: needs array 'x' (or 'x_calib' and 'x_eval'), "
        "has ['foo']"
    ]


# -- the command line as a table: (argv, exit code, stderr regex) -------------------------------
# "{b}" is a real digits bundle, "{t}" a temporary folder, "{imgs}" an empty image folder.

HELP = [
    [], ["--help"], ["info", "--help"], ["convert", "--help"], ["bench", "--help"], ["demo", "--help"],
    ["train", "--help"], ["run", "--help"], ["enroll", "--help"], ["deploy", "--help"], ["verify", "--help"],
    *[[g, app, "--help"] for g in ("train", "run") for app in ("classify", "vibration", "inspect", "face")],
    *[["bench", app, "--help"] for app in ("vibration", "inspect", "face")],
]

ROWS: list[tuple[list[str], int, str]] = [
    *[(argv, 0, r"^$") for argv in HELP],
    # -q / --quiet is accepted everywhere: each row gets past parsing to its own first check
    (["-q", "info", "{t}/nope.bundle"], 2, r"^edgewise info: error: .*nope.bundle: no such bundle$"),
    (["info", "{t}/nope.bundle", "-q"], 2, r"^edgewise info: error: .*nope.bundle: no such bundle$"),
    (["convert", "{t}/m.keras", "--data", "{t}/s.npz", "--out", "{t}/o", "-q"], 2,
     r"^edgewise convert: error: model .*m.keras: no such file$"),
    (["bench", "{t}/nope.bundle", "-q"], 2, r"^edgewise bench: error: .*nope.bundle: no such bundle$"),
    (["demo", "-q", "--apps", "bogus"], 2, r"^edgewise demo: error: --apps bogus: unknown part"),
    (["train", "classify", "-q", "--out", "{t}/o", "--epochs", "0"], 2,
     r"^edgewise train classify: error: --epochs 0: must be at least 1"),
    (["train", "-q", "classify", "--out", "{t}/o", "--epochs", "0"], 2,
     r"^edgewise train classify: error: --epochs 0: must be at least 1"),
    (["train", "vibration", "--quiet", "--out", "{t}/o", "--window", "8"], 2,
     r"^edgewise train vibration: error: --window must be at least 64"),
    (["train", "face", "-q", "--data", "{t}", "--out", "{t}/o"], 2,
     r"^edgewise train face: error: .*no faces/extra folder"),
    (["train", "inspect", "-q", "--data", "{t}", "--out", "{t}/o"], 2, r"^edgewise train inspect: error: "),
    (["run", "classify", "-q", "--bundle", "{t}/nope", "--source", "{imgs}"], 2,
     r"^edgewise run classify: error: .*nope: no such bundle$"),
    (["run", "vibration", "-q", "--bundle", "{t}/nope", "--source", "x.wav"], 2,
     r"^edgewise run vibration: error: .*nope: no such bundle$"),
    (["run", "inspect", "-q", "--bundle", "{b}", "--source", "{imgs}", "--pulse", "0"], 2,
     r"^edgewise run inspect: error: --pulse 0.0: must be positive"),
    (["run", "face", "-q", "--bundle", "{t}/nope", "--gallery", "{t}/g.db", "--source", "{imgs}"], 2,
     r"^edgewise run face: error: "),
    (["bench", "vibration", "-q", "--bundle", "{t}/nope"], 2, r"^edgewise bench vibration: error: .*no such"),
    (["bench", "inspect", "-q", "--bundle", "{t}/nope"], 2,
     r"^edgewise bench inspect: error: .*nope: no such"),
    (["bench", "face", "-q", "--bundle", "{t}/nope"], 2, r"^edgewise bench face: error: .*nope: no such"),
    (["enroll", "-q", "--gallery", "{t}/g.db", "--remove", "bob"], 1,
     r"^edgewise enroll: error: 'bob' is not in"),
    (["deploy", "-q", "{t}/nope.bundle", "--app", "classify", "--host", "pi@example"], 2,
     r"^edgewise deploy: error: .*nope.bundle: no such bundle$"),
    (["verify", "-q", "{b}", "--threads", "0"], 2, r"^edgewise verify: error: --threads and --app-frames"),
    # bad flags and values: one line naming the subcommand, no usage block
    (["--bogus"], 2, r"^edgewise: error: unrecognized arguments: --bogus"),
    (["info", "{b}", "--bogus"], 2, r"^edgewise info: error: unrecognized arguments: --bogus"),
    (["bench", "{b}", "--json"], 2, r"^edgewise bench: error: argument --json: expected one argument"),
    (["bench", "{b}", "--threads", "0"], 2, r"^edgewise bench: error: --threads and --iterations"),
    (["bench", "{b}", "--variants", "nope"], 2, r"^edgewise bench: error: .*nope"),
    (["train"], 2, r"^edgewise train: error: the following arguments are required: APP"),
    (["run", "bogus"], 2, r"^edgewise run: error: argument APP: invalid choice: 'bogus'"),
    (["train", "classify", "--out", "{t}/o", "--bogus"], 2,
     r"^edgewise train classify: error: unrecognized arguments: --bogus"),
    (["run", "inspect", "--bundle", "{b}", "--source", "{imgs}", "--gpio-pin", "99"], 2,
     r"^edgewise run inspect: error: --gpio-pin 99: a Raspberry Pi BCM pin is 0..27$"),
    (["run", "inspect", "--bundle", "{b}", "--source", "{imgs}", "--roi", "1,2"], 2,
     r"^edgewise run inspect: error: "),
    (["deploy", "{b}", "--app", "classify"], 2, r"^edgewise deploy: error: no target"),
    # --threads is a list of integers everywhere (`--threads 1 2`), as in `bench BUNDLE`
    (["bench", "face", "--bundle", "{b}", "--threads", "a,b"], 2,
     r"^edgewise bench face: error: argument --threads: invalid int value: 'a,b'"),
    (["bench", "inspect", "--bundle", "{b}", "--threads", "1,2"], 2,
     r"^edgewise bench inspect: error: argument --threads: invalid int value: '1,2'"),
    (["bench", "face", "--bundle", "{b}", "--threads", "0"], 2,
     r"^edgewise bench face: error: --threads must be at least 1"),
]


def _run(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    """``edgewise ARGV`` in this process (fast): exit code, stdout, stderr."""
    try:
        rc = main(argv)
    except SystemExit as e:  # --help, and argparse errors raised from forwarded parsers
        rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture
def slots(digits_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    (tmp_path / "imgs").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("EDGEWISE_DATA", raising=False)
    return {"b": str(digits_bundle), "t": str(tmp_path), "imgs": str(tmp_path / "imgs")}


@pytest.mark.parametrize(("argv", "code", "stderr"), ROWS, ids=[" ".join(r[0]) or "(none)" for r in ROWS])
def test_command_line_table(argv: list[str], code: int, stderr: str, slots: dict[str, str],
                            capsys: pytest.CaptureFixture) -> None:
    rc, out, err = _run([a.format(**slots) for a in argv], capsys)
    assert rc == code, (out, err)
    lines = err.strip().splitlines()
    if code == 0:
        assert "usage: edgewise" in out and not lines
    else:
        assert len(lines) == 1, err  # exactly one line, no usage block, no traceback
        assert re.search(stderr, lines[0]), lines[0]
        assert "error:" not in out


def test_every_option_of_every_command_has_help_and_quiet(capsys: pytest.CaptureFixture,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list = []
    monkeypatch.setattr(cliargs.Parser, "print_help", lambda self, file=None: seen.append(self))
    for argv in HELP[1:]:
        _run(argv, capsys)
    assert len(seen) == len(HELP) - 1
    for p in seen:
        opts = {o for a in p._actions for o in a.option_strings}
        assert {"-q", "--quiet"} <= opts, p.prog
        for a in p._actions:
            assert a.help, f"{p.prog} {a.option_strings or a.dest}: no help text"


def test_help_shows_defaults(capsys: pytest.CaptureFixture) -> None:
    for argv, default in ((["convert", "--help"], "(default: NHWC)"), (["bench", "--help"], "(default: 1 2)"),
                          (["train", "vibration", "--help"], "(default: 2048)"),
                          (["run", "classify", "--help"], "(default: 640x480)")):
        rc, out, _ = _run(argv, capsys)
        assert rc == 0 and default in " ".join(out.split()), argv


# -- optional parts missing (as on a Pi): one line, or a skipped row with the pip command -------


def _without(monkeypatch: pytest.MonkeyPatch, *modules: str) -> None:
    """Make ``modules`` unimportable in this process, as if not installed."""
    for name in [m for m in list(sys.modules) if m.split(".")[0] in modules] + list(modules):
        monkeypatch.setitem(sys.modules, name, None)


MISSING: list[tuple[tuple[str, ...], list[str], str]] = [
    (("onnxruntime",), ["bench", "{b}", "--variants", "onnx_int8"],
     r"^edgewise bench: error: onnx_int8: ONNX Runtime not installed: pip install 'edgewise\[onnx\]'$"),
    (("onnxruntime",), ["run", "classify", "--bundle", "{b}", "--source", "{imgs}", "--variant", "onnx_int8"],
     r"^edgewise run classify: error: ONNX Runtime not installed: pip install 'edgewise\[onnx\]'$"),
    (("ai_edge_litert", "tflite_runtime", "tensorflow"),
     ["run", "classify", "--bundle", "{b}", "--source", "{imgs}", "--variant", "tflite_int8"],
     r"^edgewise run classify: error: LiteRT not installed: pip install ai-edge-litert"),
    (("ai_edge_litert", "tflite_runtime", "tensorflow"), ["bench", "{b}", "--variants", "tflite_int8"],
     r"^edgewise bench: error: tflite_int8: LiteRT not installed"),
    (("tensorflow", "keras"), ["train", "classify", "--out", "{t}/o"],
     r"^edgewise train classify: error: training needs tensorflow, which is not installed: "
     r"pip install 'edgewise\[train\]'$"),
    (("tensorflow", "keras"), ["demo", "--out", "{t}/o"],
     r"^edgewise demo: error: .*needs tensorflow, which is not installed: pip install 'edgewise\[train\]'$"),
    (("tensorflow", "keras"), ["convert", "{b}/bundle.json", "--data", "{b}/bundle.json", "--out", "{t}/o"],
     r"^edgewise convert: error: .*needs tensorflow, which is not installed: "
     r"pip install 'edgewise\[train\]'$"),
    (("gpiozero",), ["run", "inspect", "--bundle", "{b}", "--source", "{imgs}", "--gpio-pin", "17"],
     r"^edgewise run inspect: error: --gpio-pin needs gpiozero: pip install 'edgewise\[pi\]'$"),
]


@pytest.mark.parametrize(("modules", "argv", "stderr"), MISSING, ids=[" ".join(r[1][:2]) + " w/o " + r[0][0]
                                                                      for r in MISSING])
def test_missing_optional_part_is_one_line(modules: tuple[str, ...], argv: list[str], stderr: str,
                                           slots: dict[str, str], capsys: pytest.CaptureFixture,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    _without(monkeypatch, *modules)
    rc, out, err = _run([a.format(**slots) for a in argv], capsys)
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1, err
    assert re.search(stderr, lines[0]), lines[0]


def test_bench_without_onnx_runtime_skips_those_rows_and_prints_the_table(
    slots: dict[str, str], capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    _without(monkeypatch, "onnxruntime")
    rc, out, err = _run(["-q", "bench", slots["b"], "--threads", "1", "--iterations", "5", "--warmup", "1"],
                        capsys)
    assert rc == 0, err
    assert "| tflite_int8 | 1 |" in out and "| onnx_int8 |" not in out
    for v in ("onnx_float32", "onnx_int8"):
        assert f"{v}: skipped, ONNX Runtime not installed: pip install 'edgewise[onnx]'" in out
    assert "Traceback" not in err


def test_gpio_pin_off_a_pi_is_one_line(slots: dict[str, str], capsys: pytest.CaptureFixture,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    gpiozero = pytest.importorskip("gpiozero")
    if Path("/proc/device-tree/model").exists():
        pytest.skip("this machine has a device tree (a Pi?): gpiozero may find real pins")
    monkeypatch.delenv("GPIOZERO_PIN_FACTORY", raising=False)
    monkeypatch.setattr(gpiozero.Device, "pin_factory", None)
    argv = ["run", "inspect", "--bundle", slots["b"], "--source", slots["imgs"], "--gpio-pin", "17"]
    rc, _, err = _run(argv, capsys)
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1, err
    assert lines[0].startswith("edgewise run inspect: error: --gpio-pin 17: no usable GPIO on this machine")


def test_json_path_means_the_same_everywhere(slots: dict[str, str], capsys: pytest.CaptureFixture) -> None:
    """``--json PATH`` writes a file and keeps the table on stdout; ``--json -`` is JSON on stdout."""
    target = Path(slots["t"]) / "sub" / "info.json"
    rc, out, _ = _run(["info", slots["b"], "--json", str(target)], capsys)
    assert rc == 0 and "files:" in out
    assert json.loads(target.read_text())["bundle"]["name"] == "digits-cnn"
    rc, out, _ = _run(["info", slots["b"], "--json", "-"], capsys)
    assert rc == 0 and json.loads(out)["bundle"]["name"] == "digits-cnn"
    rc, out, _ = _run(["-q", "bench", slots["b"], "--variants", "tflite_int8", "--threads", "1",
                       "--iterations", "3", "--warmup", "0", "--json", "-"], capsys)
    assert rc == 0 and [r["variant"] for r in json.loads(out)["rows"]] == ["tflite_int8"]


def _examples() -> list[list[str]]:
    import shlex

    from edgewise.edge.cli import EXAMPLES

    text = EXAMPLES.replace("\\\n", " ")
    lines = [ln.split("#")[0] for ln in text.splitlines() if ln.strip().startswith("edgewise ")]
    return [shlex.split(ln)[1:] for ln in lines]


EXAMPLES_WITH_FILES = [e for e in _examples() if e[:1] != ["demo"] and e[:2] != ["train", "classify"]]


@pytest.mark.parametrize("argv", EXAMPLES_WITH_FILES, ids=lambda a: " ".join(a[:2]))
def test_every_help_example_is_complete(argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Run in an empty folder, each example passes every flag check and stops only at a missing file.

    (`demo` and `train classify` need no files: they are the README's commands, run by other tests.)
    """
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("EDGEWISE_DATA", str(tmp_path))
    argv = [a.replace("$EDGEWISE_DATA", str(tmp_path)) for a in argv]
    rc, _, err = _run(argv, capsys)
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1, err
    missing_file = r"no such|not found|does not exist|expected sub-folders|no vibration|cwru"
    assert re.search(missing_file, lines[0]), lines[0]
    assert not re.search(r"required|needs --|unrecognized|invalid choice", lines[0]), lines[0]
