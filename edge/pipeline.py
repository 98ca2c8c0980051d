"""The one pipeline all applications run: source -> preprocess -> model -> postprocess -> sinks.

An application configures the three middle stages (``App``); sources and sinks are shared.
The runner times every stage per frame (capture, preprocess, inference, postprocess, sink,
end to end from the capture timestamp) in a bounded window, counts dropped frames, and never
dies of one frame: any exception from the source, a stage or a sink (``Exception``, not
``KeyboardInterrupt``/``SystemExit``) is counted by kind (``RunStats.errors_by_kind``), logged
once with the frame's origin (repeats are summed up, ``ErrorLog``) and the loop goes on. A
source reports a frame it could not deliver (a corrupt file, a failed read) by yielding a
``FrameError`` instead of raising, so it can go on too.

Two rules keep a broken setup from looking alive: when the first ``give_up_after`` frames all
fail the same way (same kind, exception type and message; e.g. a model whose input shape
does not match) the runner stops and ``RunStats.gave_up`` says why; and ``RunStats.failure``
is set when every frame failed. ``edgewise run`` then exits 1 with one line.

SIGINT/SIGTERM stop the loop within a second even when the source is blocked (a stdin with
nothing to read, a folder whose every file is corrupt): the handler interrupts the wait for
the next frame.

>>> runner = Runner(app, sinks=[JsonLinesSink("-")])     # doctest: +SKIP
>>> stats = runner.run(VideoSource("line.mp4"))           # doctest: +SKIP
>>> stats.summary()["end_to_end"]["p50_ms"]               # doctest: +SKIP
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from .errorlog import ErrorLog
from .event import Event
from .runstats import DEFAULT_STATS_WINDOW, STAGES, RunStats

__all__ = ["Frame", "FrameError", "Source", "App", "Sink", "Runner", "RunStats", "LatestFrame", "STAGES",
           "DEFAULT_GIVE_UP_AFTER"]

log = logging.getLogger("edgewise.pipeline")
# Identical failures at the start before the runner gives up: about 2 s of a 30 fps camera.
DEFAULT_GIVE_UP_AFTER = 50


@dataclass
class Frame:
    """One unit of input: an image or a signal window, stamped when it was captured."""

    data: np.ndarray
    t_capture: float  # time.monotonic() at capture
    index: int
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class FrameError:
    """What a source yields for a frame it could not deliver, so it can go on with the next one.

    ``kind``: ``decode`` (a corrupt or oversized image) or ``source`` (a failed read).
    ``origin``: which input (file name, stream position); ``reason``: one line without it;
    ``error``: the exception's type name (failures of the same type and reason are identical).
    """

    kind: str
    origin: str
    reason: str
    error: str = "ValueError"
    index: int = -1


class _Interrupted(BaseException):
    """Raised by the signal handler into a wait for the next frame (not an ``Exception``: a
    source's own ``except Exception`` must not swallow it)."""


class Source(Protocol):
    """Yields frames; opened and closed as a context manager.

    A frame it cannot deliver (corrupt file, failed read) is yielded as a ``FrameError`` and
    the source goes on; ``dropped`` counts frames it discarded because the consumer was slower.
    """

    name: str
    dropped: int

    def __enter__(self) -> Source: ...
    def __exit__(self, *exc: object) -> None: ...
    def __iter__(self) -> Iterator[Frame]: ...


class App(Protocol):
    """The three application stages. ``postprocess`` returns an ``Event``, or None for a
    frame that decides nothing worth recording (e.g. vibration windows between alarms)."""

    name: str

    def preprocess(self, frame: Frame) -> Any: ...
    def infer(self, x: Any) -> Any: ...
    def postprocess(self, frame: Frame, y: Any) -> Event | None: ...


class Sink(Protocol):
    """Where events go (JSON lines, SQLite, MQTT); ``write`` must not lose an event it accepted."""

    def write(self, event: Event) -> None: ...
    def close(self) -> None: ...


class LatestFrame:
    """Runs a source in its own thread and keeps only the newest frame.

    A model slower than the camera then works on fresh frames and the stale ones are counted
    as dropped, instead of piling up in a queue and growing latency without bound. A
    ``FrameError`` from the source is never dropped: it waits (up to ``max_errors`` of them)
    to be counted by the runner.
    """

    def __init__(self, source: Any, max_errors: int = 1024) -> None:
        self.source = source
        self.name = getattr(source, "name", "source")
        self.dropped = 0
        self.errors_lost = 0  # FrameErrors beyond ``max_errors`` waiting at once
        self._frame: Frame | None = None
        self._errors: deque[FrameError] = deque()
        self._max_errors = max_errors
        self._done = False
        self._error: BaseException | None = None
        self._cv = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._close_in_pump: tuple[object, ...] | None = None

    def __enter__(self) -> LatestFrame:
        self.source.__enter__()
        self._thread = threading.Thread(target=self._pump, name=f"capture-{self.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Wake a consumer waiting for a frame and end iteration (used on SIGTERM)."""
        self._stop.set()
        self._stop_source()
        with self._cv:
            self._cv.notify_all()

    def _stop_source(self) -> None:
        stop_source = getattr(self.source, "stop", None)
        if callable(stop_source):  # a source that can end a blocking read (stdin)
            stop_source()

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._stop_source()
        if self._thread:
            self._thread.join(timeout=0.5)
        with self._cv:
            if self._thread and not self._done:  # blocked in the source (a silent stdin): closing it
                self._close_in_pump = exc  # under the reader could crash it; the thread closes it
                return
        self.source.__exit__(*exc)

    def _pump(self) -> None:
        try:
            for frame in self.source:
                with self._cv:
                    if isinstance(frame, FrameError):
                        if len(self._errors) >= self._max_errors:
                            self.errors_lost += 1
                        else:
                            self._errors.append(frame)
                    else:
                        if self._frame is not None:
                            self.dropped += 1
                        self._frame = frame
                    self._cv.notify()
                if self._stop.is_set():
                    break
        except BaseException as e:  # surfaced to the consumer, not lost in the thread
            self._error = e
        finally:
            with self._cv:
                self._done = True
                self._cv.notify()
                close = self._close_in_pump
            if close is not None:
                self.source.__exit__(*close)

    def __iter__(self) -> Iterator[Frame | FrameError]:
        while True:
            with self._cv:
                while (self._frame is None and not self._errors and not self._done
                       and not self._stop.is_set()):
                    self._cv.wait(timeout=0.5)
                item: Frame | FrameError | None
                if self._errors:
                    item = self._errors.popleft()
                else:
                    item, self._frame = self._frame, None
                if item is None:
                    if self._error:
                        raise self._error
                    return
            yield item


@dataclass
class _Streak:
    """Identical failures in a row while no frame has succeeded yet (the give-up rule)."""

    signature: tuple[str, str, str] | None = None
    count: int = 0


class Runner:
    """Drives frames from a source through an app into sinks, timing every stage."""

    def __init__(self, app: App, sinks: list[Sink] | None = None, window: int | None = None,
                 give_up_after: int | None = DEFAULT_GIVE_UP_AFTER,
                 error_log: ErrorLog | None = None, monitors: list[Any] | None = None) -> None:
        """``window``: per-stage timings kept (the last N frames; default ``DEFAULT_STATS_WINDOW``:
        a service runs for months, the counters stay totals, the latency percentiles describe the
        recent frames). ``give_up_after``: stop when the first N frames all fail the same way
        (0 or None: never). ``error_log``: where error lines go (rate-limited). ``monitors``:
        watchers of every good frame after the app (``observe(frame, x, app) -> Event | None``,
        e.g. ``edge.drift.DriftMonitor``); their events join the app's in the sinks."""
        self.app = app
        self.monitors = list(monitors or [])
        self.sinks = list(sinks or [])
        self.window = int(window or DEFAULT_STATS_WINDOW)
        self.give_up_after = give_up_after or 0
        self.error_log = error_log or ErrorLog(log)
        self._stop = threading.Event()
        self._in_source = False  # waiting for the next frame: a signal interrupts the wait
        self._streak = _Streak()
        self._source_fails = 0  # consecutive exceptions raised by the source (backoff)
        # Live view for monitors (status page) running in other threads; read-only for them.
        self.stats: RunStats | None = None
        self.last_frame: Frame | None = None
        self.last_event: Event | None = None
        self.t_start: float | None = None
        self._source: Any = None
        # Told about every good frame's stage times and every event (``observe_frame(timings)``,
        # ``observe_event(event)``), e.g. the status page's Prometheus metrics (``edge.metrics``).
        self.observers: list[Any] = []

    def stop(self, *_: object) -> None:
        self._stop.set()
        stop_source = getattr(self._source, "stop", None)
        if callable(stop_source):  # a camera thread waiting for its next frame
            stop_source()

    def _on_signal(self, *_: object) -> None:
        self.stop()
        if self._in_source:  # blocked in the source (stdin, a sleeping retry): leave it now
            raise _Interrupted

    def run(self, source: Any, max_frames: int | None = None) -> RunStats:
        """Run until the source ends, ``max_frames`` is reached, a stop signal arrives or the
        runner gives up (see the module docstring)."""
        stats = RunStats(window=self.window)
        self.stats, self._source = stats, source
        self._streak, self._source_fails = _Streak(), 0
        old = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                old[sig] = signal.signal(sig, self._on_signal)
        t_start = self.t_start = time.monotonic()
        try:
            with source:
                try:
                    self._loop(iter(source), stats, max_frames)
                except _Interrupted:
                    pass
                finally:
                    self._in_source = False
                stats.dropped = int(getattr(source, "dropped", 0))
        finally:
            stats.wall_s = time.monotonic() - t_start
            for sig, handler in old.items():
                signal.signal(sig, handler)
            self.error_log.flush()
            for sink in self.sinks:
                try:
                    sink.close()
                except Exception as e:  # one broken sink must not hide the others' data
                    log.error("closing sink %s failed: %s", type(sink).__name__, e)
        return stats

    def _loop(self, it: Iterator[Any], stats: RunStats, max_frames: int | None) -> None:
        while not self._stop.is_set() and stats.gave_up is None:
            t0 = time.monotonic()
            self._in_source = True
            try:
                item = next(it)
            except StopIteration:
                break
            except Exception as e:  # a source that raised: counted; a generator is finished by it
                self._source_failed(e, stats)
                continue
            finally:
                self._in_source = False
            self._source_fails = 0
            self.error_log.tick()
            if isinstance(item, FrameError):
                self._failed(stats, item.kind, item.origin, item.error, item.reason, key_origin=item.origin)
                continue
            t1 = time.monotonic()
            stats.times["capture"].append(t1 - t0)
            self._one(item, stats, t1, t1 - t0)
            if max_frames is not None and stats.frames >= max_frames:
                break

    def _source_failed(self, e: Exception, stats: RunStats) -> None:
        """Count a source exception, then back off (up to 1 s, interruptible) before asking again."""
        self._source_fails += 1
        origin = getattr(self._source, "name", "source")
        self._failed(stats, "source", origin, type(e).__name__, str(e) or type(e).__name__, exc=e)
        delay = min(1.0, 0.01 * 2 ** min(self._source_fails - 1, 10))
        self._in_source = True
        try:
            time.sleep(delay)
        finally:
            self._in_source = False

    def _failed(self, stats: RunStats, kind: str, origin: str, error: str, reason: str, *,
                key_origin: str | None = None, exc: BaseException | None = None) -> None:
        """Count an error of ``kind``, log it (rate-limited), apply the give-up rule."""
        stats.count_error(kind)
        reason = " ".join(reason.split()) or error  # one line, whatever the exception said
        unexpected = exc is not None and not isinstance(exc, (ValueError, OSError))  # -v shows its traceback
        line = f"{kind} error: {origin} skipped: {reason}"
        self.error_log.report(kind, (kind, error, reason, key_origin), line, exc=exc if unexpected else None)
        if kind == "sink" or stats.frames_ok or not self.give_up_after:
            return
        sig = (kind, error, reason)
        self._streak = _Streak(sig, self._streak.count + 1 if self._streak.signature == sig else 1)
        if self._streak.count >= self.give_up_after:
            stats.gave_up = (f"the first {self._streak.count} frames all failed the same way, giving up "
                             f"(--give-up-after): {kind} error: {reason}")

    def _one(self, frame: Frame, stats: RunStats, t1: float, capture: float = 0.0) -> None:
        stats.frames += 1
        stage = "preprocess"
        try:
            x = self.app.preprocess(frame)
            t2 = time.monotonic()
            stage = "model"
            y = self.app.infer(x)
            t3 = time.monotonic()
            stage = "postprocess"
            out = self.app.postprocess(frame, y)
            event = None if out is None else Event.coerce(out)  # a dict: an app not yet on Event
            t4 = time.monotonic()
        except Exception as e:  # any failure of one frame: counted, logged, the loop goes on
            meta = frame.meta if isinstance(frame.meta, dict) else {}
            where = meta.get("path") or meta.get("source", "?")
            self._failed(stats, stage, f"frame {frame.index} from {where}", type(e).__name__,
                         str(e) or type(e).__name__, key_origin=meta.get("path"), exc=e)
            return
        stats.frames_ok += 1
        self._streak = _Streak()
        self.last_frame, self.last_event = frame, event
        if event is not None:
            if event.frame is None:
                event.frame = frame.index
            event.latency_ms.update(
                preprocess=round((t2 - t1) * 1e3, 3),
                inference=round((t3 - t2) * 1e3, 3),
                postprocess=round((t4 - t3) * 1e3, 3),
                end_to_end=round((t4 - frame.t_capture) * 1e3, 3),
            )
            for sink in self.sinks:
                try:
                    sink.write(event)
                except Exception as e:  # keep the loop alive; the sink logs what it lost
                    name = type(sink).__name__
                    self._failed(stats, "sink", f"event of frame {frame.index} to {name}", type(e).__name__,
                                 str(e) or type(e).__name__, key_origin=name, exc=e)
            stats.events += 1
            self._notify("observe_event", event)
        t5 = time.monotonic()
        timings = {"preprocess": t2 - t1, "inference": t3 - t2, "postprocess": t4 - t3, "sink": t5 - t4,
                   "end_to_end": t5 - frame.t_capture}
        for name, dt in timings.items():
            stats.times[name].append(dt)
        if self.observers:
            self._notify("observe_frame", {"capture": capture, **timings})
        for monitor in self.monitors:
            self._observe(monitor, frame, x, stats)

    def _observe(self, monitor: Any, frame: Frame, x: Any, stats: RunStats) -> None:
        """A monitor's look at a good frame (outside the stage timings); a failing monitor is
        counted as a postprocess error and the loop goes on."""
        try:
            event = monitor.observe(frame, x, self.app)
        except Exception as e:
            self._failed(stats, "postprocess", f"frame {frame.index} in {type(monitor).__name__}",
                         type(e).__name__, str(e) or type(e).__name__, exc=e)
            return
        if event is None:
            return
        if event.frame is None:
            event.frame = frame.index
        for sink in self.sinks:
            try:
                sink.write(event)
            except Exception as e:
                name = type(sink).__name__
                self._failed(stats, "sink", f"{event.kind} event of frame {frame.index} to {name}",
                             type(e).__name__, str(e) or type(e).__name__, key_origin=name, exc=e)
        stats.events += 1
        self._notify("observe_event", event)

    def _notify(self, method: str, arg: Any) -> None:
        """Hand a frame's timings or an event to the observers. Metrics must never cost the loop
        a frame: an observer that raises is logged once and detached."""
        for observer in list(self.observers):
            try:
                getattr(observer, method)(arg)
            except Exception as e:
                log.error("observer %s failed, detached: %s", type(observer).__name__, e)
                self.observers.remove(observer)
