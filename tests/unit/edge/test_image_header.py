"""Images are measured from their header and refused over the pixel limit before any decoding."""

from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

from edgewise.edge.sources.files import read_image
from edgewise.edge.sources.imageheader import ImageError, check_image, image_size


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(w: int = 60000, h: int = 60000) -> bytes:
    """74 bytes whose header claims ``w`` x ``h`` (60000 x 60000: 3.6 gigapixels, ~10 GB as BGR)."""
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * (w + 1) * 4, 9)[:17]
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def _encode(ext: str, w: int = 37, h: int = 23, params: tuple[int, ...] = ()) -> bytes:
    import cv2

    img = np.random.default_rng(0).integers(0, 255, (h, w, 3), np.uint8)
    if ext in (".pgm",):
        img = img[..., 0]
    ok, buf = cv2.imencode(ext, img, list(params))
    assert ok, ext
    return buf.tobytes()


def _gif(w: int, h: int) -> bytes:
    """A minimal one-pixel-palette GIF89a (logical screen ``w`` x ``h``)."""
    return (b"GIF89a" + struct.pack("<HHBBB", w, h, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
            + b"\x2c" + struct.pack("<HHHHB", 0, 0, 1, 1, 0) + b"\x02\x02\x44\x01\x00\x3b")


def _vp8x(w: int, h: int) -> bytes:
    body = b"VP8X" + struct.pack("<I", 10) + b"\x00\x00\x00\x00" + (w - 1).to_bytes(3, "little") \
        + (h - 1).to_bytes(3, "little")
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body


def _tiff(w: int, h: int, big_endian: bool = False) -> bytes:
    e = ">" if big_endian else "<"
    entries = [(256, 4, 1, w), (257, 4, 1, h), (258, 3, 1, 8)]
    ifd = struct.pack(e + "H", len(entries)) + b"".join(
        struct.pack(e + "HHII", tag, typ, n, v) if typ == 4 else struct.pack(e + "HHIHH", tag, typ, n, v, 0)
        for tag, typ, n, v in entries) + struct.pack(e + "I", 0)
    return (b"MM\x00*" if big_endian else b"II*\x00") + struct.pack(e + "I", 8) + ifd


def _patch_jpeg_sof(jpg: bytes, w: int, h: int) -> bytes:
    b = bytearray(jpg)
    i = 2
    while True:
        marker, length = b[i + 1], struct.unpack(">H", b[i + 2 : i + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):
            b[i + 5 : i + 9] = struct.pack(">HH", h, w)
            return bytes(b)
        i += 2 + length


def _patch_bmp(bmp: bytes, w: int, h: int) -> bytes:
    b = bytearray(bmp)
    b[18:26] = struct.pack("<ii", w, -h)  # a top-down bitmap: negative height
    return bytes(b)


@pytest.mark.parametrize(("name", "data", "size"), [
    ("png", lambda: _encode(".png"), (37, 23)),
    ("jpeg", lambda: _encode(".jpg"), (37, 23)),
    ("bmp", lambda: _encode(".bmp"), (37, 23)),
    ("tiff", lambda: _encode(".tiff"), (37, 23)),
    ("webp", lambda: _encode(".webp"), (37, 23)),
    ("webp lossless", lambda: _encode(".webp", params=(64, 101)), (37, 23)),  # IMWRITE_WEBP_QUALITY > 100
    ("ppm", lambda: _encode(".ppm"), (37, 23)),
    ("pgm", lambda: _encode(".pgm"), (37, 23)),
    ("gif", lambda: _gif(37, 23), (37, 23)),
    ("tiff big-endian", lambda: _tiff(37, 23, big_endian=True), (37, 23)),
])
def test_header_gives_the_size_opencv_would_decode(name: str, data, size) -> None:
    raw = data()
    assert image_size(io.BytesIO(raw))[1:] == size, name


@pytest.mark.parametrize(("name", "make"), [
    ("png", lambda: png_bomb()),
    ("jpeg", lambda: _patch_jpeg_sof(_encode(".jpg"), 65000, 65000)),
    ("bmp", lambda: _patch_bmp(_encode(".bmp"), 100_000, 100_000)),
    ("gif", lambda: _gif(65535, 65535)),
    ("webp", lambda: _vp8x(16000, 16000)),
    ("tiff", lambda: _tiff(100_000, 100_000)),
    ("pgm", lambda: b"P5\n# a comment\n60000 60000\n255\n" + bytes(16)),
])
def test_decompression_bombs_are_refused_from_the_header(tmp_path: Path, name: str, make) -> None:
    f = tmp_path / f"bomb.{name}"
    f.write_bytes(make())
    with pytest.raises(ImageError, match="over the limit of 50 MP"):
        check_image(f)


def test_the_74_byte_png_bomb_never_reaches_opencv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import cv2

    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_bomb())
    assert bomb.stat().st_size == 74
    decoded: list[str] = []
    real = cv2.imread
    monkeypatch.setattr(cv2, "imread", lambda p, *a: decoded.append(p) or real(p, *a))
    with pytest.raises(ImageError) as e:
        read_image(bomb)
    assert decoded == []  # refused before decoding
    msg = str(e.value)
    assert "\n" not in msg and "bomb.png" in msg and "60000x60000" in msg


@pytest.mark.parametrize(("content", "why"), [
    (b"", "unrecognised image format"),
    (b"not an image at all, just text", "unrecognised image format"),
    (b"\x89PNG\r\n\x1a\n\x00\x00", "corrupt PNG"),
    (b"\xff\xd8\xff\xe0\x00\x10JFIF", "truncated image header"),
    (b"\xff\xd8\xff\xd9", "ends before a frame header"),
])
def test_unreadable_headers_are_refused_in_one_line(tmp_path: Path, content: bytes, why: str) -> None:
    f = tmp_path / "x.png"
    f.write_bytes(content)
    with pytest.raises(ImageError, match=why) as e:
        read_image(f)
    assert "\n" not in str(e.value)


def test_a_corrupt_body_behind_a_valid_header_is_one_line_not_a_cv2_error(tmp_path: Path) -> None:
    f = tmp_path / "x.png"
    f.write_bytes(_encode(".png")[:60])  # header fine, pixel data cut short
    with pytest.raises(ImageError, match="x.png"):
        read_image(f)


def test_the_pixel_limit_is_a_setting(tmp_path: Path) -> None:
    f = tmp_path / "x.png"
    f.write_bytes(_encode(".png", 100, 100))
    assert read_image(f).shape == (100, 100, 3)
    with pytest.raises(ImageError, match="100x100"):
        read_image(f, max_pixels=9_999)


def test_the_run_flag_also_sets_opencvs_own_cap_before_cv2_loads(tmp_path: Path) -> None:
    """OpenCV reads OPENCV_IO_MAX_IMAGE_PIXELS once, at import: the run settings set it first."""
    f = tmp_path / "x.png"
    f.write_bytes(_encode(".png", 100, 100))
    code = (
        "import sys\n"
        "from edgewise.edge.apps.settings import RunSettings, run_parser\n"
        "p = run_parser('t', 't', 't')\n"
        "a = p.parse_args(['--bundle', 'b', '--source', 's', '--max-image-pixels', '5000'])\n"
        "RunSettings.from_args(a)\n"
        "assert 'cv2' not in sys.modules\n"
        "import cv2\n"
        f"try:\n    cv2.imread({str(f)!r})\n"
        "except cv2.error as e:\n    print('refused by OpenCV:', 'PIXELS' in str(e))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "OPENCV_IO_MAX_IMAGE_PIXELS"}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stderr
    assert "refused by OpenCV: True" in r.stdout
