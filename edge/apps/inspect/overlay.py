"""The picture an operator looks at: the part with its tile scores as a heat map.

Failing tiles are boxed, the true defect (when known) is outlined, and a colour bar says
what the colours mean, so a saved FAIL image or a report figure reads without the code.
"""

from __future__ import annotations

import numpy as np

from .scoring import score_map, sigmoid

__all__ = ["OVERLAY_MIN_SIDE", "overlay"]

OVERLAY_MIN_SIDE = 384  # px: smaller parts are enlarged so tiles, boxes and text stay legible


def overlay(
    gray: np.ndarray,
    scores: np.ndarray,
    pos: list[tuple[int, int]],
    tile: int,
    threshold: float | None = None,
    label: str = "",
    logits: bool = False,
    mask: np.ndarray | None = None,
    min_side: int = OVERLAY_MIN_SIDE,
) -> np.ndarray:
    """BGR heat-map overlay of the tile scores, with a colour bar that says what the colours mean.

    Tiles at/above the threshold are boxed in red; ``mask`` (the true defect pixels, when known)
    is outlined in green. Colours: logits through the sigmoid (the bar reads P(defect) 0..1);
    other scores (distances) relative to the threshold, which sits mid-scale (the bar reads 0 to
    2x threshold), so the map reads the same whatever the score's units. A part smaller than
    ``min_side`` pixels is enlarged by a whole factor first: a 193-px part at scale 1 is too small
    to read a box or a number on.
    """
    import cv2

    unit, thr_unit = _unit_scores(scores, threshold, logits)
    f = max(1, int(np.ceil(min_side / max(1, min(gray.shape[:2])))))
    m = score_map(unit, pos, gray.shape, tile)
    heat = cv2.applyColorMap(np.clip(m * 255, 0, 255).astype(np.uint8), cv2.COLORMAP_JET)
    base = cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
    out = cv2.addWeighted(base, 0.6, heat, 0.4, 0)
    if f > 1:
        out = cv2.resize(out, (out.shape[1] * f, out.shape[0] * f), interpolation=cv2.INTER_NEAREST)
    if mask is not None and np.any(mask):
        size = (out.shape[1], out.shape[0])
        m8 = cv2.resize(np.asarray(mask, np.uint8), size, interpolation=cv2.INTER_NEAREST)
        cnts, _ = cv2.findContours(m8, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(out, cnts, -1, (0, 255, 0), max(1, f // 2))
    if threshold is not None:
        for s, (y, x) in zip(scores, pos, strict=True):
            if s >= threshold:
                corner = ((x + tile) * f - 1, (y + tile) * f - 1)
                cv2.rectangle(out, (x * f, y * f), corner, (0, 0, 255), max(1, f // 2))
    k = max(1.0, max(out.shape[:2]) / 500)  # text and colour bar grow with the part
    if label:
        _text(out, label, (4, 4), 0.5 * k)
    bar = _colour_bar(out.shape[0], "P(defect)" if logits else "score",
                      ("1", "0") if logits else (("2x thr", "0") if thr_unit else ("1", "0")), thr_unit,
                      mask is not None, k)
    return np.hstack([out, bar])


def _unit_scores(
    scores: np.ndarray, threshold: float | None, logits: bool
) -> tuple[np.ndarray, float | None]:
    """Scores and threshold mapped to 0..1 for the colour map (see ``overlay``)."""
    if logits:
        return sigmoid(scores), (float(sigmoid(threshold)) if threshold is not None else None)
    if threshold is not None:
        return np.clip(0.5 * np.asarray(scores, np.float64) / max(threshold, 1e-9), 0.0, 1.0), 0.5
    return np.clip(np.asarray(scores, np.float64), 0.0, 1.0), None


def _text(img: np.ndarray, text: str, at: tuple[int, int], scale: float) -> None:
    """``text`` with its top-left corner at ``at``, on a dark box so it reads on any colour."""
    import cv2

    thick = max(1, int(scale / 0.5 + 0.5))
    (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    x, y = at
    cv2.rectangle(img, (x - 2, y - 2), (x + w + 2, y + h + base + 1), (0, 0, 0), -1)
    cv2.putText(img, text, (x, y + h), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thick, cv2.LINE_AA)


def _colour_bar(height: int, title: str, ends: tuple[str, str], thr_unit: float | None, has_mask: bool,
                k: float = 1.0) -> np.ndarray:
    """A vertical JET scale (top = 1) with its end values, the threshold and a box/outline legend.

    Drawn at 1x and enlarged ``k`` times for a large part, so it keeps its proportions (and stays
    legible) when a report shrinks the part into a grid cell."""
    import cv2

    width, strip, top, bottom = 96, 16, 22, 70
    base = int(round(height / k))
    panel = np.full((max(base, top + bottom + 40), width, 3), 255, np.uint8)
    h = panel.shape[0] - top - bottom
    ramp = np.linspace(255, 0, h).astype(np.uint8).reshape(-1, 1)
    panel[top : top + h, 6 : 6 + strip] = cv2.applyColorMap(np.repeat(ramp, strip, axis=1), cv2.COLORMAP_JET)
    black = (0, 0, 0)
    cv2.putText(panel, title, (2, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.38, black, 1, cv2.LINE_AA)
    cv2.putText(panel, ends[0], (26, top + 8), cv2.FONT_HERSHEY_SIMPLEX, 0.38, black, 1, cv2.LINE_AA)
    cv2.putText(panel, ends[1], (26, top + h), cv2.FONT_HERSHEY_SIMPLEX, 0.38, black, 1, cv2.LINE_AA)
    if thr_unit is not None:
        y = top + int(round((1.0 - thr_unit) * (h - 1)))
        cv2.line(panel, (0, y), (5, y), black, 2)  # ticks either side: the strip's colour stays visible
        cv2.line(panel, (6 + strip, y), (6 + strip + 5, y), black, 2)
        cv2.putText(panel, "thr", (26, y + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.38, black, 1, cv2.LINE_AA)
    y = top + h + 18
    cv2.rectangle(panel, (6, y - 9), (6 + strip, y + 3), (0, 0, 255), 2)
    cv2.putText(panel, ">= thr", (28, y + 2), cv2.FONT_HERSHEY_SIMPLEX, 0.38, black, 1, cv2.LINE_AA)
    if has_mask:
        y += 22
        cv2.line(panel, (6, y - 3), (6 + strip, y - 3), (0, 255, 0), 2)
        cv2.putText(panel, "defect", (28, y + 2), cv2.FONT_HERSHEY_SIMPLEX, 0.38, black, 1, cv2.LINE_AA)
    panel = panel[:base] if panel.shape[0] > base else panel
    if k == 1.0:
        return panel
    return cv2.resize(panel, (int(round(width * k)), height), interpolation=cv2.INTER_LINEAR)
