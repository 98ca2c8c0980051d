"""Inspection end to end on real magnetic tiles: a small training, the edge run, the reject pin.

One tiny supervised model is trained once per module on a subset of the real data (a few
images per kind, a few epochs, float32 + int8 TFLite only) and shared by the tests below.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest

from edgewise.edge.apps.inspect import InspectApp
from edgewise.edge.bundle import load_bundle
from edgewise.edge.evaluate import auroc_two_se
from edgewise.edge.pipeline import Frame
from edgewise.train.data.magnetic_tile import load_magnetic_tile, split_samples


@pytest.fixture(scope="module")
def small_run(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    from edgewise.train.inspect import InspectConfig, train_inspect

    out = tmp_path_factory.mktemp("inspect") / "mt_small.bundle"
    cfg = InspectConfig(
        mode="supervised", epochs=4, limit=6, threads=2, defect_crops=20, good_crops=8, batch=32
    )
    metrics = train_inspect(data_dir, out, cfg, quiet=True)
    return out, metrics


def test_small_real_training_beats_chance_clearly(small_run: tuple[Path, dict]) -> None:
    bundle_dir, m = small_run
    b = load_bundle(bundle_dir)  # every checksum verifies after the report was added
    assert set(b.variants) == {"tflite_float32", "tflite_int8"}
    # tiles: defect-centred vs good crops of held-out validation parts (chance = 0.5); a few
    # dozen training parts and ~100 steps are too few for whole-part figures to be stable.
    # "Clearly" = more than two standard errors above chance (Hanley & McNeil). A fixed 0.7 was
    # not a property of this recipe: seed 0 gives 0.82 where TensorFlow runs AVX2 kernels and
    # 0.66 where it runs AVX-512 ones (the best-epoch choice on 48 validation parts flips).
    a, n = m["val_tile_auroc_keras"], m["val_tiles"]
    assert a - 0.5 > auroc_two_se(a, n["defect"], n["good"]), (a, n)
    auc = m["test_image_auroc"]
    assert abs(auc["tflite_int8"] - auc["tflite_float32"]) <= 0.05, auc
    th = b.thresholds
    assert th["target_recall"] == 0.98 and th["val_recall"] >= 0.98
    assert 0 < th["val_precision"] <= 1
    assert b.config["split"]["seed"] == 0 and b.config["tiling"]["tile"] == 64
    report = json.loads(b.file("report/metrics.json").read_text())
    for rel in ("learning_curves", "confusion", "roc", "pr", "recall_per_kind", "worst_mistakes"):
        assert b.file(report["figures"][rel]).stat().st_size > 1000
    assert report["figures"]["overlays"]
    assert set(report["recall_per_kind_test"]) == {"good", "blowhole", "break", "crack", "fray", "uneven"}


def _part_folder(data_dir: Path, folder: Path, n_good: int = 3, n_bad: int = 4) -> list[Path]:
    """Held-out test parts (good and defective) as a plain image folder, plus one corrupt file."""
    split = split_samples(load_magnetic_tile(data_dir), seed=0)["test"]
    chosen = [s for s in split if s.label == 0][:n_good] + [s for s in split if s.kind == "blowhole"][:n_bad]
    folder.mkdir(parents=True)
    for i, s in enumerate(chosen):
        cv2.imwrite(str(folder / f"{i:02d}_{s.kind}.jpg"), cv2.imread(str(s.path), cv2.IMREAD_GRAYSCALE))
    (folder / "99_corrupt.jpg").write_bytes(b"\xff\xd8 this is not a jpeg")
    return [folder / f"{i:02d}_{s.kind}.jpg" for i, s in enumerate(chosen)]


def test_edge_run_writes_events_and_fail_images_without_tensorflow(
    small_run: tuple[Path, dict], data_dir: Path, tmp_path: Path
) -> None:
    bundle_dir, _ = small_run
    parts = _part_folder(data_dir, tmp_path / "parts")
    ev, db, fails = tmp_path / "ev.jsonl", tmp_path / "ev.db", tmp_path / "fails"
    code = (
        "import sys\n"
        "from edgewise.edge.apps.inspect import run_main\n"
        f"rc = run_main(['--bundle', {str(bundle_dir)!r}, '--source', {str(tmp_path / 'parts')!r},"
        f" '--jsonl', {str(ev)!r}, '--sqlite', {str(db)!r}, '--save-fails', {str(fails)!r},"
        " '--threads', '1'])\n"
        "print('TF_LOADED' if 'tensorflow' in sys.modules else 'TF_ABSENT')\n"
        "sys.exit(rc)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "TF_ABSENT" in r.stdout
    corrupt = [ln for ln in r.stderr.splitlines() if "99_corrupt.jpg" in ln]
    assert corrupt and "corrupt" in corrupt[0].replace("99_corrupt.jpg", ""), r.stderr  # logged, skipped
    events = [json.loads(line) for line in ev.read_text().splitlines()]
    assert [Path(e["path"]).name for e in events] == [p.name for p in parts]
    for e in events:
        assert e["decision"] in ("PASS", "FAIL") and e["app"] == "inspect"
        assert (e["decision"] == "FAIL") == (e["score"] >= e["threshold"])
        assert e["latency_ms"]["inference"] > 0 and e["tiles"] > 1
    failed = [e for e in events if e["decision"] == "FAIL"]
    assert failed, "a recall-first threshold must reject some of the blowhole parts"
    saved = sorted(fails.glob("*_FAIL.png"))
    assert [Path(e["saved"]) for e in failed] == saved
    assert cv2.imread(str(saved[0])).ndim == 3  # annotated colour overlay
    with sqlite3.connect(db) as con:
        assert con.execute("select count(*) from events").fetchone()[0] == len(events)


def test_reject_pin_pulses_on_fail_only(small_run: tuple[Path, dict], data_dir: Path) -> None:
    from gpiozero import Device, DigitalOutputDevice
    from gpiozero.pins.mock import MockFactory

    bundle_dir, _ = small_run
    old = Device.pin_factory
    Device.pin_factory = MockFactory()
    try:
        pin = Device.pin_factory.pin(17)
        img = cv2.imread(str(load_magnetic_tile(data_dir)[0].path), cv2.IMREAD_GRAYSCALE)
        frame = Frame(img, time.monotonic(), 0, {"path": "part.jpg"})

        def run(threshold: float) -> str:
            app = InspectApp(
                load_bundle(bundle_dir),
                "tflite_int8",
                threads=1,
                threshold=threshold,
                reject=DigitalOutputDevice(17),
                pulse=0.05,
            )
            ev = app.postprocess(frame, app.infer(app.preprocess(frame)))
            time.sleep(0.2)  # the pulse runs in gpiozero's background thread
            app.close()
            return ev.answer

        assert run(threshold=1e9) == "PASS"  # no logit reaches 1e9: PASS, pin never driven
        assert [s.state for s in pin.states] == [False]
        assert run(threshold=-1e9) == "FAIL"  # every logit >= -1e9: FAIL, one pulse
        assert [s.state for s in pin.states] == [False, True, False]
    finally:
        Device.pin_factory.close()
        Device.pin_factory = old


def test_run_rejects_a_bad_roi_with_a_clear_message(small_run: tuple[Path, dict], tmp_path: Path) -> None:
    from edgewise.edge.apps.inspect import run_main

    with pytest.raises(SystemExit):
        run_main(["--bundle", str(small_run[0]), "--source", str(tmp_path), "--roi", "1,2,3"])


def test_learned_pooling_is_fitted_on_the_validation_parts_and_scored_on_the_test_parts(
    small_run: tuple[Path, dict], data_dir: Path
) -> None:
    from edgewise.benchmarks.inspect_levers import ORIENTATIONS, lever_table, levers_markdown

    bundle_dir, _ = small_run
    b = load_bundle(bundle_dir)
    counts = b.config["split"]["counts"]
    res = lever_table(bundle_dir, data_dir, top_ks=[1], quiet=True)
    learned = [r for r in res["rows"] if r["top_k"] == "learned"]
    assert [r["orientations"] for r in learned] == list(ORIENTATIONS)
    assert all(0 <= r["auroc"] <= 1 and not r["stored_setting"] for r in learned)
    n_val = sum(counts["val"].values())
    assert f"fitted on the {n_val} validation parts" in res["learned_pooling"]
    assert res["test_images"] == sum(counts["test"].values())
    assert "| learned | none |" in levers_markdown(res)
