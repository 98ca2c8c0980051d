"""``edgewise bench inspect-levers``: what the ranking levers that need no retraining buy.

Two levers change how a trained inspection model scores a part without touching its weights:

- **aggregation**: the part's score as the mean of its ``k`` highest tile scores instead of
  the single highest (``top_k`` in the bundle's tiling);
- **test-time flips**: the part scored in several orientations (mirror images, and with
  ``d4`` the transposed ones too) and the part scores averaged. The model saw these
  orientations in augmentation, so a defect should look alike in all of them, while a good
  part's one odd tile does not.
- **learned pooling** (bundles with validation parts): a logistic regression on the part's
  sorted top-8 tile scores and the mean and spread of all its tiles, fitted on the
  validation parts' scores (never on the test split), its output the part score. Its
  settings are fixed, not searched. A bundle whose validation parts were pooled into training
  (``--folds``) has no unseen part to fit it on, so the row is left out and the reason given.

Each row is the image AUROC of one (aggregation, orientations) pair on the bundle's held-out
test split, scored through the edge tiling and model, with its cost in model calls per part
relative to the bundle's own setting. The test split only *reports* the levers: a lever adopted
for a delivered bundle has to be chosen on out-of-fold or validation scores and its threshold
recalibrated, which this command does not do (the stored threshold belongs to the stored
setting only, so recall is given for that row alone).

>>> # edgewise bench inspect-levers --bundle mt.bundle --top-k 1 2 4 8 --md levers.md
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgewise.benchmarks.inspect import held_out_items
from edgewise.benchmarks.outputs import write_outputs
from edgewise.edge.apps.inspect import NearestGood, TileConfig, image_score, prepare_part, score_tiles
from edgewise.edge.backends import load_model
from edgewise.edge.bundle import load_bundle
from edgewise.edge.cliargs import Parser, add_json, add_quiet
from edgewise.edge.evaluate import auroc
from edgewise.edge.progress import log
from edgewise.edge.sources.files import read_image

from .host import host_info, host_line

__all__ = ["ORIENTATIONS", "oriented", "pool_features", "lever_table", "levers_markdown", "levers_main"]

POOL_TOP = 8  # learned pooling: the part's highest tile scores it sees

# name -> the orientations averaged (each a function of the grey image)
ORIENTATIONS: dict[str, tuple[str, ...]] = {
    "none": ("id",),
    "flips": ("id", "h", "v", "hv"),
    "d4": ("id", "h", "v", "hv", "t", "th", "tv", "thv"),
}


def oriented(img: np.ndarray, name: str) -> np.ndarray:
    """``img`` in orientation ``name``: ``t`` transposes first, then ``h``/``v`` mirror the result."""
    out = img.swapaxes(0, 1) if name.startswith("t") else img
    if "h" in name:
        out = out[:, ::-1]
    if "v" in name:
        out = out[::-1]
    return np.ascontiguousarray(out)


def pool_features(tile_scores: np.ndarray) -> np.ndarray:
    """One part's learned-pooling inputs: its ``POOL_TOP`` highest tile scores, highest first
    (a part with fewer tiles repeats its lowest), then the mean and spread of all its tiles."""
    s = np.sort(np.asarray(tile_scores, np.float64).ravel())[::-1]
    top = np.concatenate([s[:POOL_TOP], np.full(max(0, POOL_TOP - len(s)), s[-1])])
    return np.r_[top, s.mean(), s.std()]


def _fit_pooling(feats: np.ndarray, y: np.ndarray) -> Any:
    """Standardised inputs, L2-regularised logistic regression at scikit-learn's defaults."""
    try:
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
    except ImportError as e:
        raise RuntimeError("learned pooling needs scikit-learn (pip install 'edgewise[train]')") from e
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(feats, y)


def lever_table(
    bundle_path: str | Path, data: str | Path | None = None, *, variant: str = "tflite_int8",
    top_ks: list[int] | None = None, threads: int = 1, quiet: bool = False,
) -> dict[str, Any]:
    """AUROC on the test split for every (top-k, orientations) pair; see the module docstring."""
    b = load_bundle(bundle_path)
    if variant not in b.variants:
        raise ValueError(f"{b.path}: no variant {variant!r} (has {', '.join(b.variants)})")
    tiling = TileConfig.from_config(b.spec.config, where=str(b.path))
    ks = sorted(set(top_ks or [1, 2, 4, 8]) | {tiling.top_k})
    if ks[0] < 1:
        raise ValueError(f"--top-k must be at least 1, got {ks[0]}")
    items = held_out_items(b, Path(data) if data else None)
    y = np.array([0 if k == "good" else 1 for _, k in items])
    m = load_model(b, variant, threads=threads)
    head = NearestGood.from_bundle(b, variant)
    names = ORIENTATIONS["d4"]
    # tile scores per part and orientation: computed once, aggregated every way below
    scores: list[dict[str, np.ndarray]] = []
    for i, (p, _) in enumerate(items):
        gray = read_image(p, gray=True)
        scores.append({o: score_tiles(m, prepare_part(oriented(gray, o), tiling)[1], head=head)
                       for o in names})
        if (i + 1) % 50 == 0:
            log(f"bench inspect-levers {Path(b.path).name}: {i + 1}/{len(items)} parts", quiet=quiet)
    val = held_out_items(b, Path(data) if data else None, part="val")
    pooling = None
    y_val = np.array([0 if k == "good" else 1 for _, k in val])
    if len(val) and 0 < y_val.sum() < len(y_val):
        fv = np.array([pool_features(score_tiles(m, prepare_part(read_image(p, gray=True), tiling)[1],
                                                 head=head)) for p, _ in val])
        pooling = _fit_pooling(fv, y_val)
    m.close()
    rows = []
    for k in ks:
        for tta, group in ORIENTATIONS.items():
            s = np.array([np.mean([image_score(per[o], k) for o in group]) for per in scores])
            row: dict[str, Any] = {"top_k": k, "orientations": tta, "calls_per_part": len(group),
                                   "auroc": auroc(s, y),
                                   "stored_setting": k == tiling.top_k and tta == "none"}
            if row["stored_setting"]:
                thr = b.spec.thresholds.for_variant(variant)
                pred = s >= thr
                row["threshold"] = thr
                row["recall"] = float(pred[y == 1].mean())
                row["false_reject_rate"] = float(pred[y == 0].mean())
            rows.append(row)
    if pooling is not None:
        for tta, group in ORIENTATIONS.items():
            s = np.array([np.mean(pooling.decision_function(np.array([pool_features(per[o]) for o in group])))
                          for per in scores])
            rows.append({"top_k": "learned", "orientations": tta, "calls_per_part": len(group),
                         "auroc": auroc(s, y), "stored_setting": False})
    base = next(r for r in rows if r["stored_setting"])
    for r in rows:
        r["auroc_gain"] = r["auroc"] - base["auroc"]
    return {
        "host": host_info(), "threads": threads, "bundle": str(b.path), "variant": variant,
        "mode": b.spec.config.get("mode"), "test_images": len(items), "test_defective": int(y.sum()),
        "rows": rows,
        "learned_pooling": (f"logistic regression on the sorted top-{POOL_TOP} tile scores + mean + sd, "
                            f"fitted on the {len(val)} validation parts ({int(y_val.sum())} defective)"
                            if pooling is not None else
                            "not measured: the bundle has no validation parts (pooled into training) "
                            "to fit it on"),
    }


def levers_markdown(res: dict[str, Any]) -> str:
    lines = [
        host_line(res["host"], res["threads"]),
        "",
        f"### {res['mode']} — {Path(res['bundle']).name}, {res['variant']}: test split, "
        f"{res['test_images']} images ({res['test_defective']} defective)",
        "Reported, not chosen: a lever adopted for a bundle is chosen on out-of-fold scores and "
        "its threshold recalibrated.",
        "",
        f"Learned pooling: {res['learned_pooling']}.",
        "",
        "| top-k | orientations | model calls per part | image AUROC | vs stored setting |",
        "|---|---|---|---|---|",
    ]
    for r in res["rows"]:
        mark = " (stored)" if r["stored_setting"] else ""
        lines.append(f"| {r['top_k']}{mark} | {r['orientations']} | {r['calls_per_part']}x | "
                     f"{r['auroc']:.4f} | {r['auroc_gain']:+.4f} |")
    base = next(r for r in res["rows"] if r["stored_setting"])
    lines += ["", f"Stored setting at its threshold {base['threshold']:.4f}: recall {base['recall']:.3f}, "
              f"false rejects {base['false_reject_rate']:.3f}", ""]
    return "\n".join(lines)


def levers_main(argv: list[str]) -> int:
    p = Parser(
        prog="edgewise bench inspect-levers",
        description="Image AUROC of an inspection bundle on its held-out test split under the levers "
        "that need no retraining: top-k tile aggregation and test-time flips (reported, not chosen).",
        epilog="example:\n  edgewise bench inspect-levers --bundle mt.bundle --top-k 1 2 4 8 --md levers.md",
    )
    p.add_argument("--bundle", required=True, help="inspection bundle")
    p.add_argument("--data", help="dataset folder, if it moved since training")
    p.add_argument("--variant", default="tflite_int8", help="model variant to score")
    p.add_argument("--top-k", type=int, nargs="+", default=[1, 2, 4, 8],
                   help="tile counts averaged into the part score (the bundle's own is added)")
    p.add_argument("--threads", type=int, default=1, help="model threads")
    p.add_argument("--out", help="folder for inspect_levers.json and inspect_levers.md")
    p.add_argument("--md", metavar="PATH", help="write the Markdown table to PATH")
    add_json(p)
    add_quiet(p)
    a = p.parse_args(argv)
    if a.threads < 1 or min(a.top_k) < 1:
        p.error("--threads and --top-k must be at least 1")
    if not Path(a.bundle).exists():
        raise FileNotFoundError(f"{a.bundle}: no such bundle")
    res = lever_table(a.bundle, a.data, variant=a.variant, top_ks=a.top_k, threads=a.threads, quiet=a.quiet)
    write_outputs(res, levers_markdown(res), stem="inspect_levers", out=a.out, json_path=a.json, md_path=a.md)
    return 0
