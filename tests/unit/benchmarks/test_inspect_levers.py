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
