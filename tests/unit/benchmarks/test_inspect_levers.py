"""The test-time orientations of ``bench inspect-levers`` are the eight symmetries of a square."""

from __future__ import annotations

import numpy as np

from edgewise.benchmarks.inspect_levers import ORIENTATIONS, oriented


def test_d4_orientations_are_eight_distinct_views_of_the_same_pixels() -> None:
    img = np.arange(5 * 5, dtype=np.uint8).reshape(5, 5)  # no symmetry of its own
    views = [oriented(img, o) for o in ORIENTATIONS["d4"]]
    assert len({v.tobytes() for v in views}) == 8
    assert all(sorted(v.ravel()) == sorted(img.ravel()) for v in views)
    assert np.array_equal(views[0], img)


def test_flips_are_the_mirror_images_and_keep_a_non_square_shape() -> None:
    img = np.arange(3 * 4, dtype=np.uint8).reshape(3, 4)
    assert np.array_equal(oriented(img, "h"), img[:, ::-1])
    assert np.array_equal(oriented(img, "v"), img[::-1])
    assert np.array_equal(oriented(img, "hv"), img[::-1, ::-1])
    assert all(oriented(img, o).shape == (3, 4) for o in ORIENTATIONS["flips"])
    assert oriented(img, "t").shape == (4, 3) and oriented(img, "t").flags.c_contiguous


def test_pool_features_are_the_top_scores_highest_first_then_mean_and_spread() -> None:
    from edgewise.benchmarks.inspect_levers import POOL_TOP, pool_features

    s = np.arange(20, dtype=np.float64)
    f = pool_features(s[::-1].copy())
    assert list(f[:POOL_TOP]) == list(range(19, 19 - POOL_TOP, -1))
    assert f[POOL_TOP] == s.mean() and f[POOL_TOP + 1] == s.std()


def test_pool_features_of_a_part_with_few_tiles_repeat_its_lowest() -> None:
    from edgewise.benchmarks.inspect_levers import POOL_TOP, pool_features

    f = pool_features(np.array([0.5, -1.0, 2.0]))
    assert len(f) == POOL_TOP + 2
    assert list(f[:POOL_TOP]) == [2.0, 0.5] + [-1.0] * (POOL_TOP - 2)
