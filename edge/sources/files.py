"""OpenCV sources: cameras (USB index, RTSP URL), video files and image folders."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..pipeline import Frame

__all__ = ["VideoSource", "ImageFolderSource", "IMAGE_SUFFIXES", "read_image"]

log = logging.getLogger("edgewise.sources")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".pgm", ".ppm", ".tif", ".tiff"}


def read_image(path: str | Path, gray: bool = False) -> np.ndarray:
    """Read an image or raise ValueError naming the file (OpenCV itself just returns None)."""
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE if gray else cv2.IMREAD_COLOR)
    if img is None:
        if not Path(path).exists():
            raise ValueError(f"{path}: no such image")
        raise ValueError(f"{path}: corrupt or unsupported image")
    return img


class VideoSource:
    """``cv2.VideoCapture`` over a camera index, a URL or a file.

    ``realtime`` paces a file at its own frame rate, so it behaves like a camera (frames
    arrive whether or not the model is ready); otherwise a file is read as fast as possible.
    """

    def __init__(
        self, src: int | str | Path, *, realtime: bool = False, loop: bool = False, fps: float = 0
    ) -> None:
        self.src = src
        self.realtime = realtime
        self.loop = loop
        self.fps = fps
        self.name = f"video:{src}"
        self.dropped = 0
        self._cap = None

    def __enter__(self) -> VideoSource:
        import cv2

        src = str(self.src) if isinstance(self.src, Path) else self.src
        if isinstance(self.src, Path) and not self.src.exists():
            raise ValueError(f"{self.src}: no such video file")
        self._cap = cv2.VideoCapture(src)
        if not self._cap.isOpened():
            kind = "camera" if isinstance(src, int) else "video"
            raise ValueError(f"{src}: cannot open {kind} (missing device or unreadable file)")
        self.fps = self.fps or float(self._cap.get(cv2.CAP_PROP_FPS) or 0) or 30.0
        return self

    def __exit__(self, *exc: object) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def __iter__(self) -> Iterator[Frame]:
        import cv2

        assert self._cap is not None, "use VideoSource as a context manager"
        period = 1.0 / self.fps
        t_next = time.monotonic()
        i = 0
        while True:
            ok, img = self._cap.read()
            if not ok:
                if self.loop and not isinstance(self.src, int):
                    self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                    ok, img = self._cap.read()
                if not ok:
                    return
            if self.realtime:
                t_next += period
                delay = t_next - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            yield Frame(img, time.monotonic(), i, {"source": self.name, "wall": time.time()})
            i += 1


class ImageFolderSource:
    """Images from a folder (sorted, recursive); corrupt files are logged and skipped."""

    def __init__(self, folder: str | Path, *, loop: bool = False, gray: bool = False) -> None:
        self.folder = Path(folder)
        self.loop = loop
        self.gray = gray
        self.name = f"folder:{self.folder}"
        self.dropped = 0
        self.errors = 0

    def __enter__(self) -> ImageFolderSource:
        if not self.folder.is_dir():
            raise ValueError(f"{self.folder}: no such image folder")
        self.files = sorted(
            p for p in self.folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES
        )
        if not self.files:
            raise ValueError(f"{self.folder}: no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def __iter__(self) -> Iterator[Frame]:
        i = 0
        while True:
            for p in self.files:
                try:
                    img = read_image(p, gray=self.gray)
                except ValueError as e:
                    self.errors += 1
                    log.error("skipped: %s", e)
                    continue
                yield Frame(img, time.monotonic(), i, {"source": self.name, "path": str(p)})
                i += 1
            if not self.loop:
                return
