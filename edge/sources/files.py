"""OpenCV sources: cameras (USB index, RTSP URL), video files and image folders.

Nothing read here ends a run: a corrupt or oversized image, or a video frame that fails to
decode, is yielded as a ``FrameError`` (counted and logged by the runner) and reading goes
on. Images are measured from their header before decoding (``imageheader``), so a
decompression bomb is refused without allocating its pixels.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..pipeline import Frame, FrameError
from .imageheader import DEFAULT_MAX_PIXELS, ImageError, check_image, limit_opencv

__all__ = ["VideoSource", "ImageFolderSource", "IMAGE_SUFFIXES", "read_image", "decode_image", "ImageError"]

log = logging.getLogger("edgewise.sources")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".pgm", ".ppm", ".tif", ".tiff"}


def decode_image(path: str | Path, gray: bool = False, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode an image after its header passed ``max_pixels``; ``ImageError`` says why not (without
    the path: the caller names the file). OpenCV's own failures (``None``, ``cv2.error``) included."""
    check_image(path, max_pixels)
    limit_opencv(max_pixels)
    import cv2

    try:
        img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE if gray else cv2.IMREAD_COLOR)
    except cv2.error as e:
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        raise ImageError(f"OpenCV cannot decode it ({lines[-1] if lines else 'cv2.error'})") from None
    if img is None or img.size == 0:
        raise ImageError("corrupt or unsupported image")
    return img


def read_image(path: str | Path, gray: bool = False, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read an image or raise ``ImageError`` (a ValueError) naming the file; see ``decode_image``."""
    if not Path(path).exists():
        raise ImageError(f"{path}: no such image")
    try:
        return decode_image(path, gray, max_pixels)
    except ImageError as e:
        raise ImageError(f"{path}: {e}") from None


class VideoSource:
    """``cv2.VideoCapture`` over a camera index, a URL or a file.

    ``realtime`` paces a file at its own frame rate, so it behaves like a camera (frames
    arrive whether or not the model is ready); otherwise a file is read as fast as possible.
    Frames larger than ``max_pixels`` are refused when the video opens. A frame that fails to
    read or decode mid-stream is yielded as a ``FrameError`` and reading goes on (a file skips
    to the next frame, a camera or stream retries every ``retry_s`` and reopens every 10
    failures); ``max_failures`` failures in a row end the source.
    """

    def __init__(
        self, src: int | str | Path, *, realtime: bool = False, loop: bool = False, fps: float = 0,
        max_pixels: int = DEFAULT_MAX_PIXELS, max_failures: int = 30, retry_s: float = 0.1,
    ) -> None:
        self.src = src
        self.realtime = realtime
        self.loop = loop
        self.fps = fps
        self.max_pixels, self.max_failures, self.retry_s = max_pixels, max(1, max_failures), retry_s
        self.name = f"video:{src}"
        self.dropped = 0
        self.errors = 0
        self.frame_count = 0  # frames a file declares (0: a camera, a stream, or unknown)
        self._cap = None

    @property
    def live(self) -> bool:
        return isinstance(self.src, int) or (isinstance(self.src, str) and "://" in self.src)

    def _open(self) -> None:
        import cv2

        src = str(self.src) if isinstance(self.src, Path) else self.src
        self._cap = cv2.VideoCapture(src)
        if not self._cap.isOpened():
            kind = "camera" if isinstance(src, int) else "video"
            raise ValueError(f"{src}: cannot open {kind} (missing device or unreadable file)")

    def __enter__(self) -> VideoSource:
        import cv2

        if isinstance(self.src, Path) and not self.src.exists():
            raise ValueError(f"{self.src}: no such video file")
        self._open()
        w, h = (int(self._cap.get(p) or 0) for p in (cv2.CAP_PROP_FRAME_WIDTH, cv2.CAP_PROP_FRAME_HEIGHT))
        if self.max_pixels and w * h > self.max_pixels:
            self.__exit__()
            raise ValueError(f"{self.src}: frames of {w}x{h} = {w * h / 1e6:.0f} MP are over the limit of "
                             f"{self.max_pixels / 1e6:g} MP (--max-image-pixels)")
        self.fps = self.fps or float(self._cap.get(cv2.CAP_PROP_FPS) or 0) or 30.0
        if not self.live:
            self.frame_count = max(0, int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0))
        return self

    def __exit__(self, *exc: object) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def _read(self) -> tuple[np.ndarray | None, str | None, str]:
        """(image, None, "") or (None, why it failed or None at a plain end, exception type name)."""
        try:
            ok, img = self._cap.read()
        except Exception as e:  # cv2.error from a corrupt packet, among others
            lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
            return None, lines[-1] if lines else type(e).__name__, type(e).__name__
        if not ok or img is None or getattr(img, "size", 0) == 0:
            return None, None, ""
        if self.max_pixels and img.shape[0] * img.shape[1] > self.max_pixels:
            return None, f"frame of {img.shape[1]}x{img.shape[0]} over the pixel limit", "ImageError"
        return img, None, ""

    def _ended(self, pos: int, why: str | None) -> bool:
        """A file's plain end: no exception, and not before the frames it declares."""
        return not self.live and why is None and not (self.frame_count and pos < self.frame_count - 1)

    def _recover(self, pos: int, fails: int) -> None:
        """After a failed frame: a file skips it; a camera or stream waits and reopens every 10."""
        import cv2

        if not self.live:
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, pos + 1)
            return
        time.sleep(self.retry_s)
        if fails % 10 == 0:
            self.__exit__()
            try:
                self._open()
            except ValueError:
                self._cap = cv2.VideoCapture()  # stays closed: the next reads fail and are counted

    def __iter__(self) -> Iterator[Frame | FrameError]:
        import cv2

        assert self._cap is not None, "use VideoSource as a context manager"
        period = 1.0 / self.fps
        t_next = time.monotonic()
        i = fails = 0
        while True:
            pos = 0 if self.live else int(self._cap.get(cv2.CAP_PROP_POS_FRAMES) or 0)
            img, why, err = self._read()
            if img is None and self._ended(pos, why):
                if not self.loop or (i == 0 and fails >= self.max_failures):
                    return
                self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)  # --loop: again from the start
                fails += 0 if i else 1
                continue
            if img is None:
                fails += 1
                self.errors += 1
                where = self.name if self.live else f"{self.name} frame {pos}"
                reason, kind = why or "frame failed to read or decode", "source" if self.live else "decode"
                err = err or "ReadError"
                if fails >= self.max_failures:
                    yield FrameError(kind, where, f"{reason}; {fails} in a row, giving up", err, i)
                    return
                yield FrameError(kind, where, reason, err, i)
                self._recover(pos, fails)
                continue
            fails = 0
            if self.realtime:
                t_next += period
                delay = t_next - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            yield Frame(img, time.monotonic(), i, {"source": self.name, "wall": time.time()})
            i += 1


class ImageFolderSource:
    """Images from a folder (sorted, recursive). A file that cannot be read, is corrupt, or whose
    header claims more than ``max_pixels`` is yielded as a ``FrameError`` (kind ``decode``) and
    reading goes on. With ``loop``, a whole pass without one readable image waits ``idle_s``
    before the next, rather than spinning on the same broken files."""

    def __init__(self, folder: str | Path, *, loop: bool = False, gray: bool = False,
                 max_pixels: int = DEFAULT_MAX_PIXELS, idle_s: float = 1.0) -> None:
        self.folder = Path(folder)
        self.loop = loop
        self.gray = gray
        self.max_pixels, self.idle_s = max_pixels, idle_s
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
        limit_opencv(self.max_pixels)
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def __iter__(self) -> Iterator[Frame | FrameError]:
        i = 0
        while True:
            good = 0
            for p in self.files:
                try:
                    img = decode_image(p, self.gray, self.max_pixels)
                except Exception as e:  # ImageError, and whatever else the decoder raised
                    self.errors += 1
                    yield FrameError("decode", str(p), str(e) or type(e).__name__, type(e).__name__, i)
                    continue
                good += 1
                yield Frame(img, time.monotonic(), i, {"source": self.name, "path": str(p)})
                i += 1
            if not self.loop:
                return
            if not good:
                time.sleep(self.idle_s)
