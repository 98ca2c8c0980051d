"""``bench inspect`` groups bundles of one recipe by seed and gives the spread a re-run sees."""

from __future__ import annotations

from typing import Any

import pytest

from edgewise.benchmarks.inspect import across_seeds, bench_markdown

RECIPE = {"mode": "supervised", "epochs": 30, "scale": 0.5, "folds": 4, "recall": 0.98}


def _bundle(seed: int, caught: int, auroc: float, recipe: dict[str, Any] | None = None) -> dict[str, Any]:
    """A bench result for one bundle, as ``bench_bundles`` writes it (figures invented)."""
    defects = 79
    v = {"auroc": auroc, "caught": caught, "defects": defects, "recall": caught / defects,
         "precision": 0.5, "false_alarm_rate": 0.4, "threshold": 1.0}
    return {"bundle": f"seed_{seed}.bundle", "mode": "supervised", "seed": seed,
            "recipe": recipe or RECIPE, "variants": {"tflite_int8": v},
            "operating_point": {"variant": "tflite_int8", "recall_lower": 0.98}}


def test_bundles_differing_only_by_seed_form_one_group_with_mean_and_sample_sd() -> None:
    groups = across_seeds([_bundle(1, 79, 0.98), _bundle(0, 78, 0.97), _bundle(2, 79, 0.99)])
    assert len(groups) == 1
    g = groups[0]
    assert [x["seed"] for x in g["seeds"]] == [0, 1, 2]
    assert g["summary"]["auroc"]["mean"] == pytest.approx(0.98)
    assert g["summary"]["auroc"]["sd"] == pytest.approx(0.01)
    assert g["target_recall"] == 0.98 and g["every_seed_met_target"] is True  # 78/79 = 0.987

def test_a_seed_below_the_target_recall_is_named_in_the_verdict() -> None:
    g = across_seeds([_bundle(0, 77, 0.97), _bundle(1, 79, 0.98)])[0]
    assert g["every_seed_met_target"] is False
    host = {"machine": "x86_64", "cpu": "cpu", "cores": 2}
    md = bench_markdown({"host": host, "threads": [1], "bundles": [], "across_seeds": [g]})
    assert "| 0 | tflite_int8 | 0.9700 | 0.975 (77/79) |" in md
    assert "for every seed: NO" in md


def test_other_recipes_and_lone_seeds_are_not_grouped() -> None:
    other = {**RECIPE, "scale": 1.0}
    assert across_seeds([_bundle(0, 79, 0.98), _bundle(1, 79, 0.98, other)]) == []
    assert across_seeds([_bundle(0, 79, 0.98), _bundle(0, 79, 0.98)]) == []  # the same seed twice
