"""A small ONNX convolutional network rebuilt as a Keras model, weights and all, in NHWC.

Why: LiteRT's int8 kernels (XNNPACK) are where a Pi gains from quantization, and the TFLite
converter quantizes Keras models. Detectors such as YuNet ship only as ONNX (NCHW). Their op set
is small (convolutions, ReLU, pooling, nearest upsampling, additions and per-head reshapes), so
the graph is translated op by op rather than through a general converter: every op either maps
exactly or is refused by name. The caller checks parity against ONNX Runtime on real data.

``Transpose(0, 2, 3, 1)`` (NCHW -> NHWC before a head's reshape) is the identity here because
the Keras tensors are already NHWC; any other transpose is refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["SUPPORTED_OPS", "onnx_to_keras"]

SUPPORTED_OPS = ("Conv", "Relu", "MaxPool", "Resize", "Add", "Transpose", "Reshape", "Sigmoid")


def _attrs(node: Any) -> dict[str, Any]:
    import onnx

    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _conv(L: Any, x: Any, node: Any, w: np.ndarray, b: np.ndarray | None, name: str) -> Any:
    """ONNX Conv (O, I/g, kh, kw) -> Conv2D or DepthwiseConv2D with explicit or 'same' padding."""
    a = _attrs(node)
    group = int(a.get("group", 1))
    strides = tuple(a.get("strides", [1, 1]))
    pads = list(a.get("pads", [0, 0, 0, 0]))
    kh, kw = w.shape[2:]
    if tuple(a.get("dilations", [1, 1])) != (1, 1):
        raise ValueError(f"{node.name or name}: dilated convolutions are not translated")
    if pads == [0, 0, 0, 0]:
        padding = "valid"
    elif strides == (1, 1) and pads == [kh // 2, kw // 2, kh // 2, kw // 2] and kh % 2 and kw % 2:
        padding = "same"  # exactly ONNX's symmetric padding at stride 1 with odd kernels
    else:  # TF's 'same' pads stride-2 inputs asymmetrically: pad explicitly like ONNX
        x = L.ZeroPadding2D(((pads[0], pads[2]), (pads[1], pads[3])), name=f"{name}_pad")(x)
        padding = "valid"
    out_ch, in_per_group = w.shape[:2]
    use_bias = b is not None
    if group == 1:
        layer = L.Conv2D(out_ch, (kh, kw), strides=strides, padding=padding, use_bias=use_bias, name=name)
        y = layer(x)
        layer.set_weights([w.transpose(2, 3, 1, 0)] + ([b] if use_bias else []))
    elif group == out_ch and in_per_group == 1:
        layer = L.DepthwiseConv2D((kh, kw), strides=strides, padding=padding, use_bias=use_bias, name=name)
        y = layer(x)
        layer.set_weights([w.transpose(2, 3, 0, 1)] + ([b] if use_bias else []))
    else:
        raise ValueError(f"{node.name or name}: grouped convolution with {group} groups is not translated "
                         "(only ordinary and depthwise)")
    return y


def onnx_to_keras(path: str | Path, keras: Any, input_shape: tuple[int, int, int] | None = None) -> Any:
    """The ONNX model at ``path`` as a Keras model taking NHWC input; outputs in the ONNX order.

    ``input_shape`` (H, W, C) overrides the file's input size (the convolutions do not care).
    Raises ``ValueError`` naming the first op, attribute or layout it cannot translate.
    """
    import onnx
    from onnx import numpy_helper

    try:
        model = onnx.load(str(path))
    except Exception as e:  # protobuf's DecodeError and friends: not an ONNX file
        raise ValueError(f"{path}: not a readable ONNX model ({type(e).__name__})") from None
    g = model.graph
    init = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    for n in g.node:
        if n.op_type == "Constant":
            init[n.output[0]] = numpy_helper.to_array(_attrs(n)["value"])
    inputs = [i for i in g.input if i.name not in init]
    if len(inputs) != 1:
        raise ValueError(f"{path}: expected one image input, found {len(inputs)}")
    dims = [d.dim_value for d in inputs[0].type.tensor_type.shape.dim]
    if len(dims) != 4:
        raise ValueError(f"{path}: expected an NCHW image input, found shape {dims}")
    shape = input_shape or (dims[2] or None, dims[3] or None, dims[1])
    L = keras.layers
    inp = keras.Input(shape, batch_size=1, name=inputs[0].name)
    t: dict[str, Any] = {inputs[0].name: inp}
    transposed: set[str] = set()  # outputs of Transpose(0, 2, 3, 1): the only tensors reshaped
    for i, n in enumerate(g.node):
        if n.op_type == "Constant":
            continue
        if n.op_type not in SUPPORTED_OPS:
            raise ValueError(f"{path}: op {n.op_type} ({n.name or i}) is not translated; supported: "
                             f"{', '.join(SUPPORTED_OPS)}")
        name = f"n{i}_{n.op_type.lower()}"
        x = t[n.input[0]]
        a = _attrs(n)
        if n.op_type == "Conv":
            bias = init[n.input[2]] if len(n.input) > 2 and n.input[2] else None
            y = _conv(L, x, n, init[n.input[1]], bias, name)
        elif n.op_type == "Relu":
            y = L.ReLU(name=name)(x)
        elif n.op_type == "Sigmoid":
            y = L.Activation("sigmoid", name=name)(x)
        elif n.op_type == "Add":
            y = L.Add(name=name)([x, t[n.input[1]]])
        elif n.op_type == "MaxPool":
            k, s = tuple(a["kernel_shape"]), tuple(a.get("strides", [1, 1]))
            if any(a.get("pads", [0, 0, 0, 0])) or a.get("ceil_mode", 0):
                raise ValueError(f"{path}: padded or ceil-mode MaxPool ({n.name or i}) is not translated")
            y = L.MaxPooling2D(k, s, name=name)(x)
        elif n.op_type == "Resize":
            scales = init.get(n.input[2]) if len(n.input) > 2 else None
            if a.get("mode", b"nearest") != b"nearest" or scales is None or len(scales) != 4 \
                    or list(scales[:2]) != [1, 1] or scales[2] != scales[3] or scales[2] != int(scales[2]):
                raise ValueError(f"{path}: only nearest upsampling by an integer factor is translated "
                                 f"({n.name or i})")
            y = L.UpSampling2D(int(scales[2]), interpolation="nearest", name=name)(x)
        elif n.op_type == "Transpose":
            if list(a.get("perm", [])) != [0, 2, 3, 1]:
                raise ValueError(f"{path}: Transpose {a.get('perm')} ({n.name or i}) is not translated")
            y = x  # already NHWC
            transposed.add(n.output[0])
        else:  # Reshape to (1, -1, C): rows in NHWC order, as after the NCHW->NHWC transpose
            target = [int(v) for v in init[n.input[1]]]
            if n.input[0] not in transposed or len(target) != 3 or target[0] != 1 or target[1] != -1:
                raise ValueError(f"{path}: Reshape to {target} ({n.name or i}) is not translated")
            y = L.Reshape((-1, target[2]), name=name)(x)
        t[n.output[0]] = y
    outs = [t[o.name] for o in g.output]
    return keras.Model(inp, outs, name=Path(path).stem.replace("-", "_"))
