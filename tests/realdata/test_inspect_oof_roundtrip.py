"""The out-of-fold operating point on real magnetic tiles, from training to bench and device.

A tiny recipe (a few parts per kind, 2 folds, 2 epochs: figures far from the README's) is trained
once; what is checked is the plumbing of the guarantee, not its size: every pooled part scored
once by a fold model, the stored threshold is the one the bench and the app read, and both
print the same interval.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgewise.edge.apps.inspect import InspectApp
from edgewise.edge.bundle import load_bundle


@pytest.fixture(scope="module")
def oof_run(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    from edgewise.train.inspect import InspectConfig, train_inspect

    out = tmp_path_factory.mktemp("inspect_oof") / "mt_oof.bundle"
    cfg = InspectConfig(mode="supervised", epochs=2, limit=6, folds=2, threads=2, defect_crops=12,
                        good_crops=6, batch=32)
    return out, train_inspect(data_dir, out, cfg, quiet=True)


def test_threshold_comes_from_out_of_fold_scores_of_every_pooled_part(oof_run: tuple[Path, dict]) -> None:
    bundle_dir, m = oof_run
    b = load_bundle(bundle_dir)
    counts = b.config["split"]["counts"]
    assert counts["val"] == {} and b.config["split"]["folds"] == 2  # validation pooled into training
    oof = m["out_of_fold"]
    assert oof["parts"] == sum(counts["train"].values()) and sum(oof["fold_sizes"]) == oof["parts"]
    assert oof["defects"] == sum(v for k, v in counts["train"].items() if k != "good")
    op = b.spec.thresholds.operating_point
    assert op is not None and op.source == "out-of-fold" and op.folds == 2 and op.variant == "tflite_int8"
    assert op.threshold == b.spec.thresholds.for_variant("tflite_int8") == b.spec.thresholds.decision
    assert op.defects == oof["defects"] and op.good == oof["parts"] - oof["defects"]
    # a few dozen defects cannot show 0.98: the rule falls back to missing none, and says so
    assert op.defects < op.min_defects == 149 and not op.reached and op.caught == op.defects
    assert op.recall_lower == pytest.approx(0.05 ** (1 / op.defects), abs=1e-6)
    assert "unreachable" in op.rule and "val_recall" not in b.spec.thresholds.values
    report = json.loads(b.file("report/metrics.json").read_text())
    assert b.file(report["figures"]["misses"]).stat().st_size > 1000


def test_bench_and_app_read_the_same_stored_operating_point(
    oof_run: tuple[Path, dict], data_dir: Path
) -> None:
    from edgewise.benchmarks.inspect import bench_bundles, bench_markdown

    bundle_dir, _ = oof_run
    b = load_bundle(bundle_dir)
    op = b.spec.thresholds.operating_point
    assert op is not None
    res = bench_bundles([bundle_dir], data_dir, threads=[1], max_images=3, repeats=1, quiet=True)
    r = res["bundles"][0]
    assert r["operating_point"] == op.model_dump(mode="json")
    assert r["variants"]["tflite_int8"]["threshold"] == op.threshold
    t = r["targets"]["test_recall>=stored_lower_bound"]
    assert t["bound"] == op.recall_lower and t["met"] == (t["value"] >= op.recall_lower)
    pk = r["variants"]["tflite_int8"]["auroc_per_kind"]
    assert set(pk) == set(r["variants"]["tflite_int8"]["recall_per_kind"])
    assert all(0 <= a <= 1 for a in pk.values())
    md = bench_markdown(res)
    assert "int8 AUROC per kind (against the good parts): blowhole " in md
    interval = f"[{op.recall_lower:.3f}, 1]"
    assert "Stored operating point (out-of-fold, 2 folds, tflite_int8)" in md and interval in md
    assert "Test split at the same threshold: caught" in md
    with InspectApp(b, "tflite_int8", threads=1) as app:
        line = app.operating_point_line() or ""
    assert f"caught {op.caught}/{op.defects}" in line and f"lower bound {op.recall_lower:.3f}" in line


def test_lever_table_scores_the_stored_setting_as_the_bench_does(
    oof_run: tuple[Path, dict], data_dir: Path
) -> None:
    from edgewise.benchmarks.inspect import bench_bundles
    from edgewise.benchmarks.inspect_levers import ORIENTATIONS, lever_table, levers_markdown

    bundle_dir, _ = oof_run
    res = lever_table(bundle_dir, data_dir, top_ks=[1, 3], quiet=True)
    bench = bench_bundles([bundle_dir], data_dir, threads=[1], max_images=1, repeats=1, quiet=True)
    i8 = bench["bundles"][0]["variants"]["tflite_int8"]
    stored = [r for r in res["rows"] if r["stored_setting"]]
    assert len(stored) == 1 and len(res["rows"]) == 2 * len(ORIENTATIONS)
    assert stored[0]["auroc"] == i8["auroc"] and stored[0]["recall"] == i8["recall"]
    assert {r["calls_per_part"] for r in res["rows"]} == {1, 4, 8}
    assert "Reported, not chosen" in levers_markdown(res)
    assert res["learned_pooling"].startswith("not measured: the bundle has no validation parts")
