"""The vibration trainer's manners, without training: settings stored as given, bad input refused
before any TensorFlow work, export only after fit, hops scaled with the window."""

from __future__ import annotations

import pytest

from edgewise.edge.sources.recordings import Recording
from edgewise.train.data.synthetic_vibration import synthetic_dataset
from edgewise.train.vibration import VibrationConfig, VibrationTrainer


def test_trainer_init_only_stores_its_settings():
    cfg = VibrationConfig(epochs=3)
    t = VibrationTrainer(cfg, dataset={"name": "x"}, variants=["tflite_int8"], sweep=[512], threads=1)
    assert t.config is cfg and t.variants == ["tflite_int8"] and t.sweep == [512] and t.threads == 1
    assert not [k for k in vars(t) if k.endswith("_")]  # nothing learned before fit


def test_export_before_fit_is_refused(tmp_path):
    with pytest.raises(RuntimeError, match="fit"):
        VibrationTrainer().export(tmp_path / "b")
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize(
    ("trainer", "message"),
    [
        (VibrationTrainer(variants=["tflite_int9"]), "unknown variants"),
        (VibrationTrainer(VibrationConfig(threshold_rule="max")), "threshold rule"),
        (VibrationTrainer(VibrationConfig(target_far=1.5)), "false-alarm rate"),
        (VibrationTrainer(VibrationConfig(clear_ratio=0.0)), "clear_ratio"),
    ],
)
def test_fit_refuses_bad_settings_before_training(trainer: VibrationTrainer, message: str):
    with pytest.raises(ValueError, match=message):
        trainer.fit(synthetic_dataset(seconds=1.0))
    assert not hasattr(trainer, "model_")


def test_fit_refuses_recordings_at_two_rates():
    recs = synthetic_dataset(seconds=1.0)
    odd = recs[1]
    recs[1] = Recording(name=odd.name, signal=odd.signal, fs=odd.fs / 2, label=odd.label, meta=odd.meta)
    with pytest.raises(ValueError, match="sampled at 6000 Hz"):
        VibrationTrainer().fit(recs)


def test_other_window_lengths_scale_their_hops():
    c = VibrationConfig(epochs=7).for_window(8192)
    assert (c.window, c.hop_normal, c.hop_fault, c.epochs) == (8192, 256, 2048, 7)
    assert VibrationConfig().for_window(512).hop_normal == 32  # floors: 32 normal, 128 fault
