"""The stored operating point on the device: typed in bundle.json, printed by the app, and the
FAIL event and image say which tile and score decided."""

from __future__ import annotations

import copy
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgewise.edge.apps.inspect import InspectApp
from edgewise.edge.bundle import BundleError, BundleWriter, Variant, load_bundle
from edgewise.edge.pipeline import Frame
from edgewise.edge.spec import Thresholds

TILING = {"tile": 32, "stride": 16, "scale": 0.5, "norm": "none", "top_k": 1}
OP = {
    "source": "out-of-fold", "folds": 4, "variant": "tflite_float32", "threshold": 0.3,
    "rule": "highest threshold whose one-sided 95% Clopper-Pearson lower recall bound >= 0.98",
    "confidence": 0.95, "min_recall": 0.98, "defects": 313, "caught": 312, "recall": 312 / 313,
    "recall_lower": 0.9851, "reached": True, "min_defects": 149, "good": 761, "false_rejects": 190,
    "false_reject_rate": 190 / 761, "precision": 312 / 502,
    "per_kind": {"crack": {"defects": 46, "caught": 45, "recall": 45 / 46, "recall_lower": 0.9,
                           "min_recall": 0.9, "reached": True}},
}


class Brightness:
    """Tile -> one 'logit': its mean brightness (so the worst tile is known in advance)."""

    def predict(self, x: np.ndarray) -> np.ndarray:
        return x.reshape(len(x), -1).mean(1, keepdims=True)

    def close(self) -> None:
        pass


def _bundle(root: Path, thresholds: dict) -> Path:
    w = BundleWriter(root, name="parts", task="inspection", app="inspect")
    w.add_bytes("model_float32.tflite", b"\x00" * 64)
    w.meta["input"] = {"shape": [None, 32, 32, 1], "dtype": "float32",
                       "normalization": {"scale": 1 / 255, "offset": 0.0}}
    w.meta["output"] = {"shape": [None, 1], "dtype": "float32", "kind": "logit"}
    w.meta["config"] = {"tiling": TILING}
    w.meta["thresholds"] = thresholds
    w.add_variant(Variant("tflite_float32", "model_float32.tflite", "litert", "float32"))
    return w.finish()


def test_operating_point_is_typed_and_inconsistent_counts_are_refused_in_one_line() -> None:
    t = Thresholds.from_json({"decision": 0.3, "operating_point": OP})
    assert t.operating_point is not None and t.operating_point.per_kind["crack"].caught == 45
    assert "operating_point" not in t.values  # a typed field, not a free-form value
    for change, msg in (
        (lambda o: o.update(caught=314), r"operating_point.caught: 314 caught of 313 defects"),
        (lambda o: o.update(recall_lower=1.2), r"operating_point.recall_lower: must be less than or equal"),
        (lambda o: o.update(source="guess"), r"operating_point.source 'guess' is not one of"),
        (lambda o: o.pop("good"), r"operating_point.good: required field is missing"),
        (lambda o: o.update(extra=1), r"operating_point.extra: unknown key"),
    ):
        bad = copy.deepcopy(OP)
        change(bad)
        with pytest.raises(BundleError, match=msg):
            Thresholds.from_json({"decision": 0.3, "operating_point": bad})


def test_app_prints_the_stored_interval_and_says_when_a_run_overrides_the_threshold(tmp_path: Path) -> None:
    b = load_bundle(_bundle(tmp_path / "b", {"decision": 0.3, "operating_point": OP}))
    with InspectApp(b, model=Brightness()) as app:
        line = app.operating_point_line()
    assert line is not None
    assert "out-of-fold, 4 folds" in line and "caught 312/313" in line and "lower bound 0.985" in line
    assert "precision 0.622" in line and "false rejects 0.250 of 761 good parts" in line
    assert "does not apply" not in line
    with InspectApp(b, model=Brightness(), threshold=0.5) as app:
        assert "this run decides at 0.5000, so the bound does not apply" in (app.operating_point_line() or "")
    plain = load_bundle(_bundle(tmp_path / "c", {"decision": 0.3}))
    with InspectApp(plain, model=Brightness()) as app:
        assert app.operating_point_line() is None


def test_fail_event_carries_the_deciding_tile_and_score_and_the_image_shows_the_threshold(
    tmp_path: Path,
) -> None:
    b = load_bundle(_bundle(tmp_path / "b", {"decision": 0.3, "operating_point": OP}))
    img = np.zeros((200, 240), np.uint8)
    img[40:80, 160:200] = 255
    f = Frame(img, 0.0, 7, {"path": "parts/p.png"})
    with InspectApp(b, model=Brightness(), save_fails=tmp_path / "fails") as app:
        ev = app.postprocess(f, app.infer(app.preprocess(f)))
    wire = ev.to_dict()
    assert wire["decision"] == "FAIL" and wire["threshold"] == 0.3
    assert wire["worst_tile_score"] == pytest.approx(wire["score"])  # top_k 1: that tile decided
    assert wire["worst_tile_score"] >= 0.3
    x, y, w, h = wire["worst_tile"]
    assert x <= 160 and x + w >= 200 and y <= 40 and y + h >= 80
    saved = cv2.imread(wire["saved"])
    assert saved is not None and saved.shape[1] > 240  # the part, enlarged, plus its colour bar
    # the colour bar is drawn beside the part: its panel is mostly white, the heat map is not
    bar = saved[:, -40:]
    assert (bar > 240).all(axis=2).mean() > 0.5
