"""``edgewise convert --normalization``: the stored input normalisation is what the device applies."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgewise.converters.cli import parse_normalization


@pytest.mark.parametrize(
    ("text", "stored"),
    [
        ("none", None),
        ("0-1", {"scale": 1 / 255, "offset": 0.0}),
        ("-1-1", {"scale": 1 / 127.5, "offset": -1.0}),
        ("0.0039215686,-0.5", {"scale": 0.0039215686, "offset": -0.5}),
    ],
)
def test_normalization_names_map_to_scale_and_offset(text: str, stored: dict | None) -> None:
    assert parse_normalization(text) == stored


@pytest.mark.parametrize("text", ["3", "0,1,2", "a,b", "0,1", "inf,0", "0-255"])
def test_bad_normalization_is_refused_with_the_accepted_forms(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="expected none, 0-1, -1-1 or SCALE,OFFSET"):
        parse_normalization(text)


def test_converted_model_sees_pixels_normalised_as_stored(tmp_path: Path) -> None:
    """Round trip: Keras model trained on x/127.5 - 1 -> convert --normalization=-1-1 -> PNG files
    through the device's classify app give the Keras answers; raw pixels would not."""
    import cv2

    from edgewise.edge.apps.classify import ClassifyApp
    from edgewise.edge.bundle import load_bundle
    from edgewise.edge.pipeline import Frame
    from edgewise.edge.sources.files import read_image
    from edgewise.train.keras_utils import tf_setup

    keras = tf_setup(0)
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(40, 16, 16, 1)).astype(np.uint8)
    x = pixels.astype(np.float32) / 127.5 - 1.0
    inp = keras.Input((16, 16, 1))
    h = keras.layers.Conv2D(4, 3, activation="relu")(inp)
    out = keras.layers.Dense(3, activation="softmax")(keras.layers.GlobalAveragePooling2D()(h))
    model = keras.Model(inp, out)  # random weights: the check is about inputs, not accuracy
    model.save(tmp_path / "m.keras")
    np.savez(tmp_path / "s.npz", x=x)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    r = subprocess.run(
        [sys.executable, "-m", "edgewise.edge.cli", "-q", "convert", str(tmp_path / "m.keras"),
         "--data", str(tmp_path / "s.npz"), "--out", str(tmp_path / "m.bundle"), "--color", "gray",
         "--variants", "tflite_float32", "--normalization=-1-1"],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    meta = json.loads((tmp_path / "m.bundle" / "bundle.json").read_text())
    assert meta["input"]["normalization"] == {"scale": 1 / 127.5, "offset": -1.0}

    bundle = load_bundle(tmp_path / "m.bundle")
    app = ClassifyApp(bundle, "tflite_float32", threads=1)
    want = model.predict(x[:8], verbose=0)
    for i in range(8):
        f = tmp_path / f"{i}.png"
        cv2.imwrite(str(f), pixels[i, :, :, 0])
        got = app.infer(app.preprocess(Frame(read_image(f, gray=True), 0.0, i, {"path": str(f)})))
        np.testing.assert_allclose(got, want[i], atol=1e-4)
    raw = model.predict(pixels[:8].astype(np.float32), verbose=0)
    assert np.abs(raw - want).max() > 1e-3  # without the stored normalisation the answers differ
