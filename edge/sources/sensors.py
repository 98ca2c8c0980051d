"""Open a vibration source from its command-line name: a recording, stdin (``-``) or an ADXL345.

The sources themselves live by job: ``recordings`` (files and their rate), ``windows``
(replay and stdin), ``adxl345`` (the live sensor).

>>> src = open_vibration_source("pump.wav", window=2048, target_fs=12000)   # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from .adxl345 import ADXL345Source
from .recordings import read_recording, to_rate
from .windows import RecordingSource, StdinSource

__all__ = ["open_vibration_source"]


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
