"""The face trainer's manners and its operating point, without training a network."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgewise.train.face import FaceTrainer, calibrate_threshold
from edgewise.train.face.calibrate import same_source, tta_scores

REPO = Path(__file__).resolve().parents[3]


def test_trainer_init_only_stores_settings_and_export_needs_fit(tmp_path):
    t = FaceTrainer(epochs=3, tta="enroll", size=32)
    assert (t.epochs, t.tta, t.size) == (3, "enroll", 32)
    assert not [k for k in vars(t) if k.endswith("_")], "nothing learned before fit"
    with pytest.raises(ValueError, match="call fit"):
        t.export(tmp_path / "b")
    assert not (tmp_path / "b").exists(), "no bundle, not even an unsealed one"


@pytest.mark.parametrize("bad, msg", [({"tta": "mirror"}, "unknown --tta"),
                                      ({"augmentation": "wild"}, "augmentation strength")])
def test_fit_refuses_bad_settings_before_reading_any_image(tmp_path, bad, msg):
    with pytest.raises(ValueError, match=msg):
        FaceTrainer(**bad).fit(tmp_path)  # tmp_path holds no face sets: the check came first


def test_threshold_accepts_at_most_the_target_share_of_impostors():
    rng = np.random.default_rng(0)
    sims = rng.uniform(-1, 1, (400, 20))
    genuine = np.zeros_like(sims, dtype=bool)
    genuine[np.arange(400), rng.integers(0, 20, 400)] = True
    sims[genuine] = rng.uniform(0.5, 1.0, 400)
    for far in (0.01, 0.001):
        c = calibrate_threshold(sims, genuine, far)
        assert c["far_measured"] <= far and c["impostor_pairs"] == 400 * 19
        assert c["far_measured"] == pytest.approx((sims[~genuine] >= c["unknown"]).mean())
    strict, loose = calibrate_threshold(sims, genuine, 0.001), calibrate_threshold(sims, genuine, 0.01)
    assert strict["unknown"] > loose["unknown"] and strict["tar_at_threshold"] <= loose["tar_at_threshold"]


def test_impostor_pairs_across_source_sets_are_left_out_of_the_calibration():
    # two source sets (A, B) of two people each, 6 photos per person: 5 enrolled, 1 probe
    e = np.random.default_rng(0).normal(size=(24, 8)).astype(np.float32)
    y = np.repeat(np.arange(4), 6)
    names = ["A/p0", "A/p1", "B/p2", "B/p3"]
    s = tta_scores(e, e, y, "none", seed=0)
    same = same_source(names, s.ids, s.plab)
    assert same.sum() == len(s.plab) * 2  # each probe: its own template and one same-set stranger
    assert (same & s.genuine).sum() == len(s.plab)


def test_train_face_imports_neither_tensorflow_nor_benchmarks():
    code = ("import json, sys; import edgewise.train.face; "
            "print(json.dumps(sorted({m.split('.')[0] if not m.startswith('edgewise.') else "
            "'.'.join(m.split('.')[:2]) for m in sys.modules})))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert p.returncode == 0, p.stderr[-2000:]
    mods = set(json.loads(p.stdout))
    assert "edgewise.train" in mods
    assert not mods & {"tensorflow", "keras", "edgewise.benchmarks"}, mods
