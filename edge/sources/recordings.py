"""Vibration recordings read from files, and brought to the rate a model was trained at.

``read_recording`` reads .wav / .npy / .csv / .mat (CWRU layout) into a ``Recording``; ``to_rate``
decimates it by an integer factor. The sampling rate is never guessed: WAV files carry it in
their header, every other format needs it passed explicitly. numpy and the standard library
only; ``.mat`` needs scipy, imported only when one is read.

>>> rec = read_recording("pump.wav")                     # doctest: +SKIP
>>> to_rate(rec, 12000).fs                               # doctest: +SKIP
12000.0
"""

from __future__ import annotations

import struct
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Recording", "read_recording", "decimate", "to_rate"]


@dataclass
class Recording:
    """One signal with its sampling rate (Hz), a label and where it came from."""

    name: str
    signal: np.ndarray
    fs: float
    label: str = "unknown"
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return len(self.signal) / self.fs


def _need_fs(path: Path, fs: float | None) -> float:
    if fs is None or fs <= 0:
        raise ValueError(f"{path.name}: this format carries no sampling rate; pass it explicitly (--fs HZ)")
    return float(fs)


_WAV_PCM, _WAV_FLOAT, _WAV_EXTENSIBLE = 1, 3, 0xFFFE


def _wav_chunks(raw: bytes, name: str) -> tuple[bytes, memoryview]:
    """The ``fmt `` and ``data`` chunks of a RIFF/WAVE file (other chunks are skipped)."""
    if len(raw) < 12 or raw[:4] not in (b"RIFF", b"RF64") or raw[8:12] != b"WAVE":
        raise ValueError(f"{name}: not a WAV file (no RIFF/WAVE header)")
    view, pos, fmt, data = memoryview(raw), 12, None, None
    while pos + 8 <= len(raw):
        cid, size = raw[pos : pos + 4], int.from_bytes(raw[pos + 4 : pos + 8], "little")
        if cid == b"data" and (size == 0xFFFFFFFF or pos + 8 + size > len(raw)):
            size = len(raw) - pos - 8  # RF64 or a recorder that never patched the size: up to the end
        body = view[pos + 8 : pos + 8 + size]
        if cid == b"fmt ":
            fmt = bytes(body)
        elif cid == b"data":
            data = body
        pos += 8 + size + (size & 1)
    if fmt is None or len(fmt) < 16:
        raise ValueError(f"{name}: WAV file without a valid fmt chunk")
    if data is None:
        raise ValueError(f"{name}: WAV file without a data chunk")
    return fmt, data


def _read_wav(path: Path, channel: int) -> tuple[np.ndarray, float]:
    """PCM (8/16/24/32-bit) or IEEE float (32/64-bit) WAV, plain or WAVE_FORMAT_EXTENSIBLE.

    Parsed from the RIFF chunks with numpy: the standard library's ``wave`` reads PCM only,
    and data loggers and audio tools often write float32 WAV. Integer samples are scaled to
    [-1, 1), float samples are kept as written.
    """
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ValueError(f"{path}: cannot read ({e.strerror or e})") from None
    fmt, data = _wav_chunks(raw, path.name)
    tag, n_ch, rate, _, block, _ = struct.unpack("<HHIIHH", fmt[:16])
    if tag == _WAV_EXTENSIBLE and len(fmt) >= 26:
        tag = int.from_bytes(fmt[24:26], "little")  # the sub-format GUID starts with the format tag
    width = block // n_ch if n_ch else 0
    if n_ch < 1 or rate <= 0 or width < 1:
        raise ValueError(f"{path.name}: corrupt WAV header ({n_ch} channels, {rate} Hz, block {block})")
    buf = data[: len(data) // block * block]
    if tag == _WAV_FLOAT and width in (4, 8):
        values, full = np.frombuffer(buf, "<f4" if width == 4 else "<f8").astype(np.float64), 1.0
    elif tag == _WAV_PCM and width == 3:  # 24-bit PCM: sign-extend to int32
        b = np.frombuffer(buf, np.uint8).reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        values, full = np.where(v >= 1 << 23, v - (1 << 24), v).astype(np.float64), float(1 << 23)
    elif tag == _WAV_PCM and width in (1, 2, 4):
        values = np.frombuffer(buf, {1: np.uint8, 2: "<i2", 4: "<i4"}[width]).astype(np.float64)
        if width == 1:
            values -= 128.0
        full = float(1 << (8 * width - 1))
    else:
        kind = {_WAV_PCM: "PCM", _WAV_FLOAT: "float"}.get(tag, f"format tag {tag}")
        raise ValueError(f"{path.name}: unsupported WAV encoding ({kind}, {8 * width}-bit); "
                         "expected PCM 8/16/24/32-bit or float 32/64-bit")
    values = values.reshape(-1, n_ch)
    if not 0 <= channel < n_ch:
        raise ValueError(f"{path.name}: channel {channel} out of range (file has {n_ch})")
    return values[:, channel] / full, float(rate)


def _read_csv(path: Path, channel: str | None) -> np.ndarray:
    with open(path, encoding="utf-8") as f:
        first = f.readline()
    sep = "," if "," in first else None
    cells = [c.strip() for c in (first.split(sep) if sep else first.split())]
    header = None
    try:
        [float(c) for c in cells]
    except ValueError:
        header = cells
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "input contained no data": refused below
            data = np.loadtxt(path, delimiter=sep, skiprows=1 if header else 0, ndmin=2)
    except ValueError as e:
        raise ValueError(f"{path.name}: not a numeric CSV ({str(e)[:80]})") from None
    if data.size == 0:
        raise ValueError(f"{path.name}: recording is empty")
    col = 0
    if channel is not None:
        if header and channel in header:
            col = header.index(channel)
        elif channel.isdigit():
            col = int(channel)
        else:
            raise ValueError(f"{path.name}: no column '{channel}' (columns: {header or data.shape[1]})")
    if col >= data.shape[1]:
        raise ValueError(f"{path.name}: column {col} out of range ({data.shape[1]} columns)")
    return data[:, col]


def _read_mat(path: Path, channel: str | None) -> np.ndarray:
    try:
        from scipy.io import loadmat
    except ImportError:
        raise ImportError(f"{path.name}: reading .mat needs scipy (pip install scipy)") from None
    try:
        d = loadmat(str(path))
    except Exception as e:  # scipy raises ValueError, TypeError, OSError ... for damaged files
        raise ValueError(f"{path.name}: not a readable MATLAB file ({type(e).__name__}: "
                         f"{str(e)[:80]})") from None
    ch = (channel or "DE").upper()
    keys = [k for k in d if k.endswith(f"_{ch}_time")]
    if not keys:
        have = sorted(k for k in d if not k.startswith("__"))
        raise ValueError(f"{path.name}: no '*_{ch}_time' channel (keys: {', '.join(have)})")
    try:
        return np.asarray(d[keys[0]], dtype=np.float64).ravel()
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path.name}: channel {keys[0]} is not numeric ({str(e)[:60]})") from None


def read_recording(path: str | Path, *, fs: float | None = None, channel: str | None = None) -> Recording:
    """Read .wav / .npy / .csv / .mat (CWRU layout) into a ``Recording`` with its rate.

    WAV: rate from the header (a different ``fs`` is an error). Others: ``fs`` required.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such recording")
    suf = path.suffix.lower()
    if suf == ".wav":
        sig, rate = _read_wav(path, int(channel) if channel and channel.isdigit() else 0)
        if fs is not None and not np.isclose(fs, rate):
            raise ValueError(f"{path.name}: WAV header says {rate:g} Hz, but --fs {fs:g} was given")
        fs = rate
    elif suf == ".npy":
        fs = _need_fs(path, fs)
        try:
            arr = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:
            raise ValueError(f"{path.name}: not a readable .npy array ({str(e)[:80]})") from None
        if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "biuf":
            raise ValueError(f"{path.name}: expected a numeric .npy array, found "
                             f"{getattr(arr, 'dtype', type(arr).__name__)}")
        if arr.ndim == 2:
            col = int(channel) if channel and channel.isdigit() else 0
            arr = arr[:, col] if arr.shape[0] >= arr.shape[1] else arr[col]
        sig = np.asarray(arr, dtype=np.float64).ravel()
    elif suf in (".csv", ".txt"):
        fs = _need_fs(path, fs)
        sig = _read_csv(path, channel)
    elif suf == ".mat":
        fs = _need_fs(path, fs)
        sig = _read_mat(path, channel)
    else:
        raise ValueError(f"{path.name}: unknown recording type '{suf}' (expected .wav .npy .csv .mat)")
    if sig.size == 0:
        raise ValueError(f"{path.name}: recording is empty")
    return Recording(path.stem, sig, float(fs), meta={"path": str(path), "channel": channel})


def _lowpass_taps(q: int, taps_per_phase: int = 16) -> np.ndarray:
    """Windowed-sinc low-pass for decimation by ``q`` (cut-off 0.9 x the new Nyquist)."""
    n = taps_per_phase * q * 2 + 1
    t = np.arange(n) - (n - 1) / 2
    fc = 0.9 / (2 * q)  # cycles per input sample
    h = 2 * fc * np.sinc(2 * fc * t) * np.blackman(n)
    return h / h.sum()


def decimate(x: np.ndarray, q: int) -> np.ndarray:
    """Low-pass filter and keep every ``q``-th sample (zero-phase: 'same' convolution).

    Everything above 0.9 x the new Nyquist is attenuated, so features should stay below that
    (the vibration features stop at 5 kHz for a 12 kHz target).
    """
    if q == 1:
        return np.asarray(x, dtype=np.float64)
    if q < 1:
        raise ValueError(f"decimation factor must be a positive integer, got {q}")
    y = np.convolve(np.asarray(x, dtype=np.float64), _lowpass_taps(q), mode="same")
    return y[::q]


def to_rate(rec: Recording, target_fs: float) -> Recording:
    """The recording at ``target_fs``: unchanged, or decimated by an integer factor; else an error."""
    if np.isclose(rec.fs, target_fs):
        return rec
    q = rec.fs / target_fs
    if q < 1 or not np.isclose(q, round(q)):
        raise ValueError(
            f"{rec.name}: sampled at {rec.fs:g} Hz, cannot bring it to {target_fs:g} Hz "
            "(only integer decimation is supported)"
        )
    meta = {**rec.meta, "resampled_from_hz": rec.fs}
    return Recording(rec.name, decimate(rec.signal, int(round(q))), float(target_fs), rec.label, meta)
