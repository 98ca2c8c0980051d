"""An ONNX network of YuNet's op set, rebuilt in Keras, gives ONNX Runtime's outputs; anything else
is refused by name. The networks are SYNTHETIC (random weights, random input)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
keras = pytest.importorskip("keras")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from edgewise.converters.onnx_keras import onnx_to_keras  # noqa: E402


def _w(rng: np.random.Generator, name: str, *shape: int) -> onnx.TensorProto:
    return numpy_helper.from_array(rng.normal(0, 0.3, shape).astype(np.float32), name)


def _net(tmp_path: Path, extra: list[onnx.NodeProto] | None = None) -> Path:
    """3x16x16 in: stride-2 padded conv, depthwise 3x3, 1x1, max-pool, nearest x2 upsampling + add,
    and a head transposed to NHWC, reshaped to rows and squashed by a sigmoid."""
    rng = np.random.default_rng(0)
    init = [_w(rng, "w0", 8, 3, 3, 3), _w(rng, "b0", 8), _w(rng, "w1", 8, 1, 3, 3), _w(rng, "b1", 8),
            _w(rng, "w2", 8, 8, 1, 1), _w(rng, "b2", 8), _w(rng, "w3", 4, 8, 1, 1), _w(rng, "b3", 4),
            numpy_helper.from_array(np.array([], np.float32), "roi"),
            numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales"),
            numpy_helper.from_array(np.array([1, -1, 4], np.int64), "rows")]
    nodes = [
        helper.make_node("Conv", ["x", "w0", "b0"], ["c0"], kernel_shape=[3, 3], strides=[2, 2],
                         pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c0"], ["r0"]),
        helper.make_node("Conv", ["r0", "w1", "b1"], ["c1"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=8),
        helper.make_node("Conv", ["c1", "w2", "b2"], ["c2"], kernel_shape=[1, 1]),
        helper.make_node("MaxPool", ["c2"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Resize", ["p", "roi", "scales"], ["u"], mode="nearest",
                         coordinate_transformation_mode="asymmetric", nearest_mode="floor"),
        helper.make_node("Add", ["c2", "u"], ["s"]),
        helper.make_node("Conv", ["s", "w3", "b3"], ["h"], kernel_shape=[1, 1]),
        helper.make_node("Transpose", ["h"], ["t"], perm=[0, 2, 3, 1]),
        helper.make_node("Reshape", ["t", "rows"], ["q"]),
        helper.make_node("Sigmoid", ["q"], ["y"]),
        *(extra or []),
    ]
    graph = helper.make_graph(nodes, "net",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64, 4])], init)
    path = tmp_path / "net.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)], ir_version=7), str(path))
    return path


def test_the_keras_rebuild_gives_onnx_runtime_outputs_on_nhwc_input(tmp_path: Path) -> None:
    path = _net(tmp_path)
    x = np.random.default_rng(1).uniform(0, 255, (1, 3, 16, 16)).astype(np.float32)
    ref = ort.InferenceSession(str(path)).run(None, {"x": x})[0]
    model = onnx_to_keras(path, keras)
    got = model(x.transpose(0, 2, 3, 1)).numpy()
    assert got.shape == ref.shape == (1, 64, 4)
    np.testing.assert_allclose(got, ref, atol=1e-4)


def test_an_op_outside_the_set_is_refused_by_name(tmp_path: Path) -> None:
    path = _net(tmp_path, [helper.make_node("Softmax", ["y"], ["z"])])
    with pytest.raises(ValueError, match="op Softmax .* not translated"):
        onnx_to_keras(path, keras)
