"""Vibration recordings as WAV: PCM and IEEE-float files read with their rate; bad files in one line."""

from __future__ import annotations

import struct
import wave
from pathlib import Path

import numpy as np
import pytest

from edgewise.edge.sources.recordings import read_recording

SIGNAL = (0.5 * np.sin(np.arange(6000) / 7.0)).astype(np.float32)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_ieee_float_wav_is_read_with_its_rate(tmp_path: Path, dtype: str) -> None:
    wavfile = pytest.importorskip("scipy.io.wavfile")  # an independent writer of format-3 WAV
    path = tmp_path / "rec.wav"
    stereo = np.stack([SIGNAL.astype(dtype), -SIGNAL.astype(dtype)], axis=1)
    wavfile.write(path, 12000, stereo)
    rec = read_recording(path, channel="1")
    assert rec.fs == 12000.0
    np.testing.assert_allclose(rec.signal, -SIGNAL, atol=1e-7)


@pytest.mark.parametrize("width", [1, 2, 3, 4])
def test_pcm_wav_is_scaled_to_plus_minus_one(tmp_path: Path, width: int) -> None:
    path = tmp_path / "pcm.wav"
    full = 2 ** (8 * width - 1) - 1
    ints = np.round(SIGNAL.astype(np.float64) * full).astype(np.int64)
    if width == 1:
        raw = (ints + 128).astype(np.uint8).tobytes()
    else:
        raw = b"".join(int(v).to_bytes(width, "little", signed=True) for v in ints)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(width)
        w.setframerate(48000)
        w.writeframes(raw)
    rec = read_recording(path)
    assert rec.fs == 48000.0
    np.testing.assert_allclose(rec.signal, SIGNAL, atol=2.5 / full)


def _riff(fmt_tag: int, bits: int, data: bytes = b"\0" * 64) -> bytes:
    fmt = struct.pack("<HHIIHH", fmt_tag, 1, 8000, 8000 * bits // 8, bits // 8, bits)
    chunks = b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    body = b"WAVE" + chunks
    return b"RIFF" + struct.pack("<I", len(body)) + body


@pytest.mark.parametrize(("content", "message"), [
    (b"RIFF\x04\x00\x00\x00WAVE", "WAV file without a valid fmt chunk"),
    (b"not a wav at all", "not a WAV file"),
    (_riff(2, 16), "unsupported WAV encoding (format tag 2, 16-bit)"),  # ADPCM
    (_riff(3, 16), "unsupported WAV encoding (float, 16-bit)"),
])
def test_unreadable_wav_is_a_one_line_value_error(tmp_path: Path, content: bytes, message: str) -> None:
    """ValueError is what every command turns into ``edgewise <cmd>: error: <line>``."""
    bad = tmp_path / "bad.wav"
    bad.write_bytes(content)
    with pytest.raises(ValueError) as e:
        read_recording(bad)
    assert str(e.value).startswith("bad.wav: ") and message in str(e.value) and "\n" not in str(e.value)
