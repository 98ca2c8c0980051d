"""Train a tile defect model for visual inspection, pick a recall-first threshold, write a bundle.

Two modes, one tiling (``edgewise.edge.apps.inspect``, the code the device runs):

- ``supervised``: a compact grey-scale CNN on fixed-size crops at a fixed scale, centred on
  defects (from the masks) plus random crops of good regions, class-weighted loss,
  augmentation (flips, 90-degree rotations, brightness/contrast). Whole images are never
  resized to a fixed size, so a 13-pixel blowhole stays 13 (or 6 at scale 0.5) pixels.
- ``good-only``: the same network trained as a CutPaste/DRAEM-style classifier of good tiles
  against synthetic defects made to resemble the real kinds (pits, thin jagged cracks, broken
  and frayed edges, foreign texture through noise masks, smoothed "uneven" regions, cut-paste
  patches, shading blotches), with the good training tiles it scores highest fed back as
  negatives (hard-negative mining over good parts only). No real defect is used for training,
  model selection or the threshold.

At inference every image is tiled (optionally after per-image intensity normalisation); the
image score is the maximum (or top-k mean) tile score and the tile scores form the anomaly
map. Supervised: the threshold is chosen on the validation split for a target recall (default
0.98) using the deployed int8 model, and stored with the precision it implies. Good-only: the
threshold is set for a false-alarm rate (default 0.05) on the good validation parts alone;
the recall and precision it implies on the validation defects are reported, never used.
The report (learning curves, confusion matrix, ROC/PR, recall per defect kind, worst
mistakes, heat-map overlays, metrics.json) is always written into the bundle's ``report/``.

>>> # edgewise train inspect --data DATA/inspection/magnetic_tile --mode supervised --out mt.bundle
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgewise.edge.apps.inspect import (
    NearestGood,
    TileConfig,
    condition,
    image_score,
    make_tiles,
    overlay,
    predict_rows,
    prepare_part,
    score_tiles,
    unit_rows,
)
from edgewise.edge.metrics import auroc, threshold_for_false_alarm, threshold_for_recall
from edgewise.edge.progress import Bar, debug, log
from edgewise.edge.sources.files import read_image

from .data.magnetic_tile import (
    GOOD,
    FolderLayout,
    Sample,
    describe,
    load_inspection_dataset,
    read_sample,
    split_samples,
)
from .report import figure_png, plot_png

__all__ = [
    "InspectConfig",
    "build_model",
    "sample_crops",
    "augment",
    "synthetic_defect",
    "operating_point",
    "image_scores",
    "train_inspect",
    "train_main",
    "demo",
    "make_synthetic_dataset",
]

MODES = ("supervised", "good-only")
MEMORY_FILE = "memory_{variant}.npy"  # good-only: each variant's features of the bank's tiles


@dataclass
class InspectConfig:
    """Training settings; stored in the bundle next to the tiling so a run can be repeated."""

    mode: str = "supervised"
    tile: int = 64
    stride: int = 32
    scale: float = 0.5
    norm: str = "none"  # "image": per-image intensity normalisation before tiling
    top_k: int = 1  # image score = mean of the top-k tile scores
    width: float = 1.0
    rotate: bool = True  # 90-degree rotations in augmentation (False: flips only, keep orientation)
    epochs: int = 30
    batch: int = 64
    lr: float = 2e-3
    defect_crops: int = 8  # per defective training image and epoch
    good_crops: int = 4  # per good training image and epoch
    hard_negatives: int = 1500  # good tiles the model scores highest, re-fed as negatives
    mine_every: int = 3  # epochs between hard-negative mining passes (supervised)
    recall: float = 0.98
    false_alarm: float = 0.05  # good-only: threshold for this false-alarm rate on good validation parts
    seed: int = 0
    threads: int = 2
    limit: int | None = None  # at most this many images per kind and split part (tests)
    variants: list[str] = field(default_factory=lambda: ["tflite_float32", "tflite_int8"])
    weights: str | None = None
    memory: int = 4000  # good-only: good training tiles kept for the nearest-neighbour score (0: logit)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got '{self.mode}'")
        if not 0 < self.recall <= 1:
            raise ValueError(f"recall target must be in (0, 1], got {self.recall}")
        if not 0 < self.false_alarm < 1:
            raise ValueError(f"false-alarm rate must be in (0, 1), got {self.false_alarm}")
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if self.memory < 0:
            raise ValueError(f"memory must be >= 0 tiles, got {self.memory}")

    @property
    def knn(self) -> bool:
        """Good-only parts scored by nearest-neighbour distance to good tiles (not the logit)."""
        return self.mode == "good-only" and self.memory > 0

    @property
    def tiling(self) -> TileConfig:
        return TileConfig(
            tile=self.tile, stride=self.stride, scale=self.scale, norm=self.norm, top_k=self.top_k
        )


# ---------------------------------------------------------------------------- model


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


# ---------------------------------------------------------------------------- crops


def _pad(img: np.ndarray, t: int) -> np.ndarray:
    import cv2

    h, w = img.shape[:2]
    if h >= t and w >= t:
        return img
    return cv2.copyMakeBorder(img, 0, max(0, t - h), 0, max(0, t - w), cv2.BORDER_REFLECT_101)


def sample_crops(
    images: list[tuple[np.ndarray, np.ndarray, int]],
    cfg: InspectConfig,
    rng: np.random.Generator,
    defect_crops: int | None = None,
    good_crops: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Fixed-size uint8 crops and labels: centred (with jitter) on defect pixels, or random
    crops of regions without defect pixels (from good parts and from defect-free regions
    of defective parts). A defective image whose mask is empty gives random crops labelled
    defective (the whole part is declared bad)."""
    t = cfg.tile
    nd = cfg.defect_crops if defect_crops is None else defect_crops
    ng = cfg.good_crops if good_crops is None else good_crops
    xs: list[np.ndarray] = []
    ys: list[int] = []
    jit = t // 4
    for img, mask, label in images:
        img, mask = _pad(img, t), _pad(mask.astype(np.uint8), t).astype(bool)
        h, w = img.shape
        if label:
            pts = np.argwhere(mask)
            for _ in range(nd):
                if len(pts):
                    cy, cx = pts[rng.integers(len(pts))] + rng.integers(-jit, jit + 1, 2)
                    y = int(np.clip(cy - t // 2, 0, h - t))
                    x = int(np.clip(cx - t // 2, 0, w - t))
                else:
                    y, x = int(rng.integers(0, h - t + 1)), int(rng.integers(0, w - t + 1))
                xs.append(img[y : y + t, x : x + t])
                ys.append(1)
        n_good = ng if not label else max(1, ng // 3)
        if label and not mask.any():
            continue
        for _ in range(n_good):
            for _try in range(8):
                y, x = int(rng.integers(0, h - t + 1)), int(rng.integers(0, w - t + 1))
                if not mask[max(0, y - 4) : y + t + 4, max(0, x - 4) : x + t + 4].any():
                    xs.append(img[y : y + t, x : x + t])
                    ys.append(0)
                    break
    return np.stack(xs), np.asarray(ys, np.float32)


def augment(x: np.ndarray, rng: np.random.Generator, rotate: bool = True) -> np.ndarray:
    """Flips, 90-degree rotations, brightness and contrast jitter on uint8 tiles -> float [0,1].

    ``rotate=False`` keeps the surface's orientation (flips only): on parts with directional
    texture (grinding streaks) a streak turned by 90 degrees is itself an anomaly.
    """
    out = np.empty(x.shape, np.float32)
    for i, t in enumerate(x):
        if rotate:
            t = np.rot90(t, int(rng.integers(4)))
        elif rng.random() < 0.5:
            t = t[::-1]
        if rng.random() < 0.5:
            t = t[:, ::-1]
        out[i] = t
    out /= 255.0
    a = rng.uniform(0.75, 1.25, (len(x), 1, 1)).astype(np.float32)
    b = rng.uniform(-0.12, 0.12, (len(x), 1, 1)).astype(np.float32)
    m = out.mean(axis=(1, 2), keepdims=True)
    return np.clip((out - m) * a + m + b, 0, 1)[..., None]


def _smooth_mask(h: int, w: int, rng: np.random.Generator, cells: int, fill: float) -> np.ndarray:
    """A random blob-shaped soft mask in [0, 1] (Perlin-like: coarse noise, cubic upsampling,
    thresholded at the quantile that covers about ``fill`` of the tile)."""
    import cv2

    n = rng.normal(0, 1, (cells + 1, cells + 1)).astype(np.float32)
    n = cv2.resize(n, (w, h), interpolation=cv2.INTER_CUBIC)
    thr = np.quantile(n, 1 - fill)
    return np.clip((n - thr) / (n.std() * 0.15 + 1e-6), 0, 1)


def synthetic_defect(
    tile: np.ndarray, rng: np.random.Generator, donor: np.ndarray | None = None
) -> np.ndarray:
    """A good uint8 tile with one synthetic defect resembling a real kind of surface defect.

    Kinds: cut-paste patch (CutPaste), dark/bright pit of irregular shape (blowhole), thin
    jagged dark line (crack), broken edge (a dark or bright chunk entering from a tile side,
    break), frayed edge (dark ragged band along a side), a texture region from another tile
    blended through a noise mask (DRAEM-style), a smoothed region whose grinding texture is
    gone (uneven), and a smooth brightness blotch. Used by good-only mode (the model learns
    "anything unlike a good surface") and by the synthetic demo data; never presented as
    real defects.
    """
    import cv2

    t = tile.astype(np.float32).copy()
    h, w = t.shape
    kind = int(rng.integers(8))
    mean = float(t.mean())
    std = float(t.std()) + 1.0
    sign = -1.0 if rng.random() < 0.75 else 1.0  # real defects are mostly darker
    if kind == 0:  # cut-paste: a patch from elsewhere (or another part), jittered
        src = (donor if donor is not None else tile).astype(np.float32)
        ph, pw = int(rng.integers(6, h // 2)), int(rng.integers(6, w // 2))
        sy, sx = int(rng.integers(0, src.shape[0] - ph + 1)), int(rng.integers(0, src.shape[1] - pw + 1))
        patch = src[sy : sy + ph, sx : sx + pw]
        if rng.random() < 0.5:
            patch = patch.T if ph == pw else patch[::-1]
        patch = patch * rng.uniform(0.6, 1.4) + rng.uniform(-30, 30)
        dy, dx = int(rng.integers(0, h - ph + 1)), int(rng.integers(0, w - pw + 1))
        t[dy : dy + ph, dx : dx + pw] = patch
    elif kind == 1:  # pit / blowhole: small irregular dark (or bright) spot with a soft rim
        r = int(rng.integers(2, max(3, w // 7)))
        cy, cx = int(rng.integers(r, h - r)), int(rng.integers(r, w - r))
        local = _smooth_mask(2 * r + 1, 2 * r + 1, rng, 3, rng.uniform(0.35, 0.7))
        yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
        local *= (yy**2 + xx**2) <= r * r * rng.uniform(0.8, 1.2)
        m = np.zeros((h, w), np.float32)
        m[cy - r : cy + r + 1, cx - r : cx + r + 1] = local
        m = cv2.GaussianBlur(m, (0, 0), rng.uniform(0.5, 1.2))
        t = t + m * sign * rng.uniform(25, 90)
    elif kind == 2:  # crack / scratch: thin jagged polyline, mostly darker
        m = np.zeros((h, w), np.float32)
        p = np.array([rng.integers(0, w), rng.integers(0, h)], np.float64)
        ang = rng.uniform(0, 2 * np.pi)
        for _ in range(int(rng.integers(3, 10))):
            ang += rng.normal(0, 0.5)
            q = p + rng.uniform(3, w / 4) * np.array([np.cos(ang), np.sin(ang)])
            cv2.line(m, (int(p[0]), int(p[1])), (int(q[0]), int(q[1])), 1.0, int(rng.integers(1, 3)))
            p = q
        m = cv2.GaussianBlur(m, (0, 0), rng.uniform(0.4, 0.9))
        t = t + m * sign * rng.uniform(20, 80)
    elif kind in (3, 4):  # broken / frayed edge: a chunk or ragged band entering from one side
        m = _smooth_mask(h, w, rng, int(rng.integers(3, 7)), rng.uniform(0.3, 0.6))
        ramp = np.linspace(1.0, 0.0, h, dtype=np.float32)[:, None] ** rng.uniform(0.6, 3.0)
        depth = rng.uniform(0.15, 0.6) if kind == 3 else rng.uniform(0.05, 0.2)
        band = (ramp > 1 - depth).astype(np.float32)
        if kind == 4:  # fray: ragged edge of the band, streaks along it
            band = band * (rng.random((1, w)) < rng.uniform(0.5, 0.9))
            band = cv2.GaussianBlur(band, (0, 0), rng.uniform(0.7, 1.5))
        m = np.clip(band * (0.4 + m), 0, 1) if kind == 3 else band
        m = np.rot90(m, int(rng.integers(4))).copy()
        m = cv2.GaussianBlur(m, (0, 0), rng.uniform(0.5, 1.5))
        target = mean * rng.uniform(0, 0.6) if sign < 0 else min(250.0, mean + rng.uniform(30, 90))
        t = t * (1 - m) + m * (target + rng.normal(0, std * 0.3, t.shape).astype(np.float32))
    elif kind == 5:  # foreign texture through a noise mask (DRAEM-style)
        src = (donor if donor is not None else np.rot90(tile)).astype(np.float32)
        src = np.rot90(src, int(rng.integers(4)))[:h, :w]
        src = (src - src.mean()) * rng.uniform(0.5, 2.0) + mean + rng.uniform(-40, 40)
        m = _smooth_mask(h, w, rng, int(rng.integers(2, 6)), rng.uniform(0.1, 0.4))
        m = cv2.GaussianBlur(m, (0, 0), 1.0)
        a = rng.uniform(0.5, 1.0)
        t = t * (1 - a * m) + a * m * src
    elif kind == 6:  # uneven: a region whose grinding texture is smoothed out (and shifted)
        m = _smooth_mask(h, w, rng, int(rng.integers(2, 5)), rng.uniform(0.2, 0.6))
        m = cv2.GaussianBlur(m, (0, 0), 2.0)
        blur = cv2.GaussianBlur(t, (0, 0), rng.uniform(2.0, 5.0))
        smooth = blur + rng.uniform(-35, 25) + rng.normal(0, 2, t.shape).astype(np.float32)
        t = t * (1 - m) + m * smooth
    else:  # blotch: a large smooth brightness change
        m = _smooth_mask(h, w, rng, int(rng.integers(1, 4)), rng.uniform(0.15, 0.5))
        m = cv2.GaussianBlur(m, (0, 0), max(2.0, w / 16))
        t = t + m * sign * rng.uniform(20, 60)
    return np.clip(t, 0, 255).astype(np.uint8)


def _good_only_crops(
    images: list[tuple[np.ndarray, np.ndarray, int]],
    cfg: InspectConfig,
    rng: np.random.Generator,
    per_image: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Good crops (label 0) and the same number with a synthetic defect (label 1)."""
    goods = [im for im in images if im[2] == 0]
    x0, _ = sample_crops(goods, cfg, rng, defect_crops=0, good_crops=per_image or cfg.good_crops)
    donors = rng.permutation(len(x0))
    x1 = np.stack([synthetic_defect(x0[i], rng, x0[donors[i]]) for i in range(len(x0))])
    return np.concatenate([x0, x1]), np.r_[np.zeros(len(x0)), np.ones(len(x1))].astype(np.float32)


# ---------------------------------------------------------------------------- scoring


def tile_sets(samples: list[Sample], tiling: TileConfig) -> list[np.ndarray]:
    """Model-input tiles of every image, through the edge preprocessing (unreadable: error)."""
    return [prepare_part(read_image(s.path, gray=True), tiling)[1] for s in samples]


def image_scores(
    model_fn: Any, tiles: list[np.ndarray], batch: int = 512, top_k: int = 1
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Image score (max, or top-k mean, of the tile scores) and the tile scores of every
    image, in one batched pass."""
    flat = np.concatenate(tiles)
    s = np.concatenate(
        [np.asarray(model_fn(flat[i : i + batch])).reshape(-1) for i in range(0, len(flat), batch)]
    )
    per, k = [], 0
    for t in tiles:
        per.append(s[k : k + len(t)])
        k += len(t)
    return np.array([image_score(p, top_k) for p in per]), per


def operating_point(
    scores: np.ndarray, labels: np.ndarray, recall: float, false_alarm: float = 0.01
) -> dict[str, Any]:
    """Threshold for ``recall`` on these scores and what it implies (precision, false alarms).

    With no defects (good parts only, as in good-only mode) the threshold is set for the
    ``false_alarm`` rate on the good parts instead.
    """
    scores, labels = np.asarray(scores, np.float64), np.asarray(labels).astype(bool)
    if labels.any():
        thr, how = threshold_for_recall(scores, labels, recall), f"recall>={recall}"
    else:
        thr = threshold_for_false_alarm(scores, false_alarm)
        how = f"false_alarm<={false_alarm:g} on good parts (no defects used)"
        thr = float(np.nextafter(thr, np.inf))
    pred = scores >= thr
    tp, fp = int((pred & labels).sum()), int((pred & ~labels).sum())
    fn, tn = int((~pred & labels).sum()), int((~pred & ~labels).sum())
    return {
        "threshold": float(thr),
        "rule": how,
        "recall": tp / max(tp + fn, 1) if labels.any() else None,
        "precision": tp / max(tp + fp, 1) if (tp + fp) else None,
        "false_alarm_rate": fp / max(fp + tn, 1),
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
    }


def recall_per_kind(scores: np.ndarray, kinds: list[str], thr: float) -> dict[str, float]:
    """Share of each defect kind at/above the threshold (for good parts: share passed)."""
    out = {}
    for k in sorted(set(kinds), key=lambda k: (k != GOOD, k)):
        idx = [i for i, kk in enumerate(kinds) if kk == k]
        s = np.asarray(scores)[idx]
        out[k] = float((s < thr).mean() if k == GOOD else (s >= thr).mean())
    return out


# ---------------------------------------------------------------------------- training


def _load_images(samples: list[Sample], tiling: TileConfig) -> list[tuple[np.ndarray, np.ndarray, int]]:
    """Scaled (and normalised, as on the device) images with their masks and labels."""
    out = []
    for s in samples:
        img, mask = read_sample(s, tiling.scale)
        out.append((condition(img, tiling.norm), mask, s.label))
    return out


def _limit(split: dict[str, list[Sample]], n: int | None) -> dict[str, list[Sample]]:
    if not n:
        return split
    out = {}
    for part, ss in split.items():
        keep: list[Sample] = []
        for k in sorted({s.kind for s in ss}):
            keep.extend([s for s in ss if s.kind == k][: (n * 3 if k == GOOD else n)])
        out[part] = keep
    return out


def train_inspect(
    data: str | Path | None, out: str | Path, cfg: InspectConfig, quiet: bool = False,
    layout: FolderLayout | None = None,
) -> dict[str, Any]:
    """Train, convert, choose the operating point, write the report; returns the metrics.

    The images are found (``layout``'s folders, else the layout under ``data``) before TensorFlow
    is imported, so a wrong folder is reported in a second, not after the import."""
    from edgewise.converters import ConversionSpec, build_bundle
    from edgewise.converters.parity import Decider

    from .keras_utils import tf_setup

    t_start = time.monotonic()
    samples = load_inspection_dataset(data, layout)
    keras = tf_setup(cfg.seed, threads=cfg.threads)
    split = _limit(split_samples(samples, cfg.seed), cfg.limit)
    log(
        f"inspect[{cfg.mode}]: data {describe(samples)}; split train/val/test = "
        f"{len(split['train'])}/{len(split['val'])}/{len(split['test'])} (seed {cfg.seed})",
        quiet=quiet,
    )
    tiling = cfg.tiling
    rng = np.random.default_rng(cfg.seed)
    train_part = split["train"]
    if cfg.mode == "good-only":  # not even int8 calibration sees a defective part
        train_part = [s for s in train_part if s.label == 0]
    train_imgs = _load_images(train_part, tiling)
    val_s, test_s = split["val"], split["test"]
    y_val = np.array([s.label for s in val_s])
    y_test = np.array([s.label for s in test_s])
    val_tiles, test_tiles = tile_sets(val_s, tiling), tile_sets(test_s, tiling)

    model = build_model(keras, cfg.tile, cfg.width)
    if cfg.weights:
        if cfg.weights == "imagenet":
            raise ValueError(
                "--weights imagenet: no ImageNet weights exist for this grey-scale tile "
                "network; pass a .weights.h5/.keras file trained for it, or train from scratch"
            )
        model.load_weights(cfg.weights)
    model.compile(
        optimizer=keras.optimizers.Adam(cfg.lr),
        loss=keras.losses.BinaryCrossentropy(from_logits=True),
        metrics=[keras.metrics.BinaryAccuracy(name="acc", threshold=0.0)],
    )
    # fixed validation crops for the learning curves (tile level)
    vrng = np.random.default_rng(cfg.seed + 1)
    val_imgs = _load_images(val_s, tiling)
    if cfg.mode == "supervised":
        xv, yv = sample_crops(val_imgs, cfg, vrng, defect_crops=4, good_crops=2)
    else:  # good-only never looks at real defects: validation crops are synthetic too
        xv, yv = _good_only_crops(val_imgs, cfg, vrng, per_image=2)
    xv = (xv.astype(np.float32) / 255.0)[..., None]
    del val_imgs

    history: dict[str, list[float]] = {"loss": [], "acc": [], "val_loss": [], "val_acc": []}
    if cfg.mode == "supervised":
        history["val_image_auroc"] = []
    best, best_w = -np.inf, None
    # every tile of the good training parts, for hard-negative mining: the image score is a
    # max over tiles, so one good tile that looks defective fails a whole good part
    good_tiles = (
        np.concatenate([make_tiles(im, tiling)[0] for im, _, lab in train_imgs if lab == 0])
        if cfg.hard_negatives > 0
        else None
    )
    hard = np.zeros((0, cfg.tile, cfg.tile), np.uint8)
    bar = Bar(cfg.epochs, f"inspect[{cfg.mode}] epochs", quiet=quiet, verbose_lines=True)
    for ep in range(cfg.epochs):
        lr = cfg.lr * 0.5 * (1 + np.cos(np.pi * ep / cfg.epochs))
        model.optimizer.learning_rate.assign(lr)
        first = 3 if cfg.mode == "supervised" else 2
        if good_tiles is not None and ep >= first and (ep - first) % cfg.mine_every == 0:
            sg = model.predict(good_tiles.astype(np.float32)[..., None] / 255.0, batch_size=512, verbose=0)
            sg = sg.ravel()
            top = np.argsort(-sg)[: cfg.hard_negatives]
            hard = good_tiles[top[sg[top] >= -1.5]]  # logit -1.5 = P 0.18
            debug(f"inspect[{cfg.mode}] hard negatives: {len(hard)} good tiles with P >= 0.18")
        if cfg.mode == "supervised":
            x, y = sample_crops(train_imgs, cfg, rng)
            if len(hard):
                x, y = np.concatenate([x, hard]), np.r_[y, np.zeros(len(hard), np.float32)]
        else:  # hard negatives are good training tiles: still no real defect anywhere
            x, y = _good_only_crops(train_imgs, cfg, rng)
            if len(hard):
                hh = hard[rng.permutation(len(hard))[: len(x) // 4]]
                x, y = np.concatenate([x, hh]), np.r_[y, np.zeros(len(hh), np.float32)]
        n1 = max(float(y.sum()), 1.0)
        n0 = max(float(len(y) - y.sum()), 1.0)
        cw = {0: len(y) / (2 * n0), 1: len(y) / (2 * n1)}  # class-weighted loss
        h = model.fit(
            augment(x, rng, rotate=cfg.rotate),
            y,
            batch_size=cfg.batch,
            epochs=1,
            verbose=0,
            class_weight=cw,
            validation_data=(xv, yv),
            shuffle=True,
        )
        for k in ("loss", "acc", "val_loss", "val_acc"):
            history[k].append(float(h.history[k][0]))
        figures = {"crops": len(y), "defect": int(n1),
                   **{k: history[k][-1] for k in ("loss", "acc", "val_loss")}}
        if cfg.mode == "supervised":
            s, _ = image_scores(lambda b: model(b, training=False).numpy(), val_tiles, top_k=cfg.top_k)
            a = auroc(s, y_val)
            history["val_image_auroc"].append(a)
            figures["val_image_auroc"] = a
            crit = a
        else:
            crit = -history["val_loss"][-1]
        if crit >= best:
            best, best_w = crit, model.get_weights()
        bar.update(1, **figures)
    bar.close()
    model.set_weights(best_w)
    head, conv_model = None, model
    if cfg.knn:  # deploy the features; the edge scores them against a bank of good tiles
        conv_model = feature_model(keras, model)
        pool = (
            good_tiles
            if good_tiles is not None
            else np.concatenate([make_tiles(im, tiling)[0] for im, _, _ in train_imgs])
        )
        f = conv_model.predict(pool.astype(np.float32)[..., None] / 255.0, batch_size=512, verbose=0)
        f = unit_rows(f)
        kept = coreset(f, cfg.memory, cfg.seed)  # the tiles are chosen once, on Keras features
        pool = pool[kept]
        head = NearestGood(f[kept])
        log(
            f"inspect[{cfg.mode}] memory bank: {len(head.bank)} of {len(f)} good training tiles",
            quiet=quiet,
        )
    train_s = time.monotonic() - t_start

    def keras_fn(b: np.ndarray) -> np.ndarray:
        out = conv_model(b, training=False).numpy()
        return head(out) if head is not None else out

    k_test, _ = image_scores(keras_fn, test_tiles, top_k=cfg.top_k)
    val_tile_auroc = auroc(keras_fn(xv).ravel(), yv)

    # conversion: calibration from training crops, evaluation tiles from validation crops
    crng = np.random.default_rng(cfg.seed + 2)
    if cfg.mode == "supervised":
        xc, _ = sample_crops(train_imgs[:: max(1, len(train_imgs) // 150)], cfg, crng, 2, 2)
    else:
        xc, _ = _good_only_crops(train_imgs[:: max(1, len(train_imgs) // 150)], cfg, crng, per_image=2)
    # calibration = what the device sees: whole-part tilings of training parts plus defect crops
    whole = np.concatenate(
        [make_tiles(im, tiling)[0] for im, _, _ in train_imgs[:: max(1, len(train_imgs) // 12)]]
    )
    xc = np.concatenate([xc[crng.permutation(len(xc))[:250]], whole[crng.permutation(len(whole))[:250]]])
    xc = (xc.astype(np.float32) / 255.0)[..., None]
    ev = np.random.default_rng(cfg.seed + 3).permutation(len(xv))[:256]
    spec = ConversionSpec(
        name=f"inspect-{cfg.mode}",
        task="anomaly" if cfg.mode == "good-only" else "defect-detection",
        app="inspect",
        input={
            "layout": "NHWC",
            "color": "gray",
            "normalization": {"scale": 1 / 255, "offset": 0},
            "tile": cfg.tile,
        },
        output={
            "meaning": "defect logit per tile (P = sigmoid)"
            if cfg.mode == "supervised"
            else "cosine distance of the tile's features to the nearest good training tile"
            if cfg.knn
            else "anomaly score per tile (good vs synthetic defect classifier)",
            "kind": "distance" if cfg.knn else "logit",
            **(
                {"head": {"kind": NearestGood.KIND, "size": len(head.bank)}}  # + banks, below
                if head
                else {}
            ),
        },
        labels=["good", "defect"],
        config={
            "tiling": tiling.as_dict(),
            "image_score": "max over tiles" if cfg.top_k == 1 else f"mean of the top {cfg.top_k} tiles",
            "mode": cfg.mode,
            "train": {k: v for k, v in asdict(cfg).items() if k not in ("variants",)},
            "split": {
                "seed": cfg.seed,
                "fractions": [0.6, 0.2, 0.2],
                "stratified_by": "kind",
                "file": "report/split.json",
                "counts": {p: describe(v) for p, v in split.items()},
            },
            "dataset": str(Path(data).name),
        },
        decider=Decider(kind="threshold", score="last", threshold=0.0)
        if head is None  # parity on features: each variant's own nearest-good AUROC on the crops
        else Decider(
            kind="none", metric_fn=lambda o, _x, y: auroc(loo_nearest_good(o, y), y), metric_name="tile_auroc"
        ),
    )
    res = build_bundle(
        conv_model,
        out,
        spec,
        calib_x=xc,
        eval_x=xv[ev],
        eval_y=yv[ev],
        variants=cfg.variants,
        threads=cfg.threads,
        quiet=quiet,
    )

    from edgewise.edge.backends import load_model
    from edgewise.edge.bundle import load_bundle

    bundle = load_bundle(res.path)
    banks: dict[str, np.ndarray] = {}
    x_pool = pool.astype(np.float32)[..., None] / 255.0 if head is not None else None
    per_variant: dict[str, Any] = {}
    variant_scores: dict[str, dict[str, np.ndarray]] = {}
    for name in bundle.variants:
        scored = name in ("tflite_float32", "tflite_int8")
        if x_pool is None and not scored:
            continue
        m = load_model(bundle, name, threads=cfg.threads)
        try:
            vhead = None
            if x_pool is not None:  # every variant's bank is its own features of the kept tiles
                banks[name] = unit_rows(predict_rows(m, x_pool, batch=256))
                vhead = NearestGood(banks[name])
            if scored:  # the device's scoring

                def fn(b: np.ndarray, m: Any = m, vhead: Any = vhead) -> np.ndarray:
                    return score_tiles(m, b, batch=len(b), head=vhead)

                sv, _ = image_scores(fn, val_tiles, batch=256, top_k=cfg.top_k)
                st, st_tiles = image_scores(fn, test_tiles, batch=256, top_k=cfg.top_k)
        finally:
            m.close()
        if not scored:
            continue
        if cfg.mode == "good-only":  # threshold from the good validation parts only
            good_v = sv[y_val == 0]
            op = operating_point(good_v, np.zeros(len(good_v)), cfg.recall, cfg.false_alarm)
            # what that threshold implies on all validation parts: reported, never used to choose
            implied = _at(sv, y_val, op["threshold"])
            op.update(recall=implied["recall"], precision=implied["precision"])
            op.update({k: implied[k] for k in ("tp", "fp", "fn", "tn", "false_alarm_rate")})
        else:
            op = operating_point(sv, y_val, cfg.recall)
        per_variant[name] = op
        variant_scores[name] = {"val": sv, "test": st, "test_tiles": st_tiles}
    deployed = "tflite_int8" if "tflite_int8" in variant_scores else next(iter(variant_scores))
    op = per_variant[deployed]
    thr = op["threshold"]
    st = variant_scores[deployed]["test"]
    test_op = _at(st, y_test, thr)
    kinds_test = [s.kind for s in test_s]
    metrics = {
        "mode": cfg.mode,
        "deployed_variant": deployed,
        "train_seconds": round(train_s, 1),
        "val_tile_auroc_keras": val_tile_auroc,
        "val_image_auroc": {n: auroc(v["val"], y_val) for n, v in variant_scores.items()},
        "test_image_auroc": {
            "keras": auroc(k_test, y_test),
            **{n: auroc(v["test"], y_test) for n, v in variant_scores.items()},
        },
        "operating_point_val": op,
        "test_at_threshold": test_op,
        "recall_per_kind_test": recall_per_kind(st, kinds_test, thr),
        "history": history,
    }
    thresholds = {
        "decision": thr,
        **(
            {"target_false_alarm": cfg.false_alarm}
            if cfg.mode == "good-only"
            else {"target_recall": cfg.recall}
        ),
        "rule": op["rule"],
        "val_precision": op["precision"],
        "val_recall": op["recall"],
        "per_variant": {n: v["threshold"] for n, v in per_variant.items()},
    }
    files = _report_files(
        cfg, history, split, metrics, k_test, variant_scores, y_test, test_s, test_tiles, thr, deployed
    )
    from edgewise.converters.package import add_report
    from edgewise.edge.bundle import reopen

    add_report(res.path, files, {"inspect": metrics})
    w = reopen(res.path)
    w.meta["thresholds"] = thresholds
    for name, bank in banks.items():
        file = MEMORY_FILE.format(variant=name)
        w.add_bytes(file, _npy(bank))
        w.meta["output"]["head"].setdefault("banks", {})[name] = file
    if head is None:
        w.meta["evaluation"]["threshold"] = 0.0  # tile-level parity decisions (logit 0 = P 0.5)
    w.finish()
    log(
        f"inspect[{cfg.mode}]: test image AUROC {metrics['test_image_auroc']}; at threshold "
        f"{thr:.4f} ({deployed}, {op['rule']} on validation): test recall {test_op['recall']:.3f} "
        f"precision {_f3(test_op['precision'])}",
        quiet=quiet,
    )
    return metrics


def _f3(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def _at(scores: np.ndarray, labels: np.ndarray, thr: float) -> dict[str, Any]:
    labels = np.asarray(labels).astype(bool)
    pred = np.asarray(scores) >= thr
    tp, fp = int((pred & labels).sum()), int((pred & ~labels).sum())
    fn, tn = int((~pred & labels).sum()), int((~pred & ~labels).sum())
    return {
        "threshold": thr,
        "recall": tp / max(tp + fn, 1),
        "precision": tp / (tp + fp) if tp + fp else None,
        "false_alarm_rate": fp / max(fp + tn, 1),
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
    }


# ---------------------------------------------------------------------------- report


def _npy(arr: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def _png(img: np.ndarray) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".png", img)
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


def _annotated(
    s: Sample, scores: np.ndarray, tiling: TileConfig, thr: float, title: str, logits: bool = True
) -> np.ndarray:
    gray, _, pos = prepare_part(read_image(s.path, gray=True), tiling)
    m = read_sample(s, tiling.scale)[1] if s.mask is not None else None  # ground truth, outlined in green
    return overlay(gray, scores, pos, tiling.tile, thr, title, logits=logits, mask=m)


def montage(images: list[np.ndarray], cell: int = 160, cols: int = 6) -> np.ndarray:
    """Grid of BGR images, each letterboxed into a cell x cell square."""
    import cv2

    if not images:
        return np.zeros((cell, cell, 3), np.uint8)
    rows = (len(images) + cols - 1) // cols
    out = np.zeros((rows * cell, min(cols, len(images)) * cell, 3), np.uint8)
    for i, im in enumerate(images):
        f = cell / max(im.shape[:2])
        r = cv2.resize(
            im, (max(1, int(im.shape[1] * f)), max(1, int(im.shape[0] * f))), interpolation=cv2.INTER_AREA
        )
        y, x = (i // cols) * cell, (i % cols) * cell
        out[y : y + r.shape[0], x : x + r.shape[1]] = r
    return out


def _report_files(
    cfg: InspectConfig,
    history: dict,
    split: dict[str, list[Sample]],
    metrics: dict,
    k_test: np.ndarray,
    variant_scores: dict,
    y_test: np.ndarray,
    test_s: list[Sample],
    test_tiles: list[np.ndarray],
    thr: float,
    deployed: str,
) -> dict[str, bytes]:
    from . import report as R

    tiling = cfg.tiling
    lg = not cfg.knn  # tile scores are logits unless they are nearest-neighbour distances
    st = variant_scores[deployed]["test"]
    tile_scores = variant_scores[deployed]["test_tiles"]
    files: dict[str, bytes] = {}
    files["report/learning_curves.png"] = plot_png(
        R.plot_learning_curves, history, title=f"inspect {cfg.mode}: tile loss/accuracy, val image AUROC"
    )
    files["report/confusion.png"] = plot_png(
        R.plot_confusion,
        y_test,
        (st >= thr).astype(int),
        ["good", "defect"],
        title=f"test split, {deployed}, threshold {thr:.3f}",
    )
    curves = {"keras": (k_test, y_test), **{n: (v["test"], y_test) for n, v in variant_scores.items()}}
    files["report/roc.png"] = plot_png(R.plot_roc, curves, title="image-level ROC (test split)")
    files["report/pr.png"] = plot_png(R.plot_pr, curves, title="image-level precision-recall (test split)")
    kinds = [s.kind for s in test_s]
    files["report/score_histogram.png"] = plot_png(
        R.plot_score_histogram,
        {k: st[[i for i, kk in enumerate(kinds) if kk == k]] for k in sorted(set(kinds))},
        threshold=thr,
        title=f"image scores per kind (test, {deployed})",
    )
    files["report/recall_per_kind.png"] = _recall_plot(metrics["recall_per_kind_test"])
    if history.get("val_image_auroc"):
        files["report/val_image_auroc.png"] = _curve_plot(
            history["val_image_auroc"], "validation image AUROC (max over tiles) per epoch"
        )
    # worst mistakes: highest-scoring good parts and lowest-scoring defective parts
    order_fp = [i for i in np.argsort(-st) if y_test[i] == 0][:6]
    order_fn = [i for i in np.argsort(st) if y_test[i] == 1][:6]
    cells = [_annotated(test_s[i], tile_scores[i], tiling, thr, f"good {st[i]:.2f}", lg) for i in order_fp]
    cells += [
        _annotated(test_s[i], tile_scores[i], tiling, thr, f"{test_s[i].kind} {st[i]:.2f}", lg)
        for i in order_fn
    ]
    files["report/worst_mistakes.png"] = _png(montage(cells, cell=320, cols=4))  # legible colour bars
    # heat-map overlays: two test parts of every kind (green = ground-truth mask)
    for k in sorted(set(kinds)):
        for j, i in enumerate([i for i, kk in enumerate(kinds) if kk == k][:2]):
            files[f"report/overlays/{k}_{j}.png"] = _png(
                _annotated(test_s[i], tile_scores[i], tiling, thr, f"{k} {st[i]:.2f}", lg)
            )
    files["report/split.json"] = json.dumps(
        {p: [{"path": str(s.path), "kind": s.kind} for s in v] for p, v in split.items()}, indent=1
    ).encode()
    figures = {
        "learning_curves": "report/learning_curves.png",
        "confusion": "report/confusion.png",
        "roc": "report/roc.png",
        "pr": "report/pr.png",
        "score_histogram": "report/score_histogram.png",
        "recall_per_kind": "report/recall_per_kind.png",
        "val_image_auroc": "report/val_image_auroc.png" if "report/val_image_auroc.png" in files else None,
        "worst_mistakes": "report/worst_mistakes.png",
        "overlays": sorted(k for k in files if k.startswith("report/overlays/")),
    }
    files["report/metrics.json"] = json.dumps(
        {**metrics, "figures": figures}, indent=2, default=float
    ).encode()
    return files


def _curve_plot(values: list[float], title: str) -> bytes:
    from .report import _plt

    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(np.arange(1, len(values) + 1), values, marker="o")
    ax.set_xlabel("epoch")
    ax.set_ylabel("AUROC")
    ax.grid(alpha=0.3)
    ax.set_title(title, fontsize=9)
    return figure_png(fig, dpi=110)


def _recall_plot(per_kind: dict[str, float]) -> bytes:
    from .report import _plt

    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    names = list(per_kind)
    ax.bar(
        names, [per_kind[n] for n in names], color=["tab:green" if n == GOOD else "tab:red" for n in names]
    )
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("recall (good: share passed)")
    ax.set_title("recall per defect kind (test split, bundle threshold)")
    for i, n in enumerate(names):
        ax.text(i, per_kind[n] + 0.01, f"{per_kind[n]:.2f}", ha="center", fontsize=8)
    return figure_png(fig, dpi=110)


# ---------------------------------------------------------------------------- synthetic + CLI


def make_synthetic_dataset(out: str | Path, n_good: int = 60, n_defect: int = 30, seed: int = 0) -> Path:
    """SYNTHETIC parts (textured grey tiles, synthetic defects with masks) in the folder layout.

    Only for the demo when no real data is available; every path says "synthetic".
    """
    import cv2

    out = Path(out)
    rng = np.random.default_rng(seed)

    def part() -> np.ndarray:
        h, w = int(rng.integers(180, 260)), int(rng.integers(180, 260))
        base = rng.normal(0, 1, (h // 8 + 1, w // 8 + 1)).astype(np.float32)
        base = cv2.resize(base, (w, h), interpolation=cv2.INTER_CUBIC) * 6 + rng.uniform(90, 150)
        grain = cv2.GaussianBlur(rng.normal(0, 8, (h, w)).astype(np.float32), (0, 0), 1.0)
        return np.clip(base + grain, 0, 255).astype(np.uint8)

    (out / "good").mkdir(parents=True, exist_ok=True)
    for i in range(n_good):
        cv2.imwrite(str(out / "good" / f"synthetic_good_{i:03d}.png"), part())
    for i in range(n_defect):
        img = part()
        t = 64
        y, x = int(rng.integers(0, img.shape[0] - t)), int(rng.integers(0, img.shape[1] - t))
        before = img[y : y + t, x : x + t].copy()
        after = synthetic_defect(before, rng)
        img[y : y + t, x : x + t] = after
        mask = np.zeros_like(img)
        mask[y : y + t, x : x + t] = (np.abs(after.astype(int) - before.astype(int)) > 12) * 255
        if not mask.any():
            mask[y + t // 2 - 2 : y + t // 2 + 2, x + t // 2 - 2 : x + t // 2 + 2] = 255
        d = out / "defect" / "synthetic"
        d.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(d / f"synthetic_defect_{i:03d}.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 95])
        cv2.imwrite(str(d / f"synthetic_defect_{i:03d}.png"), mask)
    return out


# 25 parts x 5 epochs (2 min here) ranked test parts at AUROC 0.79 and failed 95 % of the good parts at
# the 98 %-recall threshold, no better than failing parts at random; 50 x 8 (3.5 min): 0.89 and 82 %
DEMO_LIMIT, DEMO_EPOCHS = 50, 8
DEMO_FULL_COMMAND = ("edgewise train inspect --data $EDGEWISE_DATA --mode supervised --epochs 20 "
                     "--out mt_supervised.bundle (about 25 min here)")


def demo(out_dir: Path, data: Path | None, quiet: bool) -> dict[str, Any]:
    """Train (short) -> int8 bundle -> bench -> edge loop on held-out images; a few minutes."""
    import shutil

    import cv2

    from edgewise.benchmarks.inspect import bench_bundles, bench_markdown
    from edgewise.edge.apps.inspect import InspectApp
    from edgewise.edge.bundle import load_bundle
    from edgewise.edge.pipeline import Runner
    from edgewise.edge.sinks import JsonLinesSink, SQLiteSink

    from .data.magnetic_tile import find_magnetic_tile

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    real = data is not None and find_magnetic_tile(data) is not None
    if real:
        src = find_magnetic_tile(data)
        log(
            f"inspect demo: REAL data (magnetic tile), a short training on a subset ({DEMO_LIMIT} parts "
            f"per kind and split, {DEMO_EPOCHS} epochs); the full model: {DEMO_FULL_COMMAND}",
            quiet=False,
        )
        cfg = InspectConfig(mode="supervised", epochs=DEMO_EPOCHS, limit=DEMO_LIMIT, defect_crops=12,
                            good_crops=6, batch=32)
    else:
        src = make_synthetic_dataset(out_dir / "synthetic_tiles")
        log(
            f"inspect demo: no magnetic-tile data: SYNTHETIC parts in {src} (figures say nothing "
            "about real parts)",
            quiet=False,
        )
        cfg = InspectConfig(mode="supervised", epochs=5, scale=1.0, defect_crops=12, good_crops=6, batch=32)
    bundle_dir = out_dir / ("inspect_supervised.bundle" if real else "inspect_synthetic.bundle")
    if bundle_dir.exists():
        shutil.rmtree(bundle_dir)
    metrics = train_inspect(src, bundle_dir, cfg, quiet=quiet)
    bench = bench_bundles([bundle_dir], src, threads=[1, 2], max_images=40, repeats=1, quiet=quiet)
    md = bench_markdown(bench)
    if not real:
        md = "**SYNTHETIC data** (no real dataset given)\n\n" + md
    (out_dir / "inspect_bench.md").write_text(md)
    (out_dir / "inspect_bench.json").write_text(json.dumps(bench, indent=2, default=float))
    print(md)
    # edge loop on held-out test images written as a plain image folder
    bundle = load_bundle(bundle_dir)
    split = json.loads(bundle.file("report/split.json").read_text())
    imgs = out_dir / "test_images"
    imgs.mkdir(exist_ok=True)
    test = split["test"]
    for i, e in enumerate(test[:: max(1, len(test) // 30)][:30]):  # good and defective parts mixed
        cv2.imwrite(str(imgs / f"{i:03d}_{e['kind']}.png"), read_image(e["path"], gray=True))
    app = InspectApp(bundle, "tflite_int8", threads=2, save_fails=out_dir / "fails")
    stats = Runner(
        app, [JsonLinesSink(out_dir / "inspect_events.jsonl"), SQLiteSink(out_dir / "inspect_events.db")]
    ).run(_gray_folder(imgs))
    app.close()
    s = stats.summary()
    log(
        f"inspect edge loop: {s['frames']} parts, {app.fails} FAIL, end-to-end p50 "
        f"{s['end_to_end'].get('p50_ms', float('nan')):.1f} ms -> {out_dir / 'inspect_events.jsonl'}",
        quiet=False,
    )
    return {
        "data": "real magnetic tile" if real else "SYNTHETIC",
        "metrics": {k: metrics[k] for k in ("test_image_auroc", "operating_point_val", "test_at_threshold")},
        "bench": bench,
        "run": s,
        "verdict": _demo_verdict(metrics, cfg, real, out_dir / "inspect_events.jsonl"),
    }


def _demo_verdict(metrics: dict[str, Any], cfg: InspectConfig, real: bool, events: Path) -> dict[str, Any]:
    """The figures ``edgewise demo`` judges the inspection part on (see ``train.demo.verdict_inspect``)."""
    t = metrics["test_at_threshold"]
    ev = [json.loads(line) for line in events.read_text().splitlines()]
    good = [e["decision"] == "FAIL" for e in ev if Path(e["path"]).stem.endswith("_good")]
    bad = [e["decision"] == "FAIL" for e in ev if not Path(e["path"]).stem.endswith("_good")]
    return {
        "real": real,
        "short": True,
        "test": {"auroc": metrics["test_image_auroc"][metrics["deployed_variant"]],
                 "defective": t["tp"] + t["fn"], "good": t["fp"] + t["tn"],
                 "recall": t["recall"], "false_alarm_rate": t["false_alarm_rate"]},
        "target_recall": cfg.recall,
        "edge": {"parts": len(ev), "failed": sum(good) + sum(bad), "good": len(good),
                 "good_failed": sum(good), "defective": len(bad), "defective_failed": sum(bad)},
        "epochs": cfg.epochs, "limit": cfg.limit,
        "full_command": DEMO_FULL_COMMAND,
    }


def _gray_folder(path: Path) -> Any:
    from edgewise.edge.sources import ImageFolderSource

    return ImageFolderSource(path, gray=True)


def _data_args(a: argparse.Namespace) -> tuple[Path | None, FolderLayout | None]:
    """--data / --good-dir / --defect-dir / --layout -> (data folder, folder layout or None)."""
    from .data import data_root

    if a.layout and (a.good_dir or a.defect_dir):
        raise ValueError("--layout and --good-dir/--defect-dir name the same thing: use one of them")
    if a.layout:
        return None, FolderLayout.from_file(a.layout)
    if a.good_dir or a.defect_dir:
        if not (a.good_dir and a.defect_dir):
            raise ValueError("--good-dir and --defect-dir go together: name at least one folder of each")
        return None, FolderLayout.from_dirs(a.good_dir, a.defect_dir, base=a.data)
    if a.data is not None:
        return Path(a.data), None
    root = data_root(None)
    if root is None:
        raise ValueError("no data: pass --data DIR (or --good-dir DIR --defect-dir DIR) or set EDGEWISE_DATA")
    return root / "inspection" / "magnetic_tile", None


def train_main(argv: list[str]) -> int:
    from edgewise.edge.cliargs import Parser, add_quiet

    p = Parser(
        prog="edgewise train inspect",
        description="Train a tile defect model (supervised, or from good parts only), choose the "
        "threshold on validation (supervised: for a target recall; good-only: for a false-alarm rate "
        "on good parts alone), convert to int8 and write a bundle with a report.",
        epilog="example:\n  edgewise train inspect --data $EDGEWISE_DATA/inspection/magnetic_tile "
        "--mode supervised --out mt_supervised.bundle",
    )
    p.add_argument(
        "--data",
        help="magnetic-tile folder or good/ + defect/ folder (default: "
        "$EDGEWISE_DATA/inspection/magnetic_tile); with --good-dir/--defect-dir: the folder they are in",
    )
    p.add_argument(
        "--good-dir", action="append", metavar="DIR",
        help="a folder of good parts, any name (repeatable; relative to --data when given)",
    )
    p.add_argument(
        "--defect-dir", action="append", metavar="DIR",
        help="a folder of defective parts, flat or one sub-folder per defect kind (repeatable)",
    )
    p.add_argument(
        "--layout", metavar="FILE",
        help='JSON or YAML file naming the folders: {"good": [DIR, ...], "defect": [DIR, ...]}, '
        "paths relative to the file",
    )
    p.add_argument("--mode", choices=MODES, default="supervised",
                   help="supervised: good and defect images; good-only: trained on good parts alone")
    p.add_argument("--out", required=True, help="bundle directory")
    p.add_argument("--weights", help="initial weights: a .weights.h5 file for this network, or 'imagenet'")
    d = InspectConfig()
    p.add_argument("--epochs", type=int, default=None, help="default 30 (supervised) / 25 (good-only)")
    p.add_argument("--tile", type=int, default=d.tile, help="tile size in pixels after scaling")
    p.add_argument("--stride", type=int, default=d.stride, help="pixels between tile starts after scaling")
    p.add_argument("--scale", type=float, default=d.scale, help="fixed scale factor (1 = native)")
    p.add_argument("--width", type=float, default=d.width, help="channel width multiplier")
    p.add_argument(
        "--norm",
        choices=("none", "image"),
        default=None,
        help="per-image intensity normalisation before tiling (default: none supervised, image good-only)",
    )
    p.add_argument(
        "--top-k", type=int, default=None, help="image score = mean of the k highest tile scores (default 1)"
    )
    p.add_argument(
        "--rotate",
        choices=("yes", "no"),
        default=None,
        help="90-degree rotations in augmentation (default: yes supervised, no good-only: the "
        "surface's streak direction is part of what 'good' looks like)",
    )
    p.add_argument("--recall", type=float, default=d.recall, help="supervised: target recall")
    p.add_argument(
        "--false-alarm",
        type=float,
        default=d.false_alarm,
        help="good-only: threshold for this false-alarm rate on good validation parts",
    )
    p.add_argument(
        "--memory",
        type=int,
        default=d.memory,
        help="good-only: score tiles by cosine distance to the nearest of this many good training "
        "tiles (k-centre coreset, stored in the bundle); 0 = the classifier's logit",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (split, weights, augmentation)")
    p.add_argument("--threads", type=int, default=2, help="TensorFlow and parity-check threads")
    p.add_argument("--limit", type=int, help="at most N images per kind per split part (quick runs)")
    p.add_argument("--all-variants", action="store_true", help="also float16/dynamic/ONNX variants")
    add_quiet(p)
    a = p.parse_args(argv)
    try:
        data, layout = _data_args(a)
        load_inspection_dataset(data, layout)  # the layout is checked before TensorFlow is imported
    except ValueError as e:
        p.exit(2, f"edgewise train inspect: error: {e}\n")
    try:
        cfg = InspectConfig(
            mode=a.mode,
            tile=a.tile,
            stride=a.stride,
            scale=a.scale,
            width=a.width,
            norm=a.norm or (d.norm if a.mode == "supervised" else "image"),
            top_k=a.top_k or d.top_k,
            rotate=(a.rotate or ("yes" if a.mode == "supervised" else "no")) == "yes",
            false_alarm=a.false_alarm,
            memory=a.memory,
            epochs=a.epochs or (30 if a.mode == "supervised" else 25),
            recall=a.recall,
            seed=a.seed,
            threads=a.threads,
            limit=a.limit,
            weights=a.weights,
            variants=(None if a.all_variants else ["tflite_float32", "tflite_int8"]),  # type: ignore[arg-type]
        )
        cfg.tiling  # noqa: B018 - validates tile/stride/scale
        m = train_inspect(data, a.out, cfg, quiet=a.quiet, layout=layout)
    except ValueError as e:
        p.exit(2, f"edgewise train inspect: error: {e}\n")
    print(
        json.dumps(
            {
                k: m[k]
                for k in (
                    "test_image_auroc",
                    "operating_point_val",
                    "test_at_threshold",
                    "recall_per_kind_test",
                )
            },
            indent=2,
        )
    )
    return 0
