"""The inspection training settings refuse what cannot be trained, before TensorFlow loads."""

from __future__ import annotations

import pytest


def test_epochs_0_without_weights_is_refused_before_training() -> None:
    from edgewise.train.inspect import InspectConfig

    with pytest.raises(ValueError, match=r"0 only with --weights"):
        InspectConfig(epochs=0)
    assert InspectConfig(epochs=0, weights="w.weights.h5").epochs == 0


def test_hard_negatives_setting_is_checked_before_training() -> None:
    from edgewise.train.inspect import InspectConfig

    with pytest.raises(ValueError, match=r"--hard-negatives must be >= 0"):
        InspectConfig(hard_negatives=-1)
    assert InspectConfig(hard_negatives=0).hard_negatives == 0


def test_the_good_parts_cannot_be_an_unseen_kind() -> None:
    from edgewise.train.inspect import InspectConfig

    with pytest.raises(ValueError, match=r"the good parts cannot be left out"):
        InspectConfig(unseen_kinds=["good"])
    assert InspectConfig(unseen_kinds=["uneven"]).unseen_kinds == ["uneven"]
