"""Commissioning and input drift on real CWRU data (0 HP, drive end).

A small bundle is trained on the healthy recording (the first half in time), then installed
"on another sensor": the healthy signal scaled by a gain. Commissioning on the train and
validation parts (0-70 % in time) at that gain, on the edge runtime without TensorFlow, must
keep false alarms on the held-out healthy part (70-100 %) at that gain <= 1 %, and every one
of the 15 fault files scaled the same way must still be detected. The healthy file run with a
wrong ``--fs`` gives one drift warning and one drift event.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

TRAIN_FAULTS = ["IR007_0", "B007_0", "OR007@6_0", "OR021@6_0"]  # the training report's subset
HOP = 256


@pytest.fixture(scope="module")
def vib(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A small autoencoder on real CWRU windows (30 epochs, int8 only, validation-only thresholds:
    commissioning replaces them anyway), and every fault file at 12 kHz."""
    from edgewise.train.data.cwru import load_cwru
    from edgewise.train.vibration import VibrationConfig, train_vibration

    recs = load_cwru(data_dir)
    out = tmp_path_factory.mktemp("vibc") / "vib.bundle"
    train_vibration(
        [r for r in recs if r.label == "normal" or r.name in TRAIN_FAULTS], out,
        VibrationConfig(epochs=30, threshold_folds=0),
        dataset={"name": "CWRU test subset", "channel": "DE", "normal_fs": 48000.0, "fault_fs": 12000.0},
        variants=["tflite_int8"], threads=1, quiet=True,
    )
    healthy = recs[0].signal
    return {"bundle": out, "healthy": healthy, "cut": int(0.7 * len(healthy)),
            "faults": {r.name: r.signal for r in recs[1:]}}


def _windows(x: np.ndarray, hop: int) -> np.ndarray:
    from edgewise.edge.apps.vibration import frame_signal

    return frame_signal(x, 2048, hop)


def _run(app, x: np.ndarray, hop: int) -> dict[str, float]:
    """Window-level rates and the alarm, through the app's own three stages."""
    from edgewise.edge.pipeline import Frame

    model, base, ratio = [], [], []
    raised = False
    app.alarm = app.alarm_config.state(app.threshold)  # a fresh alarm per recording
    for i, w in enumerate(_windows(x, hop)):
        f = Frame(w, 0.0, i, {"fs": 12000.0})
        e = app.postprocess(f, app.infer(app.preprocess(f)))
        model.append(e.extra["anomalous"])
        base.append(e.extra["baseline_anomalous"])
        ratio.append(e.score / e.extra["threshold"])
        raised |= e.kind == "alarm_raised"
    return {"model": float(np.mean(model)), "baseline": float(np.mean(base)), "max": max(ratio),
            "min": min(ratio), "n": len(model), "alarm": raised}


@pytest.mark.realdata
@pytest.mark.parametrize("gain", [0.8, 1.25, 2.0])
def test_commissioned_on_a_gain_it_keeps_false_alarms_low_and_detects_every_fault_file(
    vib: dict, gain: float, tmp_path: Path
) -> None:
    from edgewise.edge.apps.vibration import VibrationApp
    from edgewise.edge.apps.vibration.commission import load_commissioning
    from edgewise.edge.bundle import load_bundle

    src, out = tmp_path / "healthy.npy", tmp_path / "machine.commissioning.json"
    np.save(src, gain * vib["healthy"][: vib["cut"]])
    code = (  # the device's path: no TensorFlow may be imported
        "import sys\n"
        "from edgewise.edge.apps.vibration.commission_cli import commission_main\n"
        f"rc = commission_main(['--bundle', {str(vib['bundle'])!r}, '--source', {str(src)!r}, "
        f"'--fs', '12000', '--minutes', '1', '--hop', '{HOP}', '--out', {str(out)!r}])\n"
        "assert 'tensorflow' not in sys.modules, 'TensorFlow was imported by commissioning'\n"
        "print('RC', rc)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "RC 0" in r.stdout, r.stderr
    b = load_bundle(vib["bundle"])
    c = load_commissioning(out, b)
    assert all(ch["ok"] for ch in c.checks)
    assert c.report["level_db_vs_training"] == pytest.approx(20 * np.log10(gain), abs=1.0)
    # the training rig's baseline reads the gain as damage; commissioning re-learns it
    assert c.report["false_alarms_at_training_state"]["baseline"] > 0.5
    with VibrationApp(b, "tflite_int8", threads=1, commissioning=str(out)) as app:
        held = _run(app, gain * vib["healthy"][vib["cut"]:], HOP)
        faults = {k: _run(app, gain * v, 512) for k, v in vib["faults"].items()}
    low = {k: min(f[k] for f in faults.values()) for k in ("min", "model", "baseline")}
    print(f"gain {gain}: held-out healthy {held['n']} windows, false alarms model {held['model']:.3f} "
          f"baseline {held['baseline']:.3f}, highest {held['max']:.2f}x threshold; lowest fault window "
          f"{low['min']:.2f}x; min recall model {low['model']:.3f} baseline {low['baseline']:.3f}")
    assert held["model"] <= 0.01 and held["baseline"] <= 0.01 and held["n"] >= 60
    assert len(faults) == 15
    for name, f in faults.items():
        assert f["model"] >= 0.99 and f["alarm"], (name, f)


@pytest.mark.realdata
def test_the_healthy_file_with_a_wrong_fs_gives_one_drift_warning_and_one_drift_event(
    vib: dict, data_dir: Path, tmp_path: Path
) -> None:
    """97.mat is 48 kHz; declared 12000 it reads every frequency 4x too low."""
    mat = data_dir / "vibration" / "cwru" / "Normal" / "Normal_0.mat"
    runs = {}
    for fs in ("12000", "48000"):
        jl = tmp_path / f"ev{fs}.jsonl"
        r = subprocess.run([sys.executable, "-m", "edgewise.edge.cli", "run", "vibration", "--bundle",
                            str(vib["bundle"]), "--source", str(mat), "--channel", "DE", "--fs", fs,
                            "--jsonl", str(jl)], capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        events = [json.loads(line) for line in jl.read_text().splitlines()]
        runs[fs] = ([e for e in events if e["kind"] == "drift"],
                    [line for line in r.stderr.splitlines() if "WARNING edgewise.drift" in line])
    drift, warnings = runs["12000"]
    assert len(drift) == 1 and len(warnings) == 1 and "sampling rate" in warnings[0]
    found = {f["name"]: f for f in drift[0]["findings"]}
    assert found["sampling_rate"]["recent"] == pytest.approx(4.0, rel=0.1)
    assert runs["48000"] == ([], [])  # the right rate (decimated to 12 kHz): nothing
