"""A tiny progress bar for long work (epochs, calibration, benchmark iterations).

No dependency, so it also runs on the device. Writes to stderr, redraws in place on a
terminal and prints a few plain lines otherwise (CI logs stay short); ``quiet`` silences it.

>>> for _ in progress(range(3), desc="demo", quiet=True): pass
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
__all__ = ["progress", "log"]

QUIET = False


def log(msg: str, *, quiet: bool | None = None) -> None:
    """One status line on stderr unless quiet."""
    if not (QUIET if quiet is None else quiet):
        print(msg, file=sys.stderr, flush=True)


def progress(
    items: Iterable[T], *, total: int | None = None, desc: str = "", quiet: bool | None = None
) -> Iterator[T]:
    quiet = QUIET if quiet is None else quiet
    if total is None:
        try:
            total = len(items)  # type: ignore[arg-type]
        except TypeError:
            total = None
    if quiet:
        yield from items
        return
    tty = sys.stderr.isatty()
    t0 = time.monotonic()
    last = -1.0 if tty else t0
    n = 0
    for n, item in enumerate(items, 1):
        yield item
        now = time.monotonic()
        if tty and now - last < 0.1 and n != total:
            continue
        if not tty and now - last < 10 and n != total:
            continue
        last = now
        width = 30
        if total:
            filled = int(width * n / total)
            bar = "#" * filled + "." * (width - filled)
            line = f"{desc} [{bar}] {n}/{total} {now - t0:.1f}s"
        else:
            line = f"{desc} {n} {now - t0:.1f}s"
        print(("\r" + line) if tty else line, end="" if tty else "\n", file=sys.stderr, flush=True)
    if tty and n:
        print(file=sys.stderr, flush=True)
