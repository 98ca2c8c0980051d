"""edgewise project: the plugin counts what the Pi's kernels execute, and the projection scales
with the work. Two small convolution models built here with TensorFlow (the workstation side),
one with twice the multiply-accumulates of the other, are projected on an emulated Pi 5.

Needs root, the cached emulated Pi root (``sudo edgewise verify --prepare``), Debian's dynamic
``qemu-aarch64`` (qemu-user), llvm-mca 16+ and what the plugin build needs; skips with the
reason otherwise. About 1-2 minutes on two shared cores.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from edgewise.edge.device.project import tools
from edgewise.edge.device.project.cli import project_main
from edgewise.edge.device.rootfs import DEFAULT_CACHE, DEFAULT_MIRROR, root_dir

# Twice the MACs should cost twice the cycles; the band allows for per-call overhead and for
# kernels that tile 16 and 32 output channels differently.
TWICE_BAND = (1.6, 2.4)
SIDE, C_IN = 24, 16


def _why_not() -> str | None:
    if os.geteuid() != 0:
        return "needs root (the emulated Pi root is entered with chroot)"
    if shutil.which("chroot") is None or shutil.which("unshare") is None:
        return "chroot/unshare not found"
    if not root_dir(Path(os.environ.get("EDGEWISE_PI_ROOT", DEFAULT_CACHE))).is_dir():
        return "the emulated Pi root is not built here (sudo edgewise verify --prepare, about 10 minutes)"
    try:
        tools.find_tools(tools.cache_home(), DEFAULT_MIRROR, quiet=True, build=False)
    except tools.ProjectUnavailable as e:
        return str(e)
    return None


WHY = _why_not()
pytestmark = pytest.mark.skipif(WHY is not None, reason=f"cannot project here: {WHY}")


def _conv(filters: int):
    import keras

    inp = keras.Input((SIDE, SIDE, C_IN), batch_size=1)
    x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False)(inp)
    return keras.Model(inp, x)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """conv16 (float32 and int8) and conv32 (float32): 3x3 convolutions over 24x24x16, the second
    with twice the output channels, so exactly twice the multiply-accumulates."""
    pytest.importorskip("tensorflow", reason="the test models are built with TensorFlow")
    from edgewise.converters.tflite import to_tflite

    out = tmp_path_factory.mktemp("project-models")
    calib = np.random.default_rng(0).uniform(-1, 1, size=(32, SIDE, SIDE, C_IN)).astype(np.float32)
    m16, m32 = _conv(16), _conv(32)
    files = {"conv16_f32": to_tflite(m16, "float32"), "conv16_int8": to_tflite(m16, "int8", calib),
             "conv32_f32": to_tflite(m32, "float32")}
    paths = {}
    for name, blob in files.items():
        paths[name] = out / f"{name}.tflite"
        paths[name].write_bytes(blob)
    return paths


@pytest.fixture(scope="module")
def pi5(models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    out = tmp_path_factory.mktemp("project-out") / "pi5.json"
    argv = ["--target", "pi5", "--runs", "5", "--json", str(out), "-q"]
    for p in models.values():
        argv += ["--model", str(p)]
    assert project_main(argv) == 0
    rep = json.loads(out.read_text())
    assert rep["label"] == "projected, compute-bound lower bound" and rep["band"] == 0.3
    assert "edgewise bench" in rep["measured_note"]
    return {v["name"]: v for v in rep["variants"]}


def test_pi5_int8_runs_dot_product_instructions_and_float32_runs_fmla(pi5: dict[str, dict]):
    i8, f32 = pi5["conv16_int8"], pi5["conv16_f32"]
    assert i8["precision"] == "int8" and f32["precision"] == "float32"
    macs = SIDE * SIDE * 9 * C_IN * 16
    # one SDOT does 16 int8 MACs, one vector FMLA 4 float MACs: most of the work goes through them
    assert i8["dot_product"] * 16 >= 0.5 * macs, i8["top"]
    assert f32["fmla"] * 4 >= 0.5 * macs, f32["top"]
    assert f32["dot_product"] == 0
    assert i8["delegate"] == "XNNPACK" and f32["delegate"] == "XNNPACK"


def test_twice_the_macs_costs_about_twice_the_cycles(pi5: dict[str, dict]):
    ratio = pi5["conv32_f32"]["cycles"] / pi5["conv16_f32"]["cycles"]
    assert TWICE_BAND[0] <= ratio <= TWICE_BAND[1], ratio
