"""Raspberry Pi camera through picamera2 (libcamera): main + lores streams, capture-time stamps.

picamera2 comes from Raspberry Pi OS's apt (``python3-picamera2``), so it is imported only
when the source opens; anywhere else the source fails with one line saying what to do.

Frames are OpenCV-ordered BGR ``uint8`` (picamera2's ``RGB888`` already is B,G,R in memory),
or the luma plane alone with ``gray=True`` and a YUV420 stream (no conversion at all). With a
``lores`` stream the model can see a small YUV420 image while the full-size main image rides
along in ``frame.meta["main"]`` for the annotated preview. ``Frame.t_capture`` is the sensor
timestamp of the exposure (same clock as ``time.monotonic()``), so end-to-end latency includes
the camera pipeline itself.

>>> with PiCameraSource(size=(640, 480), lores=(320, 240), stream="lores") as cam:  # doctest: +SKIP
...     frame = next(iter(cam))
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from ..pipeline import Frame, FrameError

__all__ = ["PiCameraSource", "CameraError", "FORMATS"]

log = logging.getLogger("edgewise.sources.picamera")
FORMATS = ("RGB888", "XRGB8888", "YUV420")


class CameraError(ValueError):
    """The camera cannot be used: picamera2 missing, no camera attached, capture failing."""


class PiCameraSource:
    """picamera2 ``capture_arrays`` loop; use inside ``LatestFrame`` (``edgewise run`` does)."""

    def __init__(
        self,
        size: tuple[int, int] = (640, 480),
        *,
        format: str = "RGB888",
        lores: tuple[int, int] | None = None,
        stream: str = "main",
        fps: float = 30.0,
        camera: int = 0,
        gray: bool = False,
        keep_main: bool = True,
        buffer_count: int = 4,
        max_failures: int = 10,
    ) -> None:
        if format not in FORMATS:
            raise ValueError(f"camera format '{format}': use one of {', '.join(FORMATS)}")
        if stream not in ("main", "lores"):
            raise ValueError(f"camera stream '{stream}': use 'main' or 'lores'")
        if stream == "lores" and lores is None:
            raise ValueError("camera stream 'lores' needs --camera-lores WxH")
        self.size, self.format, self.lores, self.stream = tuple(size), format, lores, stream
        self.fps, self.camera, self.gray = float(fps), int(camera), gray
        self.keep_main, self.buffer_count, self.max_failures = keep_main, buffer_count, max_failures
        self.name = f"picamera2:{camera}:{stream}"
        self.dropped = 0
        self.sensor_skipped = 0  # frames the sensor produced that we never fetched
        self.errors = 0
        self._cam: Any = None

    def __enter__(self) -> PiCameraSource:
        try:
            from picamera2 import Picamera2
        except ImportError:
            raise CameraError(
                "picamera2 is not available here: on Raspberry Pi OS run 'sudo apt install "
                "python3-picamera2' and use a venv made with --system-site-packages; elsewhere "
                "use --source with a camera index, video file or image folder"
            ) from None
        try:
            cam = Picamera2(self.camera)
        except (IndexError, RuntimeError) as e:
            raise CameraError(
                f"no camera {self.camera} found by libcamera ({e}); check the ribbon cable and "
                "'rpicam-hello --list-cameras'"
            ) from None
        main = {"size": self.size, "format": self.format}
        lores = {"size": tuple(self.lores), "format": "YUV420"} if self.lores else None
        config = cam.create_video_configuration(
            main=main, lores=lores, controls={"FrameRate": self.fps}, buffer_count=self.buffer_count
        )
        try:
            cam.configure(config)
            cam.start()
        except Exception as e:  # libcamera refuses sizes/formats with various exception types
            cam.close()
            raise CameraError(f"camera {self.camera} rejected {main} lores={lores}: {e}") from None
        self._cam = cam
        return self

    def __exit__(self, *exc: object) -> None:
        if self._cam is not None:
            try:
                self._cam.stop()
            finally:
                self._cam.close()
                self._cam = None

    @staticmethod
    def _to_image(a: np.ndarray, fmt: str, size: tuple[int, int], gray: bool) -> np.ndarray:
        import cv2

        w, h = size
        if fmt == "YUV420":  # I420 planes, possibly with a padded stride (array width)
            if gray:
                return a[:h, :w]
            return np.ascontiguousarray(cv2.cvtColor(a, cv2.COLOR_YUV2BGR_I420)[:, :w])
        if fmt == "XRGB8888":
            a = a[..., :3]
        a = np.ascontiguousarray(a[:h, :w])
        return cv2.cvtColor(a, cv2.COLOR_BGR2GRAY) if gray else a

    def __iter__(self) -> Iterator[Frame | FrameError]:
        if self._cam is None:
            raise RuntimeError("use PiCameraSource as a context manager")
        names = ["main", "lores"] if self.stream == "lores" and self.keep_main else [self.stream]
        fmt = "YUV420" if self.stream == "lores" else self.format
        size = tuple(self.lores) if self.stream == "lores" else self.size
        i, failures, last_ts = 0, 0, None
        while self._cam is not None:
            try:
                arrays, md = self._cam.capture_arrays(names)
            except Exception as e:  # a transient libcamera timeout must not end the loop
                self.errors += 1
                failures += 1
                if failures >= self.max_failures:
                    raise CameraError(
                        f"camera {self.camera}: {failures} captures failed in a row: {e}"
                    ) from None
                # counted and logged (rate-limited) by the runner, which then asks again
                yield FrameError("source", self.name, f"capture failed: {e}", type(e).__name__, i)
                time.sleep(0.1)
                continue
            failures = 0
            t_arrive = time.monotonic()
            ts_ns = md.get("SensorTimestamp")
            t_capture = t_arrive
            if ts_ns is not None:
                t_sensor = ts_ns / 1e9
                if 0 <= t_arrive - t_sensor < 5:  # same clock as time.monotonic (V4L2 monotonic)
                    t_capture = t_sensor
                dur_us = md.get("FrameDuration")
                if last_ts is not None and dur_us:
                    self.sensor_skipped += max(0, round((ts_ns - last_ts) / (dur_us * 1e3)) - 1)
                last_ts = ts_ns
            data = self._to_image(arrays[names.index(self.stream)], fmt, size, self.gray)
            meta: dict[str, Any] = {"source": self.name, "wall": time.time(),
                                    "sensor_timestamp_ns": ts_ns}
            if len(names) == 2:
                meta["main"] = self._to_image(arrays[0], self.format, self.size, False)
            yield Frame(data, t_capture, i, meta)
            i += 1
