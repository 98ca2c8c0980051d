"""Mirror averaging (test-time augmentation) and the choice of the calibrated unknown threshold."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from edgewise.edge.apps.face.embed import bundle_tta, l2n, tta_pair
from edgewise.edge.apps.face.match import unknown_threshold
from edgewise.edge.spec import Thresholds


def _bundle(thresholds: dict, config: dict | None = None) -> SimpleNamespace:
    spec = SimpleNamespace(thresholds=Thresholds.from_json(thresholds), config=config or {})
    return SimpleNamespace(spec=spec, path=Path("b.bundle"))


NEW = _bundle({"unknown": 0.6, "far_target": 0.001, "tta": "flip",
               "unknown_by_tta": {"flip": {"0.01": 0.5, "0.001": 0.6, "0.0001": 0.7},
                                  "none": {"0.01": 0.45, "0.001": 0.55, "0.0001": 0.65}}},
              {"tta": "flip"})


def test_threshold_follows_tta_mode_and_far_target():
    assert unknown_threshold(NEW) == 0.6
    assert unknown_threshold(NEW, far=0.0001) == 0.7
    assert unknown_threshold(NEW, "none", 0.01) == 0.45


def test_uncalibrated_far_or_mode_is_refused_by_name():
    with pytest.raises(ValueError, match=r"no threshold calibrated for FAR 0.05 in b.bundle; calibrated: "
                                         r"0.0001, 0.001, 0.01"):
        unknown_threshold(NEW, far=0.05)
    with pytest.raises(ValueError, match=r"b.bundle: no threshold calibrated for tta=enroll, FAR 0.001"):
        unknown_threshold(NEW, "enroll")


def test_old_bundle_without_table_keeps_its_single_threshold():
    old = _bundle({"unknown": 0.62, "far_target": 0.001})
    assert bundle_tta(old) == "none" and unknown_threshold(old) == 0.62
    with pytest.raises(ValueError, match="no threshold calibrated for tta=flip"):
        unknown_threshold(old, "flip")


def test_tta_pair_modes():
    rng = np.random.default_rng(0)
    e, m = l2n(rng.normal(size=(4, 8))), l2n(rng.normal(size=(4, 8)))
    both = l2n(e + m)
    en, pr = tta_pair(e, m, "flip")
    np.testing.assert_allclose(en, both)
    np.testing.assert_allclose(pr, both)
    en, pr = tta_pair(e, m, "enroll")
    np.testing.assert_allclose(en, both)
    np.testing.assert_allclose(pr, e)
    en, pr = tta_pair(e, m, "none")
    assert en is e and pr is e
    with pytest.raises(ValueError, match="unknown tta mode 'rotate'"):
        tta_pair(e, m, "rotate")


def test_six_person_row_reports_both_readings_of_accuracy_with_rejection():
    """Probes-only accuracy ignores strangers (the reference's reading); the strict one counts them."""
    from edgewise.benchmarks.face.protocols import _Tally

    t = _Tally()
    pred, truth = np.array([0, 1, 2, 2]), np.array([0, 1, 2, 0])
    t.add(pred, truth, accept=np.array([True, True, True, False]), s_accept=np.array([True, False, False]))
    r = t.row()
    assert r["accuracy_no_rejection"] == 0.75
    assert r["accuracy_with_rejection_probes_only"] == 1.0  # 3 accepted probes, all correct
    assert r["accuracy_with_rejection"] == 0.75  # one accepted stranger among 4 accepted faces
    assert r["enrollment_rate"] == 0.75 and r["false_accept_rate"] == pytest.approx(1 / 3)
