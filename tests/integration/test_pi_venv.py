"""The Pi install keeps the OS's numpy: deploy's venv recipe in an emulated Raspberry Pi OS.

Raspberry Pi OS Bookworm ships python3-picamera2 and simplejpeg compiled against Debian's
numpy 1.24; a ``--system-site-packages`` venv that pip fills with another numpy breaks them.
The emulated arm64 Debian bookworm root of ``edgewise verify`` has Debian's python3-numpy and
python3-scipy (compiled against it, standing in for simplejpeg). Here deploy's own recipe
(``numpy_constraint`` + ``venv_recipe``) creates a venv in that root and installs edgewise,
with its dependencies from the package index; then the Debian package and edgewise must both
import in that venv, on Debian's numpy, and a bundle must run. Needs root, qemu-user-static
and the cached root (``make verify-pi`` builds it); skipped with the reason otherwise. The
install runs emulated: a few minutes.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from edgewise.edge.device import app_check, emulator, rootfs
from edgewise.edge.device.venv import CONSTRAINTS_FILE, NUMPY_PROBE, numpy_constraint, venv_recipe
from edgewise.edge.device.wheel import build_wheel

CHECK = """
import json, sys
import numpy, scipy, scipy.signal
scipy.signal.lfilter([1.0], [1.0, -0.5], numpy.ones(8))  # compiled against Debian's numpy: runs
import cv2
import edgewise.edge
from ai_edge_litert.interpreter import Interpreter
print(json.dumps({"numpy": numpy.__version__, "numpy_file": numpy.__file__, "scipy": scipy.__version__,
                  "scipy_file": scipy.__file__, "opencv": cv2.__version__, "prefix": sys.prefix,
                  "tensorflow_imported": "tensorflow" in sys.modules}))
"""


def test_the_constraint_is_the_device_numpy_version_or_nothing():
    assert numpy_constraint("1.24.2\n") == "numpy==1.24.2"
    assert numpy_constraint("a warning first\n2.2.4\n") == "numpy==2.2.4"
    assert numpy_constraint("1.26.0rc1") == "numpy==1.26.0rc1"
    assert numpy_constraint("") is None  # no numpy in the system Python: nothing to protect
    assert numpy_constraint("Traceback (most recent call last):") is None
    assert numpy_constraint("1.24; rm -rf /") is None


def test_the_recipe_makes_a_system_site_venv_and_installs_under_the_constraint(tmp_path):
    """The recipe run for real by sh, against a stand-in interpreter that records its calls."""
    calls = tmp_path / "calls.log"
    stub = (f"#!/bin/sh\necho \"$0 $*\" >> {calls}\n"
            'if [ "$1 $2" = "-m venv" ]; then mkdir -p "$4/bin"; cp "$0" "$4/bin/python"; fi\n')
    py = tmp_path / "python3"
    py.write_text(stub)
    py.chmod(0o755)
    (tmp_path / "wheel").mkdir()
    (tmp_path / "wheel" / "edgewise-0.1.0-py3-none-any.whl").write_bytes(b"")
    venv, wheel = tmp_path / "venv", tmp_path / "wheel" / "edgewise-0.1.0-py3-none-any.whl"
    script = venv_recipe(str(venv), f"{tmp_path}/wheel/*.whl", ["numpy==1.24.2"], python=str(py))
    for _ in range(2):  # the second deploy reuses the venv
        subprocess.run(["sh", "-c", script], check=True, timeout=30)
    pip = f"{venv}/bin/python -m pip install --disable-pip-version-check -q -c {venv}/{CONSTRAINTS_FILE}"
    assert calls.read_text().splitlines() == [
        f"{py} -m venv --system-site-packages {venv}",
        f"{pip} {wheel}[pi]", f"{pip} --no-deps --force-reinstall {wheel}",
        f"{pip} {wheel}[pi]", f"{pip} --no-deps --force-reinstall {wheel}",
    ]
    assert (venv / CONSTRAINTS_FILE).read_text() == "numpy==1.24.2\n"
    subprocess.run(["sh", "-c", venv_recipe(str(venv), str(wheel), [], python=str(py), no_deps=True)],
                   check=True, timeout=30)
    assert (venv / CONSTRAINTS_FILE).read_text() == ""
    assert calls.read_text().splitlines()[-1] == f"{pip} --no-deps --force-reinstall {wheel}"


def _root() -> Path:
    if os.geteuid() != 0:
        pytest.skip("the emulated root needs root (chroot, mounts): run as root")
    if shutil.which("qemu-aarch64-static") is None:
        pytest.skip("qemu-user-static is not installed (apt-get install qemu-user-static binfmt-support)")
    cache = Path(os.environ.get("EDGEWISE_PI_ROOT", rootfs.DEFAULT_CACHE))
    root = cache / f"{rootfs.SUITE}-arm64-{rootfs.root_key()}"
    if not root.is_dir():
        pytest.skip(f"no cached emulated Pi root in {cache}; `make verify-pi` builds it (about 10 minutes)")
    return root


def _pip_env(work: Path) -> dict[str, str]:
    """pip in the root uses this machine's index settings and trusted CAs (a TLS-inspecting
    proxy's included): the root stands for a Pi on the same network."""
    env = {k: v for k, v in os.environ.items()
           if k in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY",
                    "http_proxy", "https_proxy", "no_proxy") and not v.startswith("file:")}
    ca = Path("/etc/ssl/certs/ca-certificates.crt")
    if ca.is_file():
        shutil.copy2(ca, work / "ca.crt")
        env["PIP_CERT"] = f"/{work.name}/ca.crt"
    env["PIP_DEFAULT_TIMEOUT"] = "120"
    return env


def test_deploy_venv_keeps_debian_numpy_and_runs_a_bundle(digits_bundle):
    root = _root()
    target = emulator.TARGETS["pi4"]
    out: list[str] = []

    def sh(what: str, script: str, env: dict[str, str] | None = None, timeout: float = 600) -> str:
        t0 = time.monotonic()
        text = emulator.chroot(root, target, ["sh", "-c", script], what=what, timeout=timeout,
                              extra_env=env)
        out.append(f"$ {what} ({time.monotonic() - t0:.0f}s emulated)\n{text.rstrip()}")
        return text

    work = Path(tempfile.mkdtemp(prefix="edgewise-pivenv-", dir=root))
    inroot = f"/{work.name}"
    try:
        # The edgewise wheel built on this machine, the bundle and a few of its images.
        build_wheel(work / "wheel")
        shutil.copytree(digits_bundle, work / "digits.bundle")
        from edgewise.edge.bundle import load_bundle

        n = app_check.export_eval_images(load_bundle(digits_bundle), work / "images", limit=4)
        # deploy's recipe, exactly as deploy runs it on a device.
        probe = sh("system numpy", f"python3 -c {shlex.quote(NUMPY_PROBE)} 2>/dev/null || true")
        pin = numpy_constraint(probe)
        assert pin is not None and pin.startswith("numpy==1.24"), f"Debian bookworm's numpy, got {probe!r}"
        venv = f"{inroot}/venv"
        sh("deploy's venv recipe: pip install edgewise[pi] -c constraints (from the package index)",
           venv_recipe(venv, f"{inroot}/wheel/*.whl", [pin]) + f"{venv}/bin/python -m pip list 2>/dev/null"
           " | grep -iE '^(numpy|scipy|opencv-contrib-python-headless|ai-edge-litert|edgewise|ml.dtypes) '",
           env=_pip_env(work), timeout=2400)
        assert (work / "venv" / CONSTRAINTS_FILE).read_text() == f"{pin}\n"
        facts = json.loads(sh("imports in the venv", f"{venv}/bin/python -c {shlex.quote(CHECK)}")
                          .strip().splitlines()[-1])
        run = sh(f"edgewise run classify on {n} images",
                 f"{venv}/bin/edgewise run classify --bundle {inroot}/digits.bundle --source "
                 f"{inroot}/images --max-frames {n} --jsonl {inroot}/events.jsonl >/dev/null 2>&1; "
                 f"echo exit $?; cat {inroot}/events.jsonl")
        info = sh("edgewise info", f"{venv}/bin/edgewise info {inroot}/digits.bundle 2>&1 | head -n 12")
    finally:
        print("\n" + "\n\n".join(out))
        assert not emulator.mounts_below(root), "mounts left below the emulated root"
        shutil.rmtree(work, ignore_errors=True)
    # Debian's numpy and scipy, from the system site-packages, both importable with edgewise.
    assert facts["numpy"] == pin.split("==")[1]
    assert facts["numpy_file"].startswith("/usr/lib/python3/dist-packages/"), facts
    assert facts["scipy_file"].startswith("/usr/lib/python3/dist-packages/"), facts
    assert facts["prefix"] == venv and facts["tensorflow_imported"] is False
    lines = run.strip().splitlines()
    assert lines[0] == "exit 0", run
    events = [json.loads(ln) for ln in lines[1:]]
    assert len(events) == n and all("label" in e for e in events), run
    assert "checksum" in info.lower() or "tflite_int8" in info, info
