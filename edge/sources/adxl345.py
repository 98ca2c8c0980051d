"""A live ADXL345 accelerometer over I2C: the register driver and a source of windows of one axis.

smbus2 is imported only when the source opens its own bus; tests pass in a bus that replays a
recorded register stream.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from ..pipeline import Frame, FrameError
from .windows import windowed

__all__ = ["ADXL345", "ADXL345Source"]


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
        max_failures: int = 100,
    ) -> None:
        if axis not in ADXL345.AXES:
            raise ValueError(f"axis must be x, y or z, got '{axis}'")
        self.window, self.hop = int(window), int(hop or window)
        self.fs = float(rate)
        self._bus, self.bus_number, self.address, self.rate = bus, bus_number, address, rate
        self.axis = ADXL345.AXES[axis]
        self.poll_s, self.max_failures = poll_s, max_failures
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

    def _blocks(self) -> Iterator[np.ndarray | FrameError]:
        fails = 0
        while True:
            try:
                block = self.dev.read_fifo()
            except OSError as e:  # an I2C glitch (loose wire, EMI): counted, retried, gap reported
                fails += 1
                if fails >= self.max_failures:
                    raise OSError(f"{self.name}: {fails} reads failed in a row: {e}") from None
                yield FrameError("source", self.name, f"I2C read failed: {e}", type(e).__name__)
                time.sleep(self.poll_s)
                continue
            fails = 0
            if block.size == 0:
                if getattr(self._bus, "exhausted", False):  # a replayed register stream ended
                    return
                time.sleep(self.poll_s)
                continue
            yield block[:, self.axis]
