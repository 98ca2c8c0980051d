"""What the terminal shows: progress bars, status lines, and the libraries' chatter kept out of it.

By default a command shows progress and results; ``-v`` (``set_verbosity(verbose=True)``, or
``EDGEWISE_VERBOSE=1`` in the environment) shows everything the libraries underneath print,
and ``-q`` only results. Progress uses tqdm (installed with LiteRT) on a terminal and a few
plain lines otherwise, so CI logs stay short and a device without tqdm still works.

Native libraries (TensorFlow's CUDA probe, LiteRT's "Created TensorFlow Lite XNNPACK
delegate", the TFLite converter) write straight to file descriptor 2, which no Python setting
reaches: ``native_stderr`` captures that descriptor around the calls that print and re-emits
every line that is not known chatter, so real errors stay visible.

>>> for _ in progress(range(3), desc="demo", quiet=True): pass
>>> is_noise("INFO: Created TensorFlow Lite XNNPACK delegate for CPU.")
True
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")
__all__ = ["progress", "Bar", "log", "debug", "set_verbosity", "is_noise", "native_stderr", "quiet_loggers",
           "NOISY_LOGGERS"]

QUIET = False


def _env_verbose() -> bool:
    return os.environ.get("EDGEWISE_VERBOSE", "") not in ("", "0")


VERBOSE = _env_verbose()

# Python loggers of libraries that report their routine work at INFO (tf2onnx's graph
# optimiser, TensorFlow's "Assets written to: /tmp/...", matplotlib's font cache).
NOISY_LOGGERS = ("tensorflow", "tf2onnx", "absl", "matplotlib", "h5py", "PIL", "onnx", "onnxruntime")

# Lines written by native code that say nothing to a user: glog/absl INFO and WARNING lines
# (I0000 ..., W0000 ...), the absl preamble, TFLite's own INFO lines, the CUDA probe of a
# CPU-only TensorFlow (its failures are logged as E lines), the converter's debug print.
_NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called"
    r"|[IW]\d{4} [\d:.]+ +\d+ [\w.]+:\d+\]"
    r"|INFO: "
    r"|E\d{4} [\d:.]+ +\d+ cuda_\w+\.cc:\d+\]"
    r"|To enable the following instructions: .*rebuild TensorFlow"
    r"|fully_quantize: \d+, inference_type: )"
)
_capture_lock = threading.RLock()


def set_verbosity(*, quiet: bool = False, verbose: bool = False) -> None:
    """Set what the terminal shows for this process (``-q`` / ``-v`` of the command line)."""
    global QUIET, VERBOSE
    QUIET, VERBOSE = bool(quiet), bool(verbose) or _env_verbose()
    quiet_loggers()


def quiet_loggers(names: Iterable[str] = NOISY_LOGGERS) -> None:
    """Keep libraries' INFO chatter out of the terminal unless verbose (WARNING and up stay)."""
    for name in names:
        logging.getLogger(name).setLevel(logging.NOTSET if VERBOSE else logging.WARNING)


def log(msg: str, *, quiet: bool | None = None) -> None:
    """One status line on stderr unless quiet."""
    if not (QUIET if quiet is None else quiet):
        _write_line(msg)


def debug(msg: str) -> None:
    """A status line shown only with ``-v`` (per-epoch figures, per-step detail)."""
    if VERBOSE and not QUIET:
        _write_line(msg)


def _write_line(msg: str) -> None:
    tq = _tqdm()
    if tq is not None and sys.stderr.isatty():
        tq.write(msg, file=sys.stderr)  # above any bar being drawn, not through it
    else:
        print(msg, file=sys.stderr, flush=True)


def _tqdm() -> Any:
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e4 else f"{v:.0f}"
    return str(v)


class Bar:
    """A progress bar over ``total`` steps with figures (``update(loss=...)``) shown beside it.

    tqdm on a terminal; otherwise a plain line at most every ``every`` seconds and at the end.
    With ``verbose_lines`` every step is also printed as its own line under ``-v`` (epochs).
    """

    def __init__(self, total: int | None, desc: str = "", *, quiet: bool | None = None, every: float = 10.0,
                 verbose_lines: bool = False) -> None:
        self.total, self.desc, self.every = total, desc, every
        self.quiet = QUIET if quiet is None else quiet
        self.verbose_lines = verbose_lines and VERBOSE
        self.n, self.t0, self.last = 0, time.monotonic(), time.monotonic()
        self.figures: dict[str, Any] = {}
        tq = _tqdm()
        self._tq = None
        if not self.quiet and tq is not None and sys.stderr.isatty():
            self._tq = tq(total=total, desc=desc, file=sys.stderr, dynamic_ncols=True, leave=True,
                          mininterval=0.1)

    def update(self, n: int = 1, **figures: Any) -> None:
        self.n += n
        self.figures.update(figures)
        if self.quiet:
            return
        shown = " ".join(f"{k}={_fmt(v)}" for k, v in self.figures.items())
        if self._tq is not None:
            if figures:
                self._tq.set_postfix_str(shown, refresh=False)
            self._tq.update(n)
            if self.verbose_lines:
                self._tq.write(f"{self.desc} {self.n}/{self.total} {shown}", file=sys.stderr)
            return
        now = time.monotonic()
        if self.verbose_lines or now - self.last >= self.every or self.n == self.total:
            self.last = now
            of = f"/{self.total}" if self.total else ""
            line = f"{self.desc} {self.n}{of} {now - self.t0:.1f}s {shown}".rstrip()
            print(line, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._tq is not None:
            self._tq.close()
            self._tq = None

    def __enter__(self) -> Bar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def progress(
    items: Iterable[T], *, total: int | None = None, desc: str = "", quiet: bool | None = None
) -> Iterator[T]:
    """Yield ``items`` while drawing a bar (see ``Bar``)."""
    quiet = QUIET if quiet is None else quiet
    if quiet:
        yield from items
        return
    if total is None:
        try:
            total = len(items)  # type: ignore[arg-type]
        except TypeError:
            total = None
    with Bar(total, desc, quiet=quiet) as bar:
        for item in items:
            yield item
            bar.update()


def is_noise(line: str) -> bool:
    """True for a native library's routine line (INFO/WARNING logs, CUDA probe, converter debug)."""
    return bool(_NOISE.match(line))


@contextlib.contextmanager
def native_stderr(keep_noise: bool | None = None) -> Iterator[list[str]]:
    """Capture what native code writes to fd 2 here; re-emit it without the known chatter.

    Yields a list that receives every captured line (chatter included) when the block ends, so
    a caller can keep what it needs (e.g. whether LiteRT created its XNNPACK delegate). With
    ``-v`` (``keep_noise``) every line is re-emitted.
    """
    lines: list[str] = []
    if keep_noise is None:
        keep_noise = VERBOSE
    with _capture_lock:
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError):  # no fd 2 (closed, or a replaced sys.stderr): nothing to filter
            yield lines
            return
        with tempfile.TemporaryFile() as tmp:
            os.dup2(tmp.fileno(), 2)
            try:
                yield lines
            finally:
                with contextlib.suppress(OSError, ValueError):
                    sys.stderr.flush()
                os.dup2(saved, 2)
                os.close(saved)
                tmp.seek(0)
                lines += tmp.read().decode("utf-8", "replace").splitlines()
                kept = [ln for ln in lines if ln.strip() and (keep_noise or not is_noise(ln))]
                if kept:
                    print("\n".join(kept), file=sys.stderr, flush=True)
