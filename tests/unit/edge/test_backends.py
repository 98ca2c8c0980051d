"""One Model interface: quantization handled inside, bad input and bad files refused clearly."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgewise.edge import BundleError, load_bundle, load_model, open_model


def test_int8_model_takes_and_returns_float(digits_bundle: Path) -> None:
    b = load_bundle(digits_bundle)
    x = np.load(b.file("eval/x.npy"))[:8]
    with load_model(b, "tflite_int8", threads=1) as m:
        assert m.input_dtype == np.int8
        y = m.predict(x)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.sum(axis=1), 1.0, atol=0.05)  # softmax survives dequantization


def test_batch_size_changes_are_handled(digits_bundle: Path) -> None:
    b = load_bundle(digits_bundle)
    x = np.load(b.file("eval/x.npy"))
    with load_model(b, "tflite_float32") as m:
        one = m.predict(x[:1])
        many = m.predict(x[:7])
        again = m.predict(x[:1])
    np.testing.assert_allclose(one, many[:1], atol=1e-6)
    np.testing.assert_allclose(one, again, atol=1e-6)


@pytest.mark.parametrize("variant", ["tflite_int8", "onnx_float32"])
def test_wrong_shape_is_refused_with_both_shapes(digits_bundle: Path, variant: str) -> None:
    b = load_bundle(digits_bundle)
    msg = r"input shape \(1, 9, 9, 1\) does not match"
    with load_model(b, variant) as m, pytest.raises(ValueError, match=msg):
        m.predict(np.zeros((1, 9, 9, 1), np.float32))


def test_nan_input_is_refused(digits_bundle: Path) -> None:
    b = load_bundle(digits_bundle)
    x = np.zeros((1, 8, 8, 1), np.float32)
    x[0, 3, 3, 0] = np.nan
    with load_model(b, "tflite_float32") as m, pytest.raises(ValueError, match="NaN"):
        m.predict(x)


@pytest.mark.parametrize("suffix", [".tflite", ".onnx"])
def test_corrupt_model_file_is_refused_naming_it(tmp_path: Path, suffix: str) -> None:
    p = tmp_path / f"broken{suffix}"
    p.write_bytes(b"this is not a model" * 10)
    with pytest.raises(ValueError, match=rf"broken\{suffix}: not a loadable"):
        open_model(p)


def test_missing_model_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="model file not found"):
        open_model(tmp_path / "gone.tflite")


def test_quantization_in_bundle_json_must_match_the_model(digits_bundle: Path, tmp_path: Path) -> None:
    import shutil

    dst = Path(shutil.copytree(digits_bundle, tmp_path / "b"))
    meta = json.loads((dst / "bundle.json").read_text())
    meta["variants"]["tflite_int8"]["input_quantization"]["scale"] *= 2
    (dst / "bundle.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError, match="input quantization .* does not match bundle.json"):
        load_model(load_bundle(dst), "tflite_int8")


def test_edge_runtime_runs_a_bundle_without_tensorflow(digits_bundle: Path) -> None:
    """In a fresh interpreter: load, run every variant and the pipeline; TF never imported."""
    code = f"""
import sys, numpy as np
from edgewise.edge import load_bundle, load_model
from edgewise.edge.apps.classify import ClassifyApp
from edgewise.edge.pipeline import Frame, Runner
b = load_bundle({str(digits_bundle)!r})
x = np.load(b.file("eval/x.npy"))[:4]
for name in b.variants:
    load_model(b, name, threads=1).predict(x)
class Src:
    name, dropped = "mem", 0
    def __enter__(self): return self
    def __exit__(self, *a): pass
    def __iter__(self):
        for i in range(3):
            yield Frame((x[i, ..., 0] * 255).astype(np.uint8), 0.0, i)
stats = Runner(ClassifyApp(b, "tflite_int8")).run(Src())
assert stats.events == 3, stats
assert "tensorflow" not in sys.modules, "tensorflow was imported"
print("ok")
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip().endswith("ok")
