"""The recall guarantee: Clopper-Pearson lower bounds against known values, the threshold rule,
per-kind floors, and the honest fallback when too few defects exist to show the target."""

from __future__ import annotations

import numpy as np
import pytest

from edgewise.train.inspect.guarantee import (
    choose_threshold,
    guarantee_at,
    min_defects,
    parse_kind_floors,
    recall_lower_bound,
)


@pytest.mark.parametrize(
    ("caught", "defects", "expected"),
    [
        (10, 10, 0.05 ** (1 / 10)),  # all caught: alpha ** (1/n), closed form
        (78, 78, 0.05 ** (1 / 78)),
        (9, 10, 0.6058),  # textbook exact binomial interval: 9/10 -> 90 % two-sided [0.6058, 0.9949]
        (77, 78, 0.9406),  # the validation figure a single validation threshold rests on
        (1, 1, 0.05),
    ],
)
def test_clopper_pearson_lower_bound_matches_known_values(caught: int, defects: int, expected: float) -> None:
    assert recall_lower_bound(caught, defects) == pytest.approx(expected, abs=5e-5)


def test_clopper_pearson_lower_bound_edges_and_refusals() -> None:
    assert recall_lower_bound(0, 5) == 0.0  # nothing caught: no guarantee
    assert recall_lower_bound(99, 100, 0.99) < recall_lower_bound(99, 100, 0.95) < 0.99
    for bad in ((6, 5), (-1, 5)):
        with pytest.raises(ValueError, match="caught"):
            recall_lower_bound(*bad)
    with pytest.raises(ValueError, match="confidence"):
        recall_lower_bound(5, 5, 1.0)


def test_smallest_number_of_defects_that_can_show_a_recall() -> None:
    assert min_defects(0.98) == 149  # 0.05 ** (1/149) = 0.9801, 0.05 ** (1/148) = 0.9800 - just under
    assert recall_lower_bound(149, 149) >= 0.98 > recall_lower_bound(148, 148)
    assert min_defects(0.95) == 59
    assert recall_lower_bound(59, 59) >= 0.95 > recall_lower_bound(58, 58)


def _parts(n_defect: int, n_good: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    s = np.r_[rng.normal(3.0, 1.0, n_defect), rng.normal(0.0, 1.0, n_good)]
    y = np.r_[np.ones(n_defect), np.zeros(n_good)]
    kinds = [("crack" if i % 4 == 0 else "blowhole") for i in range(n_defect)] + ["good"] * n_good
    return s, y, kinds


def test_rule_takes_the_highest_threshold_whose_lower_bound_meets_the_target() -> None:
    s, y, kinds = _parts(400, 600)
    c = choose_threshold(s, y, kinds, 0.98)
    assert c.reached and c.recall_lower >= 0.98 and c.defects == 400
    assert c.caught == int((s[y == 1] >= c.threshold).sum())
    # one defect fewer caught (the next higher threshold) breaks the bound: the highest one was taken
    d = np.sort(s[y == 1])
    higher = d[d > c.threshold].min()
    assert recall_lower_bound(int((d >= higher).sum()), 400) < 0.98
    # what it costs is stated
    fr = int((s[y == 0] >= c.threshold).sum())
    assert c.false_rejects == fr and c.false_reject_rate == pytest.approx(fr / 600)
    assert c.precision == pytest.approx(c.caught / (c.caught + fr))
    assert "Clopper-Pearson" in c.rule and "unreachable" not in c.rule


def test_unreachable_target_falls_back_to_missing_no_defect_and_says_so() -> None:
    s, y, kinds = _parts(50, 100)  # 50 < 149: 0.98 cannot be shown
    c = choose_threshold(s, y, kinds, 0.98)
    assert not c.reached and c.caught == 50 and c.threshold == s[y == 1].min()
    assert c.recall_lower == pytest.approx(0.05 ** (1 / 50)) and c.min_defects == 149
    assert "unreachable with 50 defects" in c.rule


def test_per_kind_floor_can_only_lower_the_threshold_and_is_reported_per_kind() -> None:
    s, y, kinds = _parts(400, 600, seed=3)
    plain = choose_threshold(s, y, kinds, 0.9)
    floored = choose_threshold(s, y, kinds, 0.9, parse_kind_floors("crack=0.97", ["blowhole", "crack"]))
    assert floored.threshold <= plain.threshold
    crack = floored.per_kind["crack"]
    assert crack.min_recall == 0.97 and crack.reached == (crack.recall_lower >= 0.97)
    assert floored.per_kind["blowhole"].min_recall is None
    assert set(floored.per_kind) == {"blowhole", "crack"}  # good parts are not a defect kind


def test_tied_defect_scores_are_caught_together() -> None:
    s = np.r_[np.full(200, 5.0), np.full(100, 1.0), np.zeros(50)]
    y = np.r_[np.ones(300), np.zeros(50)]
    c = choose_threshold(s, y, ["a"] * 300 + ["good"] * 50, 0.6)
    assert c.caught in (200, 300) and c.threshold in (5.0, 1.0)
    assert c.caught == int((s[y == 1] >= c.threshold).sum())


def test_guarantee_at_a_given_threshold_and_bad_inputs() -> None:
    s, y, kinds = _parts(100, 100)
    g = guarantee_at(s, y, kinds, float(np.median(s[y == 1])), 0.9)
    assert g.caught == 50 and g.recall == 0.5 and g.recall_lower < 0.5
    with pytest.raises(ValueError, match="no defective part"):
        choose_threshold(s[y == 0], y[y == 0], ["good"] * 100)
    with pytest.raises(ValueError, match="min recall"):
        choose_threshold(s, y, kinds, 1.0)


def test_per_kind_floor_format() -> None:
    assert parse_kind_floors("0.9", ["crack", "fray"]) == {"crack": 0.9, "fray": 0.9}
    assert parse_kind_floors(" Crack=0.9, fray=0.85") == {"crack": 0.9, "fray": 0.85}
    assert parse_kind_floors(None) == {}
    for bad, msg in (("crack", "could not convert"), ("crack=1.2", "in \\(0, 1\\)"), ("=0.9", "KIND=RECALL")):
        with pytest.raises(ValueError, match=msg):
            parse_kind_floors(bad)
    with pytest.raises(ValueError, match="no defect kind scratch"):
        parse_kind_floors("scratch=0.9", ["crack"])
