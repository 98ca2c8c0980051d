"""Good-only inspection: no real defect in training or in the threshold, same edge scoring path.

One tiny good-only model (a few real good parts, one epoch) is trained once; the tests check
what the mode promises, not its accuracy (the full-run figures are in docs/inspect.md).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgewise.edge.apps.inspect import InspectApp
from edgewise.edge.bundle import load_bundle
from edgewise.edge.pipeline import Frame
from edgewise.edge.sources.files import read_image

FALSE_ALARM = 0.1


@pytest.fixture(scope="module")
def good_run(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    from edgewise.train.inspect import InspectConfig, train_inspect

    out = tmp_path_factory.mktemp("inspect_good") / "mt_good.bundle"
    cfg = InspectConfig(
        mode="good-only",
        epochs=1,
        limit=4,
        threads=2,
        good_crops=6,
        batch=32,
        norm="image",
        top_k=2,
        false_alarm=FALSE_ALARM,
    )
    return out, train_inspect(data_dir, out, cfg, quiet=True)


def test_good_only_threshold_comes_from_good_validation_parts_only(good_run: tuple[Path, dict]) -> None:
    bundle_dir, m = good_run
    b = load_bundle(bundle_dir)
    th = b.thresholds
    assert "no defects used" in th["rule"] and th["target_false_alarm"] == FALSE_ALARM
    assert "target_recall" not in th
    op = m["operating_point_val"]
    # the false-alarm target holds on the good validation parts the threshold was chosen on
    assert op["false_alarm_rate"] <= FALSE_ALARM + 1e-9, op
    split = json.loads(b.file("report/split.json").read_text())
    assert any(e["kind"] != "good" for e in split["val"])  # defects existed but were not used


def test_good_only_bundle_scores_on_the_edge_exactly_as_in_training(good_run: tuple[Path, dict]) -> None:
    bundle_dir, m = good_run
    b = load_bundle(bundle_dir)
    assert b.config["tiling"]["norm"] == "image" and b.config["tiling"]["top_k"] == 2
    assert b.config["image_score"] == "mean of the top 2 tiles"
    split = json.loads(b.file("report/split.json").read_text())
    val = split["val"]
    app = InspectApp(b, "tflite_int8", threads=1)
    try:
        fail, labels = [], []
        for i, e in enumerate(val):
            frame = Frame(read_image(e["path"], gray=True), 0.0, i, {"path": e["path"]})
            ev = app.postprocess(frame, app.infer(app.preprocess(frame)))
            fail.append(ev["decision"] == "FAIL")
            labels.append(e["kind"] != "good")
    finally:
        app.close()
    f, y = np.array(fail), np.array(labels)
    # the edge app reproduces the validation operating point the training computed
    op = m["operating_point_val"]
    assert int((f & ~y).sum()) == op["fp"] and int((f & y).sum()) == op["tp"], op


def test_good_only_scores_distance_to_nearest_good_training_tile(good_run: tuple[Path, dict]) -> None:
    from edgewise.edge.apps.inspect import NearestGood, TileConfig, prepare_part, score_tiles
    from edgewise.edge.backends import load_model
    from edgewise.train.inspect import synthetic_defect

    b = load_bundle(good_run[0])
    assert b.output["kind"] == "distance" and b.output["head"]["kind"] == "nearest-good"
    head = NearestGood.from_bundle(b)
    assert head is not None
    split = json.loads(b.file("report/split.json").read_text())
    tiling = TileConfig(**b.config["tiling"])
    train_good = [e["path"] for e in split["train"] if e["kind"] == "good"]
    tiles = prepare_part(read_image(train_good[0], gray=True), tiling)[1]
    m = load_model(b, "tflite_float32", threads=1)
    try:
        own = score_tiles(m, tiles, head=head)
        u8 = np.clip(tiles[..., 0] * 255, 0, 255).astype(np.uint8)
        rng = np.random.default_rng(0)
        bad = np.stack([synthetic_defect(t, rng, u8[-1]) for t in u8]).astype(np.float32)[..., None] / 255
        other = score_tiles(m, bad, head=head)
    finally:
        m.close()
    # every tile of a good training part is in the memory bank (the tiny run keeps them all)
    assert np.all(np.abs(own) < 1e-4), own
    # tiles with a synthetic defect are not in it: their distances stand far above rounding
    assert np.median(other) > 10 * np.abs(own).max(), (other, own)


def test_tampered_memory_bank_is_refused(good_run: tuple[Path, dict], tmp_path: Path) -> None:
    import shutil

    from edgewise.edge.bundle import BundleError

    copy = tmp_path / "b"
    shutil.copytree(good_run[0], copy)
    bank = copy / load_bundle(copy).output["head"]["bank"]
    bank.write_bytes(bank.read_bytes()[:-16])
    with pytest.raises(BundleError, match="memory.npy"):
        InspectApp(load_bundle(copy), "tflite_int8")


def test_coreset_keeps_a_member_of_every_distant_cluster() -> None:
    from edgewise.train.inspect import coreset

    rng = np.random.default_rng(0)
    centres = np.eye(5) * 10
    x = np.concatenate([c + rng.normal(0, 0.1, (200 if i == 0 else 3, 5)) for i, c in enumerate(centres)])
    idx = coreset(x, 5)
    assert len(set(idx)) == 5
    # one pick per cluster, the three-point clusters included (random picks would miss them)
    assert sorted({int(np.argmax(np.abs(x[i]))) for i in idx}) == [0, 1, 2, 3, 4]
