"""Verdicts of ``edgewise demo``: one line per part, judged only on figures measured in the run.

Each part is compared against chance or a classic method measured on the same split, with a
margin of two standard errors, so a verdict says what a short training really reached.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edgewise.edge.evaluate import auroc_two_se, two_se

__all__ = ["Verdict", "verdicts", "verdict_digits", "verdict_vibration", "verdict_inspect",
           "verdict_face"]

APP_DEMOS = ("vibration", "inspect", "face")
GOOD, POOR, SHORT, SYNTHETIC, MISMATCH = "good", "POOR", "NOT MEANINGFUL", "synthetic data", "MISMATCH"


@dataclass
class Verdict:
    """One part's verdict: what was measured, the judgement, and what to do about it."""

    app: str
    measured: str
    status: str
    advice: str = ""

    def line(self) -> str:
        return f"{self.app}: {self.measured} -- {self.status}" + (f": {self.advice}" if self.advice else "")


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %".replace(".0 %", " %")


# ---------------------------------------------------------------------------------- verdicts


def verdict_digits(s: dict[str, Any]) -> Verdict:
    """int8 test accuracy against chance and a logistic regression on the same split."""
    t, e = s["test"], s.get("edge", {})
    acc, n, base, chance = t["int8_accuracy"], t["images"], t["baseline_accuracy"], t["chance"]
    measured = (f"int8 model {_pct(acc)} right on {n} held-out test digits (chance {_pct(chance)}, "
                f"{t['baseline']} {_pct(base)} on the same split)")
    if e:
        measured += f"; edge loop {e['correct']}/{e['images']} images right at {e['fps']:.0f} images/s"
    if acc <= chance + two_se(chance, n):
        return Verdict("digits", measured, POOR, "no better than chance")
    if acc < base - two_se(base, n):
        return Verdict("digits", measured, POOR, "below the classic baseline")
    return Verdict("digits", measured, GOOD)


def verdict_vibration(s: dict[str, Any]) -> Verdict:
    """Every documented target (int8 AUROC/recall/false alarms) and the edge loop's alarm."""
    q, b, e = s["int8"], s["baseline"], s["edge"]
    measured = (f"int8 autoencoder: worst fault-file AUROC {q['auroc_min']:.3f}, {_pct(q['recall_min'])} of "
                f"fault windows caught (worst file) at {_pct(q['far'])} false alarms on healthy test windows "
                f"(Mahalanobis baseline on 5 classic indicators, same run: {b['auroc_min']:.3f} / "
                f"{_pct(b['recall_min'])} / {_pct(b['far'])}); edge loop: "
                + (f"alarm {e['seconds_to_alarm']:.1f} s into the replayed fault"
                   if e["alarm_on_fault"] else "NO alarm on the replayed fault")
                + f", {e['healthy_in_alarm']}/{e['healthy_windows']} healthy windows in alarm")
    if s.get("synthetic"):
        return Verdict("vibration", measured, SYNTHETIC, "says nothing about real machines; pass --data")
    failed = [k for k, v in s["targets"].items() if not v["pass"]]
    if failed:
        return Verdict("vibration", measured, POOR, f"targets missed: {', '.join(failed)}")
    if not e["alarm_on_fault"] or e["healthy_in_alarm"]:
        return Verdict("vibration", measured, POOR, "the edge loop's alarm disagrees with the evaluation")
    return Verdict("vibration", measured, GOOD)


def verdict_inspect(s: dict[str, Any]) -> Verdict:
    """Ranking against chance (AUROC 0.5) and the operating point against random flagging.

    A rule that fails parts at random reaches recall r by failing r of the good parts too; the
    model's threshold is better than chance only if it fails clearly fewer good parts than that,
    and it works as an inspector only if it passes most good parts (as a face recognizer must
    recognise most enrolled photos).
    """
    t, e = s["test"], s.get("edge", {})
    a, n_pos, n_neg = t["auroc"], t["defective"], t["good"]
    r, f = t["recall"], t["false_alarm_rate"]
    measured = (f"test AUROC {a:.3f} on {n_pos + n_neg} held-out parts (chance 0.5); at the threshold chosen "
                f"on validation for {_pct(s['target_recall'])} recall, {_pct(r)} of defective and {_pct(f)} "
                f"of good parts fail (failing parts at random: {_pct(r)} of good parts)")
    if e:
        measured += (f"; edge loop {e['failed']}/{e['parts']} parts failed ({e['good_failed']}/{e['good']} "
                     f"good, {e['defective_failed']}/{e['defective']} defective)")
    if not s.get("real", True):
        return Verdict("inspect", measured, SYNTHETIC, "says nothing about real parts; pass --data")
    ranks = a - auroc_two_se(a, n_pos, n_neg) > 0.5
    beats_random = f + two_se(f, n_neg) < r
    short = " after this demo-sized training" if s.get("short") else ""
    if not ranks or not beats_random:
        why = ("no better than chance" if not ranks
               else "its threshold fails good parts about as often as chance")
        return Verdict("inspect", measured, SHORT if s.get("short") else POOR,
                       f"{why}{short}; the full model: {s['full_command']}")
    if f >= 0.5:
        return Verdict("inspect", measured, POOR, f"better than chance, but its threshold fails most good "
                       f"parts{short}; the full model: {s['full_command']}")
    return Verdict("inspect", measured, GOOD)


def verdict_face(s: dict[str, Any]) -> Verdict:
    """Open-set rank-1 against the best classic method of the same run; the edge loop against
    the benchmark's 6-person protocol at the bundle threshold (the device must do what was measured)."""
    e, o, six = s["edge"], s["open_set"], s["six_person"]
    rank1, classic, n = o["rank1"], o["classic_rank1"], o["probes"]
    measured = (f"edge loop recognised {e['recognised']}/{e['enrolled_probes']} photos of the "
                f"{e['enrolled_people']} enrolled people and accepted "
                f"{e['strangers_accepted']}/{e['strangers']} stranger photos; "
                f"rank-1 on {o['people']} unseen ORL people {_pct(rank1)} vs "
                f"{o['classic']} {_pct(classic)} (same run)")
    tar, far = six["recognised_rate"], six["stranger_accept_rate"]
    got = e["recognised"] / max(e["enrolled_probes"], 1)
    acc = e["strangers_accepted"] / max(e["strangers"], 1)
    if abs(got - tar) > two_se(tar, e["enrolled_probes"]) or acc > far + two_se(far, e["strangers"]):
        return Verdict("face", measured, MISMATCH,
                       f"the benchmark predicts {_pct(tar)} recognised / {_pct(far)} strangers accepted at "
                       "the bundle threshold; the device path (enroll + run) differs from it")
    short = f" after this demo-sized training ({s['epochs']} epochs)" if s.get("short") else ""
    if rank1 < classic - two_se(classic, n):
        return Verdict("face", measured, POOR,
                       f"below the classic method{short}; the full model: {s['full_command']}")
    if e["recognised"] * 2 < e["enrolled_probes"]:  # recognised less often than not: not working
        return Verdict("face", measured, POOR,
                       f"at the threshold calibrated for {_pct(s['far_target'])} false accepts most enrolled "
                       f"photos are rejected{short}; the full model: {s['full_command']}")
    return Verdict("face", measured, GOOD)


VERDICTS = {"digits": verdict_digits, "vibration": verdict_vibration, "inspect": verdict_inspect,
            "face": verdict_face}


def verdicts(summary: dict[str, Any]) -> list[Verdict]:
    """One verdict per part of a demo summary, from its measured figures only."""
    out = []
    for app, fn in VERDICTS.items():
        s = summary.get(app)
        if s is None:
            continue
        if "skipped" in s:
            out.append(Verdict(app, "not run", "skipped", s["skipped"]))
            continue
        try:
            out.append(fn(s["verdict"]))
        except (KeyError, TypeError) as err:
            out.append(Verdict(app, "figures missing from its summary", POOR, f"no {err}"))
    return out


# ---------------------------------------------------------------------------------- demo parts


