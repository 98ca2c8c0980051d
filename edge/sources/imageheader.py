"""An image's width and height from its header, so a decompression bomb is refused before decoding.

A 74-byte PNG can claim 60000 x 60000 pixels: OpenCV would try to allocate 10 GB (or raise
``cv2.error`` past its own 1-gigapixel cap) for a file that fits in a packet. ``check_image``
reads only the header of the formats OpenCV decodes from a folder (PNG, JPEG, BMP, GIF, WebP,
TIFF, PNM/PAM) and refuses an image over ``max_pixels`` before a single pixel is decoded. A
header it does not recognise is refused too: what cannot be measured is not decoded.

``limit_opencv`` also sets OpenCV's own cap (``OPENCV_IO_MAX_IMAGE_PIXELS``); OpenCV reads it
once, when ``cv2`` is first imported, so it only takes effect when set before that.

>>> import io, struct
>>> ihdr = struct.pack(">I4sII", 13, b"IHDR", 60000, 60000)
>>> image_size(io.BytesIO(b"\\x89PNG\\r\\n\\x1a\\n" + ihdr + bytes(9)))
('PNG', 60000, 60000)
"""

from __future__ import annotations

import os
import struct
import sys
from pathlib import Path
from typing import BinaryIO

__all__ = ["ImageError", "image_size", "check_image", "limit_opencv", "DEFAULT_MAX_PIXELS"]

DEFAULT_MAX_PIXELS = 50_000_000  # 50 MP: above any camera a Pi carries, far below a bomb
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_JPEG_SCAN_LIMIT = 1 << 20  # metadata before the frame header is small; a longer walk is refused


class ImageError(ValueError):
    """An image that cannot or must not be decoded: unreadable header, too many pixels, corrupt data."""


def _read(f: BinaryIO, n: int) -> bytes:
    b = f.read(n)
    if len(b) < n:
        raise ImageError("truncated image header")
    return b


def _jpeg(f: BinaryIO) -> tuple[int, int]:
    """Walk the JPEG segments to the first start-of-frame marker: its height and width."""
    f.seek(2)
    while f.tell() < _JPEG_SCAN_LIMIT:
        b = _read(f, 1)
        if b != b"\xff":
            raise ImageError("corrupt JPEG: no marker where one was expected")
        marker = _read(f, 1)[0]
        while marker == 0xFF:  # fill bytes
            marker = _read(f, 1)[0]
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # standalone markers carry no length
            continue
        if marker == 0xD9:
            raise ImageError("corrupt JPEG: ends before a frame header")
        (length,) = struct.unpack(">H", _read(f, 2))
        if length < 2:
            raise ImageError("corrupt JPEG: segment length below 2")
        if marker in _JPEG_SOF:
            _, h, w = struct.unpack(">BHH", _read(f, 5))
            return w, h
        f.seek(length - 2, os.SEEK_CUR)
    raise ImageError("JPEG frame header not found in the first 1 MB")


def _webp(head: bytes) -> tuple[int, int]:
    chunk = head[12:16]
    if chunk == b"VP8 " and len(head) >= 30:
        w, h = struct.unpack("<HH", head[26:30])
        return w & 0x3FFF, h & 0x3FFF
    if chunk == b"VP8L" and len(head) >= 25:
        bits = int.from_bytes(head[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X" and len(head) >= 30:
        return int.from_bytes(head[24:27], "little") + 1, int.from_bytes(head[27:30], "little") + 1
    raise ImageError("WebP without a VP8/VP8L/VP8X header")


def _tiff(f: BinaryIO, head: bytes) -> tuple[int, int]:
    """Width and length tags of the first image directory (the page ``cv2.imread`` decodes)."""
    e = "<" if head[:2] == b"II" else ">"
    (version,) = struct.unpack(e + "H", head[2:4])
    big = version == 43
    if big:
        f.seek(8)
        (ifd,) = struct.unpack(e + "Q", _read(f, 8))
        f.seek(ifd)
        (count,) = struct.unpack(e + "Q", _read(f, 8))
        entry, fmt = 20, e + "HHQ8s"
    else:
        (ifd,) = struct.unpack(e + "I", head[4:8])
        f.seek(ifd)
        (count,) = struct.unpack(e + "H", _read(f, 2))
        entry, fmt = 12, e + "HHI4s"
    if count > 4096:
        raise ImageError(f"corrupt TIFF: {count} directory entries")
    raw = _read(f, count * entry)
    dims: dict[int, int] = {}
    for i in range(count):
        tag, typ, _, value = struct.unpack(fmt, raw[i * entry : (i + 1) * entry])
        if tag in (256, 257):  # ImageWidth, ImageLength: SHORT, LONG or LONG8
            code = {3: "H", 4: "I", 16: "Q"}.get(typ)
            if code is None:
                raise ImageError(f"corrupt TIFF: dimension tag of type {typ}")
            dims[tag] = struct.unpack(e + code, value[: struct.calcsize(code)])[0]
    if 256 not in dims or 257 not in dims:
        raise ImageError("TIFF without width and length")
    return dims[256], dims[257]


def _pnm(f: BinaryIO, head: bytes) -> tuple[int, int]:
    """Netpbm P1-P6 (``Pn W H``, comments allowed) and PAM P7 (``WIDTH w`` / ``HEIGHT h``)."""
    f.seek(0)
    text = f.read(4096).decode("latin-1")
    if head[1:2] == b"7":
        vals = {}
        for line in text.splitlines()[1:]:
            parts = line.split()
            if len(parts) == 2 and parts[0] in ("WIDTH", "HEIGHT"):
                vals[parts[0]] = parts[1]
            if parts[:1] == ["ENDHDR"]:
                break
        tokens = [vals.get("WIDTH", ""), vals.get("HEIGHT", "")]
    else:
        tokens = " ".join(line.split("#", 1)[0] for line in text.splitlines()).split()[1:3]
    try:
        w, h = (int(t) for t in tokens)
    except ValueError:
        raise ImageError("corrupt PNM header") from None
    return w, h


def image_size(f: BinaryIO) -> tuple[str, int, int]:
    """(format, width, height) from the header of an open binary file; ``ImageError`` otherwise."""
    head = f.read(32)
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        if len(head) < 24 or head[12:16] != b"IHDR":
            raise ImageError("corrupt PNG: no IHDR chunk first")
        w, h = struct.unpack(">II", head[16:24])
        return "PNG", w, h
    if head.startswith(b"\xff\xd8"):
        return ("JPEG", *_jpeg(f))
    if head.startswith(b"BM") and len(head) >= 26:
        (dib,) = struct.unpack("<I", head[14:18])
        if dib == 12:  # BITMAPCOREHEADER: 16-bit sizes
            w, h = struct.unpack("<HH", head[18:22])
        else:
            w, h = struct.unpack("<ii", head[18:26])
        return "BMP", abs(w), abs(h)  # a negative height is a top-down bitmap
    if head[:6] in (b"GIF87a", b"GIF89a") and len(head) >= 10:
        w, h = struct.unpack("<HH", head[6:10])
        return "GIF", w, h
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return ("WebP", *_webp(head))
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return ("TIFF", *_tiff(f, head))
    if len(head) >= 2 and head[:1] == b"P" and head[1:2] in b"1234567":
        return ("PNM", *_pnm(f, head))
    raise ImageError("unrecognised image format (not PNG, JPEG, BMP, GIF, WebP, TIFF or PNM)")


def check_image(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[int, int]:
    """(width, height) of the image at ``path`` after its header passed; ``ImageError`` (one line,
    without the path: the caller names the file) when it is unreadable, empty or over ``max_pixels``."""
    try:
        with open(path, "rb") as f:
            fmt, w, h = image_size(f)
    except OSError as e:
        raise ImageError(f"cannot read ({e.strerror or e})") from None
    except struct.error:
        raise ImageError("truncated image header") from None
    if w < 1 or h < 1:
        raise ImageError(f"{fmt} header claims {w}x{h} pixels")
    if max_pixels and w * h > max_pixels:
        raise ImageError(f"{fmt} header claims {w}x{h} = {w * h / 1e6:.0f} MP, over the limit of "
                         f"{max_pixels / 1e6:g} MP (--max-image-pixels); not decoded")
    return w, h


def limit_opencv(max_pixels: int = DEFAULT_MAX_PIXELS) -> bool:
    """Set OpenCV's own decoder cap, unless the user set one; True when it can still take effect.

    OpenCV reads ``OPENCV_IO_MAX_IMAGE_PIXELS`` once, when ``cv2`` is imported: after that only
    the header check above guards the decoder.
    """
    if max_pixels:
        os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(int(max_pixels)))
    return "cv2" not in sys.modules
