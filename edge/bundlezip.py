"""Unpack a zipped bundle into a private temporary folder that does not outlive the process.

A zip is read from its central directory before one byte is written: too many members, a
total unpacked size over the limit, a member that is a symlink, is encrypted, repeats a name,
or whose path is absolute or climbs out with ``..`` are refused in one line. While unpacking,
every member is counted as it is written, so a directory that under-declares sizes (a
"zip bomb") stops at its declared size or the limit, whichever comes first.

The folder (``edgewise-bundle-<pid>-*``, mode 0700) is removed when the process exits: on a
normal exit and on an exception (``atexit``), on SIGTERM (a handler, installed only where no
other handler is, turns it into ``SystemExit`` in the main thread), and on
``Bundle.close()``. A process killed with SIGKILL cannot clean up; its folder is removed by
the next process that unpacks a bundle, once that pid is gone.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import signal
import stat
import tempfile
import threading
import zipfile
import zlib
from pathlib import Path

from .spec import BundleError

__all__ = ["ENV_MAX_UNPACKED_MB", "DEFAULT_MAX_UNPACKED_MB", "MAX_MEMBERS", "extract_zip", "remove_extracted",
           "unpack_limit_bytes", "use_unpack_limit"]

ENV_MAX_UNPACKED_MB = "EDGEWISE_MAX_UNPACKED_MB"
DEFAULT_MAX_UNPACKED_MB = 2048.0
MAX_MEMBERS = 10_000
# Models and arrays deflate by a few times at most; a zip that claims a hundred times its own size
# past a few MiB is a bomb, whatever the size limit allows.
MAX_RATIO = 100.0
RATIO_FROM_BYTES = 16 * 1024 * 1024
MB = 1 << 20
PREFIX = "edgewise-bundle-"
_STALE = re.compile(rf"^{re.escape(PREFIX)}(\d+)-")

_lock = threading.Lock()
_extracted: set[Path] = set()
_hooked = False
# Set once per command from ``--max-unpacked-mb`` (``use_unpack_limit``), so every loader the
# command reaches applies the same limit without the flag threaded through each call.
_process_limit_mb: float | None = None


def use_unpack_limit(max_unpacked_mb: float | None) -> None:
    """Make ``max_unpacked_mb`` the limit of every later ``load_bundle`` in this process (None: default)."""
    global _process_limit_mb
    _process_limit_mb = max_unpacked_mb


def unpack_limit_bytes(max_unpacked_mb: float | None = None) -> int:
    """The unpacked-size limit in bytes: the argument, else the command's ``--max-unpacked-mb``, else
    ``$EDGEWISE_MAX_UNPACKED_MB``, else 2048 MiB."""
    value: object = max_unpacked_mb if max_unpacked_mb is not None else _process_limit_mb
    source = "--max-unpacked-mb"
    if value is None:
        value, source = os.environ.get(ENV_MAX_UNPACKED_MB) or DEFAULT_MAX_UNPACKED_MB, ENV_MAX_UNPACKED_MB
    try:
        mb = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        mb = float("nan")
    if not mb > 0 or mb == float("inf"):
        raise BundleError(f"{source}={value!r}: the unpacked-size limit must be a positive number of MiB")
    return int(mb * MB)


def _member_problem(info: zipfile.ZipInfo) -> str | None:
    """Why a member may not be unpacked, or None."""
    name = info.filename
    if "\\" in name or "\x00" in name:
        return "has a backslash or NUL in its name"
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return "is an absolute path"
    if any(part in ("", ".", "..") for part in name.rstrip("/").split("/")):
        return "leaves the bundle (an empty, '.' or '..' part)"
    if stat.S_ISLNK(info.external_attr >> 16):
        return "is a symlink"
    if info.flag_bits & 0x1:
        return "is encrypted"
    return None


def extract_zip(path: Path, limit_bytes: int, max_members: int = MAX_MEMBERS) -> Path:
    """Unpack ``path`` into a new private folder and return the folder holding bundle.json."""
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as e:
        raise BundleError(f"{path}: not a valid zip file ({e})") from None
    with zf:
        infos = zf.infolist()
        if len(infos) > max_members:
            raise BundleError(f"{path}: {len(infos)} members, more than the {max_members} a bundle may have")
        seen: set[str] = set()
        for info in infos:
            problem = _member_problem(info)
            if problem:
                raise BundleError(f"{path}: zip member '{info.filename}' {problem}; refused")
            key = info.filename.rstrip("/")
            if key in seen:
                raise BundleError(f"{path}: zip member '{info.filename}' appears twice")
            seen.add(key)
        total = sum(i.file_size for i in infos)
        if total > limit_bytes:
            raise BundleError(f"{path}: unpacks to {total / MB:.1f} MiB, more than the limit of "
                              f"{limit_bytes / MB:g} MiB (--max-unpacked-mb or {ENV_MAX_UNPACKED_MB})")
        packed = max(1, sum(i.compress_size for i in infos))
        if total > RATIO_FROM_BYTES and total / packed > MAX_RATIO:
            raise BundleError(f"{path}: unpacks to {total / MB:.1f} MiB from {packed / MB:.2f} MiB "
                              f"(ratio {total / packed:.0f}:1, more than {MAX_RATIO:g}:1): "
                              "a zip bomb, refused")
        dest = _private_dir()
        try:
            _unpack(path, zf, infos, dest, limit_bytes)
        except BaseException:
            remove_extracted(dest)
            raise
    # Accept both a zip of the directory's contents and a zip of the directory itself.
    if not (dest / "bundle.json").exists():
        subdirs = [p for p in dest.iterdir() if p.is_dir()]
        if len(subdirs) == 1 and (subdirs[0] / "bundle.json").exists():
            return subdirs[0]
    return dest


def _unpack(path: Path, zf: zipfile.ZipFile, infos: list[zipfile.ZipInfo], dest: Path, limit: int) -> None:
    """Write every member, counting real bytes against its declared size and the limit."""
    root = dest.resolve()
    written = 0
    try:
        for info in infos:
            target = dest / info.filename
            if not target.resolve().is_relative_to(root):
                raise BundleError(f"{path}: zip member '{info.filename}' escapes the bundle")
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            left = info.file_size
            with zf.open(info) as src, open(target, "xb") as dst:
                while chunk := src.read(MB):
                    left -= len(chunk)
                    written += len(chunk)
                    if left < 0 or written > limit:
                        raise BundleError(f"{path}: zip member '{info.filename}' unpacks to more than its "
                                          f"declared {info.file_size} bytes; refused")
                    dst.write(chunk)
    except BundleError:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, RuntimeError, NotImplementedError, ValueError) as e:
        why = str(e).splitlines()[0] if str(e) else repr(e)
        raise BundleError(f"{path}: damaged zip member ({why})") from None
    except OSError as e:
        raise BundleError(f"{path}: cannot unpack into {dest} ({e.strerror or e})") from None


def _private_dir() -> Path:
    """A new 0700 folder in the temporary directory, registered for removal at exit."""
    global _hooked
    with _lock:
        if not _hooked:
            atexit.register(_remove_all)
            _on_sigterm_exit()
            _hooked = True
        _sweep_stale()
        d = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-"))
        os.chmod(d, 0o700)
        _extracted.add(d)
    return d


def remove_extracted(path: Path) -> None:
    """Remove a folder made by ``extract_zip`` (``path`` may be the bundle folder inside it)."""
    with _lock:
        top = next((d for d in _extracted if path == d or path.is_relative_to(d)), None)
        if top is None:
            return
        _extracted.discard(top)
    shutil.rmtree(top, ignore_errors=True)


def _remove_all() -> None:
    with _lock:
        dirs = list(_extracted)
        _extracted.clear()
    for d in dirs:
        shutil.rmtree(d, ignore_errors=True)


def _raise_exit(signum: int, _frame: object) -> None:
    """SIGTERM -> SystemExit in the main thread: ``finally`` blocks and ``atexit`` run."""
    raise SystemExit(128 + signum)


def _on_sigterm_exit() -> None:
    """Install ``_raise_exit`` for SIGTERM unless someone else handles it (a runner that stops
    its loop gracefully keeps its own handler, and its normal exit runs ``atexit`` anyway)."""
    if threading.current_thread() is not threading.main_thread():
        return
    try:
        if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
            signal.signal(signal.SIGTERM, _raise_exit)
    except (ValueError, OSError):  # not the main interpreter, or signals unavailable
        pass


def _sweep_stale() -> None:
    """Remove folders left by earlier processes of this user that were killed (SIGKILL, power
    loss before a reboot cleared /tmp): only ``edgewise-bundle-<pid>-*`` whose pid is gone."""
    tmp = Path(tempfile.gettempdir())
    try:
        candidates = list(tmp.glob(f"{PREFIX}*-*"))
    except OSError:
        return
    for d in candidates:
        m = _STALE.match(d.name)
        if not m or int(m.group(1)) == os.getpid() or _alive(int(m.group(1))):
            continue
        try:
            st = d.lstat()
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid():
            shutil.rmtree(d, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True
    return True
