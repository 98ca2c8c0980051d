"""The model: a MobileFaceNet-like embedding network and the CosFace margin head it trains with."""

from __future__ import annotations

from typing import Any

from .prep import SIZE

__all__ = ["BN_MOMENTUM", "build_embedding_net", "cosface_head"]

# Batch-norm statistics must settle within a short training: with Keras' 0.99 the inference-time
# statistics of a few hundred steps are still near their initial values and every embedding
# collapses onto one direction.
BN_MOMENTUM = 0.9


def build_embedding_net(keras: Any, size: int = SIZE, dim: int = 128, width: float = 1.0) -> Any:
    """A compact MobileFaceNet-like network: inverted residuals, global depthwise conv, BN embedding.

    Grey ``size`` x ``size`` input (size a multiple of 16); output L2-normalized ``dim``-vector.
    """
    L = keras.layers

    def c(n: int) -> int:
        return max(8, int(round(n * width / 8)) * 8)

    def conv(h: Any, n: int, k: int, s: int, act: bool = True) -> Any:
        h = L.Conv2D(n, k, s, padding="same", use_bias=False)(h)
        h = L.BatchNormalization(momentum=BN_MOMENTUM)(h)
        return L.ReLU(6.0)(h) if act else h

    def block(h: Any, n: int, s: int, t: int = 2) -> Any:
        inp = h
        h = conv(h, int(h.shape[-1]) * t, 1, 1)
        h = L.DepthwiseConv2D(3, s, padding="same", use_bias=False)(h)
        h = L.ReLU(6.0)(L.BatchNormalization(momentum=BN_MOMENTUM)(h))
        h = conv(h, n, 1, 1, act=False)
        return L.Add()([inp, h]) if s == 1 and int(inp.shape[-1]) == n else h

    inp = keras.Input((size, size, 1), name="face")
    h = conv(inp, c(24), 3, 2)  # size/2; one cheap depthwise step to size/4 before the blocks
    h = L.DepthwiseConv2D(3, 2, padding="same", use_bias=False)(h)
    h = L.ReLU(6.0)(L.BatchNormalization(momentum=BN_MOMENTUM)(h))
    h = conv(h, c(48), 1, 1)
    for n, s, reps in ((64, 1, 2), (96, 2, 3), (128, 2, 2)):
        for r in range(reps):
            h = block(h, c(n), s if r == 0 else 1)
    h = conv(h, c(256), 1, 1)
    h = L.DepthwiseConv2D(int(h.shape[1]), 1, padding="valid", use_bias=False, name="gdconv")(h)
    h = L.BatchNormalization(momentum=BN_MOMENTUM)(h)
    h = L.Conv2D(dim, 1, use_bias=False)(h)
    # no learned shared offset: it would add the same direction to every embedding
    h = L.BatchNormalization(momentum=BN_MOMENTUM, center=False, name="embedding_bn")(L.Flatten()(h))
    out = L.UnitNormalization(name="embedding")(h)
    return keras.Model(inp, out, name="face_embed")


def cosface_head(keras: Any, n_classes: int, dim: int, s: float = 30.0, m: float = 0.35) -> Any:
    """CosFace: logits = s * (cos(theta) - m for the true class), weights L2-normalized."""
    ops = keras.ops

    class CosFace(keras.layers.Layer):
        def build(self, shapes: Any) -> None:
            self.w = self.add_weight(shape=(dim, n_classes), initializer="glorot_uniform", name="centers")

        def call(self, inputs: Any) -> Any:
            emb, y = inputs
            w = self.w / ops.sqrt(ops.sum(self.w * self.w, axis=0, keepdims=True) + 1e-12)
            cos = ops.matmul(emb, w)
            onehot = ops.one_hot(ops.cast(ops.reshape(y, (-1,)), "int32"), n_classes)
            return s * (cos - m * onehot)

    return CosFace(name="cosface")
