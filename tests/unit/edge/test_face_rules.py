"""The decision rules behind `unknown`: AS-norm against a cohort, fusion with LBP histograms, and the
gallery's closest pair that `edgewise enroll` reports."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from edgewise.edge.apps.face.embed import l2n
from edgewise.edge.apps.face.enroll import gallery_separation
from edgewise.edge.apps.face.gallery import Gallery
from edgewise.edge.apps.face.lbp import lbp_vectors
from edgewise.edge.apps.face.match import Matcher, as_norm, closest_pair, cohort_stats, lbp_tag
from edgewise.edge.spec import Thresholds

FUSION = {"cosine_mean": 0.1, "cosine_sd": 0.2, "lbp_mean": 0.6, "lbp_sd": 0.05, "tta": "flip", "lbp_grid": 8,
          "unknown_by_far": {"0.001": 2.0}}


def _bundle(tmp_path: Path, cohort: np.ndarray | None = None, score: str = "cosine") -> SimpleNamespace:
    th = {"unknown": 0.6, "far_target": 0.001, "tta": "flip", "score": score,
          "unknown_by_tta": {"flip": {"0.001": 0.6}}, "fusion": FUSION}
    if cohort is not None:
        np.save(tmp_path / "cohort.npy", cohort.astype(np.float32))
        th["as_norm"] = {"cohort": "cohort.npy", "top_k": 3, "unknown_by_tta": {"flip": {"0.001": 2.5}}}
    spec = SimpleNamespace(thresholds=Thresholds.from_json(th), config={"tta": "flip"}, name="face-embed",
                           created="2026-01-01T00:00:00")
    return SimpleNamespace(spec=spec, path=tmp_path, file=lambda rel: tmp_path / rel)


def test_as_norm_lowers_a_face_that_is_close_to_everyone():
    """Two faces with the same raw cosine to a template: the one that is also close to the whole cohort
    (a capture condition that makes every face look alike) gets the lower normalised score."""
    rng = np.random.default_rng(0)
    d = 16
    u = np.eye(1, d, 0)
    cohort = l2n(u + 0.3 * rng.normal(size=(30, d)))          # the cohort crowds around direction u
    template = l2n(rng.normal(size=(1, d)))
    crowd = u                                                 # a face close to every cohort member
    lonely = np.eye(1, d, 1)                                  # a face far from all of them
    sims = np.array([[0.7], [0.7]], np.float32)               # same raw similarity by construction
    probe_stats = cohort_stats(np.concatenate([crowd, lonely]), cohort, 5)
    z = as_norm(sims, probe_stats, cohort_stats(template, cohort, 5))
    assert probe_stats[0, 0] > probe_stats[1, 0]
    assert z[0, 0] < z[1, 0]


def test_cohort_stats_are_the_top_k_mean_and_spread():
    cohort = np.eye(4, dtype=np.float32)
    v = np.array([[0.9, 0.5, 0.1, 0.0]], np.float32)
    st = cohort_stats(v, cohort, 2)
    np.testing.assert_allclose(st[0], [0.7, 0.2], atol=1e-6)


def test_lbp_vectors_are_unit_and_blind_to_a_brightness_shift():
    rng = np.random.default_rng(1)
    crop = rng.integers(30, 200, (64, 64), dtype=np.uint8)
    other = rng.integers(30, 200, (64, 64), dtype=np.uint8)
    v = lbp_vectors(np.stack([crop, crop + 40, other]))
    assert v.shape == (3, 8 * 8 * 59)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-5)
    assert float(v[0] @ v[1]) == pytest.approx(1.0, abs=1e-6)   # LBP compares neighbours only
    assert float(v[0] @ v[2]) < 0.99


def test_matcher_cosine_rule_names_the_best_person_or_unknown(tmp_path):
    b = _bundle(tmp_path)
    temps = np.eye(3, 8, dtype=np.float32)
    m = Matcher(b, ["a", "b", "c"], temps, tta="flip")
    assert m.threshold == 0.6 and m.score == "cosine"
    assert m(np.eye(1, 8, 1)[0])[0] == "b"
    assert m(l2n(np.ones(8))[None][0])[0] == "unknown"   # 0.35 to everyone
    assert Matcher(b, [], temps[:0], tta="flip")(temps[0])[0] == "unknown"


def test_matcher_as_norm_uses_its_own_threshold_and_cohort(tmp_path):
    rng = np.random.default_rng(2)
    cohort = l2n(rng.normal(size=(20, 8)))
    b = _bundle(tmp_path, cohort, score="as-norm")
    temps = l2n(rng.normal(size=(2, 8)))
    m = Matcher(b, ["a", "b"], temps, tta="flip")
    assert m.score == "as-norm" and m.threshold == 2.5
    who, score, cos = m(temps[1])
    assert who == "b" and cos == pytest.approx(1.0, abs=1e-5) and score > 2.5
    (tmp_path / "plain").mkdir()
    with pytest.raises(ValueError, match="no cohort"):
        Matcher(_bundle(tmp_path / "plain"), ["a"], temps[:1], tta="flip", score="as-norm")


def test_matcher_fused_rule_needs_lbp_templates_and_the_crop(tmp_path):
    b = _bundle(tmp_path)
    rng = np.random.default_rng(3)
    crops = rng.integers(0, 255, (2, 64, 64), dtype=np.uint8)
    lbp = lbp_vectors(crops)
    temps = np.eye(2, 8, dtype=np.float32)
    with pytest.raises(ValueError, match="re-enroll"):
        Matcher(b, ["a", "b"], temps, tta="flip", score="fused")
    m = Matcher(b, ["a", "b"], temps, tta="flip", score="fused", lbp_templates=lbp)
    who, score, _ = m(temps[0], crops[0])   # same face and same crop: far above the fused threshold
    assert who == "a" and score > 2.0
    with pytest.raises(ValueError, match="needs the aligned crop"):
        m(temps[0])


def test_closest_pair_and_enroll_separation_warn_about_lookalikes(tmp_path):
    b = _bundle(tmp_path)
    assert closest_pair(["a"], np.eye(1, 4)) is None
    with Gallery(tmp_path / "g.db") as g:
        tag = f"{b.spec.name}@{b.spec.created}"
        g.add("alice", np.eye(1, 8, 0, dtype=np.float32), model=tag)
        g.add("bob", l2n(np.array([[1.0, 0.2, 0, 0, 0, 0, 0, 0]], np.float32)), model=tag)   # cosine 0.98
        g.add("carol", np.eye(1, 8, 5, dtype=np.float32), model=tag)
        sep = gallery_separation(g, b, "flip")
    assert (sep.first, sep.second) == ("alice", "bob")
    assert sep.cosine == pytest.approx(0.981, abs=1e-3) and sep.too_close and sep.rule == "cosine"
    assert "closest pair: alice / bob, cosine 0.981" in sep.line()
    with Gallery(tmp_path / "h.db") as g:
        g.add("alice", np.eye(1, 8, 0, dtype=np.float32), model=tag)
        g.add("carol", np.eye(1, 8, 5, dtype=np.float32), model=tag)
        far_apart = gallery_separation(g, b, "flip")
    assert not far_apart.too_close


def test_lbp_tag_names_the_bundle(tmp_path):
    assert lbp_tag(_bundle(tmp_path)) == "lbp:face-embed@2026-01-01T00:00:00"
