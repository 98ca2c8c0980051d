"""``edgewise demo``'s verdicts: each line is derived from the measured figures of its summary."""

from __future__ import annotations

import math

import pytest

from edgewise.benchmarks.demo.verdicts import (
    GOOD,
    MISMATCH,
    POOR,
    SHORT,
    SYNTHETIC,
    auroc_two_se,
    two_se,
    verdict_digits,
    verdict_face,
    verdict_inspect,
    verdict_vibration,
    verdicts,
)


def _digits(int8: float, baseline: float) -> dict:
    return {"test": {"images": 360, "int8_accuracy": int8, "keras_accuracy": int8, "chance": 0.1,
                     "baseline": "logistic regression on the pixels", "baseline_accuracy": baseline},
            "edge": {"images": 60, "correct": 58, "fps": 6000.0}}


def _vibration(**over: object) -> dict:
    s = {"synthetic": False,
         "targets": {"int8_auroc_min>=0.999": {"value": 1.0, "pass": True}},
         "int8": {"auroc_min": 1.0, "recall_min": 1.0, "far": 0.0},
         "baseline": {"auroc_min": 1.0, "recall_min": 1.0, "far": 0.0},
         "edge": {"healthy_windows": 8, "healthy_in_alarm": 0, "alarm_on_fault": True,
                  "seconds_to_alarm": 0.4}}
    s.update(over)
    return s


def _inspect(auroc: float, recall: float, false_alarms: float) -> dict:
    return {"real": True, "short": True, "target_recall": 0.98,
            "test": {"auroc": auroc, "defective": 79, "good": 75, "recall": recall,
                     "false_alarm_rate": false_alarms},
            "edge": {"parts": 30, "failed": 30, "good": 15, "good_failed": 15, "defective": 15,
                     "defective_failed": 15},
            "full_command": "edgewise train inspect --data DATA --out mt.bundle"}


def _face(recognised: int, strangers_accepted: int, rank1: float, classic: float,
          predicted: float, predicted_far: float = 0.002) -> dict:
    return {"edge": {"enrolled_people": 6, "enrolled_probes": 30, "recognised": recognised,
                     "strangers": 30, "strangers_accepted": strangers_accepted},
            "open_set": {"people": 40, "probes": 200, "rank1": rank1, "classic": "fisherfaces aligned",
                         "classic_rank1": classic},
            "six_person": {"recognised_rate": predicted, "stranger_accept_rate": predicted_far,
                           "probes": 90, "strangers": 1020},
            "far_target": 0.001, "short": True, "epochs": 8,
            "full_command": "edgewise train face --data DATA --out f.bundle"}


def test_two_standard_errors_of_a_proportion_and_of_an_auroc() -> None:
    assert two_se(0.5, 100) == pytest.approx(0.1)
    assert two_se(1.0, 100) == pytest.approx(0.02)  # floored: a perfect score on 100 items keeps a margin
    # Hanley & McNeil at AUROC 0.5 with 10 + 10 items: variance 0.0175
    assert auroc_two_se(0.5, 10, 10) == pytest.approx(2 * math.sqrt(0.0175))


def test_digits_verdict_is_good_when_int8_matches_the_classic_baseline() -> None:
    v = verdict_digits(_digits(0.967, 0.961))
    assert v.status == GOOD
    assert "96.7 %" in v.line() and "96.1 %" in v.line() and "58/60" in v.line()
    assert v.line().endswith("-- good")


def test_digits_verdict_is_poor_below_the_classic_baseline() -> None:
    v = verdict_digits(_digits(0.80, 0.96))
    assert v.status == POOR and "below the classic baseline" in v.advice


def test_digits_verdict_is_poor_at_chance() -> None:
    assert verdict_digits(_digits(0.11, 0.96)).advice == "no better than chance"


def test_vibration_verdict_follows_targets_and_the_edge_alarm() -> None:
    assert verdict_vibration(_vibration()).status == GOOD
    missed = _vibration(targets={"int8_far<=0.01": {"value": 0.05, "pass": False}})
    assert verdict_vibration(missed).status == POOR and "int8_far<=0.01" in verdict_vibration(missed).advice
    silent = _vibration(edge={"healthy_windows": 8, "healthy_in_alarm": 0, "alarm_on_fault": False,
                              "seconds_to_alarm": None})
    assert verdict_vibration(silent).status == POOR and "NO alarm" in verdict_vibration(silent).measured
    assert verdict_vibration(_vibration(synthetic=True)).status == SYNTHETIC


def test_inspect_verdict_says_a_threshold_failing_good_parts_like_chance_is_not_meaningful() -> None:
    # the short demo model as measured: 97 % of defects caught by failing 95 % of the good parts
    v = verdict_inspect(_inspect(0.786, 0.975, 0.947))
    assert v.status == SHORT
    assert "as often as chance" in v.advice and "edgewise train inspect" in v.advice
    assert "0.786" in v.line() and "15/15 good" in v.line()


def test_inspect_verdict_is_good_when_the_threshold_beats_random_flagging_and_passes_most_good_parts(
        ) -> None:
    assert verdict_inspect(_inspect(0.97, 1.0, 0.37)).status == GOOD


def test_inspect_verdict_is_poor_when_better_than_chance_but_failing_most_good_parts() -> None:
    v = verdict_inspect(_inspect(0.887, 0.987, 0.82))
    assert v.status == POOR and "fails most good parts" in v.advice and "edgewise train inspect" in v.advice


def test_inspect_verdict_at_chance_ranking() -> None:
    v = verdict_inspect(_inspect(0.52, 0.98, 0.95))
    assert v.status == SHORT and v.advice.startswith("no better than chance")


def test_face_verdict_is_good_when_recognition_matches_the_benchmark_and_the_classic_method() -> None:
    v = verdict_face(_face(recognised=27, strangers_accepted=0, rank1=0.97, classic=0.975, predicted=0.9))
    assert v.status == GOOD
    assert "27/30" in v.line() and "0/30" in v.line()


def test_face_verdict_names_a_weak_short_model_and_the_full_command() -> None:
    # the 8-epoch demo model: threshold consistent with the benchmark, rank-1 far below Fisherfaces
    v = verdict_face(_face(recognised=2, strangers_accepted=0, rank1=0.76, classic=0.975, predicted=0.1))
    assert v.status == POOR and "demo-sized training (8 epochs)" in v.advice
    assert "below the classic method" in v.advice and "edgewise train face" in v.advice


def test_face_verdict_flags_an_edge_loop_that_disagrees_with_the_benchmark() -> None:
    # 0/30 recognised where the benchmark of the same bundle accepts 90 %: the device path is broken
    v = verdict_face(_face(recognised=0, strangers_accepted=0, rank1=0.97, classic=0.975, predicted=0.9))
    assert v.status == MISMATCH


def test_face_verdict_when_the_threshold_rejects_most_enrolled_people() -> None:
    v = verdict_face(_face(recognised=9, strangers_accepted=0, rank1=0.97, classic=0.975, predicted=0.3))
    assert v.status == POOR and "most enrolled photos are rejected" in v.advice


def test_verdicts_cover_every_part_and_report_skips_and_missing_figures() -> None:
    summary = {"digits": {"verdict": _digits(0.967, 0.961)},
               "vibration": {"verdict": _vibration()},
               "inspect": {"verdict": {"real": True}},  # figures missing
               "face": {"skipped": "face demo skipped: it needs the public face sets"}}
    lines = {v.app: v for v in verdicts(summary)}
    statuses = [lines[a].status for a in ("digits", "vibration", "inspect", "face")]
    assert statuses == [GOOD, GOOD, POOR, "skipped"]
    assert "figures missing" in lines["inspect"].measured
