"""The wheel ``edgewise deploy`` ships: built from a checkout, or repacked from a pip-installed edgewise."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path


def _pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", "-q", "--disable-pip-version-check", *args], check=True,
                   capture_output=True, timeout=300)


def test_deploy_from_a_pip_installed_edgewise_ships_the_installed_wheel(tmp_path: Path) -> None:
    """Install the checkout's wheel into a plain folder (no source tree there), let that copy build
    its deploy wheel: same files, byte for byte, and the repacked wheel installs and imports."""
    from edgewise.edge.device.wheel import build_wheel

    original = build_wheel(tmp_path / "from-source")
    site = tmp_path / "site"
    _pip("install", "--no-deps", "--target", str(site), str(original))
    code = (
        "from pathlib import Path\n"
        "import edgewise.edge.device.wheel as d\n"
        "print(d.__file__)\n"
        f"print(d.build_wheel(Path({str(tmp_path / 'repacked')!r})))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env,
                       cwd=tmp_path)  # cwd: no checkout (and no egg-info) on the path
    assert r.returncode == 0, r.stderr[-2000:]
    module, repacked = (Path(line) for line in r.stdout.split())
    assert module.is_relative_to(site), "the pip-installed copy ran, not the checkout"
    assert repacked.name == original.name
    a, b = zipfile.ZipFile(original), zipfile.ZipFile(repacked)
    assert set(a.namelist()) == set(b.namelist())
    record = next(n for n in a.namelist() if n.endswith(".dist-info/RECORD"))
    assert all(a.read(n) == b.read(n) for n in a.namelist() if n != record)
    assert sorted(a.read(record).splitlines()) == sorted(b.read(record).splitlines())

    site2 = tmp_path / "site2"
    _pip("install", "--no-deps", "--target", str(site2), str(repacked))
    env2 = {**os.environ, "PYTHONPATH": str(site2)}
    r = subprocess.run([sys.executable, "-c", "import edgewise.edge.device.wheel as d; print(d.__file__)"],
                       capture_output=True, text=True, timeout=60, env=env2, cwd=tmp_path)
    assert r.returncode == 0 and Path(r.stdout.strip()).is_relative_to(site2), r.stderr[-2000:]
