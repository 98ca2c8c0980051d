"""A trained tile network can be saved and reused as it is: ``--save-weights`` then
``--weights FILE --epochs 0`` (e.g. a good-only memory bank on a supervised model's features).

Tiny real runs (a few magnetic-tile parts, one epoch); what is checked is that the reused
network is the saved one, not how well it ranks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgewise.edge.bundle import load_bundle


def _train(argv: list[str]) -> int:
    from edgewise.train.inspect.cli import train_main

    return train_main([*argv, "--limit", "2", "--threads", "2", "-q"])


def test_saved_weights_are_deployed_unchanged_as_a_good_only_feature_bank(
    data_dir: Path, tmp_path: Path
) -> None:
    import tensorflow as tf

    from edgewise.train.inspect.model import build_model, feature_model

    mt = str(data_dir / "inspection" / "magnetic_tile")
    w = tmp_path / "sup.weights.h5"
    assert _train(["--data", mt, "--mode", "supervised", "--folds", "0", "--epochs", "1",
                   "--out", str(tmp_path / "sup.bundle"), "--save-weights", str(w)]) == 0
    assert w.is_file()
    assert _train(["--data", mt, "--mode", "good-only", "--weights", str(w), "--epochs", "0",
                   "--norm", "none", "--memory", "40", "--out", str(tmp_path / "good.bundle")]) == 0
    b = load_bundle(tmp_path / "good.bundle")
    assert b.config["train"]["epochs"] == 0 and b.config["train"]["weights"] == str(w)
    # the deployed float32 feature model is the saved network's, to float precision
    model = build_model(tf.keras)
    model.load_weights(w)
    x = np.random.default_rng(0).random((4, 64, 64, 1), dtype=np.float32)  # synthetic tiles
    want = feature_model(tf.keras, model)(x, training=False).numpy()
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(b.file("model_float32.tflite")))
    it.resize_tensor_input(it.get_input_details()[0]["index"], x.shape)
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    got = it.get_tensor(it.get_output_details()[0]["index"])
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_save_weights_needs_the_keras_suffix(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    with pytest.raises(SystemExit) as e:
        _train(["--data", str(data_dir / "inspection" / "magnetic_tile"), "--out", str(tmp_path / "o"),
                "--save-weights", str(tmp_path / "w.h5")])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "error: --save-weights" in err and "must end in .weights.h5" in err
