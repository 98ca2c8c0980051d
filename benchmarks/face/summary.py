"""The one table a user needs: every method on ORL with its accuracy, its rejection and its cost.

Rows: each embedding variant with the cosine rule, with AS-norm (when the bundle stores a cohort)
and fused with LBP (when it stores the fusion statistics), then Fisherfaces, Eigenfaces and LBPH
on aligned and whole images. Columns: open-set rank-1 and TAR at FAR 1 % (mean of the splits),
the 6-person protocol's stranger acceptance and accuracy with strangers at the method's stored
operating point, and the time per face at each thread count.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from edgewise.edge.apps.face.embed import l2n, tta_pair
from edgewise.edge.apps.face.lbp import lbp_vectors
from edgewise.edge.apps.face.match import COHORT_TOP_K, as_norm, bundle_cohort, cohort_stats
from edgewise.edge.evaluate import percentiles

from .classic import CLASSIC
from .methods import (
    ScoreMethod,
    asnorm_method,
    classic_method,
    cosine_method,
    fused_method,
    open_set_summary,
    six_person_summary,
)

__all__ = ["summary_methods", "summary_table", "summary_markdown"]


def _p50(fn: Any, n: int = 200) -> float:
    """p50 milliseconds of ``n`` calls after 10 warm-up calls."""
    for _ in range(10):
        fn()
    ts = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return percentiles(ts)["p50_ms"]


def summary_methods(bundle: Any, names: list[str], plain: dict[str, np.ndarray],
                    mirror: dict[str, np.ndarray], aligned: np.ndarray, unaligned: np.ndarray, tta: str,
                    far: float | None, threshold: float) -> tuple[list[ScoreMethod], dict[str, float]]:
    """The rows, with the extra per-face cost of each decision rule beyond the plain match (ms)."""
    th = bundle.spec.thresholds
    cohort = bundle_cohort(bundle)
    asn = th.get("as_norm") or {}
    fusion = th.get("fusion") or {}
    lbp = lbp_vectors(aligned) if fusion else None
    out: list[ScoreMethod] = []
    extra: dict[str, float] = {}
    for v in names:
        enr, prb = tta_pair(plain[v], mirror[v], tta)
        out.append(cosine_method(f"embedding {v} + tta {tta}, cosine", enr, prb, threshold))
        if cohort is not None and far is not None:
            k = int(asn.get("top_k", COHORT_TOP_K))
            thr = float((asn.get("unknown_by_tta") or {}).get(tta, {}).get(f"{far:g}", np.nan))
            out.append(asnorm_method(f"embedding {v} + tta {tta}, AS-norm", enr, prb, cohort, k, thr))
            t = l2n(enr[:40])
            e = prb[:1]
            extra[out[-1].name] = _p50(lambda e=e, t=t, k=k: as_norm(
                e @ t.T, cohort_stats(e, cohort, k), cohort_stats(t, cohort, k)))
        if fusion and lbp is not None and far is not None:
            both, _ = tta_pair(plain[v], mirror[v], "flip")
            thr = float((fusion.get("unknown_by_far") or {}).get(f"{far:g}", np.nan))
            out.append(fused_method(f"fused: embedding {v} + flip and LBP", both, both, lbp, fusion, thr))
            t_lbp = lbp[:40]
            crop = aligned[:1]
            extra[out[-1].name] = _p50(lambda c=crop, t=t_lbp: lbp_vectors(c) @ t.T)
    for kind in CLASSIC:
        for a, imgs in (("aligned", aligned), ("whole image", unaligned)):
            out.append(classic_method(f"{kind} {a}", kind, imgs))
    return out, extra


def summary_table(methods: list[ScoreMethod], extra: dict[str, float], labels: np.ndarray, repeats: int,
                  seed: int, timing: list[dict[str, Any]], classic_ms: dict[str, float]
                  ) -> list[dict[str, Any]]:
    """One row per method: open set, 6-person protocol, time per face per thread count."""
    rows = []
    for m in methods:
        row: dict[str, Any] = {"method": m.name, "open_set": open_set_summary(m, labels, repeats, seed),
                               "six_person": six_person_summary(m, labels, repeats, seed), "time_ms_p50": {}}
        for th in sorted({t["threads"] for t in timing}):
            tm = [t for t in timing if t["threads"] == th]
            if m.name.startswith(("embedding", "fused")):
                v = m.name.split()[2 if m.name.startswith("fused") else 1]
                r = next((t for t in tm if t["variant"] == v), None)
                if r is not None:
                    row["time_ms_p50"][str(th)] = r["total_ms_p50"] + extra.get(m.name, 0.0)
            else:
                da = float(np.median([t["detect_ms_p50"] + t["align_ms_p50"] for t in tm]))
                kind, how = m.name.split(" ", 1)
                key = f"{kind} {'aligned' if how == 'aligned' else 'unaligned'}"
                row["time_ms_p50"][str(th)] = da + classic_ms.get(key, 0.0)
        row["extra_decision_ms_p50"] = extra.get(m.name)
        rows.append(row)
    return rows


def _pct(v: Any) -> str:
    return "—" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{100 * v:.2f} %"


def summary_markdown(rows: list[dict[str, Any]], threads: list[int], repeats: int) -> str:
    """The table as Markdown."""
    head = ("| method | rank-1, mean of {n} splits [min, max] | TAR at FAR 1 % (mean) | stranger acceptance "
            "at its operating point (6-person) | accuracy with strangers (6-person) | enrollment rate | "
            + " | ".join(f"time per face, {t} thread{'s' if t > 1 else ''}" for t in threads) + " |")
    lines = [head.format(n=repeats), "|" + "---|" * (6 + len(threads))]
    for r in rows:
        o, s = r["open_set"], r["six_person"]
        rej = s["threshold"] is not None
        strangers = f"{_pct(s['stranger_acceptance'])} ({s['strangers_accepted']})" if rej else "no threshold"
        cells = [r["method"], f"{_pct(o['rank1'])} [{_pct(o['rank1_min'])}, {_pct(o['rank1_max'])}]",
                 _pct(o["tar_at_far_0.01"]),
                 strangers,
                 _pct(s["accuracy_with_strangers"]),
                 f"{_pct(s['enrollment_rate'])}" if rej else "—"]
        times = r["time_ms_p50"]
        cells += [f"{times[str(t)]:.1f} ms" if str(t) in times else "—" for t in threads]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
