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


def _shipped_as_data(d: Path, folder: str, pkg: str) -> bool:
    """Python files shipped as data of a package (e.g. an Ansible filter plugin), not imported from it."""
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    if not cfg.has_section("options.package_data"):
        return False
    files = list(d.glob("*.py"))
    for owner, patterns in cfg["options.package_data"].items():
        if not owner.startswith(pkg + "."):
            continue
        base = REPO / folder / Path(*owner.split(".")[2:])
        globs = [base / g.strip() for g in patterns.split(",") if g.strip()]
        if d.is_relative_to(base) and all(any(f.match(str(g)) for g in globs) for f in files):
            return True
    return False


def test_every_python_folder_is_declared_as_a_package() -> None:
    declared = _declared_packages()
    for folder, pkg in ROOTS.items():
        for d in [REPO / folder, *sorted(p for p in (REPO / folder).rglob("*") if p.is_dir())]:
            if "__pycache__" in d.parts or not list(d.glob("*.py")) or _shipped_as_data(d, folder, pkg):
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
