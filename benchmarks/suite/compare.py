"""Regressions against an older suite result: a row slower by more than a ratio, or less accurate.

Rows are matched by key (application, level, method, threads). A latency regression needs both
the ratio (new p50 / old p50 above ``latency_ratio``) and an absolute step (``min_delta_ms``),
so that a microsecond model jittering on a shared machine is not a regression; an accuracy
regression is a drop of more than ``accuracy_drop`` in the row's metric (all higher-is-better).
Rows present on one side only are listed, not failed: a bundle without an ONNX variant is not
slower.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .rows import SuiteResult, SuiteRow, schema_major

__all__ = ["Tolerance", "Finding", "compare", "comparison_dict"]


@dataclass(frozen=True)
class Tolerance:
    """How much worse a row may get before it counts as a regression."""

    latency_ratio: float = 1.5
    accuracy_drop: float = 0.01
    min_delta_ms: float = 0.05

    def __post_init__(self) -> None:
        if self.latency_ratio <= 1.0:
            raise ValueError(f"latency tolerance {self.latency_ratio}: must be above 1 (a ratio new/old)")
        if self.accuracy_drop < 0 or self.min_delta_ms < 0:
            raise ValueError("accuracy tolerance and minimum latency step must not be negative")


@dataclass(frozen=True)
class Finding:
    """One row's verdict against the baseline: ``kind`` is latency, accuracy, new or missing."""

    key: str
    kind: str
    old: float | None
    new: float | None
    change: float | None  # latency: new/old ratio; accuracy: new - old
    regression: bool

    def line(self) -> str:
        if self.kind == "latency":
            return f"{self.key}: p50 {self.old:.3f} -> {self.new:.3f} ms ({self.change:.2f}x)"
        if self.kind == "accuracy":
            return f"{self.key}: {self.old:.4f} -> {self.new:.4f} ({self.change:+.4f})"
        return f"{self.key}: {self.kind} (only in the {'new' if self.kind == 'new' else 'old'} result)"


def _latency(key: str, old: SuiteRow, new: SuiteRow, tol: Tolerance) -> Finding | None:
    if not old.p50_ms or new.p50_ms is None:
        return None
    ratio = new.p50_ms / old.p50_ms
    bad = ratio > tol.latency_ratio and new.p50_ms - old.p50_ms > tol.min_delta_ms
    return Finding(key, "latency", old.p50_ms, new.p50_ms, round(ratio, 4), bad)


def _accuracy(key: str, old: SuiteRow, new: SuiteRow, tol: Tolerance) -> Finding | None:
    if old.value is None or old.metric != new.metric:
        return None
    if new.value is None:  # the metric was measured before and is gone now
        return Finding(key, "accuracy", old.value, None, None, True)
    drop = new.value - old.value
    return Finding(key, "accuracy", old.value, new.value, round(drop, 6), -drop > tol.accuracy_drop)


def compare(new: SuiteResult, old: SuiteResult, tol: Tolerance) -> list[Finding]:
    """Every matched row's latency and accuracy verdict, then the rows on one side only."""
    if schema_major(new.schema) != schema_major(old.schema):
        raise ValueError(f"baseline schema {old.schema} cannot be compared with {new.schema}")
    before = {r.key: r for r in old.rows}
    after = {r.key: r for r in new.rows}
    out: list[Finding] = []
    for key, row in after.items():
        if key not in before:
            out.append(Finding(key, "new", None, None, None, False))
            continue
        out += [f for f in (_latency(key, before[key], row, tol), _accuracy(key, before[key], row, tol)) if f]
    out += [Finding(k, "missing", None, None, None, False) for k in before if k not in after]
    return out


def comparison_dict(findings: list[Finding], baseline: str, tol: Tolerance) -> dict[str, object]:
    """What the result file stores about the comparison (and the Markdown marks per row)."""
    return {
        "baseline": baseline,
        "tolerance": asdict(tol),
        "regressions": [asdict(f) for f in findings if f.regression],
        "findings": [asdict(f) for f in findings],
    }
