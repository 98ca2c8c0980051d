"""The one face table: every method scored on the same draws, with or without a rejection rule
(synthetic faces and embeddings: these check the protocol arithmetic, not recognition)."""

from __future__ import annotations

import numpy as np

from edgewise.benchmarks.face.methods import (
    classic_method,
    cosine_method,
    fused_method,
    open_set_summary,
    six_person_summary,
)
from edgewise.benchmarks.face.summary import summary_markdown
from edgewise.edge.apps.face.embed import l2n
from edgewise.edge.apps.face.lbp import lbp_vectors

LABELS = np.repeat(np.arange(40), 10)


def _emb(noise: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return l2n(np.eye(40, 64)[LABELS] + noise * rng.normal(size=(400, 64)))


def test_separable_embeddings_give_full_rank1_and_tar():
    e = _emb(0.02)
    o = open_set_summary(cosine_method("c", e, e, 0.5), LABELS, repeats=3)
    assert o["rank1"] == 1.0 and o["tar_at_far_0.01"] == 1.0 and o["splits"] == 3


def test_without_a_threshold_every_stranger_is_accepted():
    e = _emb(0.02)
    s = six_person_summary(cosine_method("c", e, e, None), LABELS, repeats=2)
    assert s["stranger_acceptance"] == 1.0 and s["strangers_accepted"] == "680/680"
    assert s["accuracy_with_strangers"] == 60 / (60 + 680)
    strict = six_person_summary(cosine_method("c", e, e, 0.9), LABELS, repeats=2)
    assert strict["stranger_acceptance"] == 0.0 and strict["accuracy_with_strangers"] == 1.0
    assert strict["enrollment_rate"] == 1.0


def test_fusion_can_rescue_a_noisy_embedding_with_clean_crops():
    rng = np.random.default_rng(1)
    faces = rng.integers(0, 255, (40, 32, 32), dtype=np.uint8)
    crops = np.clip(faces[LABELS].astype(int) + rng.integers(-6, 7, (400, 32, 32)), 0, 255).astype(np.uint8)
    lbp = lbp_vectors(crops)
    e = _emb(0.6, seed=2)
    stats = {"cosine_mean": 0.0, "cosine_sd": 0.2, "lbp_mean": 0.5, "lbp_sd": 0.05}
    plain = open_set_summary(cosine_method("c", e, e, None), LABELS, repeats=2)
    fused = open_set_summary(fused_method("f", e, e, lbp, stats, None), LABELS, repeats=2)
    assert fused["rank1"] > plain["rank1"]


def test_classic_lbph_scores_every_person_and_names_the_right_one():
    rng = np.random.default_rng(3)
    faces = rng.integers(0, 255, (40, 32, 32), dtype=np.uint8)
    imgs = np.clip(faces[LABELS].astype(int) + rng.integers(-5, 6, (400, 32, 32)), 0, 255).astype(np.uint8)
    o = open_set_summary(classic_method("lbph aligned", "lbph", imgs), LABELS, repeats=1)
    assert o["rank1"] > 0.9


def test_markdown_marks_methods_without_rejection():
    e = _emb(0.02)
    row = {"method": "lbph aligned", "open_set": open_set_summary(cosine_method("c", e, e, None), LABELS, 1),
           "six_person": six_person_summary(cosine_method("c", e, e, None), LABELS, 1),
           "time_ms_p50": {"1": 20.0}}
    md = summary_markdown([row], [1, 2], 1)
    assert "| lbph aligned | 100.00 % [100.00 %, 100.00 %] | 100.00 % | no threshold |" in md
    assert md.rstrip().endswith("| 20.0 ms | — |")
