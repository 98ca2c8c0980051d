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
        fail, labels, at_threshold = [], [], 0
        for i, e in enumerate(val):
            frame = Frame(read_image(e["path"], gray=True), 0.0, i, {"path": e["path"]})
            ev = app.postprocess(frame, app.infer(app.preprocess(frame)))
            fail.append(ev.answer == "FAIL")
            labels.append(e["kind"] != "good")
            # the threshold is one good part's own score: that part, and any part within float
            # rounding of it, can land on either side from run to run (seen in CI)
            at_threshold += abs(ev.score - app.threshold) <= 1e-6 + 1e-3 * abs(app.threshold)
    finally:
        app.close()
    f, y = np.array(fail), np.array(labels)
    # the edge app reproduces the validation operating point the training computed
    op = m["operating_point_val"]
    off = abs(int((f & ~y).sum()) - op["fp"]) + abs(int((f & y).sum()) - op["tp"])
    assert off <= at_threshold <= 2, (op, off, at_threshold)


@pytest.mark.parametrize("variant", ["tflite_float32", "tflite_int8"])
def test_each_variant_scores_against_its_own_bank_of_good_training_tiles(
    good_run: tuple[Path, dict], variant: str
) -> None:
    from edgewise.edge.apps.inspect import NearestGood, TileConfig, prepare_part, score_tiles
    from edgewise.edge.backends import load_model
    from edgewise.train.inspect import synthetic_defect

    b = load_bundle(good_run[0])
    assert b.output["kind"] == "distance" and b.output["head"]["kind"] == "nearest-good"
    head = NearestGood.from_bundle(b, variant)
    assert head is not None
    split = json.loads(b.file("report/split.json").read_text())
    tiling = TileConfig(**b.config["tiling"])
    train_good = [e["path"] for e in split["train"] if e["kind"] == "good"]
    tiles = prepare_part(read_image(train_good[0], gray=True), tiling)[1]
    m = load_model(b, variant, threads=1)
    try:
        own = score_tiles(m, tiles, head=head)
        u8 = np.clip(tiles[..., 0] * 255, 0, 255).astype(np.uint8)
        rng = np.random.default_rng(0)
        bad = np.stack([synthetic_defect(t, rng, u8[-1]) for t in u8]).astype(np.float32)[..., None] / 255
        other = score_tiles(m, bad, head=head)
    finally:
        m.close()
    # every tile of a good training part is in the bank, embedded by this very variant (the
    # tiny run keeps them all), so the int8 model finds its own int8 features at distance 0
    assert np.all(np.abs(own) < 1e-4), own
    # tiles with a synthetic defect are not in it: their distances stand far above rounding
    assert np.median(other) > 10 * np.abs(own).max(), (other, own)


def test_int8_bank_holds_int8_features_not_a_copy_of_the_float_bank(good_run: tuple[Path, dict]) -> None:
    from edgewise.edge.apps.inspect import NearestGood

    b = load_bundle(good_run[0])
    f32, i8 = (NearestGood.from_bundle(b, v) for v in ("tflite_float32", "tflite_int8"))
    assert f32 is not None and i8 is not None and f32.bank.shape == i8.bank.shape
    cos = (f32.bank * i8.bank).sum(1)
    assert cos.min() > 0.9  # the same tiles ...
    assert np.abs(f32.bank - i8.bank).max() > 1e-3  # ... seen through different arithmetic


def test_parity_metric_ignores_a_good_rows_own_copy() -> None:
    from edgewise.train.inspect import loo_nearest_good

    good = np.array([[1.0, 0.0], [1.0, 0.0], [0.9, 0.1], [0.9, 0.1]])
    f = np.concatenate([good, [[0.0, 1.0]]])
    d = loo_nearest_good(f, np.array([0, 0, 0, 0, 1]))
    # each good row has a twin, so 0; without leaving itself out every good row would be 0
    # trivially and the defect's distance is measured to the nearest good row
    assert np.allclose(d[:4], 0, atol=1e-6) and d[4] > 0.8
    lone = loo_nearest_good(f[[0, 2, 4]], np.array([0, 0, 1]))
    assert lone[0] > 1e-3 and lone[1] > 1e-3  # no twin: the distance to the other good row


def test_tampered_memory_bank_is_refused(good_run: tuple[Path, dict], tmp_path: Path) -> None:
    import shutil

    from edgewise.edge.bundle import BundleError

    copy = tmp_path / "b"
    shutil.copytree(good_run[0], copy)
    bank = copy / load_bundle(copy).output["head"]["banks"]["tflite_int8"]
    bank.write_bytes(bank.read_bytes()[:-16])
    with pytest.raises(BundleError, match="memory_tflite_int8.npy"):
        InspectApp(load_bundle(copy), "tflite_int8")


def test_variant_without_a_memory_bank_is_refused_in_one_line(
    good_run: tuple[Path, dict], tmp_path: Path
) -> None:
    import shutil

    from edgewise.edge.bundle import BundleError

    copy = tmp_path / "b"
    shutil.copytree(good_run[0], copy)
    meta = json.loads((copy / "bundle.json").read_text())
    del meta["output"]["head"]["banks"]["tflite_int8"]
    (copy / "bundle.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError, match="no memory bank for variant tflite_int8") as e:
        InspectApp(load_bundle(copy), "tflite_int8")
    assert "\n" not in str(e.value)


def test_coreset_keeps_a_member_of_every_distant_cluster() -> None:
    from edgewise.train.inspect import coreset

    rng = np.random.default_rng(0)
    centres = np.eye(5) * 10
    x = np.concatenate([c + rng.normal(0, 0.1, (200 if i == 0 else 3, 5)) for i, c in enumerate(centres)])
    idx = coreset(x, 5)
    assert len(set(idx)) == 5
    # one pick per cluster, the three-point clusters included (random picks would miss them)
    assert sorted({int(np.argmax(np.abs(x[i]))) for i in idx}) == [0, 1, 2, 3, 4]
