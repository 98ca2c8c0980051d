"""The training report inside the bundle: learning curves, held-out similarities and ROC, metrics.json."""

from __future__ import annotations

from typing import Any

import numpy as np

from edgewise.edge.jsonenc import dumps

from .calibrate import TemplateScores

__all__ = ["report_files"]


def report_files(history: dict[str, list[float]], scores: TemplateScores, same_set: np.ndarray,
                 threshold: float, metrics: dict[str, Any]) -> dict[str, bytes]:
    """``report/*`` files (bundle-relative path -> bytes) for the held-out identities.

    Impostor pairs across two source sets are left out of the histogram and the ROC, as they
    are out of the calibration: only same-set strangers say what the threshold does.
    """
    from .. import report as plots

    genuine, sims = scores.genuine, scores.sims
    kept = (genuine | same_set).ravel()
    roc = (sims.ravel()[kept], genuine.ravel()[kept].astype(int))
    groups = {"genuine": sims[genuine], "impostor (same set)": sims[~genuine & same_set]}
    return {
        "report/curves.png": plots.plot_png(plots.plot_learning_curves,
                                            {k: v for k, v in history.items() if v}, title="face embedding"),
        "report/similarity.png": plots.plot_png(
            plots.plot_score_histogram, groups, threshold=threshold,
            title="held-out identities: probe vs template cosine similarity"),
        "report/roc.png": plots.plot_png(plots.plot_roc, {"held-out, same-set impostors (keras)": roc},
                                         title="held-out verification ROC"),
        "report/metrics.json": dumps(metrics, indent=2).encode(),
    }
