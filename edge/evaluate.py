"""How edgewise judges a model: scores, decision rules, metrics and tolerances, in one place.

The converter's parity check (variant vs Keras), ``edgewise verify`` (arm64 vs this machine)
and the benchmarks (accuracy in the same run as the latency) all import these, so a
decision, a metric or a limit means the same thing wherever it is computed. numpy only: the
device computes the very figures the workstation does.

>>> auroc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1]))
0.75
>>> Decider("threshold", score="mse").decisions(np.zeros((2, 4)), np.ones((2, 4)), 0.5).tolist()
[True, True]
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .spec import BundleSpec

__all__ = [
    "auroc", "roc_curve", "threshold_for_recall", "threshold_for_false_alarm", "percentiles",
    "SCORES", "score_outputs", "unit_rows", "pair_similarities",
    "DECISIONS", "Decider", "agreement",
    "Tolerance", "DEFAULT_TOLERANCES", "DEVICE_REL_TOLERANCE", "DeviceTolerance", "two_se", "auroc_two_se",
    "mean_sd",
]

# --- metrics ---------------------------------------------------------------------------------


def roc_curve(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False-positive rate, true-positive rate and thresholds; higher score = positive."""
    scores = np.asarray(scores, dtype=np.float64).ravel()
    labels = np.asarray(labels).astype(bool).ravel()
    order = np.argsort(-scores, kind="mergesort")
    s, y = scores[order], labels[order]
    distinct = np.r_[np.nonzero(np.diff(s))[0], y.size - 1]
    tps = np.cumsum(y)[distinct]
    fps = (1 + distinct) - tps
    p, n = max(int(y.sum()), 1), max(int((~y).sum()), 1)
    tpr = np.r_[0.0, tps / p]
    fpr = np.r_[0.0, fps / n]
    thr = np.r_[np.inf, s[distinct]]
    return fpr, tpr, thr


def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (ties count half), NaN when a class is absent."""
    labels = np.asarray(labels).astype(bool).ravel()
    if labels.all() or not labels.any():
        return float("nan")
    fpr, tpr, _ = roc_curve(scores, labels)
    return round(float(np.trapezoid(tpr, fpr)), 12)


def threshold_for_recall(scores: np.ndarray, labels: np.ndarray, recall: float) -> float:
    """The highest threshold (score >= t is positive) that still reaches ``recall``."""
    pos = np.sort(np.asarray(scores, dtype=np.float64)[np.asarray(labels).astype(bool)])
    if pos.size == 0:
        raise ValueError("threshold_for_recall needs at least one positive sample")
    k = int(np.floor((1.0 - recall) * pos.size + 1e-9))
    return float(pos[min(k, pos.size - 1)])


def threshold_for_false_alarm(normal_scores: np.ndarray, rate: float) -> float:
    """The threshold that ``rate`` of normal scores exceed (score > t is an alarm)."""
    s = np.sort(np.asarray(normal_scores, dtype=np.float64).ravel())
    if s.size == 0:
        raise ValueError("threshold_for_false_alarm needs normal scores")
    return float(np.quantile(s, 1.0 - rate, method="higher"))


def percentiles(values_s: list[float] | np.ndarray) -> dict[str, float]:
    """p50/p90/p99/mean/min/max in milliseconds from values in seconds."""
    v = np.asarray(values_s, dtype=np.float64) * 1e3
    if v.size == 0:
        return {"n": 0}
    return {
        "n": int(v.size),
        "p50_ms": float(np.percentile(v, 50)),
        "p90_ms": float(np.percentile(v, 90)),
        "p99_ms": float(np.percentile(v, 99)),
        "mean_ms": float(v.mean()),
        "min_ms": float(v.min()),
        "max_ms": float(v.max()),
    }


# --- scores: a name in bundle.json (output.score, evaluation.score), not code -----------------


def _last(x: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Probability of the last class (binary classifiers: P(positive))."""
    return out.reshape(len(out), -1)[:, -1]


def _max(x: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Largest output (e.g. the worst tile or pixel of an anomaly map)."""
    return out.reshape(len(out), -1).max(axis=1)


def _mse(x: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Mean squared reconstruction error of an autoencoder."""
    d = x.reshape(len(x), -1).astype(np.float64) - out.reshape(len(out), -1)
    return (d * d).mean(axis=1)


SCORES: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {"last": _last, "max": _max, "mse": _mse}


def score_outputs(name: str, x: np.ndarray, out: np.ndarray) -> np.ndarray:
    """One float64 score per sample, by the named rule (``last``, ``max``, ``mse``)."""
    if name not in SCORES:
        raise ValueError(f"unknown score '{name}'; valid: {', '.join(SCORES)}")
    return np.asarray(SCORES[name](np.asarray(x), np.asarray(out)), dtype=np.float64)


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Every vector along the last axis scaled to length 1 (zero vectors stay zero).

    Float input keeps its precision (float32 embeddings and feature banks stay float32);
    integer input becomes float64.
    """
    x = np.asarray(x)
    if x.dtype.kind != "f":
        x = x.astype(np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def pair_similarities(out: np.ndarray) -> np.ndarray:
    """Cosine similarity of every pair of samples (embeddings), upper triangle in row order."""
    e = unit_rows(np.asarray(out, np.float64).reshape(len(out), -1))
    return (e @ e.T)[np.triu_indices(len(e), 1)]


# --- decision rules ----------------------------------------------------------------------------

DECISIONS = ("argmax", "threshold", "pairs", "none")


@dataclass
class Decider:
    """How raw outputs become decisions and a task metric (higher is better).

    ``kind``: ``argmax`` (top-1 class; accuracy), ``threshold`` (``score`` gives one score per
    sample, decision score >= threshold; AUROC), ``pairs`` (embeddings: a pair of samples is
    "same" when its cosine similarity >= threshold; same-identity pair AUROC) or ``none``
    (outputs only). ``metric_fn(outputs, x, y)`` overrides the metric; it is not stored in
    the bundle, the score name is.
    """

    kind: str = "argmax"
    score: str = "last"
    threshold: float | None = None
    metric_fn: Callable[[np.ndarray, np.ndarray, np.ndarray | None], float] | None = None
    metric_name: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in DECISIONS:
            raise ValueError(f"unknown decision rule '{self.kind}'; valid: {', '.join(DECISIONS)}")

    @classmethod
    def for_spec(cls, spec: BundleSpec) -> Decider:
        """The rule a bundle was evaluated by (``evaluation``); embeddings decide by pairs at
        the bundle's match threshold (face: ``thresholds.unknown``)."""
        ev = spec.evaluation
        if ev is None:
            return cls("none")
        if ev.decision == "none" and spec.output.kind == "embedding":
            return cls("pairs", ev.score, spec.thresholds.get("unknown"))
        return cls(ev.decision, ev.score, ev.threshold)

    def scores(self, x: np.ndarray, out: np.ndarray) -> np.ndarray:
        return score_outputs(self.score, x, out).ravel()

    def threshold_for(self, x: np.ndarray, ref: np.ndarray) -> float | None:
        """The stored threshold, else the reference's median score (or pair similarity), so a
        comparison without a calibrated threshold still splits the samples in half."""
        if self.threshold is not None or self.kind not in ("threshold", "pairs"):
            return self.threshold
        s = self.scores(x, ref) if self.kind == "threshold" else pair_similarities(ref)
        return float(np.median(s))

    def decisions(self, x: np.ndarray, out: np.ndarray, threshold: float | None) -> np.ndarray | None:
        """One decision per sample (per pair for ``pairs``); None for ``none``."""
        if self.kind == "argmax":
            return np.asarray(out).reshape(len(out), -1).argmax(-1)
        if self.kind == "threshold":
            return self.scores(x, out) >= threshold
        if self.kind == "pairs":
            return pair_similarities(out) >= threshold
        return None

    def metric(self, x: np.ndarray, out: np.ndarray, y: np.ndarray | None) -> float | None:
        if self.metric_fn is not None:
            return float(self.metric_fn(out, x, y))
        if y is None:
            return None
        yy = np.asarray(y).ravel()
        if self.kind == "argmax":
            return float((np.asarray(out).reshape(len(out), -1).argmax(-1) == yy).mean())
        if self.kind == "threshold":
            return float(auroc(self.scores(x, out), yy))
        if self.kind == "pairs":
            i, j = np.triu_indices(len(yy), 1)
            return float(auroc(pair_similarities(out), yy[i] == yy[j]))
        return None

    @property
    def name(self) -> str:
        if self.metric_name:
            return self.metric_name
        return {"argmax": "accuracy", "threshold": "auroc", "pairs": "pair_auroc"}.get(self.kind, "")


def agreement(a: np.ndarray | None, b: np.ndarray | None) -> float | None:
    """Fraction of equal decisions; None when the rule decides nothing."""
    if a is None or b is None:
        return None
    return float((np.asarray(a) == np.asarray(b)).mean()) if len(a) else 1.0


# --- tolerances --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tolerance:
    """Limits for one precision against its reference; ``max_abs_rel`` is relative to the
    reference output range (None: judged by decisions and metric only)."""

    min_agreement: float
    max_metric_drop: float
    max_abs_rel: float | None = None


# A converted variant against Keras: float32 must be exact but for summation order, float16
# loses about 3 decimal digits, dynamic range and int8 are judged by decisions and metric.
DEFAULT_TOLERANCES: dict[str, Tolerance] = {
    "float32": Tolerance(min_agreement=0.995, max_metric_drop=0.005, max_abs_rel=1e-3),
    "float16": Tolerance(min_agreement=0.99, max_metric_drop=0.01, max_abs_rel=2e-2),
    "dynamic": Tolerance(min_agreement=0.95, max_metric_drop=0.02),
    "int8": Tolerance(min_agreement=0.95, max_metric_drop=0.02),
}
# The same variant on arm64 against this machine, for outputs without an int8 scale: float
# kernels differ only in summation order between x86 and ARM; dynamic-range kernels
# re-quantize activations per batch, so a little more. ONNX int8 (QDQ) models end in float
# and are judged by their decisions and metric only.
DEVICE_REL_TOLERANCE: dict[str, float] = {"float32": 1e-4, "float16": 1e-3, "dynamic": 2e-2}


@dataclass(frozen=True)
class DeviceTolerance:
    """Limits of ``edgewise verify`` (arm64 vs this machine and vs Keras).

    ``max_steps`` bounds int8 outputs. Optimized int8 kernels round differently per
    architecture (XNNPACK on x86 and on ARM; on x86 XNNPACK also differs from TFLite's own
    kernels by a few steps), so a few steps are expected and decisions decide; only
    TFLite's reference kernels agree bit for bit.

    Embeddings (``pairs``) are consumed only through their direction (cosine similarity
    against a gallery), so they are bounded by ``min_cosine`` between the host's and arm64's
    embedding of every sample instead of by steps in single components. Agreement and
    metric drop default to the converter's limits for the precision (``DEFAULT_TOLERANCES``).
    """

    max_steps: int = 8
    min_cosine: float = 0.99
    min_agreement: float | None = None
    max_metric_drop: float | None = None

    def agreement_for(self, precision: str) -> float:
        if self.min_agreement is not None:
            return self.min_agreement
        tol = DEFAULT_TOLERANCES.get(precision)
        return tol.min_agreement if tol else 0.99

    def metric_drop_for(self, precision: str) -> float:
        if self.max_metric_drop is not None:
            return self.max_metric_drop
        tol = DEFAULT_TOLERANCES.get(precision)
        return tol.max_metric_drop if tol else 0.01


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


def mean_sd(values: list[float | None]) -> dict[str, float | None]:
    """Mean and sample standard deviation of the figures present (``None`` skipped): how a
    figure moves between runs of one recipe (seeds). One value has sd 0; none gives ``None``."""
    v = np.array([x for x in values if x is not None], np.float64)
    if not len(v):
        return {"mean": None, "sd": None}
    return {"mean": float(v.mean()), "sd": float(v.std(ddof=1)) if len(v) > 1 else 0.0}
