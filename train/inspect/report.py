"""The training report written into the bundle's ``report/``: learning curves, confusion matrix,
ROC/PR, score histogram, recall per defect kind, worst mistakes, heat-map overlays, the split
and metrics.json."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from edgewise.edge.apps.inspect import TileConfig, overlay, prepare_part
from edgewise.edge.jsonenc import dumps
from edgewise.edge.sources.files import read_image

from ..data.magnetic_tile import GOOD, Sample, read_sample
from ..report import figure_png, plot_png

if TYPE_CHECKING:
    from .export import Evaluation

__all__ = ["report_files", "montage"]


def _png(img: np.ndarray) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".png", img)
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


def _annotated(
    s: Sample, scores: np.ndarray, tiling: TileConfig, thr: float, title: str, logits: bool = True
) -> np.ndarray:
    gray, _, pos = prepare_part(read_image(s.path, gray=True), tiling)
    m = read_sample(s, tiling.scale)[1] if s.mask is not None else None  # ground truth, outlined in green
    return overlay(gray, scores, pos, tiling.tile, thr, title, logits=logits, mask=m)


def montage(images: list[np.ndarray], cell: int = 160, cols: int = 6) -> np.ndarray:
    """Grid of BGR images, each letterboxed into a cell x cell square."""
    import cv2

    if not images:
        return np.zeros((cell, cell, 3), np.uint8)
    rows = (len(images) + cols - 1) // cols
    out = np.zeros((rows * cell, min(cols, len(images)) * cell, 3), np.uint8)
    for i, im in enumerate(images):
        f = cell / max(im.shape[:2])
        r = cv2.resize(
            im, (max(1, int(im.shape[1] * f)), max(1, int(im.shape[0] * f))), interpolation=cv2.INTER_AREA
        )
        y, x = (i // cols) * cell, (i % cols) * cell
        out[y : y + r.shape[0], x : x + r.shape[1]] = r
    return out


def report_files(evaluation: Evaluation, metrics: dict[str, Any]) -> dict[str, bytes]:
    """Bundle-relative path -> bytes of every report file, metrics.json last (it lists them)."""
    from .. import report as R

    t = evaluation.trainer
    cfg, history, parts = t.cfg, t.history_, t.parts_
    deployed, thr = evaluation.deployed, evaluation.threshold
    y_test, test_s = parts.y_test, parts.test
    tiling = cfg.tiling
    lg = not cfg.knn  # tile scores are logits unless they are nearest-neighbour distances
    st = evaluation.variants[deployed].test
    tile_scores = evaluation.variants[deployed].test_tiles
    files: dict[str, bytes] = {}
    files["report/learning_curves.png"] = plot_png(
        R.plot_learning_curves, history, title=f"inspect {cfg.mode}: tile loss/accuracy, val image AUROC"
    )
    files["report/confusion.png"] = plot_png(
        R.plot_confusion,
        y_test,
        (st >= thr).astype(int),
        ["good", "defect"],
        title=f"test split, {deployed}, threshold {thr:.3f}",
    )
    curves = {"keras": (t.keras_test_scores_, y_test),
              **{n: (v.test, y_test) for n, v in evaluation.variants.items()}}
    files["report/roc.png"] = plot_png(R.plot_roc, curves, title="image-level ROC (test split)")
    files["report/pr.png"] = plot_png(R.plot_pr, curves, title="image-level precision-recall (test split)")
    kinds = [s.kind for s in test_s]
    files["report/score_histogram.png"] = plot_png(
        R.plot_score_histogram,
        {k: st[[i for i, kk in enumerate(kinds) if kk == k]] for k in sorted(set(kinds))},
        threshold=thr,
        title=f"image scores per kind (test, {deployed})",
    )
    files["report/recall_per_kind.png"] = _recall_plot(metrics["recall_per_kind_test"])
    if history.get("val_image_auroc"):
        files["report/val_image_auroc.png"] = _curve_plot(
            history["val_image_auroc"], "validation image AUROC (max over tiles) per epoch"
        )
    # worst mistakes: highest-scoring good parts and lowest-scoring defective parts
    order_fp = [i for i in np.argsort(-st) if y_test[i] == 0][:6]
    order_fn = [i for i in np.argsort(st) if y_test[i] == 1][:6]
    cells = [_annotated(test_s[i], tile_scores[i], tiling, thr, f"good {st[i]:.2f}", lg) for i in order_fp]
    cells += [
        _annotated(test_s[i], tile_scores[i], tiling, thr, f"{test_s[i].kind} {st[i]:.2f}", lg)
        for i in order_fn
    ]
    files["report/worst_mistakes.png"] = _png(montage(cells, cell=320, cols=4))  # legible colour bars
    files["report/misses.png"] = _png(montage(_misses(evaluation), cell=320, cols=4))
    # heat-map overlays: two test parts of every kind (green = ground-truth mask)
    for k in sorted(set(kinds)):
        for j, i in enumerate([i for i, kk in enumerate(kinds) if kk == k][:2]):
            files[f"report/overlays/{k}_{j}.png"] = _png(
                _annotated(test_s[i], tile_scores[i], tiling, thr, f"{k} {st[i]:.2f}", lg)
            )
    files["report/split.json"] = dumps(
        {p: [{"path": str(s.path), "kind": s.kind} for s in v] for p, v in parts.split.items()}, indent=1
    ).encode()
    figures = {
        "learning_curves": "report/learning_curves.png",
        "confusion": "report/confusion.png",
        "roc": "report/roc.png",
        "pr": "report/pr.png",
        "score_histogram": "report/score_histogram.png",
        "recall_per_kind": "report/recall_per_kind.png",
        "val_image_auroc": "report/val_image_auroc.png" if "report/val_image_auroc.png" in files else None,
        "worst_mistakes": "report/worst_mistakes.png",
        "misses": "report/misses.png",
        "overlays": sorted(k for k in files if k.startswith("report/overlays/")),
    }
    files["report/metrics.json"] = dumps({**metrics, "figures": figures}, indent=2).encode()
    return files


def _misses(evaluation: Evaluation, n: int = 8) -> list[np.ndarray]:
    """The defects the stored operating point lets through, lowest score first: held-out test
    parts (the deployed model), then out-of-fold parts (the fold model that scored them, at the
    same threshold). With none missed, the caught defects closest to the threshold, so the
    figure always shows where the margin is."""
    t = evaluation.trainer
    parts, tiling, lg = t.parts_, t.cfg.tiling, not t.cfg.knn
    thr = evaluation.threshold
    dep = evaluation.variants[evaluation.deployed]
    st, tiles = dep.test, dep.test_tiles
    y = parts.y_test
    order = [i for i in np.argsort(st) if y[i] == 1]
    missed = [i for i in order if st[i] < thr][:n]
    # short labels: a narrow part is shrunk into its cell; the threshold is marked on the colour bar
    test = parts.test
    cells = [_annotated(test[i], tiles[i], tiling, thr, f"test MISS {test[i].kind} {st[i]:.2f}", lg)
             for i in missed]
    oof = t.oof_
    if oof is not None and "tflite_int8" in evaluation.variants:
        s8 = oof.scores["tflite_int8"]
        thr8 = evaluation.variants["tflite_int8"].op["threshold"]
        miss8 = [j for j in np.argsort(s8) if oof.labels[j] == 1 and s8[j] < thr8][:n]
        cells += [_annotated(oof.samples[j], oof.tiles[j], tiling, thr8,
                             f"OOF MISS {oof.samples[j].kind} {s8[j]:.2f}", lg)
                  for j in miss8]
    if not cells:
        cells = [_annotated(test[i], tiles[i], tiling, thr, f"caught {test[i].kind} {st[i]:.2f}", lg)
                 for i in order[:4]]
    return cells


def _curve_plot(values: list[float], title: str) -> bytes:
    from ..report import _plt

    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(np.arange(1, len(values) + 1), values, marker="o")
    ax.set_xlabel("epoch")
    ax.set_ylabel("AUROC")
    ax.grid(alpha=0.3)
    ax.set_title(title, fontsize=9)
    return figure_png(fig, dpi=110)


def _recall_plot(per_kind: dict[str, float]) -> bytes:
    from ..report import _plt

    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    names = list(per_kind)
    ax.bar(
        names, [per_kind[n] for n in names], color=["tab:green" if n == GOOD else "tab:red" for n in names]
    )
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("recall (good: share passed)")
    ax.set_title("recall per defect kind (test split, bundle threshold)")
    for i, n in enumerate(names):
        ax.text(i, per_kind[n] + 0.01, f"{per_kind[n]:.2f}", ha="center", fontsize=8)
    return figure_png(fig, dpi=110)

