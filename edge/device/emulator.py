"""A Raspberry Pi CPU on this machine: QEMU user-mode emulation of an arm64 root.

QEMU runs the root's arm64 binaries with the Pi's CPU model (``QEMU_CPU=cortex-a72`` for a Pi
4, ``cortex-a76`` for a Pi 5); the root sees the Pi's ``/proc/cpuinfo`` and a read-only
``/sys``, mounted in a private namespace so nothing stays mounted on this machine. Needs root,
``qemu-user-static`` and ``binfmt-support``; ``check_environment`` names what is missing in
one line (``EnvironmentProblem``: ``edgewise verify`` exits 3).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..progress import log

__all__ = [
    "APT_PACKAGES", "TARGETS", "Target", "EnvironmentProblem", "VerifyError", "cpuinfo_text",
    "possible_cpus", "check_environment", "run", "ensure_binfmt", "cache_lock", "chroot",
    "mounts_below", "umount_below",
]

APT_PACKAGES = ("qemu-user-static", "binfmt-support", "debootstrap")
CHROOT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class Target:
    """A Raspberry Pi model: the QEMU CPU that emulates its cores and its ``/proc/cpuinfo``."""

    name: str
    qemu_cpu: str
    model: str
    part: str
    variant: str
    revision: str
    board_revision: str
    features: str


TARGETS: dict[str, Target] = {
    "pi4": Target(
        "pi4", "cortex-a72", "Raspberry Pi 4 Model B Rev 1.4", "0xd08", "0x0", "3", "c03114",
        "fp asimd evtstrm crc32 cpuid",
    ),
    "pi5": Target(
        "pi5", "cortex-a76", "Raspberry Pi 5 Model B Rev 1.0", "0xd0b", "0x4", "1", "d04170",
        "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc "
        "dcpop asimddp",
    ),
}


class EnvironmentProblem(RuntimeError):
    """This machine cannot emulate a Pi (not root, tools missing, binfmt off): exit code 3."""


class VerifyError(RuntimeError):
    """Verification could not run (bundle, wheel build, install or in-root failure): exit 2."""


def cpuinfo_text(target: Target, cores: int = 4) -> str:
    """The ``/proc/cpuinfo`` of a 64-bit Raspberry Pi OS on ``target``.

    LiteRT reads ``/proc/cpuinfo`` when it creates an interpreter and segfaults on the
    workstation's x86 text, so the emulated root sees the Pi's text instead (bind mount).
    """
    block = (
        "processor\t: {i}\n"
        "BogoMIPS\t: 108.00\n"
        f"Features\t: {target.features}\n"
        "CPU implementer\t: 0x41\n"
        "CPU architecture: 8\n"
        f"CPU variant\t: {target.variant}\n"
        f"CPU part\t: {target.part}\n"
        f"CPU revision\t: {target.revision}\n"
    )
    body = "\n".join(block.format(i=i) for i in range(cores))
    return (
        f"{body}\n"
        "Hardware\t: BCM2835\n"
        f"Revision\t: {target.board_revision}\n"
        "Serial\t\t: 0000000000000000\n"
        f"Model\t\t: {target.model}\n"
    )


def possible_cpus(text: str) -> int:
    """Number of CPUs in a ``/sys/devices/system/cpu/possible`` list such as ``0-3`` or ``0,2-5``.

    The emulated Pi runs on this machine's cores, so its ``/proc/cpuinfo`` lists as many
    processors as ``/sys`` says exist: LiteRT's cpuinfo reads both and they must agree.
    """
    n = 0
    for part in text.strip().split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        n += int(hi or lo) - int(lo) + 1
    if n < 1:
        raise ValueError(f"not a CPU list: {text!r}")
    return n


def host_cpus() -> int:
    try:
        return possible_cpus(Path("/sys/devices/system/cpu/possible").read_text())
    except (OSError, ValueError):
        return os.cpu_count() or 1


def check_environment(need_debootstrap: bool) -> None:
    """Raise ``EnvironmentProblem`` with one line naming what to do, before touching anything."""
    install = f"apt-get install {' '.join(APT_PACKAGES)}"
    if os.geteuid() != 0:
        raise EnvironmentProblem(
            "needs root to build and enter the emulated root (debootstrap, mount, chroot): "
            "run it as root, e.g. sudo edgewise verify ..."
        )
    missing = [c for c in ("chroot", "unshare", "mount") if shutil.which(c) is None]
    if missing:
        raise EnvironmentProblem(f"{', '.join(missing)} not found; install util-linux and coreutils")
    if shutil.which("qemu-aarch64-static") is None and shutil.which("qemu-aarch64") is None:
        raise EnvironmentProblem(f"qemu-aarch64-static not found (QEMU user emulation); install: {install}")
    if shutil.which("update-binfmts") is None:
        raise EnvironmentProblem(f"update-binfmts not found (binfmt-support); install: {install}")
    if need_debootstrap and shutil.which("debootstrap") is None:
        raise EnvironmentProblem(
            f"debootstrap not found (needed once to build the arm64 root); install: {install}"
        )


def run(cmd: list[str], *, what: str, env: dict[str, str] | None = None, timeout: float = 3600,
        problem: type[RuntimeError] = VerifyError) -> str:
    """Run a command; on failure raise ``problem`` with its last output line."""
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise problem(f"{what}: timed out after {timeout:.0f}s") from None
    except OSError as e:
        raise problem(f"{what}: {e}") from None
    if p.returncode != 0:
        lines = [ln for ln in (p.stderr + p.stdout).strip().splitlines() if ln.strip()]
        raise problem(f"{what} failed (exit {p.returncode}): {lines[-1] if lines else 'no output'}")
    return p.stdout


def ensure_binfmt() -> tuple[str, bool]:
    """Make arm64 binaries run here; returns (interpreter path, whether it is preloaded)."""
    d = Path("/proc/sys/fs/binfmt_misc")
    if not (d / "status").exists():
        run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(d)],
            what="mounting binfmt_misc", problem=EnvironmentProblem)
    entry = d / "qemu-aarch64"
    if not entry.exists() or "enabled" not in entry.read_text():
        run(["update-binfmts", "--enable", "qemu-aarch64"],
            what="update-binfmts --enable qemu-aarch64", problem=EnvironmentProblem)
    if not entry.exists() or not entry.read_text().startswith("enabled"):
        raise EnvironmentProblem(
            "binfmt_misc has no enabled qemu-aarch64 entry: arm64 binaries cannot run here "
            f"(install {' '.join(APT_PACKAGES)}; in a container the host must register it)"
        )
    interp, flags = "", ""
    for line in entry.read_text().splitlines():
        if line.startswith("interpreter "):
            interp = line.split(" ", 1)[1]
        elif line.startswith("flags:"):
            flags = line.split(":", 1)[1].strip()
    return interp, "F" in flags


@contextlib.contextmanager
def cache_lock(cache: Path, quiet: bool) -> Iterator[None]:
    """One verify at a time per cache: they share the root's Python environment."""
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"waiting for another edgewise verify using {cache} ...", quiet=quiet)
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def mounts_below(path: Path) -> list[str]:
    """Mount points below ``path`` in this machine's mount table (none after a verify)."""
    mounts = [ln.split()[1] for ln in Path("/proc/mounts").read_text().splitlines()]
    return [m for m in mounts if m.startswith(str(path).rstrip("/") + "/")]


def umount_below(path: Path) -> None:
    """Unmount anything left mounted below ``path`` (only possible after a hard kill)."""
    for m in sorted(mounts_below(path), reverse=True):
        subprocess.run(["umount", "-l", m], check=False)


def chroot(root: Path, target: Target, cmd: list[str], *, what: str, timeout: float = 3600,
           extra_env: dict[str, str] | None = None) -> str:
    """Run ``cmd`` in the root under emulation of ``target``'s CPU.

    What LiteRT and ONNX Runtime probe is mounted as on a Pi: /proc (with the Pi's cpuinfo
    bound over /proc/cpuinfo), /sys read-only (cpuinfo's CPU topology: without it LiteRT
    creates no XNNPACK delegate and runs its reference kernels) and /dev with /dev/shm. They
    live in a private mount namespace, so they disappear with the process even if it is
    killed: nothing is ever mounted on this machine (``mounts_below`` checks it).
    """
    cpuinfo = root.parent / f"cpuinfo-{target.name}.txt"
    text = cpuinfo_text(target, cores=host_cpus())
    if not cpuinfo.exists() or cpuinfo.read_text() != text:
        cpuinfo.write_text(text)
    script = (
        'r="$1"; c="$2"; shift 2; '
        'mount -t proc proc "$r/proc" && mount --bind "$c" "$r/proc/cpuinfo" && '
        'mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$r/sys" && '
        'mount --rbind /dev "$r/dev" && exec chroot "$r" "$@"'
    )
    env = {
        "PATH": CHROOT_PATH, "HOME": "/root", "LANG": "C.UTF-8", "QEMU_CPU": target.qemu_cpu,
        "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PYTHONUNBUFFERED": "1", **(extra_env or {}),
    }
    full = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh",
            str(root), str(cpuinfo), *cmd]
    return run(full, what=what, env=env, timeout=timeout)
