"""Train the face embedding network: MobileFaceNet-like CNN, CosFace margin loss, int8 bundle.

Identities come from the ``.mat`` face sets in ``faces/extra`` (UMIST, IMM, GT, AR) plus any
``person/*.jpg`` tree; ORL is never used here, it is the benchmark's unseen-identity set. Every
image goes through the edge's own detector + alignment (``edge.apps.face.face_crops``), so the
network learns on exactly the crops the device will give it. Some identities are held out of
training entirely: the unknown-person threshold is calibrated on them (probe vs. enrolled
templates of *other* people) for a target false-accept rate and stored in the bundle.

- ``prep``: datasets folder, detector + alignment of every image, identity split, input scaling;
- ``augment``: pose, resolution and lighting jitter of the aligned crops;
- ``net``: the embedding network and its CosFace training head;
- ``fit``: the training loop, with held-out rank-1 / pair AUROC per epoch;
- ``calibrate``: template scores, open-set rank-1, the unknown threshold per TTA mode and FAR;
- ``report``: curves, similarity histogram, ROC and metrics.json inside the bundle;
- ``trainer``: ``FaceTrainer`` (fit, then export one sealed bundle) and ``train_face``;
- ``asnorm`` / ``scoring``: the AS-norm cohort, and every decision rule's scores and thresholds;
- ``recalibrate``: new thresholds (and cohort, fusion statistics) for an existing bundle;
- ``lodo``: the leave-one-dataset-out campaign (``train face --lodo``);
- ``cli``: ``edgewise train face`` (``train_main``).

>>> # edgewise train face --data $EDGEWISE_DATA --out face.bundle --epochs 90
"""

from __future__ import annotations

from .augment import augment
from .calibrate import calibrate_modes, calibrate_threshold, open_set_rank1, template_scores
from .cli import train_main
from .fit import train_embedding
from .net import build_embedding_net
from .prep import (
    NORMALIZATION,
    SIZE,
    FaceData,
    default_yunet,
    faces_root,
    prepare,
    split_identities,
    to_input,
)
from .recalibrate import recalibrate
from .trainer import FaceTrainer, train_face

__all__ = [
    "SIZE",
    "NORMALIZATION",
    "FaceData",
    "FaceTrainer",
    "faces_root",
    "default_yunet",
    "prepare",
    "to_input",
    "split_identities",
    "build_embedding_net",
    "augment",
    "train_embedding",
    "template_scores",
    "calibrate_modes",
    "calibrate_threshold",
    "open_set_rank1",
    "train_face",
    "recalibrate",
    "train_main",
]
