"""The tile network, its feature model, and the good-tile memory bank built from it."""

from __future__ import annotations

from typing import Any

import numpy as np

from edgewise.edge.evaluate import unit_rows

__all__ = ["build_model", "FEATURE_LAYERS", "feature_model", "coreset", "loo_nearest_good"]


def build_model(keras: Any, tile: int = 64, width: float = 1.0) -> Any:
    """A compact grey-scale CNN: 3x3 conv/BN/ReLU6 stages with pooling, GAP, one logit.

    The output is the logit (log-odds of a defect), not a sigmoid: int8 output of a sigmoid
    saturates at 255/256 and the max over tiles then ties many parts at "1.0", while the
    logit keeps its resolution at the top where the decision is made.

    Plain 3x3 convolutions (no depthwise) because on small tiles they quantize well and
    XNNPACK's int8 kernels speed them up most. ~50k parameters at width 1.
    """
    L = keras.layers
    ch = [max(8, int(round(c * width / 8)) * 8) for c in (16, 32, 48, 64, 64)]
    inp = keras.Input((tile, tile, 1), name="tile")
    h = inp
    for i, c in enumerate(ch):
        h = L.Conv2D(c, 3, padding="same", use_bias=False, name=f"conv{i}")(h)
        h = L.BatchNormalization(momentum=0.9, name=f"bn{i}")(h)  # settles within few steps
        h = L.ReLU(6.0, name=f"relu{i}")(h)
        if i < len(ch) - 1:
            h = L.MaxPooling2D(name=f"pool{i}")(h)
    h = L.GlobalAveragePooling2D(name="gap")(h)
    h = L.Dropout(0.2, name="drop")(h)
    out = L.Dense(1, name="logit")(h)
    return keras.Model(inp, out, name=f"tile_cnn_w{width:g}")


FEATURE_LAYERS = ("relu3", "relu4")  # 8x8 and 4x4 maps of the last two stages


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

