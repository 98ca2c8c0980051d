"""Train a tiny embedding network on real face sets, then enroll and recognize on the edge loop."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow  # one tiny training + int8 conversion, 1-2 minutes on 2 shared cores


@pytest.fixture(scope="module")
def tiny(data_dir, tmp_path_factory):
    """32x32, half width, 5 epochs on UMIST + GT (70 identities, about a minute); ORL stays unseen.

    Returns the bundle, its metrics and the fitted trainer (its held-out identities: 8 people of
    UMIST + GT that training never saw).
    """
    from edgewise.train.face import FaceTrainer

    out = tmp_path_factory.mktemp("face") / "face.bundle"
    trainer = FaceTrainer(epochs=5, holdout=8, sets=["UMIST", "GT"], size=32, width=0.5, margin=0.1, lr=5e-3,
                          variants=["tflite_int8"], threads=2, augmentation="basic", quiet=True).fit(data_dir)
    return out, trainer.export(out), trainer


def test_tiny_embedding_training_beats_init_on_unseen_people_and_chance_on_orl(tiny, data_dir):
    """Training teaches the network faces it never saw: on the 8 held-out people of the training
    collections it beats the same network untrained, and on ORL (another collection, never
    seen) it is far above chance.

    Not claimed: beating the untrained network on ORL. A randomly initialised network already
    reaches about 0.35 rank-1 there, and this 5-epoch, 32-px recipe lands between 0.28 and 0.46
    depending on the seed and on which CPU kernels (AVX2 or AVX-512) TensorFlow and numpy pick;
    the full recipe (docs/face.md) is what is measured on ORL.
    """
    from edgewise.train.face import build_embedding_net, open_set_rank1, to_input
    from edgewise.train.keras_utils import tf_setup

    _, m, trainer = tiny
    ho = trainer.heldout_
    keras = tf_setup(0, threads=2)
    untrained = build_embedding_net(keras, 32, 128, 0.5)
    base = open_set_rank1(untrained.predict(to_input(ho.x), verbose=0), ho.y, 5, 0)
    assert m["heldout_rank1"] > base + 0.05, f"held-out rank-1 {m['heldout_rank1']} vs untrained {base}"
    trained = m["orl_keras_rank1_5enrolled"]
    assert trained > 5 / 40, f"ORL rank-1 {trained} not above 5x chance"


def test_bundle_carries_threshold_report_and_int8(tiny):
    from edgewise.edge.bundle import load_bundle

    path, m, _ = tiny
    b = load_bundle(path)
    assert b.app == "face" and b.input["shape"] == [None, 32, 32, 1]
    assert -1.0 <= b.thresholds["unknown"] <= 1.0 and b.thresholds["far_target"] == 0.001
    assert set(b.meta["variants"]) == {"tflite_int8"}
    for f in ("report/curves.png", "report/similarity.png", "report/roc.png", "report/metrics.json"):
        assert b.file(f).stat().st_size > 0
    assert m["calibration"]["impostor_pairs"] > 0


def _write_probe_folder(data_dir: Path, folder: Path) -> None:
    import shutil

    folder.mkdir()
    for s, imgs in (("s1", range(6, 11)), ("s2", range(1, 4))):
        for i in imgs:
            shutil.copy(data_dir / f"faces/orl/{s}/{i}.pgm", folder / f"{s}_{i}.pgm")
    (folder / "s0_corrupt.jpg").write_bytes(b"\xff\xd8 this is not a jpeg")


def test_enroll_and_run_on_a_folder_without_tensorflow(tiny, data_dir, tmp_path):
    """The edge side (enroll + run) in a fresh interpreter: TensorFlow must never be imported."""
    bundle, _, _ = tiny
    yunet = data_dir / "models/face_detection/yunet_n_320_320.onnx"
    enroll_dir = tmp_path / "s1"
    enroll_dir.mkdir()
    import shutil

    for i in range(1, 6):
        shutil.copy(data_dir / f"faces/orl/s1/{i}.pgm", enroll_dir / f"{i}.pgm")
    probes = tmp_path / "probes"
    _write_probe_folder(data_dir, probes)
    gallery, events = tmp_path / "g.db", tmp_path / "events.jsonl"
    code = f"""
import json, sys
from edgewise.edge.apps.face.cli import enroll_main, run_main
common = ["--detector", "yunet", "--detector-model", {str(yunet)!r}]
rc1 = enroll_main(["--gallery", {str(gallery)!r}, "--bundle", {str(bundle)!r}, "--name", "s1",
                   "--images", {str(enroll_dir)!r}] + common)
rc2 = run_main(["--bundle", {str(bundle)!r}, "--gallery", {str(gallery)!r}, "--source", {str(probes)!r},
                "--jsonl", {str(events)!r}, "--threads", "1",
                "--preview", {str(tmp_path / "preview")!r}] + common)
rc3 = enroll_main(["--gallery", {str(gallery)!r}, "--list"])
print(json.dumps({{"rc": [rc1, rc2, rc3], "tf": [m for m in sys.modules if m.split(".")[0] in
                  ("tensorflow", "keras", "tf_keras")]}}))
"""
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert p.returncode == 0, p.stderr[-2000:]
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert out["rc"] == [0, 0, 0] and out["tf"] == []
    assert "s1\t5 embeddings" in p.stdout
    corrupt = [line for line in p.stderr.splitlines() if "s0_corrupt.jpg" in line]
    assert corrupt and "corrupt" in corrupt[0].split("s0_corrupt.jpg", 1)[1]  # logged, and the loop went on
    ev = [json.loads(line) for line in events.read_text().splitlines()]
    assert len(ev) == 8, "every readable image gives one event"
    assert len(list((tmp_path / "preview").glob("frame_*.jpg"))) == 8
    for e in ev:
        assert e["kind"] in ("person", "unknown")
        assert set(e["latency_ms"]) >= {"detect", "align", "embed", "match", "end_to_end"}
        assert len(e["box"]) == 4 and -1.0 <= e["similarity"] <= 1.0
    s1 = [e for e in ev if Path(e["path"]).name.startswith("s1_")]
    s2 = [e for e in ev if Path(e["path"]).name.startswith("s2_")]
    # the tiny model need not be perfect, but the enrolled person must score above strangers
    assert np.mean([e["similarity"] for e in s1]) > np.mean([e["similarity"] for e in s2])
    assert time.monotonic() - t0 < 300


def test_bad_frame_is_logged_and_the_runner_continues(tiny, data_dir, tmp_path, caplog):
    import cv2

    from edgewise.edge.apps.face.app import FaceApp
    from edgewise.edge.apps.face.detect import YuNetDetector
    from edgewise.edge.apps.face.gallery import Gallery
    from edgewise.edge.bundle import load_bundle
    from edgewise.edge.pipeline import Frame, Runner

    class ListSource:
        def __init__(self, frames):
            self.frames = frames

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            pass

        def __iter__(self):
            for i, f in enumerate(self.frames):
                yield Frame(f, time.monotonic(), i, {"source": "list"})

    good = cv2.imread(str(data_dir / "faces/orl/s3/1.pgm"), cv2.IMREAD_GRAYSCALE)
    bundle, _, _ = tiny
    with Gallery(tmp_path / "g.db") as g:
        det = YuNetDetector(data_dir / "models/face_detection/yunet_n_320_320.onnx")
        app = FaceApp(load_bundle(bundle), g, det)

    class Sink:
        events: list = []

        def write(self, e):
            self.events.append(e.to_dict())  # the wire form every sink writes

        def close(self):
            pass

    sink = Sink()
    stats = Runner(app, [sink]).run(ListSource([good, np.zeros((0, 0), np.uint8), good]))
    assert stats.frames == 3 and stats.errors == 1 and len(sink.events) == 2
    assert "empty image" in caplog.text
    assert all(e["kind"] == "unknown" for e in sink.events)  # empty gallery: everyone is unknown


def test_flip_embedding_is_mirror_invariant_and_thresholds_exist_per_mode(tiny, data_dir):
    """Mirror averaging gives one embedding for a face and its mirror image; the bundle holds a
    threshold for every TTA mode and FAR, stricter FAR never lower."""
    from edgewise.edge.apps.face.align import face_crops
    from edgewise.edge.apps.face.detect import YuNetDetector
    from edgewise.edge.apps.face.embed import TTA_MODES, FaceEmbedder
    from edgewise.edge.apps.face.match import unknown_threshold
    from edgewise.edge.bundle import load_bundle
    from edgewise.train.data.faces import load_orl

    path, m, _ = tiny
    b = load_bundle(path)
    det = YuNetDetector(data_dir / "models/face_detection/yunet_n_320_320.onnx")
    crops, _ = face_crops(load_orl(data_dir / "faces/orl").images[:3], det, 32)
    emb = FaceEmbedder(b)
    e = emb.embed(crops, flip=True)
    e_mirror = emb.embed(np.ascontiguousarray(crops[:, :, ::-1]), flip=True)
    np.testing.assert_allclose(e, e_mirror, atol=1e-5)
    assert np.allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(e, emb.embed(crops), atol=1e-3)  # it does change the embedding
    assert b.config["tta"] == "flip" and b.thresholds["unknown"] == unknown_threshold(b)
    for mode in TTA_MODES:
        t = [unknown_threshold(b, mode, far) for far in (0.01, 0.001, 0.0001)]
        assert t == sorted(t), f"{mode}: thresholds {t} must rise as the FAR target falls"
    assert set(m["calibration_by_tta"]) == set(TTA_MODES)


def test_recalibration_uses_the_bundles_own_heldout_identities(tiny, data_dir, tmp_path):
    from edgewise.edge.apps.face.embed import TTA_MODES
    from edgewise.edge.apps.face.match import unknown_threshold
    from edgewise.edge.bundle import load_bundle
    from edgewise.train.face import recalibrate

    path, _, _ = tiny
    out = tmp_path / "recal.bundle"
    rec = recalibrate(path, data_dir, out, tta="enroll", variant="tflite_int8", quiet=True)
    b, src = load_bundle(out), load_bundle(path)  # re-sealed: checksums verify
    assert rec["heldout_identities"] == len(src.config["heldout_identities"]) == 8
    assert b.config["tta"] == "enroll" and b.thresholds["unknown"] == unknown_threshold(b, "enroll", 0.001)
    for mode in TTA_MODES:
        t = [unknown_threshold(b, mode, far) for far in (0.01, 0.001, 0.0001)]
        assert t == sorted(t) and all(-1.0 <= v <= 1.0 for v in t)
    with pytest.raises(ValueError, match="already exists"):
        recalibrate(path, data_dir, out, quiet=True)


def test_bundle_stores_every_rejection_rule_and_each_runs_on_the_edge(tiny, data_dir, tmp_path, capsys):
    """Cohort (AS-norm), fusion statistics and their thresholds are sealed in the bundle; enroll
    stores LBP vectors beside the embeddings and reports the closest pair; each rule scores the
    enrolled person above strangers in the live loop."""
    from edgewise.edge.apps.face.cli import enroll_main, run_main
    from edgewise.edge.apps.face.gallery import Gallery
    from edgewise.edge.apps.face.match import bundle_cohort, lbp_tag
    from edgewise.edge.bundle import load_bundle

    bundle, m, trainer = tiny
    b = load_bundle(bundle)
    th = b.thresholds
    assert bundle_cohort(b).shape == (len(trainer.train_.names), 128)
    assert set(th["as_norm"]["unknown_by_tta"]) == {"none", "flip", "enroll"}
    assert th["fusion"]["unknown_by_far"]["0.001"] > 0 and th["fusion"]["lbp_sd"] > 0
    assert m["cohort_identities"] == len(trainer.train_.names)
    yunet = data_dir / "models/face_detection/yunet_n_320_320.onnx"
    common = ["--detector", "yunet", "--detector-model", str(yunet)]
    import shutil

    gallery = tmp_path / "g.db"
    for person, imgs in (("s1", range(1, 6)), ("s5", range(1, 6))):
        d = tmp_path / person
        d.mkdir()
        for i in imgs:
            shutil.copy(data_dir / f"faces/orl/{person}/{i}.pgm", d / f"{i}.pgm")
        assert enroll_main(["--gallery", str(gallery), "--bundle", str(bundle), "--name", person,
                            "--images", str(d), *common]) == 0
    assert "closest pair: s1 / s5, cosine" in capsys.readouterr().out
    with Gallery(gallery) as g:
        assert len(g.embeddings("s1", model=lbp_tag(b))) == 5
        assert [r["embeddings"] for r in g.people()] == [5, 5]
    probes = tmp_path / "probes"
    _write_probe_folder(data_dir, probes)
    for rule in ("cosine", "as-norm", "fused"):
        events = tmp_path / f"{rule}.jsonl"
        assert run_main(["--bundle", str(bundle), "--gallery", str(gallery), "--source", str(probes),
                         "--jsonl", str(events), "--threads", "1", "--score", rule, "-q", *common]) == 0
        ev = [json.loads(line) for line in events.read_text().splitlines()]
        s1 = [e["faces"][0]["score"] for e in ev if Path(e["path"]).name.startswith("s1_")]
        s2 = [e["faces"][0]["score"] for e in ev if Path(e["path"]).name.startswith("s2_")]
        assert s1 and s2 and np.isfinite(s1 + s2).all(), rule
        # AS-norm ranks these few probes of a 2-epoch model either way from run to run (seen in
        # CI); it is measured weak and is not a default, so only its running is checked here
        if rule != "as-norm":
            assert np.mean(s1) > np.mean(s2), rule
