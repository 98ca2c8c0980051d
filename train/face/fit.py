"""Fitting: the embedding network under a CosFace head, one augmented pass over the crops per epoch."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from edgewise.edge.progress import Bar

from .augment import augment
from .calibrate import open_set_rank1, pair_auc
from .net import build_embedding_net, cosface_head
from .prep import FaceData, to_input

__all__ = ["train_embedding"]


def train_embedding(train: FaceData, val: FaceData | None = None, *, epochs: int = 90, batch: int = 32,
                    dim: int = 128, width: float = 1.0, lr: float = 3e-3, margin: float = 0.35, seed: int = 0,
                    threads: int = 2, augmentation: str = "strong", quiet: bool = False
                    ) -> tuple[Any, dict[str, list[float]]]:
    """Fit the embedding network with CosFace on ``train``; per-epoch held-out rank-1 on ``val``.

    Returns the embedding network (the head is training-only) and the per-epoch history.
    """
    from ..keras_utils import tf_setup

    keras = tf_setup(seed, threads=threads)
    size = train.x.shape[1]
    n_classes = int(train.y.max()) + 1
    net = build_embedding_net(keras, size, dim, width)
    lab = keras.Input((1,), dtype="int32", name="label")
    logits = cosface_head(keras, n_classes, dim, m=margin)([net.output, lab])
    trainer = keras.Model([net.input, lab], logits)
    steps = int(math.ceil(len(train.x) / batch))
    sched = keras.optimizers.schedules.CosineDecay(lr, decay_steps=epochs * steps, alpha=0.02,
                                                   warmup_target=None)
    # No training accuracy: the CosFace logits subtract the margin (s * m = 10.5) from the true
    # class, so their argmax is almost never right while the embedding already separates people;
    # progress is the loss and rank-1 / pair AUROC on identities never trained on.
    trainer.compile(optimizer=keras.optimizers.Adam(sched),
                    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(seed)
    hist: dict[str, list[float]] = {"loss": [], "val_rank1": [], "val_auc": []}
    with Bar(epochs, "face epochs", quiet=quiet, verbose_lines=True) as bar:
        for _ in range(epochs):
            xa = to_input(augment(train.x, rng, augmentation))
            h = trainer.fit([xa, train.y.reshape(-1, 1)], train.y, batch_size=batch, epochs=1, shuffle=True,
                            verbose=0)
            hist["loss"].append(float(h.history["loss"][0]))
            figures = {"loss": hist["loss"][-1]}
            if val is not None:
                e = net.predict(to_input(val.x), verbose=0, batch_size=256)
                hist["val_rank1"].append(open_set_rank1(e, val.y))
                hist["val_auc"].append(float(pair_auc(e, val.x, val.y)))
                figures.update(heldout_rank1=hist["val_rank1"][-1], heldout_auc=hist["val_auc"][-1])
            bar.update(1, **figures)
    return net, hist
