"""Commissioning on the device: this machine's healthy state learned without TensorFlow, checked
for plausibility, written beside the bundle tied to its hash, applied by the run (SYNTHETIC
signals; the model is a stand-in whose score is the mean squared standardized feature, which is
how the trained autoencoder behaves on these features)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgewise.edge.apps.vibration import (
    FeatureConfig,
    FeatureExtractor,
    Mahalanobis,
    VibrationApp,
    frame_signal,
)
from edgewise.edge.apps.vibration import commission as cm
from edgewise.edge.bundle import BundleError, BundleWriter, Variant, load_bundle
from edgewise.edge.drift import DriftReference
from edgewise.edge.pipeline import Frame

FS, WIN, HOP = 12000.0, 2048, 256
LINES = np.exp(np.random.default_rng(41).uniform(np.log(40), np.log(5000), 80))
GAINS = np.random.default_rng(42).uniform(0.05, 1.0, LINES.size)


def machine(seconds: float, fs: float = FS, seed: int = 0, fault: bool = False) -> np.ndarray:
    """SYNTHETIC healthy machine (irregular lines, noise); ``fault``: impacts at 107 Hz ringing at 3 kHz."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * fs)) / fs
    ph = rng.uniform(0, 2 * np.pi, LINES.size)
    x = (GAINS[:, None] * np.sin(2 * np.pi * LINES[:, None] * t + ph[:, None])).sum(axis=0)
    x = x + 0.3 * rng.normal(size=t.size)
    if fault:
        ring = np.exp(-np.arange(120) / 20.0) * np.sin(2 * np.pi * 3000 * np.arange(120) / fs)
        pulses = np.zeros_like(t)
        pulses[(np.arange(0, seconds, 1 / 107.0) * fs).astype(int)] = 20.0
        x = x + np.convolve(pulses, ring)[: t.size]
    return x


class Shrink:
    """Stand-in model: reconstructs every feature as 0, so the score is the mean squared z."""

    def predict(self, z: np.ndarray) -> np.ndarray:
        return np.zeros_like(z)

    def close(self) -> None:
        pass


def _score(z: np.ndarray) -> np.ndarray:
    return (z**2).mean(axis=1)


def make_bundle(root: Path, gain: float = 1.0, drift: bool = True) -> Path:
    """A vibration bundle 'trained' on the SYNTHETIC machine at ``gain``: normalisation, baseline,
    thresholds (99th percentile of held-out healthy windows), level channel, drift reference."""
    fc = FeatureConfig()
    fx = FeatureExtractor(FS, WIN, fc)
    x = gain * machine(8.0, seed=100)
    fit, held = x[: int(6 * FS)], x[int(6 * FS):]
    f, ind = fx.transform(frame_signal(fit, WIN, HOP))
    centre, spread = cm.robust_moments(f, fc.scale_floor)
    base = Mahalanobis().fit(ind)
    fh, ih = fx.transform(frame_signal(held, WIN, HOP))
    thr = float(np.quantile(_score(cm.robust_z(fh, centre, spread, fc.z_cap)), 0.99)) * 1.2
    lc, ls = cm.robust_moments(cm.levels(ind), 0.0)
    w = BundleWriter(root, name="vib-synthetic", task="anomaly_detection", app="vibration")
    w.add_bytes("model_float32.tflite", b"\x00" * 64)
    w.meta["input"] = {"shape": [None, fx.dim], "dtype": "float32", "layout": "NC", "color": "none",
                       "normalization": {"mean": centre.tolist(), "std": spread.tolist()}}
    w.meta["output"] = {"shape": [None, fx.dim], "dtype": "float32", "kind": "reconstruction", "score": "mse"}
    w.meta["config"] = {
        "fs": FS, "window": WIN, "hop": WIN, "features": fc.to_dict(), "baseline": base.to_dict(),
        "levels": {"names": list(cm.LEVELS), "centre": lc.tolist(), "spread": ls.tolist()},
        "alarm": {"n": 3, "m": 5, "clear_ratio": 0.8},
        **({"drift": DriftReference.fit("vibration", frame_signal(fit, WIN, WIN), fs=FS).to_dict()}
           if drift else {}),
    }
    w.meta["thresholds"] = {"decision": thr, "per_variant": {"tflite_float32": thr},
                            "baseline": float(np.quantile(base.score(ih), 0.99)) * 1.2, "target_far": 0.01}
    w.add_variant(Variant("tflite_float32", "model_float32.tflite", "litert", "float32"))
    return w.finish()


def listen(x: np.ndarray, hop: int = HOP) -> cm.WindowStats:
    st = cm.WindowStats(FeatureExtractor(FS, WIN, FeatureConfig()))
    for i, w in enumerate(frame_signal(x, WIN, hop)):
        st.add(w, i * hop / FS)
    return st


def rates(app: VibrationApp, x: np.ndarray) -> tuple[float, float]:
    """(model, baseline) fraction of windows over their thresholds."""
    model, base = [], []
    for i, w in enumerate(frame_signal(x, WIN, HOP)):
        f = Frame(w, 0.0, i, {"fs": FS})
        e = app.postprocess(f, app.infer(app.preprocess(f)))
        model.append(e.extra["anomalous"])
        base.append(e.extra["baseline_anomalous"])
    return float(np.mean(model)), float(np.mean(base))


@pytest.fixture()
def bundle(tmp_path: Path) -> Path:
    return make_bundle(tmp_path / "vib.bundle")


def test_commissioning_on_another_gain_restores_the_false_alarm_rate_and_still_detects_a_fault(
    bundle: Path,
) -> None:
    """Installed with a sensor 3x as sensitive: the level-based baseline alarms on every healthy
    window until commissioning; after it, held-out healthy windows stay quiet and a fault at the
    same gain is still detected by both scorers."""
    gain = 3.0
    healthy, later = gain * machine(12.0, seed=1), gain * machine(4.0, seed=2)
    b = load_bundle(bundle)
    with VibrationApp(b, model=Shrink()) as app:
        assert app.commissioning is None
        before = rates(app, later)
    assert before[1] == 1.0  # the baseline reads the gain as damage
    c, checks = cm.commission(b, listen(healthy), models={"tflite_float32": Shrink()})
    assert c is not None and all(ch.ok for ch in checks)
    path = c.save(cm.commissioning_path(b))
    assert path == bundle.with_name("vib.bundle.commissioning.json")
    assert c.report["false_alarms_at_training_state"]["baseline"] == 1.0
    assert c.report["level_db_vs_training"] == pytest.approx(20 * np.log10(gain), abs=0.5)
    with VibrationApp(load_bundle(bundle), model=Shrink()) as app:  # found beside the bundle
        assert app.commissioning == path
        assert app.threshold == pytest.approx(c.thresholds["per_variant"]["tflite_float32"])
        after = rates(app, later)
        fault = rates(app, gain * machine(4.0, seed=3, fault=True))
    assert after[0] <= 0.02 and after[1] <= 0.02, after
    assert fault[0] >= 0.95 and fault[1] >= 0.95, fault


def test_the_file_is_refused_for_another_bundle_and_when_edited(bundle: Path, tmp_path: Path) -> None:
    b = load_bundle(bundle)
    c, _ = cm.commission(b, listen(machine(10.0, seed=1)), models={"tflite_float32": Shrink()})
    assert c is not None
    path = c.save(cm.commissioning_path(b))
    other = load_bundle(make_bundle(tmp_path / "other.bundle", gain=2.0))
    with pytest.raises(BundleError, match="made for another bundle") as e:
        VibrationApp(other, model=Shrink(), commissioning=str(path))
    assert "\n" not in str(e.value)
    d = json.loads(path.read_text())
    d["thresholds"]["baseline"] *= 10  # someone "fixes" a threshold by hand
    path.write_text(json.dumps(d))
    with pytest.raises(BundleError, match="checksum mismatch"):
        VibrationApp(b, model=Shrink())
    with pytest.raises(BundleError, match="cannot read"):
        VibrationApp(b, model=Shrink(), commissioning=str(tmp_path / "missing.json"))


def _failed(st: cm.WindowStats, bundle: Path) -> dict[str, str]:
    c, checks = cm.commission(load_bundle(bundle), st, models={"tflite_float32": Shrink()})
    assert c is None
    return {ch.name: ch.text for ch in checks if not ch.ok}


def test_too_few_windows_is_refused(bundle: Path) -> None:
    assert set(_failed(listen(machine(2.0, seed=1), hop=WIN), bundle)) == {"windows"}


def test_a_dead_sensor_is_refused(bundle: Path) -> None:
    x = machine(10.0, seed=1)
    x[: int(5 * FS)] = 0.0123  # half the time a constant: unplugged
    assert "dead" in _failed(listen(x), bundle)["sensor"]


def test_a_clipped_signal_is_refused(bundle: Path) -> None:
    x = np.clip(machine(10.0, seed=1), -2.0, 2.0)
    assert "clipped" in _failed(listen(x), bundle)["clipping"]


@pytest.mark.parametrize("drift", [True, False], ids=["drift-reference", "normalisation-centre"])
def test_a_wrong_sampling_rate_is_refused_with_the_rate_the_spectrum_suggests(tmp_path: Path,
                                                                              drift: bool) -> None:
    """The machine sampled at 24 kHz, declared 12 kHz; with the bundle's drift spectrum, or the
    training median of the spectral-shape features for bundles without one."""
    bundle = make_bundle(tmp_path / "vib.bundle", drift=drift)
    fails = _failed(listen(machine(5.0, fs=2 * FS, seed=1)), bundle)
    assert set(fails) == {"sampling_rate"} and "sampling rate" in fails["sampling_rate"]


def test_the_command_writes_the_file_beside_the_bundle(bundle: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from edgewise.edge.cli import main

    monkeypatch.setattr(cm, "_variant_models", lambda bundle, threads: {"tflite_float32": Shrink()})
    src = tmp_path / "healthy.npy"
    np.save(src, 2.0 * machine(12.0, seed=4))
    rc = main(["commission", "vibration", "--bundle", str(bundle), "--source", str(src), "--fs", "12000",
               "--minutes", "0.15", "--json", str(tmp_path / "r.json")])
    first = capsys.readouterr().err
    assert rc == 0, first
    assert "wrote" in first and "baseline: threshold" in first
    c = cm.load_commissioning(cm.commissioning_path(bundle), load_bundle(bundle))
    assert c.source["seconds"] <= 9.0 + 1e-6
    assert c.source["windows"] == (int(9.0 * FS) - WIN) // (WIN // 8) + 1
    assert json.loads((tmp_path / "r.json").read_text())["ok"] is True
    np.save(src, np.zeros(int(12 * FS)))
    rc = main(["commission", "vibration", "--bundle", str(bundle), "--source", str(src), "--fs", "12000",
               "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and err == ["edgewise commission vibration: error: 100.0 % flat windows: dead or "
                               "disconnected sensor?"]
