"""One set of decision rules, metrics and tolerances for parity, verify and the benchmarks."""

from __future__ import annotations

import numpy as np
import pytest

from edgewise.converters.parity import DEFAULT_TOLERANCES as PARITY_TOLERANCES
from edgewise.converters.parity import compare
from edgewise.edge.evaluate import (
    DEFAULT_TOLERANCES,
    Decider,
    DeviceTolerance,
    Tolerance,
    agreement,
    pair_similarities,
    unit_rows,
)


def test_converter_and_device_share_one_table_of_limits():
    assert PARITY_TOLERANCES is DEFAULT_TOLERANCES
    tol = DeviceTolerance()
    assert [tol.agreement_for(p) for p in ("float32", "int8")] == [0.995, 0.95]
    assert tol.metric_drop_for("float16") == 0.01
    assert DeviceTolerance(min_agreement=0.5).agreement_for("float32") == 0.5


def test_unit_rows_keeps_float32_and_leaves_zero_vectors_zero():
    x = np.array([[3, 4], [0, 0]], np.float32)
    u = unit_rows(x)
    assert u.dtype == np.float32 and np.allclose(u, [[0.6, 0.8], [0, 0]])
    assert unit_rows(np.array([[3, 4]])).dtype == np.float64
    assert np.allclose(unit_rows(np.array([0.0, 2.0])), [0, 1])


def test_pair_rule_decides_same_identity_by_cosine_and_scores_pair_auroc():
    emb = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]], np.float64)
    d = Decider("pairs", threshold=0.8)
    assert pair_similarities(emb).shape == (6,)
    same = d.decisions(None, emb, d.threshold)
    assert same.tolist() == [True, False, False, False, False, True]
    assert d.metric(None, emb, np.array([0, 0, 1, 1])) == 1.0 and d.name == "pair_auroc"


def test_without_a_stored_threshold_the_reference_median_splits_the_samples():
    ref = np.array([[0.1], [0.2], [0.3], [0.4]])
    d = Decider("threshold", score="last")
    t = d.threshold_for(ref, ref)
    assert t == pytest.approx(0.25) and d.decisions(ref, ref, t).tolist() == [False, False, True, True]


def test_unknown_rule_is_refused():
    msg = "unknown decision rule 'top1'; valid: argmax, threshold, pairs, none"
    with pytest.raises(ValueError, match=msg):
        Decider("top1")


def test_a_rule_that_decides_nothing_reports_no_agreement_instead_of_a_perfect_one():
    assert agreement(None, None) is None
    out = np.random.default_rng(0).normal(size=(8, 4))
    row = compare("v", "int8", out, out + 1e-3, out, None, Decider("none"), Tolerance(0.99, 0.01))
    assert row["decision_agreement"] is None and not row["flagged"]
    row = compare("v", "int8", out, -out, out, np.arange(8) % 4, Decider("argmax"), Tolerance(0.99, 0.01))
    assert row["flagged"] and row["decision_agreement"] < 0.99
