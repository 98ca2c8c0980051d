"""The reject gate: a GPIO output pulsed once per FAIL part.

gpiozero is optional (the ``pi`` extra) and imported only when a pin is asked for, so the
application runs on any machine without it; asking for a pin without it is one error line.
"""

from __future__ import annotations

from typing import Any

__all__ = ["open_reject_pin"]


def open_reject_pin(pin: int) -> Any:
    """A gpiozero output for the reject gate; one-line errors when gpiozero or the GPIO is missing.

    Off a Pi gpiozero warns once per pin library it tries and then raises: the warnings are
    collected into the one error line instead of being printed.
    """
    import warnings

    if not 0 <= pin <= 27:
        raise ValueError(f"--gpio-pin {pin}: a Raspberry Pi BCM pin is 0..27")
    try:
        from gpiozero import DigitalOutputDevice
        from gpiozero.exc import GPIOZeroError
    except ImportError:
        raise ImportError("--gpio-pin needs gpiozero: pip install 'edgewise[pi]'") from None
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        try:
            return DigitalOutputDevice(pin, active_high=True, initial_value=False)
        except (GPIOZeroError, OSError, RuntimeError) as e:
            tried = "".join(f"; {w.message}" for w in seen)
            raise OSError(f"--gpio-pin {pin}: no usable GPIO on this machine ({e}{tried})") from None
