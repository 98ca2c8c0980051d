"""Every rejection rule calibrated the same way on held-out identities, the AS-norm cohort, and the
leave-one-dataset-out table (synthetic embeddings: these check the arithmetic, not the recognition)."""

from __future__ import annotations

import numpy as np

from edgewise.edge.apps.face import l2n
from edgewise.train.face.asnorm import asnorm_entry, asnorm_modes, cohort_templates
from edgewise.train.face.lodo import lodo_markdown
from edgewise.train.face.scoring import (
    METHODS,
    FaceViews,
    calibrate_methods,
    evaluate_methods,
    unbounded_threshold,
)


def _views(seed: int, n_ids: int = 24, per: int = 9, d: int = 16) -> FaceViews:
    rng = np.random.default_rng(seed)
    centres = l2n(rng.normal(size=(n_ids, d)))
    y = np.repeat(np.arange(n_ids), per)
    emb = l2n(centres[y] + 0.2 * rng.normal(size=(len(y), d)))
    lbp_c = np.abs(rng.normal(size=(n_ids, 40)))
    lbp = l2n(lbp_c[y] + 0.3 * np.abs(rng.normal(size=(len(y), 40))))
    names = [f"{'A' if k < n_ids // 2 else 'B'}/{k}" for k in range(n_ids)]
    return FaceViews(emb, lbp, y, names)


def test_normalised_scores_get_thresholds_above_one_and_hold_the_far_on_their_own_pairs():
    cal = _views(0)
    cohort = l2n(np.random.default_rng(9).normal(size=(40, 16)))
    th, fusion = calibrate_methods(cal, cohort, (0.01,), seed=0)
    assert set(th) == set(METHODS)
    assert th["as-norm"]["0.01"]["unknown"] > 1.0 and th["fused"]["0.01"]["unknown"] > 1.0
    for m in METHODS:
        assert th[m]["0.01"]["far_measured"] <= 0.01
    assert fusion["lbp_sd"] > 0 and fusion["cosine_sd"] > 0


def test_stored_thresholds_measured_on_a_new_draw_of_the_same_population():
    cohort = l2n(np.random.default_rng(9).normal(size=(40, 16)))
    th, fusion = calibrate_methods(_views(0), cohort, (0.01,), seed=0)
    res = evaluate_methods(_views(1), cohort, fusion, th, seed=5)
    for m in METHODS:
        r = res[m]
        assert 0.0 <= r["far_at_0.01"] < 0.03     # same population: the target roughly holds
        assert r["rank1"] > 0.3 and r["impostor_pairs"] > 1000   # chance: 1/24
    assert res["cosine"]["rank1"] > 0.9


def test_unbounded_threshold_keeps_its_scale():
    rng = np.random.default_rng(0)
    s = rng.normal(3.0, 1.0, size=(50, 10))
    gen = np.zeros_like(s, dtype=bool)
    gen[np.arange(50), rng.integers(0, 10, 50)] = True
    s[gen] += 4
    c = unbounded_threshold(s, gen, 0.02, np.ones_like(gen))
    assert c["unknown"] > 4.0 and c["far_measured"] <= 0.02


def test_cohort_is_one_unit_template_per_training_identity_and_asnorm_is_stored_per_mode():
    v = _views(2)
    rng = np.random.default_rng(3)
    mirror = l2n(v.emb + 0.05 * rng.normal(size=v.emb.shape))
    cohort = cohort_templates(v.emb, mirror, v.y)
    assert cohort.shape == (24, 16) and cohort.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(cohort, axis=1), 1.0, rtol=1e-5)
    held = _views(4)
    modes = asnorm_modes(held.emb, held.emb, held.y, held.names, cohort, (0.01, 0.001), draws=2)
    entry = asnorm_entry(modes)
    assert entry["cohort"] == "cohort.npy" and set(entry["unknown_by_tta"]) == {"none", "flip", "enroll"}
    assert entry["unknown_by_tta"]["flip"]["0.001"] >= entry["unknown_by_tta"]["flip"]["0.01"]


def test_lodo_table_gives_mean_and_sd_over_seeds():
    def run(seed: int, r1: float) -> dict:
        row = {"rank1": r1, "tar_at_far_0.01": 0.5, "far_at_0.01": 0.01, "far_at_0.001": 0.002,
               "tar_at_0.001": 0.4}
        return {"held_out": "IMM", "seed": seed,
                "results": {t: dict.fromkeys(METHODS, row) for t in ("held-out collection", "ORL")}}

    md = lodo_markdown({"recipe": {"epochs": 2, "size": 64, "augmentation": "strong", "embedding": "x"},
                        "runs": [run(0, 0.90), run(1, 0.80)]})
    assert ("| IMM | cosine | 85.0 ± 7.1 % | 50.0 ± 0.0 % | 0.20 ± 0.00 % | 85.0 ± 7.1 % | 50.0 ± 0.0 % "
            "| 0.20 ± 0.00 % | 2 |") in md
