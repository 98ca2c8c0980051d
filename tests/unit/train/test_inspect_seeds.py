"""The several-seed summary: per-seed figures at the stored threshold, mean +- sd, the verdict."""

from __future__ import annotations

import pytest

from edgewise.edge.evaluate import mean_sd
from edgewise.train.inspect.seeds import seed_rows, seeds_markdown

KEYS = ("test_auroc", "test_recall", "test_precision", "test_false_reject_rate", "recall_lower")


def _metrics(recall: float, fn: int, auroc: float) -> dict:
    tp = 79 - fn
    return {"deployed_variant": "tflite_int8", "train_seconds": 100.0,
            "test_image_auroc": {"keras": 0.5, "tflite_int8": auroc},
            "test_at_threshold": {"threshold": 0.1, "recall": recall, "precision": 0.6,
                                  "false_alarm_rate": 0.3, "tp": tp, "fn": fn},
            "operating_point": {"source": "out-of-fold", "recall_lower": 0.981}}


def test_rows_mean_sd_and_every_seed_verdict() -> None:
    rows = [{"seed": i, **seed_rows(_metrics(r, fn, a))}
            for i, (r, fn, a) in enumerate(((1.0, 0, 0.97), (0.987, 1, 0.96), (0.962, 3, 0.98)))]
    assert rows[1]["test_missed"] == 1 and rows[1]["test_defects"] == 79 and rows[0]["recall_lower"] == 0.981
    s = mean_sd([r["test_auroc"] for r in rows])
    assert s["mean"] == pytest.approx(0.97) and s["sd"] == pytest.approx(0.01)  # sample sd (ddof 1)
    assert mean_sd([None]) == {"mean": None, "sd": None}
    result = {"recipe": "r", "host": "h", "threads": 2, "target": 0.98, "seeds": rows,
              "summary": {k: mean_sd([r[k] for r in rows]) for k in KEYS},
              "every_seed_met": all(r["test_recall"] >= 0.98 for r in rows)}
    md = seeds_markdown(result)
    assert "| 2 | 0.980 | 0.962 (3/79) |" in md and "0.970 +- 0.010" in md
    assert md.rstrip().endswith("for every seed: NO")
