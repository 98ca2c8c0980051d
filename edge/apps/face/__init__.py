"""Face recognition on the edge: detect -> align -> embed -> match against an SQLite gallery.

- ``detect``: YuNet, Ultra-Light and Haar behind one ``detect(img) -> list[Detection]``, and the
  one lookup of a detector's model file;
- ``align``: ``face_crop``, the canonical crop the network sees in training, benchmark and here;
- ``embed``: the bundle's embedding network and the mirror-averaging (TTA) rule;
- ``gallery``: enrolled people and their embeddings in one SQLite file;
- ``match``: best template by cosine similarity, and ``Matcher``: the bundle's decision rule
  (cosine, fused with LBP, or AS-norm) against its calibrated threshold;
- ``lbp``: LBP-histogram vectors of aligned crops (the classic descriptor the fused rule adds);
- ``calibrate``: that threshold for a target false-accept rate, set on identities nobody enrolls
  (the trainer and ``convert --task face-embedding`` share it);
- ``app``: ``FaceApp``, the three pipeline stages, emitting an ``Event`` whose answer is the person;
- ``enroll``: photos or camera shots of one person -> gallery embeddings;
- ``cli``: ``edgewise run face`` (``run_main``) and ``edgewise enroll`` (``enroll_main``).

The names below are the package's public surface; the command table, training and the emulated
Pi import them from here.

>>> # edgewise enroll --gallery people.db --name alice --images photos/alice --bundle face.bundle
>>> # edgewise run face --bundle face.bundle --gallery people.db --source 0
"""

from __future__ import annotations

from .align import align_face, box_transform, canonical_points, face_crop, face_crops
from .app import FaceApp, FaceOptions
from .cli import enroll_main, run_main
from .detect import (
    DETECTOR_FILES,
    DETECTORS,
    Detection,
    Detector,
    HaarDetector,
    UltraLightDetector,
    YuNetDetector,
    decode_ultralight,
    detect_padded,
    detector_model_path,
    largest,
    make_detector,
    nms,
    ultralight_priors,
)
from .embed import TTA_MODES, FaceEmbedder, bundle_tta, l2n, model_tag, tta_pair
from .gallery import Gallery
from .match import match, unknown_threshold

__all__ = [
    "Detection",
    "Detector",
    "YuNetDetector",
    "UltraLightDetector",
    "HaarDetector",
    "make_detector",
    "detector_model_path",
    "DETECTORS",
    "DETECTOR_FILES",
    "ultralight_priors",
    "decode_ultralight",
    "nms",
    "canonical_points",
    "align_face",
    "face_crop",
    "box_transform",
    "face_crops",
    "detect_padded",
    "largest",
    "l2n",
    "model_tag",
    "TTA_MODES",
    "bundle_tta",
    "tta_pair",
    "unknown_threshold",
    "FaceEmbedder",
    "Gallery",
    "match",
    "FaceApp",
    "FaceOptions",
    "run_main",
    "enroll_main",
]
