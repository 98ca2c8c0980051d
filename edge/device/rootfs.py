"""The cached emulated Pi root: arm64 Debian bookworm, the runtime's arm64 wheels, edgewise.

Built once per machine (debootstrap, about 10 minutes) under ``/var/cache/edgewise/pi-root``
and reused: the root is keyed by the Debian suite and package list, the venv by the wheel
set, the edgewise install by a digest of the source (``wheel.source_digest``), so a verify
after a code change only reinstalls the edgewise wheel. Bookworm is Raspberry Pi OS
Bookworm's Debian 12 with its Python 3.11.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..progress import log
from .emulator import (
    EnvironmentProblem,
    Target,
    VerifyError,
    check_environment,
    chroot,
    ensure_binfmt,
    run,
    umount_below,
)
from .wheel import WheelError, build_wheel, source_digest

__all__ = ["DEFAULT_CACHE", "SUITE", "DEBOOTSTRAP_INCLUDE", "WHEEL_PACKAGES", "root_key", "root_dir",
           "wheel_requirements", "Stage", "prepare_root"]

DEFAULT_CACHE = "/var/cache/edgewise/pi-root"
SUITE = "bookworm"  # Raspberry Pi OS Bookworm: Debian 12, Python 3.11
# Debian's own numpy and a package compiled against it (scipy) stand in for Raspberry Pi OS's
# apt-installed python3-picamera2/simplejpeg: the Pi-venv check proves a --system-site-packages
# venv made by deploy's recipe keeps them importable.
DEBOOTSTRAP_INCLUDE = (
    "python3", "python3-venv", "python3-pip", "ca-certificates", "python3-numpy", "python3-scipy",
)
DEFAULT_MIRROR = "http://deb.debian.org/debian"
# The device's runtime packages, fetched on this machine as arm64 wheels for CPython 3.11.
# pydantic (the typed bundle.json) and cryptography (bundle signatures) are install_requires too:
# without them edgewise does not import in the root.
WHEEL_PACKAGES = ("numpy", "opencv-contrib-python-headless", "ai-edge-litert", "onnxruntime", "pydantic",
                  "cryptography")
WHEEL_PLATFORMS = (
    "manylinux_2_27_aarch64",
    "manylinux_2_28_aarch64",
    "manylinux2014_aarch64",
    "manylinux_2_17_aarch64",
    "any",
)
TARGET_PYTHON = "311"


def _digest(parts: list[str] | tuple[str, ...]) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:12]


def root_key(suite: str = SUITE, include: tuple[str, ...] = DEBOOTSTRAP_INCLUDE) -> str:
    """Cache key of the base root: a hash of the Debian suite, architecture and package list."""
    return _digest([suite, "arm64", "minbase", ",".join(sorted(include))])


def root_dir(cache: Path) -> Path:
    """Where the base root lives in ``cache`` (it exists once built)."""
    return cache / f"{SUITE}-arm64-{root_key()}"


def wheel_requirements(pin: bool = True) -> list[str]:
    """The arm64 wheels to fetch: pinned to this machine's versions so both sides run the
    same runtime release and a difference can only come from the instruction set."""
    from importlib import metadata

    reqs = []
    for name in WHEEL_PACKAGES:
        try:
            reqs.append(f"{name}=={metadata.version(name)}" if pin else name)
        except metadata.PackageNotFoundError:
            reqs.append(name)
    return reqs


class Stage:
    """Progress lines: ``[verify 2/6] ...`` with the elapsed time of each stage."""

    def __init__(self, total: int, quiet: bool) -> None:
        self.total, self.quiet, self.n = total, quiet, 0
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, key: str, msg: str) -> Iterator[None]:
        self.n += 1
        log(f"[verify {self.n}/{self.total}] {msg}", quiet=self.quiet)
        t0 = time.monotonic()
        yield
        self.seconds[key] = round(time.monotonic() - t0, 1)


def _debootstrap(root: Path, mirror: str, quiet: bool) -> None:
    """Build the base root in ``ROOT.partial`` and rename it when complete (crash-safe)."""
    partial = root.with_name(root.name + ".partial")
    if partial.exists():
        log(f"removing an unfinished root {partial}", quiet=quiet)
        umount_below(partial)
        shutil.rmtree(partial)
    cmd = [
        "debootstrap", "--arch=arm64", "--variant=minbase",
        f"--include={','.join(DEBOOTSTRAP_INCLUDE)}", SUITE, str(partial), mirror,
    ]
    log(f"  {' '.join(cmd)}  (about 10 minutes, once per machine)", quiet=quiet)
    t0 = time.monotonic()
    last_print = 0.0
    tail: list[str] = []
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        line = line.rstrip()
        tail = (tail + [line])[-5:]
        now = time.monotonic()
        if now - last_print >= 15 or line.startswith(("I: Base system installed", "E:", "W: Failure")):
            last_print = now
            log(f"  debootstrap {now - t0:5.0f}s  {line}", quiet=quiet)
    if proc.wait() != 0:
        why = next((ln for ln in reversed(tail) if ln.startswith(("E:", "W:"))), tail[-1] if tail else "")
        raise EnvironmentProblem(
            f"debootstrap failed (exit {proc.returncode}): {why} (log: {partial}/debootstrap/debootstrap.log)"
        )
    partial.rename(root)


def _download_wheels(cache: Path, quiet: bool) -> tuple[Path, list[str]]:
    """arm64 CPython 3.11 wheels of the runtime, fetched with this machine's pip (cached)."""
    reqs = wheel_requirements(pin=True)
    for attempt, pinned in enumerate((reqs, wheel_requirements(pin=False))):
        key = _digest([*pinned, *WHEEL_PLATFORMS, TARGET_PYTHON])
        dest = cache / "wheels" / key
        if (dest / ".complete").exists():
            log(f"  arm64 wheels: cached {dest}", quiet=quiet)
            return dest, pinned
        dest.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check",
               "--only-binary=:all:", "--python-version", TARGET_PYTHON, "-d", str(dest)]
        for plat in WHEEL_PLATFORMS:
            cmd += ["--platform", plat]
        log(f"  pip download (arm64, cp311): {' '.join(pinned)}", quiet=quiet)
        try:
            run(cmd + pinned, what="pip download of the arm64 wheels", timeout=1800)
        except VerifyError as e:
            if attempt == 0:
                log(f"  pinned versions unavailable for arm64 ({e}); trying the newest", quiet=quiet)
                continue
            raise
        (dest / ".complete").write_text("\n".join(pinned) + "\n")
        return dest, pinned
    raise VerifyError("pip download of the arm64 wheels failed")  # pragma: no cover


def _pip(venv: str) -> list[str]:
    """The root's pip (Debian's python3-pip) acting on ``venv``, offline."""
    return ["python3", "-m", "pip", "--python", f"{venv}/bin/python", "install", "-q", "--no-index"]


def _venv(root: Path, target: Target, wheels: Path, reqs: list[str], venv: str, quiet: bool) -> None:
    """The runtime's arm64 wheels in a venv of the root (once per wheel set)."""
    marker = root / venv.lstrip("/") / ".edgewise-complete"
    if marker.exists():
        log("  reusing it", quiet=quiet)
        return
    inroot_wheels = root / "opt" / "edgewise" / f"wheels-{wheels.name}"
    if inroot_wheels.exists():
        shutil.rmtree(inroot_wheels)
    shutil.copytree(wheels, inroot_wheels)
    shutil.rmtree(root / venv.lstrip("/"), ignore_errors=True)
    # The root's own pip installs into a pip-less venv, without byte-compiling: both are slow
    # under emulation, and modules compile on first import anyway.
    log("  python3 -m venv --without-pip (emulated)", quiet=quiet)
    chroot(root, target, ["python3", "-m", "venv", "--without-pip", venv],
           what="creating the venv in the root")
    log(f"  pip install --no-index {' '.join(reqs)} (emulated, 1-2 minutes)", quiet=quiet)
    chroot(root, target, [*_pip(venv), "--no-compile", "--find-links", f"/opt/edgewise/wheels-{wheels.name}",
                          *reqs], what="installing the arm64 wheels in the root")
    marker.write_text("\n".join(reqs) + "\n")


def _edgewise(root: Path, target: Target, venv: str, quiet: bool) -> None:
    """This edgewise (``wheel.build_wheel``) in the root's venv, rebuilt only when it changed."""
    try:
        digest = source_digest()
    except WheelError as e:
        raise VerifyError(str(e)) from None
    mark = root / venv.lstrip("/") / ".edgewise-source"
    if mark.exists() and mark.read_text().strip() == digest:
        log(f"  unchanged source ({digest}): already installed", quiet=quiet)
        return
    dest = root / "opt" / "edgewise" / "dist"
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    try:
        whl = build_wheel(dest)
    except WheelError as e:
        raise VerifyError(str(e)) from None
    log(f"  built {whl.name}; installing it with --no-index (emulated)", quiet=quiet)
    chroot(root, target, [*_pip(venv), "--force-reinstall", "--no-deps", f"/opt/edgewise/dist/{whl.name}"],
           what="installing the edgewise wheel in the root")
    chroot(root, target, [f"{venv}/bin/python", "-m", "edgewise.edge.cli", "--version"],
           what="importing edgewise in the root")
    mark.write_text(digest + "\n")


def prepare_root(cache: Path, target: Target, *, mirror: str, stage: Stage, quiet: bool) -> dict[str, Any]:
    """Build or reuse the root, its Python environment and the current edgewise install."""
    root = root_dir(cache)
    check_environment(need_debootstrap=not root.is_dir())
    interp, preloaded = ensure_binfmt()
    with stage("root", f"emulated arm64 Debian {SUITE} root in {cache}"):
        if root.is_dir():
            log(f"  reusing {root}", quiet=quiet)
        else:
            _debootstrap(root, mirror, quiet)
        if not preloaded and interp:  # without binfmt's F flag the emulator must be in the root
            dst = root / interp.lstrip("/")
            if not dst.exists():
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(interp, dst)
        chroot(root, target, ["/bin/true"], what=f"running an arm64 binary ({target.qemu_cpu})", timeout=120)
    with stage("wheels", "arm64 wheels of the runtime (fetched on this machine)"):
        wheels, reqs = _download_wheels(cache, quiet)
    venv = f"/opt/edgewise/venv-{wheels.name}"
    with stage("venv", f"Python environment in the root ({venv})"):
        _venv(root, target, wheels, reqs, venv, quiet)
    with stage("edgewise", "the local edgewise wheel in the root"):
        _edgewise(root, target, venv, quiet)
    return {"root": root, "python": f"{venv}/bin/python", "requirements": reqs}
