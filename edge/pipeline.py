"""The one pipeline all applications run: source -> preprocess -> model -> postprocess -> sinks.

An application configures the three middle stages (``App``); sources and sinks are shared.
The runner times every stage per frame (capture, preprocess, inference, postprocess, sink,
end to end from the capture timestamp), counts dropped frames, keeps going on bad input (a
corrupt frame is logged and skipped; nothing already written is lost) and stops cleanly on
SIGINT/SIGTERM.

>>> runner = Runner(app, sinks=[JsonLinesSink("-")])     # doctest: +SKIP
>>> stats = runner.run(VideoSource("line.mp4"))           # doctest: +SKIP
>>> stats.summary()["end_to_end"]["p50_ms"]               # doctest: +SKIP
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from .evaluate import percentiles
from .event import Event

__all__ = ["Frame", "Source", "App", "Sink", "Runner", "RunStats", "LatestFrame", "STAGES"]

log = logging.getLogger("edgewise.pipeline")
STAGES = ("capture", "preprocess", "inference", "postprocess", "sink", "end_to_end")


@dataclass
class Frame:
    """One unit of input: an image or a signal window, stamped when it was captured."""

    data: np.ndarray
    t_capture: float  # time.monotonic() at capture
    index: int
    meta: dict[str, Any] = field(default_factory=dict)


class Source(Protocol):
    """Yields frames; opened and closed as a context manager.

    ``dropped`` counts frames the source discarded because the consumer was slower.
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


@dataclass
class RunStats:
    """Per-stage timings (seconds) and counters of one run."""

    frames: int = 0
    events: int = 0
    errors: int = 0
    dropped: int = 0
    wall_s: float = 0.0
    times: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in STAGES})

    def summary(self) -> dict[str, Any]:
        return {
            "frames": self.frames,
            "events": self.events,
            "errors": self.errors,
            "dropped": self.dropped,
            "wall_s": round(self.wall_s, 3),
            "fps": round(self.frames / self.wall_s, 2) if self.wall_s > 0 else 0.0,
            **{s: percentiles(v) for s, v in self.times.items()},
        }


class LatestFrame:
    """Runs a source in its own thread and keeps only the newest frame.

    A model slower than the camera then works on fresh frames and the stale ones are counted
    as dropped, instead of piling up in a queue and growing latency without bound.
    """

    def __init__(self, source: Any) -> None:
        self.source = source
        self.name = getattr(source, "name", "source")
        self.dropped = 0
        self._frame: Frame | None = None
        self._done = False
        self._error: BaseException | None = None
        self._cv = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def __enter__(self) -> LatestFrame:
        self.source.__enter__()
        self._thread = threading.Thread(target=self._pump, name=f"capture-{self.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Wake a consumer waiting for a frame and end iteration (used on SIGTERM)."""
        self._stop.set()
        with self._cv:
            self._cv.notify_all()

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
        self.source.__exit__(*exc)

    def _pump(self) -> None:
        try:
            for frame in self.source:
                with self._cv:
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

    def __iter__(self) -> Iterator[Frame]:
        while True:
            with self._cv:
                while self._frame is None and not self._done and not self._stop.is_set():
                    self._cv.wait(timeout=0.5)
                frame, self._frame = self._frame, None
                if frame is None:
                    if self._error:
                        raise self._error
                    return
            yield frame


class Runner:
    """Drives frames from a source through an app into sinks, timing every stage."""

    def __init__(self, app: App, sinks: list[Sink] | None = None, window: int | None = None) -> None:
        """``window``: keep only the last N per-stage timings (a service runs for months; the
        counters stay totals, the latency percentiles then describe the recent frames)."""
        self.app = app
        self.sinks = list(sinks or [])
        self.window = window
        self._stop = threading.Event()
        # Live view for monitors (status page) running in other threads; read-only for them.
        self.stats: RunStats | None = None
        self.last_frame: Frame | None = None
        self.last_event: Event | None = None
        self.t_start: float | None = None
        self._source: Any = None

    def stop(self, *_: object) -> None:
        self._stop.set()
        stop_source = getattr(self._source, "stop", None)
        if callable(stop_source):  # a camera thread waiting for its next frame
            stop_source()

    def run(self, source: Any, max_frames: int | None = None) -> RunStats:
        """Run until the source ends, ``max_frames`` is reached, or a stop signal arrives."""
        stats = RunStats()
        self.stats, self._source = stats, source
        old = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                old[sig] = signal.signal(sig, self.stop)
        t_start = self.t_start = time.monotonic()
        try:
            with source:
                it = iter(source)
                while not self._stop.is_set():
                    t0 = time.monotonic()
                    try:
                        frame = next(it)
                    except StopIteration:
                        break
                    t1 = time.monotonic()
                    stats.times["capture"].append(t1 - t0)
                    self._one(frame, stats, t1)
                    if max_frames is not None and stats.frames >= max_frames:
                        break
                stats.dropped = int(getattr(source, "dropped", 0))
        finally:
            stats.wall_s = time.monotonic() - t_start
            for sig, handler in old.items():
                signal.signal(sig, handler)
            for sink in self.sinks:
                try:
                    sink.close()
                except Exception as e:  # one broken sink must not hide the others' data
                    log.error("closing sink %s failed: %s", type(sink).__name__, e)
        return stats

    def _one(self, frame: Frame, stats: RunStats, t1: float) -> None:
        stats.frames += 1
        try:
            x = self.app.preprocess(frame)
            t2 = time.monotonic()
            y = self.app.infer(x)
            t3 = time.monotonic()
            out = self.app.postprocess(frame, y)
            t4 = time.monotonic()
            event = None if out is None else Event.coerce(out)  # a dict: an app not yet on Event
        except (ValueError, RuntimeError, OSError) as e:
            stats.errors += 1
            log.error("frame %d from %s skipped: %s", frame.index, frame.meta.get("source", "?"), e)
            return
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
                    stats.errors += 1
                    log.error("sink %s failed: %s", type(sink).__name__, e)
            stats.events += 1
        t5 = time.monotonic()
        for name, dt in (
            ("preprocess", t2 - t1),
            ("inference", t3 - t2),
            ("postprocess", t4 - t3),
            ("sink", t5 - t4),
            ("end_to_end", t5 - frame.t_capture),
        ):
            stats.times[name].append(dt)
        if self.window and len(stats.times["end_to_end"]) >= 2 * self.window:
            for v in stats.times.values():  # amortized: trim once per ``window`` frames
                del v[: -self.window]
