"""The operating point: open-set rank-1, and the unknown-person threshold for a target false-accept rate.

The routine lives with the edge (``edge.apps.face.calibrate``, numpy only) so that the trainer
and ``edgewise convert --task face-embedding`` (a pretrained embedder, calibrated on the user's
own identities) set thresholds the same way; the names are re-exported here for the trainer.
"""

from __future__ import annotations

from edgewise.edge.apps.face.calibrate import (
    FARS,
    TemplateScores,
    by_tta,
    calibrate_modes,
    calibrate_threshold,
    open_set_rank1,
    pair_auc,
    same_source,
    template_scores,
    tta_scores,
)

__all__ = ["FARS", "TemplateScores", "template_scores", "tta_scores", "same_source", "calibrate_threshold",
           "calibrate_modes", "by_tta", "open_set_rank1", "pair_auc"]
