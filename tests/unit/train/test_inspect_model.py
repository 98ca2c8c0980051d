"""The tile network's architectures: each builds, keeps the feature maps good-only bundles use,
converts to an all-int8 model, and the ``--arch`` option reaches the trainer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgewise.train.inspect import cli as inspect_cli
from edgewise.train.inspect.config import InspectConfig
from edgewise.train.inspect.model import ARCHS, DEFAULT_ARCH, FEATURE_LAYERS, build_model, feature_model

keras = pytest.importorskip("keras")


@pytest.mark.parametrize("arch", ARCHS)
def test_each_arch_gives_one_logit_and_the_8x8_and_4x4_feature_maps(arch: str) -> None:
    model = build_model(keras, 64, 1.0, arch)
    x = np.random.default_rng(0).random((3, 64, 64, 1), dtype=np.float32)
    assert tuple(model(x).shape) == (3, 1)
    assert [tuple(model.get_layer(n).output.shape[1:3]) for n in FEATURE_LAYERS] == [(8, 8), (4, 4)]
    feats = np.asarray(feature_model(keras, model)(x))
    assert feats.shape == (3, 128) and np.isfinite(feats).all()


def test_s2d_keeps_every_pixel_as_channels_of_a_half_resolution_map() -> None:
    model = build_model(keras, 64, 1.0, "s2d")
    assert tuple(model.get_layer("conv0").kernel.shape) == (3, 3, 4, 16)
    assert tuple(model.get_layer("conv0").output.shape[1:3]) == (32, 32)
    x = np.arange(2 * 64 * 64, dtype=np.float32).reshape(2, 64, 64, 1)
    s2d = np.asarray(model.get_layer("s2d")(x))
    # numpy reference: channel c = 2 * dy + dx of each 2x2 block
    ref = x.reshape(2, 32, 2, 32, 2).transpose(0, 1, 3, 2, 4).reshape(2, 32, 32, 4)
    np.testing.assert_array_equal(s2d, ref)
    fullres = build_model(keras, 64, 1.0, "fullres")
    assert tuple(fullres.get_layer("conv0").kernel.shape) == (3, 3, 1, 16)
    assert tuple(fullres.get_layer("conv0").output.shape[1:3]) == (64, 64)


def test_s2d_converts_to_int8_with_no_op_left_in_float(tmp_path: Path) -> None:
    from edgewise.converters.tflite import non_int8_ops, to_tflite

    calib = np.random.default_rng(1).random((8, 64, 64, 1), dtype=np.float32)  # synthetic tiles
    path = tmp_path / "s2d_int8.tflite"
    path.write_bytes(to_tflite(build_model(keras, 64, 1.0, "s2d"), "int8", calib))
    assert non_int8_ops(str(path)) == []


def test_arch_is_checked_with_the_settings_and_selects_the_trainers_network() -> None:
    from edgewise.train.inspect.modes import trainer_for

    assert DEFAULT_ARCH == "fullres" and InspectConfig().arch == "fullres"
    with pytest.raises(ValueError, match="arch must be one of"):
        InspectConfig(arch="resnet")
    with pytest.raises(ValueError, match="even --tile"):
        InspectConfig(tile=63, arch="s2d")
    assert InspectConfig(tile=63, arch="fullres").tile == 63
    names = {a: trainer_for(InspectConfig(arch=a), quiet=True)._compiled_model(keras).name for a in ARCHS}
    assert names == {"s2d": "tile_cnn_w1_s2d", "fullres": "tile_cnn_w1"}


def test_train_inspect_arch_option_reaches_the_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[InspectConfig] = []

    def fake_train(data: Any, out: Any, cfg: InspectConfig, **kw: Any) -> dict:
        seen.append(cfg)
        return {}

    monkeypatch.setattr(inspect_cli, "load_inspection_dataset", lambda data, layout: [])
    monkeypatch.setattr(inspect_cli, "train_inspect", fake_train)
    base = ["--data", str(tmp_path), "--out", str(tmp_path / "o.bundle"), "-q"]
    assert inspect_cli.train_main(base) == 0
    assert inspect_cli.train_main([*base, "--arch", "s2d"]) == 0
    assert [c.arch for c in seen] == ["fullres", "s2d"]
    with pytest.raises(SystemExit) as e:
        inspect_cli.train_main([*base, "--arch", "vgg"])
    assert e.value.code == 2
