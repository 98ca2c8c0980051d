"""The tile network, its feature model, and the good-tile memory bank built from it."""

from __future__ import annotations

from typing import Any

import numpy as np

from edgewise.edge.evaluate import unit_rows

__all__ = ["ARCHS", "DEFAULT_ARCH", "build_model", "FEATURE_LAYERS", "feature_model", "coreset",
           "loo_nearest_good"]

ARCHS = ("fullres", "s2d")  # the first is the default
DEFAULT_ARCH = ARCHS[0]
_CHANNELS = (16, 32, 48, 64, 64)


def build_model(keras: Any, tile: int = 64, width: float = 1.0, arch: str = DEFAULT_ARCH) -> Any:
    """A compact grey-scale CNN: 3x3 conv/BN/ReLU6 stages with pooling, GAP, one logit.

    ``arch`` picks the first stage; the rest is shared (stages of 16-32-48-64-64 channels times
    ``width``, ~85k parameters at width 1, the last two stages at 1/8 and 1/16 of the tile):

    - ``s2d``: space-to-depth first (each 2x2 block of pixels becomes 4 channels of a
      half-resolution map), then the first conv on 4 channels. It sees every pixel, like a 6x6
      stride-2 conv, with the same multiply-adds as ``fullres``'s first conv. The Pi's int8
      kernels gain little on a 1-channel full-resolution conv and its pooling (about a quarter of the
      projected int8 time for 5 % of the multiply-adds); on 4 channels at half resolution they
      do, so int8 gains more over float32 on the Pi 4 and Pi 5 (figures: docs/inspect.md).
      Not yet the default: on one CI host a good-only s2d bundle scored one validation part
      on the other side of its threshold on the edge than in training (not reproduced here).
    - ``fullres`` (default): the first 3x3 conv on the 1-channel full-resolution tile, then
      max-pooling.

    The output is the logit (log-odds of a defect), not a sigmoid: int8 output of a sigmoid
    saturates at 255/256 and the max over tiles then ties many parts at "1.0", while the
    logit keeps its resolution at the top where the decision is made.

    Plain 3x3 convolutions (no depthwise) because on small tiles they quantize well and
    XNNPACK's int8 kernels speed them up most.
    """
    if arch not in ARCHS:
        raise ValueError(f"arch must be one of {', '.join(ARCHS)}, got '{arch}'")
    if arch == "s2d" and tile % 2:
        raise ValueError(f"arch s2d needs an even tile size (2x2 blocks), got {tile}")
    L = keras.layers
    ch = [max(8, int(round(c * width / 8)) * 8) for c in _CHANNELS]
    inp = keras.Input((tile, tile, 1), name="tile")
    h = inp
    pool_after = range(len(ch) - 1)  # fullres: pool after every stage but the last
    if arch == "s2d":
        h = _space_to_depth_layer(keras)(2, name="s2d")(h)
        pool_after = range(1, len(ch) - 1)  # the space-to-depth did the first halving
    for i, c in enumerate(ch):
        h = L.Conv2D(c, 3, padding="same", use_bias=False, name=f"conv{i}")(h)
        h = L.BatchNormalization(momentum=0.9, name=f"bn{i}")(h)  # settles within few steps
        h = L.ReLU(6.0, name=f"relu{i}")(h)
        if i in pool_after:
            h = L.MaxPooling2D(name=f"pool{i}")(h)
    h = L.GlobalAveragePooling2D(name="gap")(h)
    h = L.Dropout(0.2, name="drop")(h)
    out = L.Dense(1, name="logit")(h)
    suffix = "" if arch == "fullres" else f"_{arch}"  # fullres keeps its earlier name
    return keras.Model(inp, out, name=f"tile_cnn_w{width:g}{suffix}")


_S2D: dict[int, Any] = {}


def _space_to_depth_layer(keras: Any) -> Any:
    """The ``SpaceToDepth`` layer class, made once per Keras module (Keras is imported lazily).

    A layer rather than a ``Lambda`` so the model serialises; it converts to one
    SPACE_TO_DEPTH op (run by XNNPACK), where Reshape/Permute would add shape ops."""
    if id(keras) not in _S2D:

        class SpaceToDepth(keras.layers.Layer):
            """(H, W, C) -> (H/b, W/b, b*b*C): each b x b block of pixels becomes channels."""

            def __init__(self, block: int = 2, **kw: Any) -> None:
                super().__init__(**kw)
                self.block = block

            def call(self, x: Any) -> Any:
                return keras.ops.space_to_depth(x, self.block)

            def compute_output_shape(self, shape: tuple) -> tuple:
                n, h, w, c = shape
                b = self.block
                return (n, None if h is None else h // b, None if w is None else w // b, c * b * b)

            def get_config(self) -> dict[str, Any]:
                return {**super().get_config(), "block": self.block}

        _S2D[id(keras)] = keras.saving.register_keras_serializable("edgewise")(SpaceToDepth)
    return _S2D[id(keras)]


FEATURE_LAYERS = ("relu3", "relu4")  # 8x8 and 4x4 maps (64-pixel tile) of the last two stages, every arch


def feature_model(keras: Any, model: Any) -> Any:
    """Tile -> descriptor: global means of the last two ReLU maps, concatenated (128 values).

    Two depths because a small pit or crack is diluted in the 4x4 map's mean but still
    visible in the 8x8 one. Good-only bundles deploy this model; the edge's ``NearestGood``
    head turns its output into the distance to the nearest good training tile.
    Nearest-neighbour distance on the learned features ranks real defects better than the
    classifier's own logit (CutPaste and PatchCore make the same observation): the classifier
    only learned the synthetic defects, the features describe "good" as a whole.
    """
    L = keras.layers
    pooled = [L.GlobalAveragePooling2D(name=f"gap_{n}")(model.get_layer(n).output) for n in FEATURE_LAYERS]
    return keras.Model(model.input, L.Concatenate(name="features")(pooled), name=f"{model.name}_features")


def coreset(x: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """Indices of ``n`` rows of ``x`` chosen greedily so every row is near a chosen one
    (k-centre): keeps rare good textures that random sampling would drop."""
    if n >= len(x):
        return np.arange(len(x))
    first = int(np.random.default_rng(seed).integers(len(x)))
    idx = [first]
    dist = np.linalg.norm(x - x[first], axis=1)
    for _ in range(n - 1):
        i = int(np.argmax(dist))
        idx.append(i)
        np.minimum(dist, np.linalg.norm(x - x[i], axis=1), out=dist)
    return np.array(idx)


def loo_nearest_good(features: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Cosine distance of every row to the nearest *other* good row (``y == 0``).

    The parity metric of good-only bundles: each variant's features are compared with its
    own good features, as on the device, so no bank built by another variant enters it.
    """
    u = unit_rows(np.asarray(features, np.float32).reshape(len(features), -1))
    good = np.flatnonzero(np.asarray(y).ravel() == 0)
    sim = u @ u[good].T
    sim[good, np.arange(len(good))] = -np.inf  # not oneself
    return (1.0 - sim.max(1)).astype(np.float64)

