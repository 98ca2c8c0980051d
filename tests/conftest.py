"""Shared fixtures: where the public datasets are, and tiny real models trained once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def find_data() -> Path | None:
    """``$EDGEWISE_DATA``, else the ``shared/data`` folder beside the repository."""
    env = os.environ.get("EDGEWISE_DATA")
    if env and Path(env).is_dir():
        return Path(env)
    cand = REPO.parent / "shared" / "data"
    return cand if cand.is_dir() else None


@pytest.fixture(scope="session")
def data_dir() -> Path:
    d = find_data()
    if d is None:
        pytest.skip("public datasets absent: set EDGEWISE_DATA or place shared/data beside the repo")
    return d


@pytest.fixture(scope="session")
def digits_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The digits CNN (real scikit-learn digits) trained for a few seconds, all six variants."""
    from edgewise.train.classify import train_digits

    out = tmp_path_factory.mktemp("digits") / "digits.bundle"
    train_digits(out, epochs=15, quiet=True)
    return out


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The edgewise wheel, built once (deploy, fleet and image ship it)."""
    from edgewise.edge.device.wheel import build_wheel

    return build_wheel(tmp_path_factory.mktemp("wheel"))


@pytest.fixture(scope="session")
def two_bundles(digits_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The digits bundle, and a copy with one extra (sealed) file: two distinct releases."""
    import shutil

    from edgewise.edge.bundle import reopen

    b2 = tmp_path_factory.mktemp("b2") / "digits-v2.bundle"
    shutil.copytree(digits_bundle, b2)
    w = reopen(b2)
    w.add_bytes("notes/v2.txt", b"second release\n")
    w.finish()
    return digits_bundle, b2


@pytest.fixture
def broker(tmp_path: Path):
    """A real Mosquitto on a free loopback port in its own folder under ``tmp_path``, stopped
    afterwards (``tests/integration/test_mqtt.Broker``; the modules that use it skip first when
    mosquitto is not installed)."""
    from test_mqtt import Broker  # tests/integration is on sys.path when its modules are collected

    (tmp_path / "broker").mkdir()
    b = Broker(tmp_path / "broker")
    b.start()
    yield b
    b.stop()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark tests by what they need, so ``-m "not realdata"`` and ``-m "not integration"`` work.

    A test that uses the datasets (the ``data_dir`` fixture, directly or through another
    fixture) is ``realdata``; a test under ``tests/integration`` is ``integration``.
    """
    integration = Path(__file__).resolve().parent / "integration"
    for item in items:
        if "data_dir" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.realdata)
        if integration in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.integration)
