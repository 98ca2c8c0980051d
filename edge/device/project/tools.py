"""The tools a projection needs on this machine: QEMU's dynamic ``qemu-aarch64``, the block-count
plugin built from QEMU's own plugin header, and LLVM's ``llvm-mc`` / ``llvm-mca``.

The plugin is compiled once per installed QEMU into a cache folder (never into the checkout):
its header ``qemu-plugin.h`` comes from QEMU's Debian source package, fetched with
``apt-get source`` under a private apt configuration (its own source list, package lists and
archive folder), so the machine's apt setup is never touched. Only Debian's dynamically
linked ``qemu-aarch64`` (package ``qemu-user``) loads plugins; the static build refuses
``-plugin``. Anything missing is one ``ProjectUnavailable`` line naming the apt packages.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ...progress import log
from ..emulator import EnvironmentProblem

__all__ = ["APT_PACKAGES", "ProjectUnavailable", "Tools", "find_tools", "build_plugin", "install_host_tools",
           "cache_home"]

APT_PACKAGES = ("qemu-user", "llvm-16", "gcc", "libc6-dev", "libglib2.0-dev", "pkg-config")
QEMU = "/usr/bin/qemu-aarch64"  # Debian's dynamic build (qemu-user); qemu-aarch64-static refuses -plugin
LLVM_VERSIONS = (19, 18, 17, 16)  # llvm-mca 16 is the first with a Neoverse N2 scheduling model
PLUGIN_SOURCE = "blockcount.c"


class ProjectUnavailable(EnvironmentProblem):
    """This machine cannot project (a tool is missing or cannot be built): exit 3, one line."""


@dataclass(frozen=True)
class Tools:
    """Host paths of everything a projection runs."""

    qemu: Path
    qemu_version: str
    plugin: Path
    llvm_mc: Path
    llvm_mca: Path
    llvm_version: int | None


def cache_home() -> Path:
    """``$XDG_CACHE_HOME/edgewise`` (default ``~/.cache/edgewise``): plugin builds, calibrations."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "edgewise"


def _install_hint() -> str:
    return f"apt-get install --no-install-recommends {' '.join(APT_PACKAGES)} (or run .ci/system-deps)"


def _llvm() -> tuple[Path, Path, int | None]:
    for v in LLVM_VERSIONS:
        mc, mca = shutil.which(f"llvm-mc-{v}"), shutil.which(f"llvm-mca-{v}")
        if mc and mca:
            return Path(mc), Path(mca), v
    mc, mca = shutil.which("llvm-mc"), shutil.which("llvm-mca")
    if mc and mca:
        out = subprocess.run([mca, "--version"], capture_output=True, text=True).stdout
        m = re.search(r"LLVM version (\d+)", out)
        version = int(m.group(1)) if m else None
        if version is not None and version >= min(LLVM_VERSIONS):
            return Path(mc), Path(mca), version
    raise ProjectUnavailable(
        f"llvm-mca {min(LLVM_VERSIONS)} or newer not found (it prices each hot block in cycles); "
        f"install: {_install_hint()}"
    )


def _qemu_version(qemu: Path) -> str:
    out = subprocess.run([str(qemu), "--version"], capture_output=True, text=True).stdout
    m = re.search(r"version (\S+)", out)
    return m.group(1) if m else "unknown"


def _source_package() -> tuple[str, str]:
    """QEMU's Debian source package name and version, as installed (``qemu``, ``1:7.2+dfsg-7``)."""
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f=${source:Package} ${source:Version}", "qemu-user"],
                             capture_output=True, text=True, check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        raise ProjectUnavailable(f"qemu-user is not installed (dpkg-query); install: {_install_hint()}") \
            from None
    return out[0], out[1]


def _codename() -> str:
    try:
        text = Path("/etc/os-release").read_text()
    except OSError:
        text = ""
    m = re.search(r"^VERSION_CODENAME=(\S+)", text, re.M)
    if not m:
        raise ProjectUnavailable("cannot tell this machine's Debian release (/etc/os-release) to fetch "
                                 "QEMU's source; set EDGEWISE_QEMU_PLUGIN_H to a qemu-plugin.h")
    return m.group(1).strip('"')


def _apt_source_header(dest: Path, mirror: str, quiet: bool) -> Path:
    """``qemu-plugin.h`` of the installed QEMU, from its Debian source package.

    ``apt-get source --download-only`` runs with a private source list (deb-src lines for this
    release, its updates and security suites), private lists and archive folders in ``dest``:
    the machine's own apt configuration is read for proxies only and never written.
    """
    header = dest / "qemu-plugin.h"
    if header.exists():
        return header
    if shutil.which("apt-get") is None:
        raise ProjectUnavailable("apt-get not found: cannot fetch QEMU's source for its plugin header; "
                                 "set EDGEWISE_QEMU_PLUGIN_H to a qemu-plugin.h of the installed QEMU")
    name, version = _source_package()
    code = _codename()
    apt = dest / "apt"
    for d in ("etc/parts", "lists/partial", "cache/archives/partial", "src"):
        (apt / d).mkdir(parents=True, exist_ok=True)
    security = mirror.rstrip("/").rsplit("/", 1)[0] + "/debian-security" if mirror.endswith("/debian") \
        else "http://deb.debian.org/debian-security"
    (apt / "etc/sources.list").write_text(
        f"deb-src {mirror} {code} main\n"
        f"deb-src {mirror} {code}-updates main\n"
        f"deb-src {security} {code}-security main\n"
    )
    opts = [f"-oDir::Etc::SourceList={apt}/etc/sources.list", f"-oDir::Etc::SourceParts={apt}/etc/parts",
            f"-oDir::State::Lists={apt}/lists", f"-oDir::Cache={apt}/cache", "-oDebug::NoLocking=1"]
    if os.geteuid() == 0:
        opts.append("-oAPT::Sandbox::User=root")  # the private folders belong to root
    log(f"  fetching QEMU's source ({name} {version}) for its plugin header (private apt lists)", quiet=quiet)

    def apt_get(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["apt-get", "-q", *opts, *args], capture_output=True, text=True,
                              cwd=apt / "src", timeout=900)

    p = apt_get("update")
    if p.returncode != 0:
        raise ProjectUnavailable(f"apt-get update (private deb-src list) failed: {_last(p)}")
    p = apt_get("source", "--download-only", f"{name}={version}")
    if p.returncode != 0:  # the exact version left the mirror: the newest has the same plugin API
        p = apt_get("source", "--download-only", name)
    if p.returncode != 0:
        raise ProjectUnavailable(f"apt-get source {name} failed: {_last(p)}")
    tarballs = sorted((apt / "src").glob(f"{name}_*.orig.tar.*"))
    if not tarballs:
        raise ProjectUnavailable(f"apt-get source {name} left no .orig tarball in {apt / 'src'}")
    with tarfile.open(tarballs[-1]) as tar:
        member = next((m for m in tar if m.name.endswith("include/qemu/qemu-plugin.h")), None)
        if member is None:
            raise ProjectUnavailable(f"{tarballs[-1].name} has no include/qemu/qemu-plugin.h")
        f = tar.extractfile(member)
        assert f is not None
        header.write_bytes(f.read())
    shutil.rmtree(apt / "src", ignore_errors=True)  # 20+ MB of source: only the header is kept
    return header


def _last(p: subprocess.CompletedProcess[str]) -> str:
    lines = [ln for ln in (p.stderr + p.stdout).splitlines() if ln.strip()]
    return lines[-1] if lines else f"exit {p.returncode}"


def build_plugin(cache: Path, mirror: str, quiet: bool, build: bool = True) -> Path:
    """The block-count plugin for the installed QEMU, compiled once into ``cache``.

    ``build=False`` only looks for an earlier build (tests: the plugin's header is fetched with
    ``apt-get source`` at setup, ``edgewise project --prepare``, never while testing).
    """
    src = resources.files(__package__).joinpath(PLUGIN_SOURCE).read_bytes()
    _, version = _source_package()
    key = hashlib.sha256(src + version.encode()).hexdigest()[:12]
    out = cache / "qemu-plugin" / key
    so = out / "blockcount.so"
    if so.exists():
        return so
    if not build:
        raise ProjectUnavailable(f"the QEMU plugin is not built in {cache} (edgewise project --prepare)")
    for tool in ("gcc", "pkg-config"):
        if shutil.which(tool) is None:
            raise ProjectUnavailable(f"{tool} not found (the QEMU plugin is compiled here); install: "
                                     f"{_install_hint()}")
    glib = subprocess.run(["pkg-config", "--cflags", "--libs", "glib-2.0"], capture_output=True, text=True)
    if glib.returncode != 0:
        raise ProjectUnavailable(f"glib-2.0 headers not found (pkg-config); install: {_install_hint()}")
    out.mkdir(parents=True, exist_ok=True)
    given = os.environ.get("EDGEWISE_QEMU_PLUGIN_H")
    header = (Path(given) if given
              else _apt_source_header(cache / "qemu-plugin" / f"src-{version}", mirror, quiet))
    (out / PLUGIN_SOURCE).write_bytes(src)
    partial = out / "blockcount.so.partial"
    cmd = ["gcc", "-shared", "-fPIC", "-O2", "-Wall", f"-I{header.parent}", str(out / PLUGIN_SOURCE),
           "-o", str(partial), *glib.stdout.split()]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise ProjectUnavailable(f"compiling the QEMU plugin failed: {_last(p)}")
    partial.rename(so)
    log(f"  built the QEMU block-count plugin: {so}", quiet=quiet)
    return so


def find_tools(cache: Path, mirror: str, quiet: bool, build: bool = True) -> Tools:
    """Every host tool, the plugin built if needed (``build``); ``ProjectUnavailable`` names what is
    missing."""
    qemu = Path(QEMU)
    if not qemu.exists():
        raise ProjectUnavailable(
            f"{QEMU} not found: Debian's dynamically linked QEMU (package qemu-user) loads TCG plugins, "
            f"the static one refuses -plugin; install: {_install_hint()}"
        )
    mc, mca, v = _llvm()
    plugin = build_plugin(cache, mirror, quiet, build)
    return Tools(qemu=qemu, qemu_version=_qemu_version(qemu), plugin=plugin, llvm_mc=mc, llvm_mca=mca,
                 llvm_version=v)


def _libraries(*binaries: Path) -> list[Path]:
    """The shared libraries (and the loader) the host binaries link, from ``ldd``."""
    libs: set[Path] = set()
    for b in binaries:
        out = subprocess.run(["ldd", str(b)], capture_output=True, text=True).stdout
        for line in out.splitlines():
            parts = line.split()
            if "=>" in parts and len(parts) >= 3 and parts[2].startswith("/"):
                libs.add(Path(parts[2]))
            elif parts and parts[0].startswith("/"):
                libs.add(Path(parts[0]))
    return sorted(libs)


def install_host_tools(root: Path, tools: Tools) -> tuple[str, list[str]]:
    """Copy the x86 QEMU, the plugin and their libraries into the root (once per build).

    The emulated root's commands run chrooted; the plugin-loading QEMU must start inside the
    same chroot, where the root's arm64 files are at their usual paths. It is started through
    its own x86 loader with ``--library-path``, so nothing x86 shadows the root's own files.
    Returns the in-root folder and the command prefix that runs the emulator.
    """
    digest = hashlib.sha256(tools.qemu.read_bytes() + tools.plugin.read_bytes()).hexdigest()[:12]
    inroot = f"/opt/edgewise/hosttools-{digest}"
    dest = root / inroot.lstrip("/")
    libs = _libraries(tools.qemu, tools.plugin)
    loader = next((lib for lib in libs if lib.name.startswith("ld-linux")), None)
    if loader is None:
        raise ProjectUnavailable(f"ldd names no loader for {tools.qemu}")
    if not (dest / ".complete").exists():
        shutil.rmtree(dest, ignore_errors=True)
        (dest / "lib").mkdir(parents=True)
        shutil.copy2(tools.qemu, dest / "qemu-aarch64")
        shutil.copy2(tools.plugin, dest / "blockcount.so")
        for lib in libs:
            shutil.copy2(lib, dest / "lib" / lib.name)  # follows symlinks: the real file
        (dest / ".complete").write_text(tools.qemu_version + "\n")
    prefix = [f"{inroot}/lib/{loader.name}", "--library-path", f"{inroot}/lib", f"{inroot}/qemu-aarch64"]
    return inroot, prefix
