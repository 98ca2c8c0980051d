"""Tile scores and the part's score: the model's outputs, the nearest-good head, top-k.

A supervised bundle's model ends in one defect logit per tile; a good-only bundle's model
ends in tile features, scored after the model by ``NearestGood`` against a memory bank of
good training tiles. Either way the part's score is the maximum (or top-k mean) tile score,
and the coarse map of tile scores is the defect / anomaly map.

>>> image_score(np.array([0.1, 0.9, 0.7]), top_k=2)
0.8
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...bundle import Bundle, BundleError
from ...evaluate import unit_rows  # the one unit-row normaliser (cosine = dot product); re-exported

__all__ = ["image_score", "NearestGood", "unit_rows", "predict_rows", "score_tiles", "score_map", "sigmoid"]


def image_score(scores: np.ndarray, top_k: int = 1) -> float:
    """The part's score: mean of its ``top_k`` highest tile scores (top_k=1: the maximum).

    Averaging a few of the worst tiles is steadier than one tile: a single odd good tile
    moves the score less, while a real defect usually lights up the overlapping tiles too.
    """
    s = np.asarray(scores, np.float64).ravel()
    if top_k <= 1 or len(s) == 1:
        return float(s.max())
    k = min(top_k, len(s))
    return float(np.partition(s, len(s) - k)[len(s) - k :].mean())


class NearestGood:
    """Tile features -> cosine distance to the nearest good training tile (the memory bank).

    Runs in float32 after the model, whatever the model's precision. Inside an int8 model the
    normalisation and the distances (good tiles sit ~0.01 apart, the threshold near 0.04)
    would each get one 8-bit range and lose the ranking (test AUROC 0.914 float32 -> 0.798
    int8, measured). Each model variant has its own bank: the same good tiles, embedded by
    that variant. Quantization moves a tile's features by about as much as good tiles differ
    from each other, but it moves similar tiles alike, so int8 queries against an int8 bank
    keep the ranking where int8 queries against the float bank lost it (test AUROC 0.887 vs
    0.931, docs/inspect.md). The cost is one (tiles x 128) @ (128 x bank) product.
    """

    KIND = "nearest-good"

    def __init__(self, bank: np.ndarray) -> None:
        bank = np.asarray(bank, np.float32)
        if bank.ndim != 2 or len(bank) == 0 or not np.isfinite(bank).all():
            raise ValueError(f"memory bank must be a finite (n, dim) array, got shape {bank.shape}")
        self.bank = unit_rows(bank)

    def __call__(self, features: np.ndarray) -> np.ndarray:
        f = np.asarray(features, np.float32).reshape(len(features), -1)
        if f.shape[1] != self.bank.shape[1]:
            raise ValueError(f"features have {f.shape[1]} values, the memory bank {self.bank.shape[1]}")
        return (1.0 - (unit_rows(f) @ self.bank.T).max(1)).astype(np.float64)

    @classmethod
    def from_bundle(cls, bundle: Bundle, variant: str | None = None) -> NearestGood | None:
        """The head (``output.head``) for ``variant`` (default: the bundle's default variant),
        or None when the model's last output is the score."""
        head = bundle.spec.output.head
        if not head:
            return None
        if head.get("kind") != cls.KIND:
            raise BundleError(f"{bundle.path}: unknown inspection head {head.get('kind')!r}")
        name = bundle.variant(variant).name
        bank = (head.get("banks") or {}).get(name)
        if bank is None:
            raise BundleError(f"{bundle.path}: no memory bank for variant {name}")
        try:
            return cls(np.load(bundle.file(bank), allow_pickle=False))
        except (OSError, ValueError) as e:
            raise BundleError(f"{bundle.path}: memory bank {bank}: {e}") from e


def predict_rows(model: Any, x: np.ndarray, batch: int = 8) -> np.ndarray:
    """The model's outputs for every tile, one row each, computed ``batch`` tiles at a time.

    Small batches: activations of a few 64x64 tiles stay in cache, measured faster on XNNPACK
    than one batch of all tiles (and than one tile at a time).
    """
    outs = [np.asarray(model.predict(x[i : i + batch])) for i in range(0, len(x), batch)]
    return np.concatenate(outs).reshape(len(x), -1)


def score_tiles(model: Any, x: np.ndarray, batch: int = 8, head: NearestGood | None = None) -> np.ndarray:
    """Defect logit or anomaly score of every tile: the last output column, or ``head``
    applied to the outputs (features) when the bundle has one."""
    y = predict_rows(model, x, batch)
    return head(y) if head is not None else y[:, -1].astype(np.float64)


def score_map(
    scores: np.ndarray, pos: list[tuple[int, int]], shape: tuple[int, int], tile: int
) -> np.ndarray:
    """Per-pixel map: the max score of the tiles covering each pixel (the anomaly map)."""
    h, w = max(shape[0], tile), max(shape[1], tile)
    m = np.zeros((h, w), np.float32)
    for s, (y, x) in zip(scores, pos, strict=True):
        view = m[y : y + tile, x : x + tile]
        np.maximum(view, np.float32(s), out=view)
    return m[: shape[0], : shape[1]]


def sigmoid(x: np.ndarray | float) -> np.ndarray:
    """Logit -> probability (float64, clipped so it never overflows)."""
    return 1.0 / (1.0 + np.exp(-np.clip(np.asarray(x, np.float64), -60, 60)))
