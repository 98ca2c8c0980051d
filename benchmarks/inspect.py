"""``edgewise bench inspect``: image-level accuracy and full-image latency of inspection bundles.

For each bundle (supervised and/or good-only) and each TFLite variant (float32, int8) it
scores every held-out test image of the bundle's own split (``report/split.json``) through
the edge tiling (``edgewise.edge.apps.inspect``), then reports image AUROC, recall and
precision at the bundle threshold, the int8 - float32 AUROC delta, and the latency of a
whole image (all tiles, one batch) p50/p99 at 1 and 2 threads with the int8/float32 speed
ratio. All figures of one bundle come from one run on one host.

>>> # edgewise bench inspect --bundle mt_sup.bundle --bundle mt_good.bundle --data DATA --out bench/
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgewise.benchmarks.outputs import write_outputs
from edgewise.edge.apps.inspect import NearestGood, TileConfig, image_score, prepare_part, score_tiles
from edgewise.edge.backends import load_model
from edgewise.edge.bundle import load_bundle
from edgewise.edge.cliargs import Parser, add_json, add_quiet
from edgewise.edge.evaluate import auroc, mean_sd, percentiles
from edgewise.edge.progress import log
from edgewise.edge.sources.files import read_image

from .host import host_info, host_line

__all__ = ["bench_bundles", "bench_markdown", "bench_main", "held_out_items", "across_seeds", "TARGETS"]

VARIANTS = ("tflite_float32", "tflite_int8")
SEED_FREE = ("seed", "threads")  # training settings that do not make a different recipe
TARGETS = {
    "supervised_int8_auroc": 0.97,
    "supervised_int8_recall": 0.98,
    "good_only_auroc": 0.90,
    "int8_auroc_delta": 0.01,
    "int8_speedup": 1.5,
}


def held_out_items(bundle: Any, data: Path | None, part: str = "test") -> list[tuple[Path, str]]:
    """The bundle's held-out images of split ``part`` (test, or val: empty when the validation
    parts were pooled into training); paths re-rooted under ``data`` when given."""
    split = json.loads(bundle.file("report/split.json").read_text())
    items = []
    for e in split.get(part, []):
        p = Path(e["path"])
        if data is not None and not p.is_file():  # moved dataset: keep the tail below the kind folder
            tail = p.parts[-3:] if p.parent.name == "Imgs" else p.parts[-2:]
            cands = [Path(data, *tail), *Path(data).rglob(p.name)]
            p = next((c for c in cands if c.is_file()), p)
        items.append((p, e["kind"]))
    return items


def bench_bundles(
    bundles: list[str | Path],
    data: str | Path | None = None,
    *,
    threads: list[int] | None = None,
    max_images: int = 60,
    repeats: int = 3,
    quiet: bool = False,
) -> dict[str, Any]:
    """Accuracy on every test image and latency on ``max_images`` of them x ``repeats``."""
    threads = threads or [1, 2]
    out: dict[str, Any] = {"host": host_info(), "threads": threads, "bundles": []}
    for bpath in bundles:
        b = load_bundle(bpath)
        tiling = TileConfig.from_config(b.spec.config, where=str(b.path))
        items = held_out_items(b, Path(data) if data else None)
        tiles = []
        for p, _ in items:
            tiles.append(prepare_part(read_image(p, gray=True), tiling)[1])
        y = np.array([0 if k == "good" else 1 for _, k in items])
        kinds = [k for _, k in items]
        res: dict[str, Any] = {
            "bundle": str(b.path),
            "mode": b.spec.config.get("mode"),
            "tiling": tiling.as_dict(),
            "test_images": len(items),
            "test_defective": int(y.sum()),
            "tiles_per_image": {
                "mean": float(np.mean([len(t) for t in tiles])),
                "max": int(max(len(t) for t in tiles)),
            },
            "threshold_rule": b.spec.thresholds.get("rule"),
            # the recall the threshold guarantees, as training stored it: printed beside the test figures
            "operating_point": (b.spec.thresholds.operating_point.model_dump(mode="json")
                                if b.spec.thresholds.operating_point is not None else None),
            "variants": {},
        }
        train = b.spec.config.get("train")
        if isinstance(train, dict):  # the recipe, to group bundles that differ only by seed
            res["seed"] = train.get("seed")
            res["recipe"] = {k: v for k, v in train.items() if k not in SEED_FREE}
        lat_idx = np.linspace(0, len(tiles) - 1, min(max_images, len(tiles))).astype(int)
        for name in [v for v in VARIANTS if v in b.variants]:
            thr = b.spec.thresholds.for_variant(name)  # calibrated on this variant's own scores
            m = load_model(b, name, threads=max(threads))
            head = NearestGood.from_bundle(b, name)  # good-only memory bank: its cost is in the latency
            s = np.array([image_score(score_tiles(m, t, head=head), tiling.top_k) for t in tiles])
            m.close()
            pred = s >= thr
            tp, fp, fn = (
                int((pred & (y == 1)).sum()),
                int((pred & (y == 0)).sum()),
                int((~pred & (y == 1)).sum()),
            )
            row: dict[str, Any] = {
                "auroc": auroc(s, y),
                "threshold": thr,
                "caught": tp,
                "defects": tp + fn,
                "recall": tp / max(tp + fn, 1),
                "precision": tp / (tp + fp) if tp + fp else None,
                "false_alarm_rate": fp / max(int((y == 0).sum()), 1),
                "recall_per_kind": {
                    k: float((pred[[i for i, kk in enumerate(kinds) if kk == k]]).mean())
                    for k in sorted(set(kinds))
                    if k != "good"
                },
                # each kind against the good parts: how well a kind ranks, whatever the threshold
                "auroc_per_kind": {
                    k: auroc(s[np.isin(kinds, (k, "good"))], y[np.isin(kinds, (k, "good"))])
                    for k in sorted(set(kinds)) if k != "good" and "good" in kinds
                },
                "latency": {},
            }
            for t in threads:
                m = load_model(b, name, threads=t)
                for i in lat_idx[:3]:
                    score_tiles(m, tiles[i], head=head)  # warm up (and size the batch)
                times = []
                for _ in range(repeats):
                    for i in lat_idx:
                        t0 = time.perf_counter()
                        score_tiles(m, tiles[i], head=head)
                        times.append(time.perf_counter() - t0)
                m.close()
                pc = percentiles(times)
                row["latency"][str(t)] = {
                    "p50_ms": pc["p50_ms"],
                    "p99_ms": pc["p99_ms"],
                    "mean_ms": pc["mean_ms"],
                    "n": pc["n"],
                }
                log(
                    f"bench inspect {Path(b.path).name} {name} threads={t}: full image p50 "
                    f"{pc['p50_ms']:.1f} ms p99 {pc['p99_ms']:.1f} ms",
                    quiet=quiet,
                )
            res["variants"][name] = row
        v = res["variants"]
        if "tflite_int8" in v and "tflite_float32" in v:
            res["int8_auroc_delta"] = v["tflite_int8"]["auroc"] - v["tflite_float32"]["auroc"]
            res["int8_speedup"] = {
                t: v["tflite_float32"]["latency"][t]["mean_ms"] / v["tflite_int8"]["latency"][t]["mean_ms"]
                for t in v["tflite_int8"]["latency"]
            }
        res["targets"] = _targets(res)
        out["bundles"].append(res)
    out["across_seeds"] = across_seeds(out["bundles"])
    return out



def across_seeds(bundles: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Bundles of one recipe (every training setting equal but the seed and the thread count),
    two or more seeds: per seed the deployed variant's test figures at its stored threshold,
    then mean +- sd over the seeds. This is how much a user re-running the recipe should
    expect the figures to move."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in bundles:
        if "recipe" in r:
            groups.setdefault(json.dumps(r["recipe"], sort_keys=True, default=str), []).append(r)
    out = []
    for rs in groups.values():
        seeds = [r["seed"] for r in rs]
        if len(set(seeds)) < 2 or len(set(seeds)) < len(seeds):
            continue
        rows = []
        for r in sorted(rs, key=lambda r: r["seed"]):
            op = r.get("operating_point")
            name = op["variant"] if op else ("tflite_int8" if "tflite_int8" in r["variants"] else
                                             next(iter(r["variants"])))
            v = r["variants"][name]
            rows.append({"seed": r["seed"], "bundle": r["bundle"], "variant": name, "auroc": v["auroc"],
                         "caught": v["caught"], "defects": v["defects"], "recall": v["recall"],
                         "precision": v["precision"], "false_alarm_rate": v["false_alarm_rate"],
                         "recall_lower": op["recall_lower"] if op else None})
        keys = ("auroc", "recall", "precision", "false_alarm_rate", "recall_lower")
        target = rs[0]["recipe"].get("recall") if rs[0]["mode"] == "supervised" else None
        out.append({
            "mode": rs[0]["mode"], "recipe": rs[0]["recipe"], "seeds": rows,
            "summary": {k: mean_sd([x[k] for x in rows]) for k in keys},
            "target_recall": target,
            "every_seed_met_target": None if target is None else all(x["recall"] >= target for x in rows),
        })
    return out


def _seed_lines(g: dict[str, Any]) -> list[str]:
    r = g["recipe"]
    what = ", ".join(f"{k} {r[k]}" for k in ("epochs", "scale", "width", "arch", "folds", "top_k") if k in r)
    lines = [
        f"### Across seeds — {g['mode']} ({what}): {len(g['seeds'])} seeds, test split at each "
        "bundle's stored threshold",
        "",
        "| seed | variant | test AUROC | recall (caught/defects) | precision | false rejects | "
        "stored lower bound |",
        "|---|---|---|---|---|---|---|",
    ]
    for x in g["seeds"]:
        lines.append(f"| {x['seed']} | {x['variant']} | {_f(x['auroc'])} | {_f(x['recall'], 3)} "
                     f"({x['caught']}/{x['defects']}) | {_f(x['precision'], 3)} | "
                     f"{_f(x['false_alarm_rate'], 3)} | {_f(x['recall_lower'], 3)} |")
    s = g["summary"]
    lines.append("| mean +- sd | | " + " | ".join(
        f"{_f(s[k]['mean'], 3)} +- {_f(s[k]['sd'], 3)}"
        for k in ("auroc", "recall", "precision", "false_alarm_rate", "recall_lower")) + " |")
    if g["target_recall"] is not None:
        lines += ["", f"Test recall >= {g['target_recall']:g} at the stored threshold for every seed: "
                  f"{'yes' if g['every_seed_met_target'] else 'NO'}"]
    return [*lines, ""]


def _targets(res: dict[str, Any]) -> dict[str, Any]:
    """Each issue target as {value, target, met}."""
    v = res["variants"]
    t: dict[str, Any] = {}
    i8 = v.get("tflite_int8")
    if i8 and res["mode"] == "supervised":
        t["int8_auroc>=0.97"] = {"value": i8["auroc"], "met": i8["auroc"] >= TARGETS["supervised_int8_auroc"]}
        t["int8_recall>=0.98"] = {
            "value": i8["recall"],
            "precision": i8["precision"],
            "met": i8["recall"] >= TARGETS["supervised_int8_recall"],
        }
    if i8 and res["mode"] == "good-only":
        t["int8_auroc>=0.90"] = {"value": i8["auroc"], "met": i8["auroc"] >= TARGETS["good_only_auroc"]}
    op = res.get("operating_point")
    if op and op["variant"] in v:
        r = v[op["variant"]]["recall"]
        t["test_recall>=stored_lower_bound"] = {"value": r, "bound": op["recall_lower"],
                                                "met": r >= op["recall_lower"]}
    if "int8_auroc_delta" in res:
        d = res["int8_auroc_delta"]
        t["|int8-float32 auroc|<=0.01"] = {"value": d, "met": abs(d) <= TARGETS["int8_auroc_delta"]}
        for th, r in res["int8_speedup"].items():
            t[f"int8_speedup@{th}thr>=1.5"] = {"value": r, "met": r >= TARGETS["int8_speedup"]}
    return t


def _f(x: Any, nd: int = 4) -> str:
    return "-" if x is None else f"{x:.{nd}f}"


def _operating_point_lines(r: dict[str, Any]) -> list[str]:
    """The stored operating point (recall interval, cost) next to what the test split gave at
    the same threshold."""
    op = r.get("operating_point")
    if not op:
        return ["", "No stored operating point (bundle trained without a recall guarantee)."]
    src = f"{op['source']}, {op['folds']} folds" if op.get("folds") else op["source"]
    lines = [
        "",
        f"Stored operating point ({src}, {op['variant']}): threshold {_f(op['threshold'])}; caught "
        f"{op['caught']}/{op['defects']}, recall {_f(op['recall'], 3)} with {op['confidence']:.0%} "
        f"interval [{_f(op['recall_lower'], 3)}, 1] (target {op['min_recall']:g} "
        f"{'met' if op['reached'] else 'NOT met'}; {op['min_defects']} defects all caught needed for it); "
        f"costs precision {_f(op['precision'], 3)}, false rejects {_f(op['false_reject_rate'], 3)}",
    ]
    v = r["variants"].get(op["variant"])
    if v is not None:
        inside = "at or above" if v["recall"] >= op["recall_lower"] else "BELOW"
        lines.append(
            f"Test split at the same threshold: caught {v['caught']}/{v['defects']}, recall "
            f"{_f(v['recall'], 3)} ({inside} the stored lower bound), precision {_f(v['precision'], 3)}, "
            f"false rejects {_f(v['false_alarm_rate'], 3)}"
        )
    return lines


def bench_markdown(result: dict[str, Any]) -> str:
    lines = [host_line(result["host"], result["threads"]), ""]
    for r in result["bundles"]:
        lines += [
            f"### {r['mode']} — {Path(r['bundle']).name}",
            f"Test split: {r['test_images']} images ({r['test_defective']} defective); tiling "
            f"{r['tiling']}; {r['tiles_per_image']['mean']:.1f} tiles/image (max "
            f"{r['tiles_per_image']['max']}); threshold rule: {r['threshold_rule']}",
            "",
            "| variant | image AUROC | threshold | recall | precision | false alarms | "
            + " | ".join(f"p50 ms @{t}t | p99 ms @{t}t" for t in result["threads"])
            + " |",
            "|---|---|---|---|---|---|" + "---|---|" * len(result["threads"]),
        ]
        for name, v in r["variants"].items():
            lat = " | ".join(
                f"{_f(v['latency'][str(t)]['p50_ms'], 2)} | {_f(v['latency'][str(t)]['p99_ms'], 2)}"
                for t in result["threads"]
            )
            lines.append(
                f"| {name} | {_f(v['auroc'])} | {_f(v['threshold'])} | {_f(v['recall'], 3)} | "
                f"{_f(v['precision'], 3)} | {_f(v['false_alarm_rate'], 3)} | {lat} |"
            )
        lines += _operating_point_lines(r)
        if "tflite_int8" in r["variants"]:
            pk = r["variants"]["tflite_int8"]["recall_per_kind"]
            lines.append("")
            lines.append("int8 recall per kind: " + ", ".join(f"{k} {v:.2f}" for k, v in pk.items()))
            ak = r["variants"]["tflite_int8"]["auroc_per_kind"]
            lines.append("int8 AUROC per kind (against the good parts): "
                         + ", ".join(f"{k} {v:.3f}" for k, v in ak.items()))
        if "int8_auroc_delta" in r:
            lines.append(
                f"int8 - float32 AUROC: {r['int8_auroc_delta']:+.4f}; int8 speed-up (mean full "
                "image): " + ", ".join(f"{t} thread(s) {s:.2f}x" for t, s in r["int8_speedup"].items())
            )
        lines.append("")
        lines.append("| target | value | met |")
        lines.append("|---|---|---|")
        for k, t in r["targets"].items():
            extra = f" (precision {_f(t['precision'], 3)})" if "precision" in t else ""
            extra += f" (stored bound {_f(t['bound'], 3)})" if "bound" in t else ""
            lines.append(f"| {k} | {_f(t['value'])}{extra} | {'yes' if t['met'] else 'NO'} |")
        lines.append("")
    for g in result.get("across_seeds", []):
        lines += _seed_lines(g)
    return "\n".join(lines)


def bench_main(argv: list[str]) -> int:
    p = Parser(
        prog="edgewise bench inspect",
        description="Image-level AUROC, recall/precision at the bundle threshold, int8 vs float32, "
        "and full-image latency (all tiles) of inspection bundles on their held-out test split.",
        epilog="example:\n  edgewise bench inspect --bundle mt_sup.bundle --bundle mt_good.bundle "
        "--out bench_inspect",
    )
    p.add_argument("--bundle", action="append", required=True, help="inspection bundle (repeatable)")
    p.add_argument("--data", help="dataset folder, if it moved since training")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts to time")
    p.add_argument("--max-images", type=int, default=60, help="test images timed per cell")
    p.add_argument("--repeats", type=int, default=3, help="timing passes over the timed images")
    p.add_argument("--out", help="folder for inspect_bench.json and inspect_bench.md")
    p.add_argument("--md", metavar="PATH", help="write the Markdown table to PATH")
    p.add_argument("--quick", action="store_true",
                   help="a fast look: 10 timed images, one timing pass "
                   "(accuracy still on the whole test split)")
    add_json(p)
    add_quiet(p)
    a = p.parse_args(argv)
    if min(a.threads) < 1 or a.max_images < 1 or a.repeats < 1:
        p.error("--threads, --max-images and --repeats must be at least 1")
    if a.quick:
        a.max_images, a.repeats = min(a.max_images, 10), 1
    for b in a.bundle:
        if not Path(b).exists():
            raise FileNotFoundError(f"{b}: no such bundle")
    res = bench_bundles(
        a.bundle, a.data, threads=a.threads, max_images=a.max_images, repeats=a.repeats, quiet=a.quiet
    )
    write_outputs(res, bench_markdown(res), stem="inspect_bench", out=a.out, json_path=a.json, md_path=a.md)
    return 0
