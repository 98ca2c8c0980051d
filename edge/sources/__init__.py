"""Frame sources: cameras, video files, image folders (and sensor sources for vibration).

Every source is a context manager that yields ``Frame`` objects stamped at capture time.
``open_source`` turns a command-line string into a source.

>>> src = open_source("line.mp4", realtime=True)   # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .files import ImageFolderSource, VideoSource

__all__ = ["ImageFolderSource", "VideoSource", "open_source"]


def open_source(spec: str, *, realtime: bool = False, loop: bool = False, **kw: Any) -> Any:
    """``picamera2``, a camera index (``0``), a URL (rtsp://), a video file or an image folder."""
    if spec == "picamera2":
        from .picamera import PiCameraSource

        return PiCameraSource(**kw)
    if spec.isdigit() or "://" in spec:
        return VideoSource(int(spec) if spec.isdigit() else spec, realtime=False, **kw)
    p = Path(spec)
    if p.is_dir():
        return ImageFolderSource(p, loop=loop, **kw)
    if p.is_file():
        return VideoSource(p, realtime=realtime, loop=loop, **kw)
    raise ValueError(f"source '{spec}': no such file, folder or camera")
