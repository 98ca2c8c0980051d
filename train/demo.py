"""``edgewise demo``: the whole path, train -> convert -> bench -> run, for every part built.

It always starts with the digits classifier (real data bundled with scikit-learn, no
download), then runs each application's own demo, on the real datasets when
``--data``/``EDGEWISE_DATA`` points at them, and otherwise says what it uses. It ends with one
verdict line per part: what was measured, against what (chance, or a classic method measured
in the same run), and whether that is good. A demo-sized training that cannot reach a usable
model says so and names the full training command.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgewise.edge.progress import log

from .data import data_root

__all__ = ["demo_main", "Verdict", "verdicts", "verdict_digits", "verdict_vibration", "verdict_inspect",
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


def two_se(p: float, n: int) -> float:
    """Two standard errors of a proportion ``p`` measured on ``n`` items (a ~95 % margin).

    The variance is floored at 1/n so that 0 % or 100 % on a small sample keeps a margin.
    """
    return 2.0 * math.sqrt(max(p * (1.0 - p), 1.0 / max(n, 1)) / max(n, 1))


def auroc_two_se(a: float, n_pos: int, n_neg: int) -> float:
    """Two standard errors of an AUROC (Hanley & McNeil, 1982)."""
    q1, q2 = a / (2.0 - a), 2.0 * a * a / (1.0 + a)
    var = (a * (1 - a) + (n_pos - 1) * (q1 - a * a) + (n_neg - 1) * (q2 - a * a)) / max(n_pos * n_neg, 1)
    return 2.0 * math.sqrt(max(var, 0.0))


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
    model's threshold is useful only if it fails clearly fewer good parts than that.
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
    operates = f + two_se(f, n_neg) < r
    if ranks and operates:
        return Verdict("inspect", measured, GOOD)
    why = "no better than chance" if not ranks else "its threshold fails good parts about as often as chance"
    return Verdict("inspect", measured, SHORT if s.get("short") else POOR,
                   f"{why}{' with this demo-sized training' if s.get('short') else ''}; the full model: "
                   f"{s['full_command']}")


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


def demo_digits(out: Path, quiet: bool) -> dict:
    """Digits: train, convert (6 variants + parity), info, bench, run on an image folder."""
    import numpy as np

    from edgewise.benchmarks.latency import bench_bundle, latency_markdown
    from edgewise.edge.apps.classify import ClassifyApp
    from edgewise.edge.bundle import load_bundle
    from edgewise.edge.pipeline import Runner
    from edgewise.edge.sinks import JsonLinesSink
    from edgewise.edge.sources import ImageFolderSource

    from .classify import export_images, load_digits_split, train_digits

    log("== digits classifier (real data: scikit-learn's bundled UCI digits) ==", quiet=quiet)
    bundle_dir = out / "digits.bundle"
    _, res = train_digits(bundle_dir, quiet=quiet)
    print((res.path / "report" / "parity.md").read_text())
    bundle = load_bundle(bundle_dir)  # verifies every checksum
    bench = bench_bundle(bundle, threads=[1, 2], iterations=300, quiet=quiet)
    md = latency_markdown(bench)
    (out / "digits_latency.md").write_text(md)
    (out / "digits_latency.json").write_text(json.dumps(bench, indent=2))
    print(md)
    split = load_digits_split()
    n_edge = 60
    images = export_images(split["x_test"], out / "digits_test_images", limit=n_edge)
    app = ClassifyApp(bundle, "tflite_int8", threads=2)
    events = out / "digits_events.jsonl"
    stats = Runner(app, [JsonLinesSink(events)]).run(ImageFolderSource(images, gray=True))
    s = stats.summary()
    log(
        f"edge loop: {s['frames']} images, {s['fps']} fps, end-to-end p50 "
        f"{s['end_to_end']['p50_ms']:.2f} ms -> {events}",
        quiet=False,
    )
    ev = [json.loads(line) for line in events.read_text().splitlines()]
    truth = {f"{i:04d}.png": str(y) for i, y in enumerate(split["y_test"][:n_edge])}
    correct = sum(str(e.get("label")) == truth.get(Path(e.get("path", "")).name) for e in ev)
    int8 = next(r for r in res.parity if r["variant"] == "tflite_int8")
    from sklearn.linear_model import LogisticRegression

    flat = {k: split[k].reshape(len(split[k]), -1) for k in ("x_train", "x_test")}
    base = LogisticRegression(max_iter=2000).fit(flat["x_train"], split["y_train"])
    base_acc = float(np.mean(base.predict(flat["x_test"]) == split["y_test"]))
    verdict = {
        "test": {"images": int(len(split["y_test"])), "int8_accuracy": float(int8["metric_variant"]),
                 "keras_accuracy": float(int8["metric_keras"]),
                 "baseline": "logistic regression on the pixels",
                 "baseline_accuracy": base_acc, "chance": 0.1},
        "edge": {"images": len(ev), "correct": int(correct), "fps": float(s["fps"])},
    }
    return {"parity": res.parity, "bench": bench, "run": s, "verdict": verdict}


def demo_main(a: argparse.Namespace) -> int:
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    data = data_root(a.data)
    if data is None:
        log(
            "no datasets folder (--data / EDGEWISE_DATA): application demos use their "
            "synthetic data, labelled as such"
        )
    parts = a.apps or ["digits", *APP_DEMOS]
    summary: dict = {}
    seconds: dict[str, float] = {}
    t_all = time.monotonic()
    if "digits" in parts:
        t0 = time.monotonic()
        summary["digits"] = demo_digits(out, a.quiet)
        seconds["digits"] = time.monotonic() - t0
    for app in APP_DEMOS:
        if app not in parts:
            continue
        mod = importlib.import_module(f"edgewise.train.{app}")
        log(f"== {app} ==")
        t0 = time.monotonic()
        summary[app] = mod.demo(out / app, data=data, quiet=a.quiet)
        seconds[app] = time.monotonic() - t0
    found = verdicts(summary)
    summary["verdicts"] = [v.line() for v in found]
    summary["seconds"] = {k: round(v, 1) for k, v in seconds.items()}
    summary["seconds"]["total"] = round(time.monotonic() - t_all, 1)
    (out / "demo_summary.json").write_text(json.dumps(summary, indent=2, default=str))
    print("\n== verdict ==")
    for v in found:
        print(textwrap.fill(f"{v.line()} ({seconds.get(v.app, 0.0) / 60:.1f} min)", width=110,
                            subsequent_indent="    ", break_on_hyphens=False, break_long_words=False))
    print(f"demo: {summary['seconds']['total'] / 60:.1f} min in all; outputs in {out}/ "
          f"(figures in {out / 'demo_summary.json'})")
    return 0
