"""The LiteRT YuNet's decoding: OpenCV's formulas on SYNTHETIC network outputs, and the letterbox
that maps canvas pixels back to the frame."""

from __future__ import annotations

import numpy as np
import pytest

from edgewise.edge.apps.face.yunet_lite import decode_yunet, letterbox, yunet_grid


def test_cells_run_stride_8_then_16_then_32_row_major():
    cells, strides = yunet_grid(320, 320)
    assert len(cells) == 1600 + 400 + 100
    assert strides[0] == 8 and strides[1600] == 16 and strides[-1] == 32
    assert cells[1].tolist() == [1, 0] and cells[40].tolist() == [0, 1]  # col 1; row 1 (40 cols)


def test_one_confident_cell_decodes_to_its_box_and_landmarks():
    cells, strides = yunet_grid(320, 320)
    scores, boxes, kps = np.zeros((2100, 2)), np.zeros((2100, 4)), np.zeros((2100, 10))
    i = 1600 + 7 * 20 + 5  # stride 16, col 5, row 7
    scores[i] = (0.81, 1.0)  # score = sqrt(cls * obj) = 0.9
    boxes[i] = (0.5, 0.25, np.log(4), np.log(2))
    kps[i] = np.tile([1.0, -1.0], 5)
    scores[3] = (0.5, 0.5)  # 0.5: below the threshold
    corners, score, lm = decode_yunet(scores, boxes, kps, cells, strides, 0.6)
    assert score.tolist() == pytest.approx([0.9])
    cx, cy, w, h = 5.5 * 16, 7.25 * 16, 4 * 16, 2 * 16
    assert corners[0].tolist() == pytest.approx([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])
    assert lm[0].tolist() == [[6 * 16, 6 * 16]] * 5


def test_letterbox_scales_to_fit_and_pads_bottom_right():
    img = np.full((480, 640, 3), 200, np.uint8)
    canvas, s = letterbox(img, 320, 320)
    assert s == 0.5 and canvas.shape == (320, 320, 3) and canvas.dtype == np.float32
    assert canvas[:240].min() == 200 and canvas[240:].max() == 0  # the frame on top, zeros below
