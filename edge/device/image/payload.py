"""The payload folder a card carries: everything the first boot installs, with no network.

::

    edgewise/
      firstboot.sh                 the first-boot script (firstboot.py)
      edgewise-APP.service         the unit, rendered by deploy's render_unit
      release/                     deploy's release: bundle/, wheel/edgewise-*.whl, MANIFEST.sha256,
                                   release.json, trusted-keys/ (with --trusted-key)
      wheels/                      every dependency as an aarch64 wheel for the image's Python
      image.json                   what was built from what (no secrets)

The wheelhouse is resolved once more, offline, before anything is written to the card
(``pip install --dry-run --no-index`` for the image's platform and Python): a wheelhouse that
cannot install on the Pi fails here, in one line, not at first boot.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
import tarfile
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from ...jsonenc import dumps
from ..release import TRUSTED_KEYS_DIR, Release, prepare_release
from ..rootfs import WHEEL_PLATFORMS
from ..systemd import render_unit, unit_name
from ..venv import CONSTRAINTS_FILE
from .config import ImageConfig
from .firstboot import FirstBoot, firstboot_sh
from .flavor import Flavor

__all__ = ["PayloadInfo", "build_payload", "pip_download", "check_wheelhouse", "folder_size", "FOLDER"]

FOLDER = "edgewise"  # on the boot partition


@dataclass
class PayloadInfo:
    """``image.json``: what the payload holds (no secrets: no Wi-Fi, no keys)."""

    release: str
    app: str
    bundle: str
    flavor: str
    python: str
    numpy_pin: str | None
    wheel: str
    wheels: list[str] = field(default_factory=list)
    no_deps: bool = False
    extras: str = "pi"
    hostname: str = ""
    user: str = ""
    built_at: str = ""
    bytes: int = 0


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _pip(*args: str, what: str, timeout: float) -> None:
    cmd = [sys.executable, "-m", "pip", *args]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise ValueError(f"{what}: pip did not finish in {timeout:.0f}s") from None
    if r.returncode != 0:
        lines = [ln for ln in (r.stderr or r.stdout).splitlines() if ln.strip()]
        last = lines[-1] if lines else f"exit {r.returncode}"
        err = next((ln for ln in lines if ln.startswith("ERROR")), last)
        raise ValueError(f"{what}: {err.strip()}")


def _platform_args(python: str) -> list[str]:
    args = ["--only-binary=:all:", "--implementation", "cp", "--python-version", python]
    for plat in WHEEL_PLATFORMS:
        args += ["--platform", plat]
    return args


def _requirement(wheel: Path, extras: str) -> str:
    return f"{wheel}[{extras}]" if extras else str(wheel)


def pip_download(dest: Path, wheel: Path, extras: str, constraints: Path, python: str) -> None:
    """Every dependency of ``wheel[extras]`` as aarch64 wheels for CPython ``python`` (the
    image's), under ``constraints`` (the numpy pin): the one step that needs the network."""
    _pip("download", "-q", "--disable-pip-version-check", "-d", str(dest), "-c", str(constraints),
         *_platform_args(python), _requirement(wheel, extras), what="pip download of the aarch64 wheels",
         timeout=3600)


def check_wheelhouse(wheels: Path, wheel: Path, extras: str, constraints: Path, python: str) -> None:
    """Resolve ``wheel[extras]`` from ``wheels`` alone for the image's platform and Python, as the
    Pi will at first boot; ValueError (one line) when something is missing or conflicts."""
    with_target = wheels.parent / ".resolve-target"
    try:
        _pip("install", "--dry-run", "-q", "--disable-pip-version-check", "--no-index", "--find-links",
             str(wheels), "--target", str(with_target), "-c", str(constraints), *_platform_args(python),
             _requirement(wheel, extras), what=f"the wheelhouse does not install offline on CPython {python} "
             "aarch64", timeout=600)
    finally:
        shutil.rmtree(with_target, ignore_errors=True)


def _unpack(rel: Release, dest: Path) -> None:
    """The release exactly as deploy uploads it (its tar), unpacked."""
    with tarfile.open(fileobj=io.BytesIO(rel.tar_bytes())) as tar:
        tar.extractall(dest, filter="data")


def build_payload(out: Path, *, bundle: str | Path, wheel: Path, cfg: ImageConfig, flavor: Flavor,
                  numpy_pin: str | None, extras: str = "pi", wheelhouse: Path | None = None,
                  no_deps: bool = False, trusted_keys: list[str] | None = None) -> PayloadInfo:
    """Fill ``out`` (the payload folder): release, wheels, unit, first-boot script, image.json."""
    from ...signing import ENV_TRUSTED_KEYS

    out.mkdir(parents=True, exist_ok=True)
    rel = prepare_release(bundle, wheel, cfg.app, trusted_keys or [])
    _unpack(rel, out / "release")
    wheels = out / "wheels"
    wheels.mkdir()
    constraints = out.parent / CONSTRAINTS_FILE
    constraints.write_text(f"{numpy_pin}\n" if numpy_pin else "")
    if not no_deps:
        if wheelhouse is not None:
            found = sorted(wheelhouse.glob("*.whl"))
            if not found:
                raise ValueError(f"--wheelhouse {wheelhouse}: no .whl files")
            for w in found:
                if not w.name.startswith("edgewise-"):
                    shutil.copy2(w, wheels / w.name)
        else:
            pip_download(wheels, wheel, extras, constraints, flavor.python)
            for w in wheels.glob("edgewise-*.whl"):
                w.unlink()  # already in release/wheel/
        check_wheelhouse(wheels, wheel, extras, constraints, flavor.python)
    env = {ENV_TRUSTED_KEYS: f"{cfg.base}/current/{TRUSTED_KEYS_DIR}"} if rel.keys else None
    unit = render_unit(cfg.app, cfg.base, cfg.run_args, user=cfg.user, scope="system", env=env)
    (out / unit_name(cfg.app)).write_text(unit)
    fb = FirstBoot(cfg.app, rel.id, cfg.base, cfg.user, numpy_pin, extras=extras, no_deps=no_deps)
    (out / "firstboot.sh").write_text(firstboot_sh(fb))
    info = PayloadInfo(
        release=rel.id, app=cfg.app, bundle=str(rel.info["bundle"]), flavor=flavor.name, python=flavor.python,
        numpy_pin=numpy_pin, wheel=wheel.name, wheels=sorted(p.name for p in wheels.glob("*.whl")),
        no_deps=no_deps, extras=extras, hostname=cfg.hostname, user=cfg.user,
        built_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    info.bytes = folder_size(out)
    (out / "image.json").write_text(dumps(asdict(info), indent=2) + "\n")
    return info
