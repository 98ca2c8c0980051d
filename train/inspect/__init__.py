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
map. Supervised: with ``folds`` (the command's default, 4) the threshold is the highest whose
one-sided 95 % Clopper-Pearson lower bound on the recall of out-of-fold int8 scores (every
training and validation part scored by a fold model that never saw it) meets the target
(default 0.98), stored with that interval and the false rejects it costs; without folds it is
chosen on the validation split for the target recall. Good-only: the
threshold is set for a false-alarm rate (default 0.05) on the good validation parts alone;
the recall and precision it implies on the validation defects are reported, never used.
The report (learning curves, confusion matrix, ROC/PR, recall per defect kind, worst
mistakes, heat-map overlays, metrics.json) is always written into the bundle's ``report/``.

One job per module: ``config`` (settings), ``data`` (split, images, tiles), ``crops``
(training crops, augmentation), ``synthetic`` (synthetic defects and demo data), ``model``
(the network, its features, the memory bank), ``scores`` (image scores, operating point),
``folds`` (K folds by part), ``oof`` (out-of-fold scores), ``guarantee`` (Clopper-Pearson bound,
the threshold rule), ``seeds`` (the recipe over several seeds, mean +- sd),
``trainer`` (what both modes share: fit, export), ``modes`` (the supervised and good-only
trainers), ``export`` (variants scored as on the device, thresholds, banks), ``report`` and
``cli``. ``train_inspect(data, out, cfg)`` is ``trainer_for(cfg).fit(data).export(out)``.

>>> # edgewise train inspect --data DATA/inspection/magnetic_tile --mode supervised --out mt.bundle
"""

from __future__ import annotations

from .cli import train_main
from .config import MODES, InspectConfig
from .crops import augment, sample_crops
from .export import MEMORY_FILE
from .guarantee import choose_threshold, recall_lower_bound
from .model import build_model, coreset, feature_model, loo_nearest_good
from .modes import GoodOnlyTrainer, SupervisedTrainer, train_inspect, trainer_for
from .scores import image_scores, operating_point, recall_per_kind
from .synthetic import make_synthetic_dataset, synthetic_defect
from .trainer import InspectTrainer

__all__ = [
    "MODES",
    "MEMORY_FILE",
    "InspectConfig",
    "InspectTrainer",
    "SupervisedTrainer",
    "GoodOnlyTrainer",
    "trainer_for",
    "train_inspect",
    "train_main",
    "build_model",
    "feature_model",
    "coreset",
    "loo_nearest_good",
    "sample_crops",
    "augment",
    "synthetic_defect",
    "make_synthetic_dataset",
    "image_scores",
    "operating_point",
    "recall_per_kind",
    "choose_threshold",
    "recall_lower_bound",
]
