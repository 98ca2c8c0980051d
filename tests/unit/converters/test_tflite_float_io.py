"""int8 with float input and outputs (the converted face detector's form): quantized inside,
float at the boundary, and still counted as int8 by the Pi projection. SYNTHETIC model and data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from edgewise.converters.tflite import non_int8_ops, to_tflite  # noqa: E402
from edgewise.edge.backends import open_model  # noqa: E402
from edgewise.edge.device.project.cli import _model_precision  # noqa: E402


def _model() -> object:
    inp = keras.Input((16, 16, 3), batch_size=1)
    h = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inp)
    return keras.Model(inp, keras.layers.Conv2D(4, 1)(h))


@pytest.mark.parametrize("float_io", [False, True])
def test_int8_files_count_as_int8_whatever_their_boundary(tmp_path: Path, float_io: bool) -> None:
    calib = np.random.default_rng(0).uniform(0, 255, (20, 16, 16, 3)).astype(np.float32)
    path = tmp_path / "m.tflite"
    path.write_bytes(to_tflite(_model(), "int8", calib, float_io=float_io))
    with open_model(path) as m:
        assert (m.input_dtype == np.float32) is float_io
        assert m.predict(calib[:1]).shape == (1, 16, 16, 4)
    assert non_int8_ops(str(path)) == []
    assert _model_precision(path) == "int8"
    f32 = tmp_path / "f.tflite"
    f32.write_bytes(to_tflite(_model(), "float32"))
    assert _model_precision(f32) == "float32"
