"""What training learned, as files: learning curves, confusion matrix, score histograms, ROC.

Always on: every trainer writes these into the bundle's ``report/`` (matplotlib, Agg backend,
PNG) next to ``metrics.json``, so a bundle explains itself without the training machine.

>>> plot_roc({"autoencoder": (scores, labels)}, "report/roc.png")   # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgewise.edge.evaluate import auroc, roc_curve

__all__ = [
    "plot_learning_curves",
    "plot_confusion",
    "plot_score_histogram",
    "plot_roc",
    "plot_pr",
    "confusion_matrix",
    "figure_png",
    "plot_png",
    "set_title",
]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(figure_png(fig))
    return path


def set_title(ax: Any, text: str, fontsize: float = 10, suptitle: bool = False) -> None:
    """A title wrapped to the figure's width, so no part of it is cut off at the edge.

    Titles carry the facts a plot needs (split, variant, threshold, data set) and are often
    longer than a small square figure is wide; tight_layout keeps what fits in the figure, so the
    lines are wrapped first (about 0.55 em per character)."""
    import textwrap

    fig = ax if suptitle else ax.figure
    chars = max(20, int(0.9 * fig.get_figwidth() * 72 / (0.55 * fontsize)))
    wrapped = "\n".join(textwrap.wrap(text, chars)) or text
    if suptitle:
        fig.suptitle(wrapped, fontsize=fontsize)
    else:
        ax.set_title(wrapped, fontsize=fontsize)


def figure_png(fig: Any, dpi: int = 110) -> bytes:
    """A finished matplotlib figure as PNG bytes (closed afterwards), for ``add_report``."""
    import io

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=dpi)
    _plt().close(fig)
    return buf.getvalue()


def plot_png(plot_fn: Any, *args: Any, **kw: Any) -> bytes:
    """Run one of the ``plot_*`` functions above and return its PNG bytes instead of a file."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        return Path(plot_fn(*args, path=Path(tmp) / "f.png", **kw)).read_bytes()


def plot_learning_curves(history: dict[str, list[float]], path: str | Path, title: str = "") -> Path:
    """One panel per metric, train and validation together."""
    plt = _plt()
    keys = [k for k in history if not k.startswith("val_")]
    fig, axes = plt.subplots(1, max(1, len(keys)), figsize=(4.5 * max(1, len(keys)), 3.5), squeeze=False)
    for ax, k in zip(axes[0], keys, strict=False):
        ax.plot(np.arange(1, len(history[k]) + 1), history[k], label="train")
        if f"val_{k}" in history:
            ax.plot(np.arange(1, len(history[f"val_{k}"]) + 1), history[f"val_{k}"], label="validation")
        ax.set_xlabel("epoch")
        ax.set_ylabel(k)
        ax.legend()
        ax.grid(alpha=0.3)
    set_title(fig, title or "learning curves", fontsize=11, suptitle=True)
    return _save(fig, path)


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n: int) -> np.ndarray:
    cm = np.zeros((n, n), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true, int).ravel(), np.asarray(y_pred, int).ravel()), 1)
    return cm


def plot_confusion(
    y_true: np.ndarray, y_pred: np.ndarray, labels: list[str], path: str | Path, title: str = ""
) -> Path:
    """Counts in every cell; rows are the truth, columns the prediction."""
    plt = _plt()
    cm = confusion_matrix(y_true, y_pred, len(labels))
    size = max(4.2, 0.5 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(len(labels)):
        for j in range(len(labels)):
            color = "white" if cm[i, j] > cm.max() / 2 else "black"
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", color=color)
    set_title(ax, title or "confusion matrix")
    return _save(fig, path)


def plot_score_histogram(
    groups: dict[str, np.ndarray], path: str | Path, threshold: float | None = None, title: str = ""
) -> Path:
    """Score distributions per group (e.g. normal vs each fault), with the threshold."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4))
    allv = np.concatenate([np.asarray(v, float).ravel() for v in groups.values()])
    bins = np.histogram_bin_edges(allv[np.isfinite(allv)], bins=50)
    for name, v in groups.items():
        ax.hist(np.asarray(v, float).ravel(), bins=bins, alpha=0.5, label=name)
    if threshold is not None:
        ax.axvline(threshold, color="red", linestyle="--", label=f"threshold {threshold:.4g}")
    ax.set_xlabel("score")
    ax.set_ylabel("count")
    ax.legend(fontsize=7)
    set_title(ax, title or "score histogram")
    return _save(fig, path)


Curves = dict[str, tuple[np.ndarray, np.ndarray]]
Points = Callable[[str, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray, str]]


def _plot_curves(curves: Curves, path: str | Path, points: Points, axes: tuple[str, str], title: str,
                 diagonal: bool = False, loc: str = "best") -> Path:
    """One line per (scores, labels) pair; ``points`` turns a pair into (x, y, legend label)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 5))
    for name, (scores, labels) in curves.items():
        x, y, label = points(name, scores, labels)
        ax.plot(x, y, label=label)
    if diagonal:
        ax.plot([0, 1], [0, 1], color="grey", linestyle=":")
    ax.set_xlabel(axes[0])
    ax.set_ylabel(axes[1])
    ax.legend(fontsize=7, loc=loc)
    set_title(ax, title)
    return _save(fig, path)


def _roc_points(name: str, scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, str]:
    fpr, tpr, _ = roc_curve(scores, labels)
    return fpr, tpr, f"{name} (AUROC {auroc(scores, labels):.4f})"


def _pr_points(name: str, scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, str]:
    s = np.asarray(scores, float).ravel()
    y = np.asarray(labels).astype(bool).ravel()
    tp = np.cumsum(y[np.argsort(-s)])
    return tp / max(1, y.sum()), tp / np.arange(1, len(s) + 1), name


def plot_roc(curves: Curves, path: str | Path, title: str = "") -> Path:
    """ROC curves, one per (scores, labels) pair, AUROC in the legend."""
    return _plot_curves(curves, path, _roc_points, ("false positive rate", "true positive rate"),
                        title or "ROC", diagonal=True, loc="lower right")


def plot_pr(curves: Curves, path: str | Path, title: str = "") -> Path:
    """Precision-recall curves, one per (scores, labels) pair."""
    return _plot_curves(curves, path, _pr_points, ("recall", "precision"), title or "precision-recall")
