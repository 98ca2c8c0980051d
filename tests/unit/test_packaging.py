"""The four top-level folders install under one `edgewise` namespace, nothing generic leaks."""

from __future__ import annotations

import configparser
import subprocess
import sys
import zipfile
from pathlib import Path

from conftest import REPO

ROOTS = {"edge": "edgewise.edge", "train": "edgewise.train", "converters": "edgewise.converters",
         "benchmarks": "edgewise.benchmarks"}


def _declared_packages() -> set[str]:
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    return {p.strip() for p in cfg["options"]["packages"].split() if p.strip()}


def test_every_python_folder_is_declared_as_a_package() -> None:
    declared = _declared_packages()
    for folder, pkg in ROOTS.items():
        for d in [REPO / folder, *sorted(p for p in (REPO / folder).rglob("*") if p.is_dir())]:
            if "__pycache__" in d.parts or not list(d.glob("*.py")):
                continue
            name = ".".join([pkg, *d.relative_to(REPO / folder).parts])
            assert name in declared, f"{d} holds Python files but {name} is not in setup.cfg packages"
            assert (d / "__init__.py").exists(), f"{d} lacks __init__.py"


def test_wheel_holds_only_the_edgewise_namespace(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp_path),
         str(REPO)],
        capture_output=True, text=True, timeout=300,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    (wheel,) = tmp_path.glob("edgewise-*.whl")
    tops = {n.split("/")[0] for n in zipfile.ZipFile(wheel).namelist()}
    assert tops == {"edgewise", f"{wheel.name.split('-')[0]}-{wheel.name.split('-')[1]}.dist-info"}
    names = zipfile.ZipFile(wheel).namelist()
    assert "edgewise/edge/cli.py" in names and "edgewise/train/report.py" in names
    assert not any(n.startswith(("edge/", "train/", "benchmarks/", "converters/")) for n in names)
