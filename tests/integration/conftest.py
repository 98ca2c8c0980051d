"""Fixtures shared by the integration tests: a real Mosquitto on a free loopback port."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[object]:
    """A started ``test_mqtt.Broker`` in its own folder under ``tmp_path``, stopped afterwards
    (the test modules that use it skip first when mosquitto is not installed)."""
    from test_mqtt import Broker  # tests/integration is on sys.path under pytest

    (tmp_path / "broker").mkdir()
    b = Broker(tmp_path / "broker")
    b.start()
    yield b
    b.stop()
