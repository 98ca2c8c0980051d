"""Vibration end to end on real CWRU data: train small -> bundle -> edge loop without TensorFlow."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

FAULTS = ["IR007_0", "B007_0", "OR007@6_0", "OR021@6_0"]


@pytest.fixture(scope="module")
def vib(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A small autoencoder on real CWRU windows (4 fault files, 40 epochs, two TFLite variants)."""
    from edgewise.train.data.cwru import BEARING_6205, load_cwru
    from edgewise.train.vibration import VibrationConfig, train_vibration

    recs = load_cwru(data_dir, faults=FAULTS)
    out = tmp_path_factory.mktemp("vib") / "vib.bundle"
    cfg = VibrationConfig(epochs=40)
    m = train_vibration(
        recs,
        out,
        cfg,
        dataset={"name": "CWRU test subset", "channel": "DE", "normal_fs": 48000.0, "fault_fs": 12000.0,
                 "bearing": BEARING_6205},
        variants=["tflite_float32", "tflite_int8"],
        quiet=True,
    )
    return {"bundle": out, "metrics": m, "recs": recs, "cfg": cfg}


@pytest.mark.realdata
def test_small_training_on_real_cwru_detects_every_fault_file(vib: dict):
    res = vib["metrics"]["results"]
    for scorer in ("keras", "tflite_float32", "tflite_int8", "baseline"):
        assert set(res[scorer]["per_file"]) == set(FAULTS)
        assert res[scorer]["auroc_min"] > 0.9, scorer  # chance is 0.5
    assert abs(res["tflite_int8"]["auroc_overall"] - res["tflite_float32"]["auroc_overall"]) < 0.02


@pytest.mark.realdata
def test_bundle_carries_thresholds_normalization_and_report(vib: dict):
    from edgewise.edge.bundle import load_bundle

    b = load_bundle(vib["bundle"])
    assert set(b.thresholds["per_variant"]) == {"tflite_float32", "tflite_int8"}
    assert b.thresholds["baseline"] > 0 and b.config["fs"] == 12000 and b.config["window"] == 2048
    assert len(b.input["normalization"]["mean"]) == b.input["shape"][1]
    for f in (
        "report/vibration.md",
        "report/metrics.json",
        "report/roc.png",
        "report/score_time_tflite_int8.png",
        "report/histogram_baseline.png",
        "report/learning_curves.png",
    ):
        assert b.file(f).is_file(), f
    m = json.loads(b.file("report/metrics.json").read_text())
    assert m["results"]["tflite_int8"]["per_file"]["IR007_0"]["auroc"] == pytest.approx(
        vib["metrics"]["results"]["tflite_int8"]["per_file"]["IR007_0"]["auroc"]
    )
    assert "AUROC" in b.file("report/vibration.md").read_text()


@pytest.mark.realdata
def test_edge_app_features_equal_the_training_features(vib: dict):
    """The device's preprocess gives the very inputs the model was trained and evaluated on."""
    from edgewise.edge.apps.vibration import FeatureExtractor, VibrationApp, frame_signal, robust_z
    from edgewise.edge.bundle import load_bundle
    from edgewise.edge.pipeline import Frame
    from edgewise.train.vibration import prepare

    b = load_bundle(vib["bundle"])
    d = prepare(vib["recs"], vib["cfg"])
    app = VibrationApp(b, "tflite_int8", threads=1)
    fault = vib["recs"][1]
    w = frame_signal(fault.signal, 2048, vib["cfg"].hop_fault)[3]
    z_edge, _ = app.preprocess(Frame(w, 0.0, 0, {"fs": 12000.0}))
    norm = b.input["normalization"]
    z_train = robust_z(
        d["faults"][fault.name]["feats"][3:4], np.float32(norm["mean"]), np.float32(norm["std"]),
        b.config["features"]["z_cap"],
    )
    # same code; batching (gemm vs gemv, FFT of 512 rows vs 1) differs only at float32 rounding
    np.testing.assert_allclose(z_edge, z_train, rtol=0, atol=1e-4)
    assert isinstance(d["fx"], FeatureExtractor)


@pytest.mark.realdata
def test_edge_run_on_replayed_recording_writes_events_without_tensorflow(vib: dict, tmp_path: Path):
    """`edgewise run vibration` in a fresh process: healthy then faulty signal, NaNs in between;
    JSON lines + SQLite events, an alarm is raised, bad windows skipped, TensorFlow never imported."""
    recs = vib["recs"]
    healthy = recs[0].signal[-2048 * 6 :]
    bad = np.full(2048, np.nan)
    sig = np.r_[healthy, bad, recs[1].signal[: 2048 * 8]]
    src = tmp_path / "replay.npy"
    np.save(src, sig)
    jl, db = tmp_path / "ev.jsonl", tmp_path / "ev.db"
    code = (
        "import sys\n"
        "from edgewise.edge.apps.vibration import run_main\n"
        f"rc = run_main(['--bundle', {str(vib['bundle'])!r}, '--source', {str(src)!r}, '--fs', '12000', "
        f"'--jsonl', {str(jl)!r}, '--sqlite', {str(db)!r}, '--variant', 'tflite_int8'])\n"
        "assert 'tensorflow' not in sys.modules, 'TensorFlow was imported by the edge loop'\n"
        "print('RC', rc)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "RC 0" in r.stdout
    assert "NaN/infinite samples" in r.stderr and "errors=1" in r.stderr
    events = [json.loads(line) for line in jl.read_text().splitlines()]
    assert len(events) == 6 + 8
    # the healthy test part holds one known transient (t = 4.2 s): at most one window over the
    # threshold there, and never an alarm (3 of 5 debounce)
    assert sum(e["anomalous"] for e in events[:6]) <= 1
    assert not any(e["alarm"] for e in events[:6])
    assert sum(e["anomalous"] for e in events[6:]) >= 7
    assert [e["kind"] for e in events].count("alarm_raised") == 1
    # the alarm names a bearing part from the buffered signal; every window reports its level
    raised = next(e for e in events if e["kind"] == "alarm_raised")
    d = raised["diagnosis"]
    assert d["part"] in ("outer_race", "inner_race", "ball", "cage", "none") and 0 < d["confidence"] <= 1
    assert d["shaft_source"] == "estimated" and abs(d["shaft_hz"] - 29.95) < 3
    assert "diagnosis" not in events[0] and set(events[0]["level_db"]) == {"rms", "peak"}
    with sqlite3.connect(db) as con:
        kinds = [k for (k,) in con.execute("SELECT kind FROM events ORDER BY id")]
    assert len(kinds) == 14 and "alarm_raised" in kinds


@pytest.mark.realdata
def test_run_refuses_a_source_at_the_wrong_rate(vib: dict, tmp_path: Path):
    from edgewise.edge.apps.vibration import run_main

    np.save(tmp_path / "x.npy", np.zeros(20000))
    assert (
        run_main(["--bundle", str(vib["bundle"]), "--source", str(tmp_path / "x.npy"), "--fs", "10000"]) == 2
    )


@pytest.mark.realdata
def test_edge_cost_is_measured_per_window(vib: dict):
    from edgewise.edge.apps.vibration.cost import edge_cost
    from edgewise.edge.bundle import load_bundle

    c = edge_cost(load_bundle(vib["bundle"]), "tflite_int8", iterations=50, warmup=5)
    assert 0 < c["p50_ms"] <= c["p99_ms"] and c["realtime_factor_p50"] > 1


@pytest.fixture(scope="module")
def synth_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny autoencoder on SYNTHETIC signals: runs without the datasets (CI)."""
    from edgewise.train.data.synthetic_vibration import synthetic_dataset
    from edgewise.train.vibration import VibrationConfig, train_vibration

    out = tmp_path_factory.mktemp("vibsyn") / "vib.bundle"
    train_vibration(
        synthetic_dataset(seconds=4.0),
        out,
        VibrationConfig(epochs=15),
        dataset={"name": "SYNTHETIC"},
        variants=["tflite_int8"],
        quiet=True,
    )
    return out


def test_synthetic_bundle_says_synthetic_everywhere(synth_bundle: Path):
    from edgewise.edge.bundle import load_bundle

    b = load_bundle(synth_bundle)
    assert b.name.endswith("-synthetic") and b.config["dataset"]["synthetic"] is True
    assert "SYNTHETIC" in b.file("report/vibration.md").read_text().splitlines()[0]
    assert json.loads(b.file("report/metrics.json").read_text())["synthetic"] is True


def test_nan_window_is_logged_and_the_loop_keeps_going(synth_bundle: Path, caplog: pytest.LogCaptureFixture):
    from edgewise.edge.apps.vibration import VibrationApp
    from edgewise.edge.bundle import load_bundle
    from edgewise.edge.pipeline import Runner
    from edgewise.edge.sources.windows import RecordingSource
    from edgewise.train.data.synthetic_vibration import synthesize

    sig = synthesize("normal", seconds=1.0, seed=7).signal[: 2048 * 5].copy()
    sig[2048 + 100] = np.nan  # the second window is bad
    got: list[dict] = []

    class ListSink:
        def write(self, e: dict) -> None:
            got.append(e)

        def close(self) -> None:
            pass

    app = VibrationApp(load_bundle(synth_bundle), threads=1)
    stats = Runner(app, [ListSink()]).run(RecordingSource(sig, fs=12000, window=2048, name="nan-test"))
    assert stats.frames == 5 and stats.errors == 1 and len(got) == 4
    assert "frame 1 from nan-test skipped: window has 1 NaN/infinite samples of 2048" in caplog.text


def test_run_stats_window_bounds_timings_but_counts_every_window(synth_bundle: Path, tmp_path: Path):
    from edgewise.edge.apps.vibration import run_main
    from edgewise.train.data.synthetic_vibration import synthesize

    np.save(tmp_path / "x.npy", synthesize("normal", seconds=1.0, seed=3).signal[: 2048 * 5])
    stats = tmp_path / "stats.json"
    rc = run_main(["--bundle", str(synth_bundle), "--source", str(tmp_path / "x.npy"), "--fs", "12000",
                   "--jsonl", "", "--stats", str(stats), "--stats-window", "2", "-q"])
    s = json.loads(stats.read_text())
    assert rc == 0 and s["frames"] == 5
    assert s["end_to_end"]["n"] < 4  # trimmed to the window (amortized: at most 2 x 2 - 1 kept)


def test_event_answer_is_the_alarm_state_and_operator_settings_override_the_bundle(synth_bundle: Path):
    from edgewise.edge.apps.vibration import INDICATORS, VibrationApp
    from edgewise.edge.bundle import load_bundle
    from edgewise.edge.event import Event
    from edgewise.edge.pipeline import Frame
    from edgewise.train.data.synthetic_vibration import synthesize

    w = synthesize("normal", seconds=1.0, seed=5).signal[:2048]
    opts = VibrationApp.Options(alarm_n=1, alarm_m=1, changes_only=True)
    with VibrationApp(load_bundle(synth_bundle), threads=1, threshold=0.0, options=opts) as app:
        assert (app.alarm.n, app.alarm.m) == (1, 1)
        frame = Frame(w, 0.0, 0, {"fs": 12000.0, "source": "s", "t_signal": 0.0})
        ev = app.postprocess(frame, app.infer(app.preprocess(frame)))
        assert isinstance(ev, Event) and ev.kind == "alarm_raised" and ev.answer is True
        wire = ev.to_dict()
        assert wire["alarm"] is True and wire["anomalous"] is True and wire["score"] == ev.score > 0
        assert wire["source"] == "s" and tuple(wire["indicators"]) == INDICATORS
        assert app.postprocess(frame, app.infer(app.preprocess(frame))) is None  # no change: changes_only
    with VibrationApp(load_bundle(synth_bundle), threads=1) as app:  # the bundle's debounce and threshold
        b = load_bundle(synth_bundle).spec
        assert (app.alarm.n, app.alarm.m) == (b.config["alarm"]["n"], b.config["alarm"]["m"])
        assert app.threshold == b.thresholds.for_variant(app.variant)
