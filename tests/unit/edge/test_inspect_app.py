"""InspectApp without training: the event it emits, and that its meaning comes from the bundle only.

A stand-in model scores a tile by its mean brightness, so where the worst tile is and whether
the part fails are known in advance.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgewise.edge.apps.inspect import InspectApp, InspectOptions
from edgewise.edge.bundle import BundleError, BundleWriter, Variant, load_bundle
from edgewise.edge.pipeline import Frame

TILING = {"tile": 32, "stride": 16, "scale": 0.5, "norm": "none", "top_k": 1}


class Brightness:
    """Tile (n, t, t, 1) in [0, 1] -> one 'logit' per tile: its mean brightness."""

    closed = False

    def predict(self, x: np.ndarray) -> np.ndarray:
        return x.reshape(len(x), -1).mean(1, keepdims=True)

    def close(self) -> None:
        self.closed = True


def _bundle(root: Path, tiling: dict, thresholds: dict) -> Path:
    w = BundleWriter(root, name="parts", task="inspection", app="inspect")
    w.add_bytes("model_float32.tflite", b"\x00" * 64)
    w.meta["input"] = {"shape": [None, 32, 32, 1], "dtype": "float32",
                       "normalization": {"scale": 1 / 255, "offset": 0.0}}
    w.meta["output"] = {"shape": [None, 1], "dtype": "float32", "kind": "logit"}
    w.meta["config"] = {"tiling": tiling}
    w.meta["thresholds"] = thresholds
    w.add_variant(Variant("tflite_float32", "model_float32.tflite", "litert", "float32"))
    return w.finish()


def _part(spot: bool) -> Frame:
    img = np.zeros((200, 240), np.uint8)
    if spot:
        img[40:80, 160:200] = 255  # a bright "defect", 40x40 source pixels
    return Frame(img, 0.0, 3, {"path": "parts/p.png"})


def test_event_fails_at_the_variant_threshold_and_points_at_the_defect_in_source_pixels(
    tmp_path: Path,
) -> None:
    thresholds = {"decision": 0.9, "per_variant": {"tflite_float32": 0.3}}
    b = load_bundle(_bundle(tmp_path / "b", TILING, thresholds))
    with InspectApp(b, model=Brightness()) as app:
        assert app.threshold == 0.3  # calibrated for this variant, not the bundle-wide 0.9
        events = {spot: app.postprocess(f, app.infer(app.preprocess(f))) for spot in (False, True)
                  for f in [_part(spot)]}
    bad, good = events[True], events[False]
    assert (bad.answer, good.answer) == ("FAIL", "PASS")
    assert bad.score >= 0.3 > good.score and app.fails == 1
    wire = bad.to_dict()
    assert wire["decision"] == "FAIL" and wire["threshold"] == 0.3 and wire["path"] == "parts/p.png"
    assert 0 < wire["probability"] < 1 and wire["variant"] == "tflite_float32"
    x, y, w, h = wire["worst_tile"]  # 32-px tile at scale 0.5 = 64 source pixels, over the spot
    assert (w, h) == (64, 64) and x <= 160 and x + w >= 200 and y <= 40 and y + h >= 80


def test_a_region_of_interest_offsets_the_worst_tile_back_to_source_pixels(tmp_path: Path) -> None:
    b = load_bundle(_bundle(tmp_path / "b", TILING, {"decision": 0.3}))
    with InspectApp(b, model=Brightness(), roi="120,20,100,100") as app:
        f = _part(True)
        ev = app.postprocess(f, app.infer(app.preprocess(f)))
    x, y, w, h = ev.extra["worst_tile"]
    assert ev.answer == "FAIL" and x >= 120 and y >= 20 and x <= 160 and x + w >= 200


def test_a_bundle_without_its_tiling_scale_is_refused_before_any_model_loads(tmp_path: Path) -> None:
    tiling = {k: v for k, v in TILING.items() if k != "scale"}
    root = _bundle(tmp_path / "b", tiling, {"decision": 0.5})
    # no model injected: had the app guessed a scale, it would go on to load the 64 zero bytes
    with pytest.raises(BundleError, match=r"b: config.tiling lacks scale"):
        InspectApp(load_bundle(root))


def test_bad_operator_options_are_refused_naming_their_flag() -> None:
    with pytest.raises(ValueError, match=r"--pulse 0.0: must be positive"):
        InspectOptions(pulse=0.0)
    with pytest.raises(ValueError, match=r"--roi must be x,y,w,h"):
        InspectOptions(roi="1,2")
    assert InspectOptions(roi="1,2,3,4").roi_box == (1, 2, 3, 4)
