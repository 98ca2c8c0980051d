"""Figures read correctly: every latency bar visible and labelled, titles whole, overlays with a scale."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("matplotlib")


def _latency(rows: list[tuple[str, int, float, float]]) -> dict:
    host = {"machine": "x86_64", "cores": 2, "emulated": False}
    return {"host": host, "bundle": "b.bundle",
            "rows": [{"variant": v, "threads": t, "p50_ms": p50, "p99_ms": p99} for v, t, p50, p99 in rows]}


def test_latency_plot_shows_a_fast_bar_next_to_a_slow_one_with_its_value() -> None:
    import matplotlib.pyplot as plt

    from edgewise.benchmarks.report import latency_figure

    res = _latency([("tflite_int8", 1, 0.035, 0.05), ("onnx_float32", 1, 4.2, 6.0),
                    ("onnx_int8", 1, None, None)])  # a skipped variant has no timing: left out
    fig = latency_figure(res)
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"
    lo, _ = ax.get_ylim()
    bars = [p for p in ax.patches if p.get_height() > 0]
    assert len(bars) == 2 and min(b.get_height() for b in bars) == pytest.approx(0.035)
    assert lo < 0.035 / 2, "the 0.035 ms bar rises well above the axis floor"
    labels = {t.get_text() for t in ax.texts}
    assert {"0.035", "4.2"} <= labels
    assert [t.get_text() for t in ax.get_xticklabels()] == ["tflite_int8", "onnx_float32"]
    plt.close(fig)


def test_long_titles_are_wrapped_inside_a_small_figure() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from edgewise.train.report import set_title

    title = "ORL open set, 40 unseen identities (5 enrolled, 5 probes), tflite_int8, threshold 0.634"
    for wrap in (False, True):
        fig, ax = plt.subplots(figsize=(4.2, 4.2))
        ax.plot([0, 1], [0, 1])
        if wrap:
            set_title(ax, title)
        else:
            ax.set_title(title, fontsize=10)
        fig.tight_layout()
        fig.canvas.draw()
        box = ax.title.get_window_extent()
        inside = bool(box.x0 >= 0 and box.x1 <= fig.bbox.width)
        assert inside is wrap, "unwrapped, this title is cut off; wrapped, it fits"
        plt.close(fig)


def test_overlay_enlarges_a_small_part_and_adds_a_colour_scale_with_the_threshold() -> None:
    import cv2

    from edgewise.edge.apps.inspect import OVERLAY_MIN_SIDE, overlay, sigmoid

    gray = np.full((96, 193), 128, np.uint8)  # a small SYNTHETIC part: 2 x 4 tiles of 48 px
    pos = [(y, x) for y in (0, 48) for x in (0, 48, 96, 144)]
    scores = np.array([-4.0, -2.0, 0.0, 3.0, -4.0, -4.0, -4.0, -4.0])  # logits
    mask = np.zeros_like(gray, bool)
    mask[60:70, 150:160] = True
    out = overlay(gray, scores, pos, 48, threshold=1.0, label="FAIL 0.95", logits=True, mask=mask)
    f = int(np.ceil(OVERLAY_MIN_SIDE / 96))
    assert out.shape[0] == 96 * f and out.shape[1] > 193 * f  # enlarged, and a bar panel beside it
    bar = out[:, 193 * f :]
    column = bar[:, 14].astype(int)  # through the colour strip (top = score 1, bottom = score 0)
    colourful = (column.max(axis=1) - column.min(axis=1)) > 60  # text and background are grey
    runs = np.split(np.arange(len(column)), np.flatnonzero(np.diff(colourful.astype(int))) + 1)
    strip = max((r for r in runs if colourful[r[0]]), key=len)  # the longest colourful run
    assert len(strip) > out.shape[0] // 2
    jet = cv2.applyColorMap(np.array([[255], [0]], np.uint8), cv2.COLORMAP_JET)[:, 0].astype(int)
    assert np.abs(column[strip[1]] - jet[0]).max() < 40  # top: the colour of P(defect) = 1
    assert np.abs(column[strip[-2]] - jet[1]).max() < 40  # bottom: P(defect) = 0
    thr_rows = np.flatnonzero(np.all(bar[:, 3] == 0, axis=1))  # the black threshold tick left of the strip
    want = strip[0] + (1 - float(sigmoid(1.0))) * len(strip)
    assert thr_rows.size and abs(thr_rows.mean() - want) < 4
    part = out[:, : 193 * f]
    red = np.all(part == (0, 0, 255), axis=2)
    green = np.all(part == (0, 255, 0), axis=2)
    assert red[:, 144 * f : 192 * f].any() and not red[:, 48 * f : 96 * f].any()  # only the tile above thr
    assert green.any()  # the true defect outlined
