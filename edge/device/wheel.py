"""The one edgewise wheel builder: what deploy ships, verify installs in the emulated root and
the tests install in fresh venvs.

From a checkout, the package folders and metadata files are copied to a temporary folder and
built there, so a build never writes ``build/`` into a working copy other people use and
never picks up stale files of an old ``build/lib``. A pip-installed edgewise has no source
tree, but its installed files are the wheel it came from: they are repacked (package files
byte for byte, the metadata, a fresh RECORD).

>>> build_wheel(Path("dist"))   # doctest: +SKIP
PosixPath('dist/edgewise-0.1.0-py3-none-any.whl')
"""

from __future__ import annotations

import base64
import hashlib
import logging
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

__all__ = ["WheelError", "build_wheel", "wheel_from_installed", "source_tree", "source_digest",
           "SOURCE_DIRS", "SOURCE_FILES"]

log = logging.getLogger("edgewise.deploy")

SOURCE_DIRS = ("edge", "train", "converters", "benchmarks")
SOURCE_FILES = ("setup.cfg", "pyproject.toml", "README.md", "LICENSE")
# dist-info files that describe one installation, not the package: never part of a wheel
_INSTALL_ONLY = {"INSTALLER", "REQUESTED", "RECORD", "direct_url.json"}
WHEEL_HOWTO = ("python -m pip wheel --no-deps -w dist . (in an edgewise checkout), "
               "then --wheel dist/edgewise-*.whl")
_THIS = "edgewise/edge/device/wheel.py"  # this module inside an installed edgewise


class WheelError(RuntimeError):
    """The wheel could not be built or repacked; the message says why in one line."""


def source_tree() -> Path | None:
    """The edgewise checkout this module runs from (setup.cfg beside edge/), or None."""
    src = Path(__file__).resolve().parents[2]
    return src if (src / "setup.cfg").is_file() and (src / "edge").is_dir() else None


def _source_files(src: Path) -> list[Path]:
    files = [src / f for f in SOURCE_FILES if (src / f).is_file()]
    for d in SOURCE_DIRS:
        if (src / d).is_dir():
            files += sorted(
                p for p in (src / d).rglob("*")
                if p.is_file() and p.suffix != ".pyc"
                and not any(part == "__pycache__" or part.endswith(".egg-info")
                            for part in p.relative_to(src).parts)
            )
    return files


def source_digest() -> str:
    """A hash of what ``build_wheel`` would package: the checkout's files, or the installed
    distribution's RECORD. Equal digests mean an installed copy needs no rebuild."""
    h = hashlib.sha256()
    src = source_tree()
    if src is not None:
        for p in _source_files(src):
            h.update(p.relative_to(src).as_posix().encode() + b"\0" + p.read_bytes() + b"\0")
    else:
        dist = _installed()
        for f in sorted(dist.files or [], key=str):
            if f.suffix != ".pyc" and "__pycache__" not in f.parts and f.parts[0] != "..":
                h.update(f.as_posix().encode() + b"\0" + Path(dist.locate_file(f)).read_bytes() + b"\0")
    return h.hexdigest()[:16]


def build_wheel(out_dir: Path, timeout: float = 900) -> Path:
    """The edgewise wheel in ``out_dir``: built from the checkout, or repacked when installed."""
    src = source_tree()
    if src is None:
        return wheel_from_installed(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="edgewise-wheel-") as tmp:
        copy = Path(tmp) / "src"
        for p in _source_files(src):
            dst = copy / p.relative_to(src)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(p, dst)
        if not (copy / "README.md").exists():
            (copy / "README.md").write_text("edgewise\n")
        cmd = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--disable-pip-version-check",
               "-w", str(out_dir)]
        try:
            import setuptools  # noqa: F401

            cmd.append("--no-build-isolation")  # offline: build with the setuptools already here
        except ImportError:
            pass
        try:
            r = subprocess.run([*cmd, str(copy)], capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise WheelError(f"building the edgewise wheel: timed out after {timeout:.0f}s") from None
        if r.returncode != 0:
            lines = [ln.strip() for ln in (r.stderr + r.stdout).splitlines() if ln.strip()]
            raise WheelError(f"building the edgewise wheel failed: {lines[-1] if lines else 'no output'}")
    wheels = sorted(out_dir.glob("edgewise-*.whl"))
    if not wheels:
        raise WheelError(f"building the edgewise wheel produced no edgewise-*.whl in {out_dir}")
    return wheels[-1]


def _installed_dist() -> Any:
    """The installed distribution this very module was loaded from (not any other copy on the path)."""
    from importlib import metadata

    here = Path(__file__).resolve()
    for dist in metadata.distributions(name="edgewise"):
        try:
            if Path(dist.locate_file(_THIS)).resolve() == here:
                return dist
        except OSError:
            continue
    return None


def _installed() -> Any:
    dist = _installed_dist()
    if dist is None:
        raise WheelError(f"edgewise runs from neither a source tree nor an installed wheel: {WHEEL_HOWTO}")
    return dist


def _b64(digest: bytes) -> str:
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def wheel_from_installed(out_dir: Path) -> Path:
    """Repack the installed edgewise (its files in site-packages and its dist-info) as a wheel.

    Files edited after installation (hash differs from the installed RECORD) are shipped as
    they are now, and named in a warning."""
    dist = _installed()
    files = [f for f in dist.files or [] if f.parts[0] != ".." and "__pycache__" not in f.parts]
    info = next((f.parts[0] for f in files if f.parts[0].endswith(".dist-info")), None)
    if info is None or not any(f.parts[0] == "edgewise" for f in files):
        raise WheelError(f"the installed edgewise lists no package files to repack: {WHEEL_HOWTO}")
    wheel_meta = dist.read_text("WHEEL") or ""
    tag = next((ln.split(":", 1)[1].strip() for ln in wheel_meta.splitlines() if ln.startswith("Tag:")),
               "py3-none-any")
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"edgewise-{dist.version}-{tag}.whl"
    record: list[str] = []
    changed: list[str] = []
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for f in sorted(files, key=str):
            name = str(f.as_posix())
            if f.suffix == ".pyc" or (f.parts[0] == info and f.name in _INSTALL_ONLY):
                continue
            data = Path(dist.locate_file(f)).read_bytes()
            digest = hashlib.sha256(data).digest()
            if f.hash is not None and f.hash.mode == "sha256" and f.hash.value != _b64(digest):
                changed.append(name)
            z.writestr(name, data)
            record.append(f"{name},sha256={_b64(digest)},{len(data)}")
        record.append(f"{info}/RECORD,,")
        z.writestr(f"{info}/RECORD", "\n".join(record) + "\n")
    if changed:
        log.warning("installed edgewise files edited since installation, shipped as they are now: %s",
                    ", ".join(changed[:5]))
    return path
