"""A recall the line can trust: Clopper-Pearson lower bounds and the threshold rule built on them.

A threshold that catches 77 of 78 validation defects says little about the next thousand parts:
with that few defects the recall on the line could well be 0.93. What can be stated is a
one-sided lower confidence bound on the recall: at 95 % confidence the line's recall at this
threshold is at least ``L`` (Clopper-Pearson, exact for a binomial count, conservative). The
rule here picks the **highest** threshold (the fewest false rejects) whose lower bound still
meets the target, over out-of-fold scores of every labelled defect.

With ``n`` defects and none missed the bound is ``alpha ** (1 / n)``: a 0.98 bound needs at
least 149 defects (``min_defects``). With fewer the target cannot be shown whatever the
model; the rule then takes the highest threshold that misses none and says which bound that
gives.

scipy is a workstation dependency (the ``train`` extra); the device only reads the stored
figures (``OperatingPoint`` in ``edgewise.edge.spec``).

>>> round(recall_lower_bound(10, 10), 4)
0.7411
>>> min_defects(0.98)
149
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "CONFIDENCE",
    "recall_lower_bound",
    "min_defects",
    "parse_kind_floors",
    "KindFloor",
    "Choice",
    "choose_threshold",
    "guarantee_at",
]

CONFIDENCE = 0.95


def recall_lower_bound(caught: int, defects: int, confidence: float = CONFIDENCE) -> float:
    """One-sided Clopper-Pearson lower bound on a recall measured as ``caught`` of ``defects``.

    The ``1 - confidence`` quantile of Beta(k, n - k + 1); 0 when nothing was caught (or there
    was nothing to catch: no evidence is no guarantee).
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if defects < 0 or not 0 <= caught <= defects:
        raise ValueError(f"need 0 <= caught <= defects, got {caught} of {defects}")
    if caught == 0:
        return 0.0
    from scipy.stats import beta

    return float(beta.ppf(1.0 - confidence, caught, defects - caught + 1))


def min_defects(min_recall: float, confidence: float = CONFIDENCE) -> int:
    """The fewest defects, all caught, whose lower bound reaches ``min_recall``:
    ``alpha ** (1/n) >= r``, i.e. ``n >= ln(alpha) / ln(r)``."""
    if not 0 < min_recall < 1:
        raise ValueError(f"min recall must be in (0, 1), got {min_recall}")
    n = math.ceil(math.log(1.0 - confidence) / math.log(min_recall))
    while (1.0 - confidence) ** (1.0 / n) < min_recall:  # float edge of the ceiling
        n += 1
    return n


def parse_kind_floors(text: str | None, kinds: list[str] | None = None) -> dict[str, float]:
    """``--min-recall-per-kind``: ``0.9`` (every defect kind) or ``crack=0.9,fray=0.85``."""
    if not text:
        return {}
    text = text.strip()
    out: dict[str, float] = {}
    try:
        if "=" not in text:
            v = float(text)
            if kinds is None:
                return {"*": _floor(v, "*")}
            return {k: _floor(v, k) for k in kinds}
        for item in text.split(","):
            k, _, v = item.partition("=")
            k = k.strip().lower()
            if not k or not v.strip():
                raise ValueError(f"'{item}' is not KIND=RECALL")
            out[k] = _floor(float(v), k)
    except ValueError as e:
        raise ValueError(f"--min-recall-per-kind {text!r}: {e}") from None
    if kinds is not None:
        unknown = sorted(set(out) - set(kinds))
        if unknown:
            raise ValueError(f"--min-recall-per-kind: no defect kind {', '.join(unknown)} "
                             f"(kinds: {', '.join(kinds)})")
    return out


def _floor(v: float, kind: str) -> float:
    if not 0 < v < 1:
        raise ValueError(f"{kind}: a recall floor must be in (0, 1), got {v}")
    return v


@dataclass
class KindFloor:
    """What one defect kind measured at the chosen threshold (and its floor, when one was set)."""

    defects: int
    caught: int
    recall: float
    recall_lower: float
    min_recall: float | None = None
    reached: bool | None = None


@dataclass
class Choice:
    """The chosen threshold, the recall guarantee it carries and what it costs in good parts."""

    threshold: float
    rule: str
    confidence: float
    min_recall: float
    defects: int
    caught: int
    recall: float
    recall_lower: float
    reached: bool  # the lower bound meets min_recall (else: zero-miss fallback)
    min_defects: int  # defects needed for min_recall with none missed
    good: int
    false_rejects: int
    false_reject_rate: float
    precision: float | None
    per_kind: dict[str, KindFloor] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _highest_meeting(defect_scores: np.ndarray, target: float, confidence: float) -> tuple[float, bool]:
    """The highest threshold (a defect's score: ``>=`` catches it) whose lower bound meets
    ``target``; if none does, the lowest defect score (nothing missed) and False."""
    s = np.sort(np.asarray(defect_scores, np.float64))[::-1]  # high to low: threshold s[i] catches i+1
    n = len(s)
    for i in range(n):
        if i + 1 < n and s[i + 1] == s[i]:
            continue  # ties: the threshold catches all of them together
        if recall_lower_bound(i + 1, n, confidence) >= target:
            return float(s[i]), True
    return float(s[-1]), False


def choose_threshold(
    scores: np.ndarray,
    labels: np.ndarray,
    kinds: list[str],
    min_recall: float = 0.98,
    per_kind: dict[str, float] | None = None,
    confidence: float = CONFIDENCE,
) -> Choice:
    """The highest threshold whose Clopper-Pearson lower recall bound meets ``min_recall``
    over all defects, and each kind's floor in ``per_kind`` over that kind's defects.

    Unreachable targets fall back to the highest threshold that misses no defect (of all, or
    of that kind), and ``reached`` says so. The lowest of the candidate thresholds wins: every
    constraint holds at once.
    """
    scores = np.asarray(scores, np.float64)
    labels = np.asarray(labels).astype(bool)
    if len(scores) != len(labels) or len(kinds) != len(labels):
        raise ValueError("scores, labels and kinds must have one entry per part")
    if not labels.any():
        raise ValueError("no defective part among the scored parts: a recall cannot be bounded")
    if not 0 < min_recall < 1:
        raise ValueError(f"min recall must be in (0, 1), got {min_recall}")
    floors = dict(per_kind or {})
    defect_kinds = sorted({k for k, lab in zip(kinds, labels, strict=True) if lab})
    if "*" in floors:
        v = floors.pop("*")
        floors = {k: v for k in defect_kinds} | floors
    thr, reached = _highest_meeting(scores[labels], min_recall, confidence)
    kind_ok: dict[str, bool] = {}
    for k, floor in floors.items():
        sel = labels & np.array([kk == k for kk in kinds])
        if not sel.any():
            raise ValueError(f"--min-recall-per-kind: no defective part of kind {k} among the scored parts")
        t_k, kind_ok[k] = _highest_meeting(scores[sel], floor, confidence)
        thr = min(thr, t_k)
    rule = (f"highest threshold whose one-sided {confidence:.0%} Clopper-Pearson lower recall bound "
            f">= {min_recall:g}" + (" (and per-kind floors)" if floors else ""))
    short = sorted(k for k, ok in kind_ok.items() if not ok)
    if short:
        rule += f"; floor unreachable for {', '.join(short)} (too few parts): highest threshold missing none"
    if not reached:
        rule += (f"; unreachable with {int(labels.sum())} defects (needs >= "
                 f"{min_defects(min_recall, confidence)} all caught): highest threshold missing none")
    return guarantee_at(scores, labels, kinds, thr, min_recall, floors, confidence, rule)


def guarantee_at(
    scores: np.ndarray,
    labels: np.ndarray,
    kinds: list[str],
    threshold: float,
    min_recall: float,
    per_kind: dict[str, float] | None = None,
    confidence: float = CONFIDENCE,
    rule: str = "",
) -> Choice:
    """What ``scores >= threshold`` gives on these parts: recall with its lower bound (overall and
    per kind), false rejects and precision. Also used for a threshold chosen by another rule."""
    scores = np.asarray(scores, np.float64)
    labels = np.asarray(labels).astype(bool)
    floors = per_kind or {}
    pred = scores >= threshold
    caught, n = int((pred & labels).sum()), int(labels.sum())
    good = int((~labels).sum())
    fr = int((pred & ~labels).sum())
    lower = recall_lower_bound(caught, n, confidence)
    rows = {}
    for k in sorted({k for k, lab in zip(kinds, labels, strict=True) if lab}):
        sel = labels & np.array([kk == k for kk in kinds])
        c, m = int((pred & sel).sum()), int(sel.sum())
        lo = recall_lower_bound(c, m, confidence)
        fl = floors.get(k)
        rows[k] = KindFloor(m, c, c / m, lo, fl, None if fl is None else lo >= fl)
    return Choice(
        threshold=float(threshold), rule=rule, confidence=confidence, min_recall=min_recall, defects=n,
        caught=caught, recall=caught / n if n else 0.0, recall_lower=lower, reached=bool(lower >= min_recall),
        min_defects=min_defects(min_recall, confidence), good=good, false_rejects=fr,
        false_reject_rate=fr / good if good else 0.0,
        precision=caught / (caught + fr) if caught + fr else None, per_kind=rows,
    )
