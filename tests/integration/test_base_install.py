"""A base-only install, as on a Raspberry Pi (`pip install edgewise`: no ONNX Runtime, no TensorFlow).

Builds the wheel from this checkout, installs it with its base requirements only into a fresh
venv, and runs the commands a Pi user runs: `bench` prints its table and skips the ONNX rows in
one line each, an ONNX variant asked for by name and training are refused in one line.
Needs the package index (skipped with the reason when pip cannot reach it); 1-3 minutes.
"""

from __future__ import annotations

import os
import re
import subprocess
import venv
from pathlib import Path

import pytest

from edgewise.edge.device.wheel import build_wheel

pytestmark = pytest.mark.integration

OFFLINE = ("NewConnectionError", "Temporary failure in name resolution", "Network is unreachable",
           "ProxyError", "ConnectTimeout", "Max retries exceeded", "Could not fetch URL")


@pytest.fixture(scope="session")
def base_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv holding edgewise with its install_requires and nothing else (built once per run)."""
    root = tmp_path_factory.mktemp("base-install")
    wheel = build_wheel(root / "dist")  # the wheel deploy ships (no build/ left in the checkout)
    venv.create(root / "venv", with_pip=True)
    py = root / "venv" / "bin" / "python"
    r = subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(wheel)],
                       capture_output=True, text=True, timeout=900)
    if r.returncode != 0 and any(s in r.stdout + r.stderr for s in OFFLINE):
        pytest.skip(f"pip cannot reach the package index: {r.stderr.strip().splitlines()[-1]}")
    assert r.returncode == 0, r.stderr[-3000:]
    return root / "venv"


def _edgewise(env_dir: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run([str(env_dir / "bin" / "edgewise"), *args], capture_output=True, text=True,
                          timeout=600, cwd=cwd, env=env)


def test_base_install_has_no_optional_parts(base_venv: Path) -> None:
    probe = ("import importlib.util as u; print([m for m in ('onnxruntime', 'tensorflow', 'keras', "
             "'gpiozero', 'scipy', 'ai_edge_litert') if u.find_spec(m)])")
    r = subprocess.run([str(base_venv / "bin" / "python"), "-c", probe],
                       capture_output=True, text=True, timeout=60, cwd="/")
    assert r.stdout.strip() == "['ai_edge_litert']", r.stdout + r.stderr


def test_base_install_bench_prints_the_table_and_skips_onnx_in_one_line(
    base_venv: Path, digits_bundle: Path, tmp_path: Path
) -> None:
    r = _edgewise(base_venv, "bench", str(digits_bundle), "--threads", "1", "--iterations", "20",
                  "--warmup", "2", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert re.search(r"^\| tflite_int8 \| 1 \| .* \| accuracy 0\.\d{4} \|$", r.stdout, re.M), r.stdout
    for v in ("onnx_float32", "onnx_int8"):
        assert f"{v}: skipped, ONNX Runtime not installed: pip install 'edgewise[onnx]'" in r.stdout
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize(("args", "line"), [
    (["run", "classify", "--bundle", "{b}", "--source", "{t}", "--variant", "onnx_int8"],
     "edgewise run classify: error: ONNX Runtime not installed: pip install 'edgewise[onnx]'"),
    (["bench", "{b}", "--variants", "onnx_int8"],
     "edgewise bench: error: onnx_int8: ONNX Runtime not installed: pip install 'edgewise[onnx]'"),
    (["train", "classify", "--out", "{t}/digits.bundle"],
     "edgewise train classify: error: training needs tensorflow, which is not installed: "
     "pip install 'edgewise[train]'"),
    (["demo", "--out", "{t}/demo"],
     "edgewise demo: error: the demo (it trains models) needs tensorflow, which is not installed: "
     "pip install 'edgewise[train]'"),
])
def test_base_install_refuses_what_it_lacks_in_one_line(
    base_venv: Path, digits_bundle: Path, tmp_path: Path, args: list[str], line: str
) -> None:
    argv = [a.format(b=digits_bundle, t=tmp_path) for a in args]
    r = _edgewise(base_venv, *argv, cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [line], r.stderr
    assert r.stdout == ""
