"""Error lines a months-long loop can afford: each distinct error once, repeats summed up.

A corrupt folder replayed with ``--loop``, or a model failing on every frame, would otherwise
write a line per frame (100,000 lines in half a minute) and wear out an SD card while hiding
the one line that says what is wrong. ``ErrorLog`` logs the first occurrence of each distinct
error (its key) in full, at most ``burst`` new ones per ``interval``; everything else is
counted and reported as one "repeated" line per interval, and once more at the end of the run.

>>> import logging
>>> elog = ErrorLog(logging.getLogger("doc"), interval=10.0)
>>> elog.report("decode", ("decode", "bad.png"), "decode error: bad.png skipped: corrupt")  # logged
True
>>> elog.report("decode", ("decode", "bad.png"), "decode error: bad.png skipped: corrupt")  # counted
False
"""

from __future__ import annotations

import logging
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Hashable

__all__ = ["ErrorLog"]


class ErrorLog:
    """Rate-limited error lines: first occurrence per key, then one summary per interval.

    Lines written per ``interval`` are at most ``burst`` + 1, whatever the error rate. The
    keys remembered are bounded too (``memory``, least recently seen forgotten first).
    """

    def __init__(self, logger: logging.Logger, *, interval: float = 10.0, burst: int = 10,
                 memory: int = 1024, clock: Callable[[], float] = time.monotonic) -> None:
        self.log, self.interval, self.burst, self.memory = logger, float(interval), int(burst), int(memory)
        self._clock = clock
        self._seen: OrderedDict[Hashable, None] = OrderedDict()
        self._t0 = clock()
        self._shown = 0
        self._held: Counter[str] = Counter()
        self._last = ""
        self.lines = 0  # lines written (tests and the summary can check the budget)

    def report(self, kind: str, key: Hashable, message: str, *, exc: BaseException | None = None) -> bool:
        """Log ``message`` if ``key`` is new and the interval's budget allows; else count it.

        Returns whether a line was written. ``exc``: its traceback goes to the debug log with
        the first line (``-v``), for a bug report.
        """
        self.tick()
        fresh = key not in self._seen
        self._seen[key] = None
        self._seen.move_to_end(key)
        while len(self._seen) > self.memory:
            self._seen.popitem(last=False)
        if fresh and self._shown < self.burst:
            self._shown += 1
            self.lines += 1
            self.log.error("%s", message)
            if exc is not None:
                self.log.debug("traceback of the error above", exc_info=exc)
            return True
        self._held[kind] += 1
        self._last = message
        return False

    def tick(self) -> None:
        """Write the interval's summary once ``interval`` seconds have passed (cheap to call often)."""
        if self._clock() - self._t0 >= self.interval:
            self.flush()

    def flush(self) -> None:
        """Write the summary of the errors held back since the last one (if any), start a new interval."""
        now = self._clock()
        held = sum(self._held.values())
        if held:
            kinds = ", ".join(f"{k} {n}" for k, n in self._held.most_common())
            self.log.error("errors repeated %d times in the last %.0f s (%s); last: %s",
                           held, now - self._t0, kinds, self._last)
            self.lines += 1
        self._held.clear()
        self._shown = 0
        self._t0 = now
