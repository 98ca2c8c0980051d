"""Vibration sources: recordings replayed, samples from stdin, an ADXL345 accelerometer over I2C.

Each source yields ``Frame`` objects whose ``data`` is one window of samples (float64) and
whose ``meta`` carries ``fs`` (Hz), ``source`` and ``t_signal`` (seconds into the signal),
so the application can refuse a window sampled at a rate its model was not trained for.

The sampling rate is never guessed: WAV files carry it in their header, every other format
(.npy, .csv, .mat, stdin) needs it passed explicitly. numpy and the standard library only;
``.mat`` needs scipy, the ADXL345 needs smbus2, both imported only when used.

>>> with RecordingSource(np.zeros(4096), fs=12000, window=2048) as src:
...     [f.data.shape for f in src]
[(2048,), (2048,)]
"""

from __future__ import annotations

import struct
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..pipeline import Frame

__all__ = [
    "Recording",
    "read_recording",
    "decimate",
    "to_rate",
    "RecordingSource",
    "StdinSource",
    "ADXL345",
    "ADXL345Source",
    "open_vibration_source",
]


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
    data = np.loadtxt(path, delimiter=sep, skiprows=1 if header else 0, ndmin=2)
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
    d = loadmat(str(path))
    ch = (channel or "DE").upper()
    keys = [k for k in d if k.endswith(f"_{ch}_time")]
    if not keys:
        have = sorted(k for k in d if not k.startswith("__"))
        raise ValueError(f"{path.name}: no '*_{ch}_time' channel (keys: {', '.join(have)})")
    return np.asarray(d[keys[0]], dtype=np.float64).ravel()


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
        arr = np.load(path, allow_pickle=False)
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


class RecordingSource:
    """Replays a signal as windows: at real-time pace (like a sensor) or as fast as possible."""

    def __init__(
        self,
        signal: np.ndarray,
        *,
        fs: float,
        window: int,
        hop: int | None = None,
        realtime: bool = False,
        loop: bool = False,
        name: str = "recording",
    ) -> None:
        self.signal = np.asarray(signal, dtype=np.float64).ravel()
        self.fs = float(fs)
        self.window, self.hop = int(window), int(hop or window)
        self.realtime, self.loop = realtime, loop
        self.name = name
        self.dropped = 0

    def __enter__(self) -> RecordingSource:
        if self.signal.size < self.window:
            raise ValueError(
                f"{self.name}: {self.signal.size} samples, shorter than one window of {self.window}"
            )
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def __iter__(self) -> Iterator[Frame]:
        i = 0
        t0 = time.monotonic()
        while True:
            for start in range(0, self.signal.size - self.window + 1, self.hop):
                end = start + self.window
                if self.realtime:  # a sensor delivers the window when its last sample arrives
                    delay = t0 + (i * self.hop + self.window) / self.fs - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                yield Frame(
                    self.signal[start:end].copy(),
                    time.monotonic(),
                    i,
                    {"source": self.name, "fs": self.fs, "t_signal": round(start / self.fs, 6)},
                )
                i += 1
            if not self.loop:
                return


class StdinSource:
    """Samples from standard input (one number per line, or raw little-endian float32)."""

    def __init__(
        self, *, fs: float, window: int, hop: int | None = None, fmt: str = "text", stream: Any = None
    ) -> None:
        if fs is None or fs <= 0:
            raise ValueError("stdin carries no sampling rate; pass it explicitly (--fs HZ)")
        if fmt not in ("text", "f32le"):
            raise ValueError(f"stdin format must be 'text' or 'f32le', got '{fmt}'")
        self.fs, self.window, self.hop, self.fmt = float(fs), int(window), int(hop or window), fmt
        self.stream = stream
        self.name = "stdin"
        self.dropped = 0
        self.bad_lines = 0

    def __enter__(self) -> StdinSource:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def _samples(self) -> Iterator[np.ndarray]:
        if self.fmt == "f32le":
            f = self.stream or sys.stdin.buffer
            while chunk := f.read(4 * 1024):
                usable = len(chunk) - len(chunk) % 4
                yield np.frombuffer(chunk[:usable], "<f4").astype(np.float64)
            return
        f = self.stream or sys.stdin
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:  # a non-numeric line becomes NaN: the app reports the window and goes on
                v = float(line.split(",")[0])
            except ValueError:
                self.bad_lines += 1
                v = float("nan")
            yield np.array([v])

    def __iter__(self) -> Iterator[Frame]:
        return windowed(self._samples(), self.window, self.hop, self.fs, self.name)


class ADXL345:
    """Minimal ADXL345 driver over an smbus2-like bus (read_byte_data / write_byte_data /
    read_i2c_block_data), FIFO in stream mode, full resolution (3.9 mg/LSB), +-16 g.

    The bus is passed in, so tests drive the driver with a recorded register stream.
    """

    DEVID, BW_RATE, POWER_CTL, DATA_FORMAT, DATAX0, FIFO_CTL, FIFO_STATUS = (
        0x00,
        0x2C,
        0x2D,
        0x31,
        0x32,
        0x38,
        0x39,
    )
    DEVICE_ID = 0xE5
    RATES = {3200: 0x0F, 1600: 0x0E, 800: 0x0D, 400: 0x0C, 200: 0x0B, 100: 0x0A}
    G_PER_LSB = 0.0039
    AXES = {"x": 0, "y": 1, "z": 2}

    def __init__(self, bus: Any, address: int = 0x53, rate: int = 3200) -> None:
        if rate not in self.RATES:
            raise ValueError(f"ADXL345 rate must be one of {sorted(self.RATES)} Hz, got {rate}")
        self.bus, self.address, self.rate = bus, address, rate

    def setup(self) -> None:
        dev = self.bus.read_byte_data(self.address, self.DEVID)
        if dev != self.DEVICE_ID:
            raise OSError(f"no ADXL345 at 0x{self.address:02x} (device id 0x{dev:02x}, expected 0xe5)")
        self.bus.write_byte_data(self.address, self.POWER_CTL, 0x00)  # standby while configuring
        self.bus.write_byte_data(self.address, self.BW_RATE, self.RATES[self.rate])
        self.bus.write_byte_data(self.address, self.DATA_FORMAT, 0x0B)  # full res, +-16 g
        self.bus.write_byte_data(self.address, self.FIFO_CTL, 0x80 | 16)  # stream mode
        self.bus.write_byte_data(self.address, self.POWER_CTL, 0x08)  # measure

    def available(self) -> int:
        return self.bus.read_byte_data(self.address, self.FIFO_STATUS) & 0x3F

    def read_sample(self) -> np.ndarray:
        raw = bytes(self.bus.read_i2c_block_data(self.address, self.DATAX0, 6))
        return np.frombuffer(raw, "<i2").astype(np.float64) * self.G_PER_LSB

    def read_fifo(self) -> np.ndarray:
        """All samples waiting in the FIFO, (n, 3) in g."""
        n = self.available()
        return np.array([self.read_sample() for _ in range(n)]).reshape(n, 3)

    def standby(self) -> None:
        self.bus.write_byte_data(self.address, self.POWER_CTL, 0x00)


class ADXL345Source:
    """Windows of one axis (g) from an ADXL345, polled through its FIFO."""

    def __init__(
        self,
        *,
        window: int,
        hop: int | None = None,
        bus: Any = None,
        bus_number: int = 1,
        address: int = 0x53,
        rate: int = 3200,
        axis: str = "z",
        poll_s: float = 0.002,
    ) -> None:
        if axis not in ADXL345.AXES:
            raise ValueError(f"axis must be x, y or z, got '{axis}'")
        self.window, self.hop = int(window), int(hop or window)
        self.fs = float(rate)
        self._bus, self.bus_number, self.address, self.rate = bus, bus_number, address, rate
        self.axis = ADXL345.AXES[axis]
        self.poll_s = poll_s
        self.name = f"adxl345:{bus_number}:0x{address:02x}"
        self.dropped = 0
        self._own_bus = False
        self.dev: ADXL345 | None = None

    def __enter__(self) -> ADXL345Source:
        if self._bus is None:
            try:
                from smbus2 import SMBus
            except ImportError:
                raise ImportError("the ADXL345 source needs smbus2: pip install 'edgewise[pi]'") from None
            try:
                self._bus = SMBus(self.bus_number)
            except (OSError, FileNotFoundError) as e:
                raise OSError(f"cannot open I2C bus {self.bus_number}: {e}") from None
            self._own_bus = True
        self.dev = ADXL345(self._bus, self.address, self.rate)
        self.dev.setup()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.dev is not None:
            try:
                self.dev.standby()
            except OSError:
                pass
        if self._own_bus and self._bus is not None:
            self._bus.close()

    def __iter__(self) -> Iterator[Frame]:
        assert self.dev is not None, "use ADXL345Source as a context manager"
        return windowed(self._blocks(), self.window, self.hop, self.fs, self.name)

    def _blocks(self) -> Iterator[np.ndarray]:
        while True:
            block = self.dev.read_fifo()
            if block.size == 0:
                if getattr(self._bus, "exhausted", False):  # a replayed register stream ended
                    return
                time.sleep(self.poll_s)
                continue
            yield block[:, self.axis]


def windowed(
    chunks: Iterator[np.ndarray], window: int, hop: int, fs: float, name: str
) -> Iterator[Frame]:
    """Cut a stream of sample chunks into overlapping windows, stamped when each completes."""
    buf = np.empty(0)
    consumed = 0
    i = 0
    for chunk in chunks:
        buf = np.concatenate([buf, chunk])
        while buf.size >= window:
            yield Frame(
                buf[:window].copy(),
                time.monotonic(),
                i,
                {"source": name, "fs": fs, "t_signal": round(consumed / fs, 6)},
            )
            i += 1
            buf = buf[hop:]
            consumed += hop


def open_vibration_source(
    spec: str,
    *,
    window: int,
    hop: int | None = None,
    fs: float | None = None,
    channel: str | None = None,
    realtime: bool = False,
    target_fs: float | None = None,
    stdin_format: str = "text",
) -> Any:
    """``-`` (stdin), ``adxl345[:BUS[:ADDR]]`` or a recording file; recordings are brought to
    ``target_fs`` by integer decimation when their rate differs."""
    if spec == "-":
        return StdinSource(fs=fs, window=window, hop=hop, fmt=stdin_format)  # type: ignore[arg-type]
    if spec.startswith("adxl345"):
        parts = spec.split(":")
        bus = int(parts[1]) if len(parts) > 1 and parts[1] else 1
        addr = int(parts[2], 0) if len(parts) > 2 else 0x53
        rate = int(fs) if fs else 3200
        return ADXL345Source(
            window=window, hop=hop, bus_number=bus, address=addr, rate=rate, axis=(channel or "z").lower()
        )
    rec = read_recording(spec, fs=fs, channel=channel)
    if target_fs is not None:
        rec = to_rate(rec, target_fs)
    return RecordingSource(rec.signal, fs=rec.fs, window=window, hop=hop, realtime=realtime, name=rec.name)
