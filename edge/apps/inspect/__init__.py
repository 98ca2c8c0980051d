"""Visual inspection on the edge: tile a part image, score every tile, PASS/FAIL the part.

One job per module: ``tiling`` (the ONE preprocessing that training, the benchmark and the
device share), ``scoring`` (tile scores, the nearest-good memory bank, the part's score),
``overlay`` (the annotated picture), ``reject`` (the GPIO reject gate), ``app``
(``InspectApp`` and its operator ``InspectOptions``, driven by the shared runner) and ``cli``
(``edgewise run inspect``).
The names are re-exported here, so ``from edgewise.edge.apps.inspect import X`` keeps
working for every caller whichever module owns X.

>>> # edgewise run inspect --bundle tiles.bundle --source parts/ --save-fails fails/
>>> tile_positions(100, 150, tile=64, stride=32)[-1]
(36, 86)
"""

from __future__ import annotations

from .app import InspectApp, InspectOptions
from .cli import run_main
from .overlay import OVERLAY_MIN_SIDE, overlay
from .reject import open_reject_pin
from .scoring import NearestGood, image_score, predict_rows, score_map, score_tiles, sigmoid, unit_rows
from .tiling import (
    NORM_MEAN,
    NORM_STD,
    NORMS,
    TileConfig,
    condition,
    crop_roi,
    make_tiles,
    normalize,
    parse_roi,
    prepare_part,
    rescale,
    tile_positions,
    to_gray,
)

__all__ = [
    "TileConfig",
    "NORMS",
    "NORM_MEAN",
    "NORM_STD",
    "to_gray",
    "crop_roi",
    "parse_roi",
    "rescale",
    "tile_positions",
    "make_tiles",
    "normalize",
    "condition",
    "image_score",
    "prepare_part",
    "score_map",
    "score_tiles",
    "predict_rows",
    "NearestGood",
    "unit_rows",
    "overlay",
    "OVERLAY_MIN_SIDE",
    "sigmoid",
    "open_reject_pin",
    "InspectApp",
    "InspectOptions",
    "run_main",
]
