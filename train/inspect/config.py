"""Training settings of the inspection trainers, validated when they are made."""

from __future__ import annotations

from dataclasses import dataclass, field

from edgewise.edge.apps.inspect import TileConfig

from ..data.magnetic_tile import GOOD
from .guarantee import parse_kind_floors
from .model import ARCHS, DEFAULT_ARCH

__all__ = ["MODES", "InspectConfig"]

MODES = ("supervised", "good-only")


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
    arch: str = DEFAULT_ARCH  # the network's first stage (model.ARCHS)
    rotate: bool = True  # 90-degree rotations in augmentation (False: flips only, keep orientation)
    epochs: int = 30
    batch: int = 64
    lr: float = 2e-3
    defect_crops: int = 8  # per defective training image and epoch
    good_crops: int = 4  # per good training image and epoch
    hard_negatives: int = 1500  # good tiles the model scores highest, re-fed as negatives
    mine_every: int = 3  # epochs between hard-negative mining passes (supervised)
    recall: float = 0.98  # supervised: target recall (with folds: the target of its lower bound)
    folds: int = 0  # supervised: threshold from out-of-fold scores of K fold models (0: on validation)
    min_recall_per_kind: str | None = None  # "0.9" or "crack=0.9,fray=0.85": lower-bound floors per kind
    confidence: float = 0.95  # one-sided confidence of the recall lower bound
    false_alarm: float = 0.05  # good-only: threshold for this false-alarm rate on good validation parts
    seed: int = 0
    threads: int = 2
    limit: int | None = None  # at most this many images per kind and split part (tests)
    variants: list[str] = field(default_factory=lambda: ["tflite_float32", "tflite_int8"])
    weights: str | None = None
    memory: int = 4000  # good-only: good training tiles kept for the nearest-neighbour score (0: logit)
    unseen_kinds: list[str] = field(default_factory=list)  # defect kinds kept out of training and validation

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got '{self.mode}'")
        if not 0 < self.recall <= 1:
            raise ValueError(f"recall target must be in (0, 1], got {self.recall}")
        if not 0 < self.false_alarm < 1:
            raise ValueError(f"false-alarm rate must be in (0, 1), got {self.false_alarm}")
        if self.epochs < 0 or (self.epochs == 0 and not self.weights):
            raise ValueError(f"epochs must be >= 1 (0 only with --weights: use them as they are), "
                             f"got {self.epochs}")
        if self.folds == 1 or self.folds < 0:
            raise ValueError(f"--folds must be 0 (threshold on validation) or at least 2, got {self.folds}")
        if self.folds and self.mode != "supervised":
            raise ValueError("--folds: out-of-fold thresholds need labelled defects (supervised mode only)")
        if self.folds and not 0 < self.recall < 1:
            raise ValueError(f"--min-recall must be in (0, 1) for a lower bound, got {self.recall}")
        if not 0 < self.confidence < 1:
            raise ValueError(f"confidence must be in (0, 1), got {self.confidence}")
        if self.min_recall_per_kind and not self.folds:
            raise ValueError("--min-recall-per-kind needs --folds K (floors on out-of-fold lower bounds)")
        parse_kind_floors(self.min_recall_per_kind)  # the format, before any training
        if self.arch not in ARCHS:
            raise ValueError(f"arch must be one of {', '.join(ARCHS)}, got '{self.arch}'")
        if self.arch == "s2d" and self.tile % 2:
            raise ValueError(f"--arch s2d needs an even --tile (2x2 blocks), got {self.tile}")
        if GOOD in self.unseen_kinds:
            raise ValueError("--unseen-kinds names defect kinds; the good parts cannot be left out")
        if self.hard_negatives < 0:
            raise ValueError(f"--hard-negatives must be >= 0 tiles, got {self.hard_negatives}")
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
