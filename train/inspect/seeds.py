"""The recipe run once per seed: does the stored operating point hold from one training to the next?

Each seed draws its own split, initial weights, crops and augmentation, so the spread is what a
user re-running the same command sees. Per seed: the deployed variant's test image AUROC, the
test recall, precision and false-reject rate at the bundle's stored threshold, and the recall
lower bound the bundle promised; then mean +- sample standard deviation over the seeds.
"""

from __future__ import annotations

import dataclasses
import os
import platform
from pathlib import Path
from typing import Any

from edgewise.edge.evaluate import mean_sd
from edgewise.edge.jsonenc import dumps

from ..data.magnetic_tile import FolderLayout
from .config import InspectConfig
from .modes import train_inspect

__all__ = ["train_seeds", "seed_rows", "seeds_markdown"]


def seed_rows(metrics: dict[str, Any]) -> dict[str, Any]:
    """One seed's figures from its training metrics (deployed variant, stored threshold)."""
    d = metrics["deployed_variant"]
    t = metrics["test_at_threshold"]
    op = metrics.get("operating_point") or {}
    return {
        "test_auroc": metrics["test_image_auroc"][d],
        "test_recall": t["recall"],
        "test_precision": t["precision"],
        "test_false_reject_rate": t["false_alarm_rate"],
        "test_missed": t["fn"],
        "test_defects": t["tp"] + t["fn"],
        "recall_lower": op.get("recall_lower"),
        "source": op.get("source"),
        "threshold": t["threshold"],
        "train_seconds": metrics["train_seconds"],
    }


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "cpu"


def seeds_markdown(result: dict[str, Any]) -> str:
    """The per-seed table and the mean +- sd line."""
    cols = ("test_auroc", "test_recall", "test_precision", "test_false_reject_rate", "recall_lower")

    def f(x: Any) -> str:
        return "-" if x is None else f"{x:.3f}"

    lines = [
        f"Recipe: {result['recipe']}",
        f"Host: {result['host']}; {result['threads']} TensorFlow thread(s)",
        "",
        "| seed | test AUROC | test recall (missed/defects) | precision | false rejects | promised lower "
        "bound | train s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in result["seeds"]:
        lines.append(
            f"| {r['seed']} | {f(r['test_auroc'])} | {f(r['test_recall'])} ({r['test_missed']}/"
            f"{r['test_defects']}) | {f(r['test_precision'])} | {f(r['test_false_reject_rate'])} | "
            f"{f(r['recall_lower'])} | {r['train_seconds']:.0f} |"
        )
    s = result["summary"]
    lines.append(
        "| mean +- sd | " + " | ".join(f"{f(s[c]['mean'])} +- {f(s[c]['sd'])}" for c in cols[:4])
        + f" | {f(s['recall_lower']['mean'])} | |"
    )
    lines.append("")
    lines.append(f"Test recall >= {result['target']:g} at the stored threshold for every seed: "
                 f"{'yes' if result['every_seed_met'] else 'NO'}")
    return "\n".join(lines) + "\n"


def train_seeds(
    data: str | Path | None, out: str | Path, cfg: InspectConfig, seeds: list[int], *,
    quiet: bool = False, layout: FolderLayout | None = None,
) -> str:
    """Train ``out/seed_N.bundle`` for every seed, write ``out/seeds.json`` and ``out/seeds.md``;
    returns the markdown."""
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds: each seed once, got {seeds}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for seed in seeds:
        c = dataclasses.replace(cfg, seed=seed)
        m = train_inspect(data, out / f"seed_{seed}.bundle", c, quiet=quiet, layout=layout)
        rows.append({"seed": seed, **seed_rows(m)})
    keys = ("test_auroc", "test_recall", "test_precision", "test_false_reject_rate", "recall_lower")
    recipe = (f"edgewise train inspect --mode {cfg.mode} --arch {cfg.arch} --epochs {cfg.epochs} "
              f"--scale {cfg.scale} --folds {cfg.folds} --min-recall {cfg.recall:g}"
              + (f" --limit {cfg.limit}" if cfg.limit else "") + f" --threads {cfg.threads} --seeds "
              + " ".join(map(str, seeds)))
    result = {
        "recipe": recipe,
        "host": f"{platform.machine()}, {_cpu()}, {os.cpu_count()} cores",
        "threads": cfg.threads,
        "target": cfg.recall,
        "seeds": rows,
        "summary": {k: mean_sd([r[k] for r in rows]) for k in keys},
        "every_seed_met": all(r["test_recall"] >= cfg.recall for r in rows),
    }
    md = seeds_markdown(result)
    (out / "seeds.json").write_text(dumps(result, indent=2))
    (out / "seeds.md").write_text(md)
    return md
