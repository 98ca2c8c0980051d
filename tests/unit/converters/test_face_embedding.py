"""``edgewise convert --task face-embedding``: a pretrained embedder becomes a face bundle the edge runs.

The fast tests check the input contract (read from the model's tensor, stated by flags or YAML,
mismatches refused in one line) and the edge's colour crops and landmark templates. The
end-to-end tests build a tiny embedder in Keras (random weights: a third-party network stands in
for one that was trained elsewhere), export it to ONNX (NCHW, as PyTorch exports) and TFLite,
convert it with calibration people, then enroll and recognise with the edge code: on synthetic
faces always, on ORL photos through the commands when the datasets are present.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from edgewise.converters.face.spec import FaceInputRequest, read_yaml, resolve
from edgewise.edge.apps.face.align import align_face, box_transform, canonical_points, check_template
from edgewise.edge.apps.face.embed import face_input
from edgewise.edge.spec import Normalization

NORM = {"scale": 1 / 127.5, "offset": -1.0}


# --- the input contract -------------------------------------------------------------------------


def test_input_tensor_gives_size_layout_and_grey_colour() -> None:
    f = resolve(FaceInputRequest(normalization=NORM), (None, 112, 112, 1))
    got = (f.size, f.channels, f.color, f.source_layout, f.template_name)
    assert got == (112, 1, "gray", "NHWC", "arcface")
    assert np.allclose(f.template, canonical_points(112))
    g = resolve(FaceInputRequest(normalization=NORM, color="rgb"), (1, 3, 96, 96))
    assert (g.size, g.channels, g.color, g.source_layout) == (96, 3, "rgb", "NCHW")
    assert g.bundle_input()["layout"] == "NHWC"  # the bundle always takes NHWC crops


@pytest.mark.parametrize(("req", "shape", "message"), [
    (FaceInputRequest(normalization=NORM, size=96), (None, 112, 112, 1), "--size 96: the model's input"),
    (FaceInputRequest(normalization=NORM, layout="NCHW"), (None, 112, 112, 3), "is NHWC"),
    (FaceInputRequest(normalization=NORM, color="rgb"), (None, 64, 64, 1), "has one channel"),
    (FaceInputRequest(normalization=NORM), (None, 112, 112, 3), "give --color rgb or bgr"),
    (FaceInputRequest(color="rgb"), (None, 112, 112, 3), "normalisation the network was trained with"),
    (FaceInputRequest(normalization=NORM, color="rgb", mean=(1.0, 2.0), std=(1.0, 1.0)), (None, 64, 64, 3),
     "2 values for a 3-channel input"),
    (FaceInputRequest(normalization=NORM), (None, 112, 96, 1), "only square inputs"),
    (FaceInputRequest(normalization=NORM), (None, 112, 112, 4), "cannot tell the layout"),
    (FaceInputRequest(normalization=NORM, layout="NHWC"), (None, 112, 112, 4), "expected 1 or 3"),
    (FaceInputRequest(normalization=NORM), (None, 128), "not a 4-D image batch"),
    (FaceInputRequest(normalization=NORM), (None, None, None, 1), "give --size"),
])
def test_contract_mismatches_are_refused_in_one_line(req: FaceInputRequest, shape: tuple, message: str
                                                     ) -> None:
    with pytest.raises(ValueError, match=message) as e:
        resolve(req, shape)
    assert "\n" not in str(e.value)


def test_yaml_spec_is_read_and_flags_override_it(tmp_path: Path) -> None:
    p = tmp_path / "face.yaml"
    p.write_text("size: 64\ncolor: bgr\nnormalization: 0-1\nmean: [0.5, 0.4, 0.3]\nstd: 0.25\n"
                 "template: [[20, 25], [44, 25], [32, 36], [22, 48], [42, 48]]\n")
    y = read_yaml(p)
    f = resolve(FaceInputRequest(color="rgb").over(y), (None, 64, 64, 3))
    assert f.color == "rgb"  # the flag wins
    assert f.normalization == {"scale": 1 / 255, "offset": 0.0, "mean": [0.5, 0.4, 0.3], "std": 0.25}
    assert f.template_name == "custom" and f.template[2] == (32.0, 36.0)
    p.write_text("size: 64\ncolour: rgb\n")
    with pytest.raises(ValueError, match=r"unknown keys \['colour'\]"):
        read_yaml(p)


def test_template_must_be_five_points_inside_the_crop_eyes_above_mouth() -> None:
    good = canonical_points(64)
    assert np.allclose(check_template(good, 64), good)
    with pytest.raises(ValueError, match="inside the 64x64 crop"):
        check_template(good * 2, 64)
    with pytest.raises(ValueError, match="eyes above the mouth"):
        check_template(good[[3, 4, 2, 0, 1]], 64)  # upside down
    with pytest.raises(ValueError, match="10 numbers"):
        check_template([1, 2, 3], 64)


# --- the edge's side of the contract -------------------------------------------------------------


def test_colour_crops_reach_the_network_in_its_own_order_and_grey_fills_every_channel() -> None:
    bgr = np.zeros((1, 4, 4, 3), np.uint8)
    bgr[..., 0] = 10  # blue
    bgr[..., 2] = 200  # red
    norm = Normalization.from_json({"scale": 1.0, "offset": 0.0, "mean": [1.0, 2.0, 3.0],
                                    "std": [1.0, 1.0, 1.0]})
    rgb_in = face_input(bgr, 4, 3, "rgb", norm)
    assert rgb_in[0, 0, 0].tolist() == [199.0, -2.0, 7.0]  # red first, then per-channel mean
    assert face_input(bgr, 4, 3, "bgr", norm)[0, 0, 0].tolist() == [9.0, -2.0, 197.0]
    grey = np.full((2, 4, 4), 50, np.uint8)
    assert face_input(grey, 4, 3, "rgb", norm)[0, 0, 0].tolist() == [49.0, 48.0, 47.0]
    assert face_input(grey, 4, 1, "gray", Normalization.from_json(NORM)).shape == (2, 4, 4, 1)
    with pytest.raises(ValueError, match=r"face crops must be \(4, 4\) grey"):
        face_input(bgr, 4, 1, "gray", norm)


def test_arcface_template_given_explicitly_aligns_exactly_as_the_default() -> None:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (120, 100), dtype=np.uint8)
    lms = canonical_points(112) * 0.7 + [10, 12]
    a = align_face(img, lms, 64)
    b = align_face(img, lms, 64, canonical_points(64))
    assert np.array_equal(a, b)
    box = (20.0, 30.0, 50.0, 60.0)
    assert np.allclose(box_transform(box, 64, "haar"), box_transform(box, 64, "haar", canonical_points(64)),
                       atol=1e-4)


def test_custom_template_puts_the_landmarks_where_it_says() -> None:
    """A bright dot at each detected landmark lands on the template's points in the crop."""
    import cv2

    size = 48
    tpl = np.array([[14, 18], [34, 18], [24, 27], [16, 36], [32, 36]], np.float32)
    lms = np.array([[40, 50], [80, 52], [60, 75], [45, 95], [76, 96]], np.float32)
    for k, (x, y) in enumerate(lms):
        img = np.zeros((140, 120), np.uint8)
        cv2.circle(img, (int(x), int(y)), 2, 255, -1)
        crop = align_face(img, lms, size, tpl)
        peak = np.unravel_index(np.argmax(crop), crop.shape)
        assert abs(peak[1] - tpl[k, 0]) <= 2 and abs(peak[0] - tpl[k, 1]) <= 2


def test_face_embedding_task_errors_are_one_line_with_exit_2(tmp_path: Path, capsys) -> None:
    from edgewise.edge.cli import main

    (tmp_path / "m.onnx").write_bytes(b"not onnx")
    (tmp_path / "calib").mkdir()
    rc = main(["convert", "--task", "face-embedding", str(tmp_path / "m.onnx"), "--out", str(tmp_path / "b"),
               "--calib", str(tmp_path / "calib"), "--color", "rgb"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("edgewise convert: error: ") and "\n" not in err
    assert "not a loadable ONNX model" in err
    rc = main(["convert", "--task", "face-embedding", str(tmp_path / "m.pt"), "--out", str(tmp_path / "b"),
               "--calib", str(tmp_path / "calib")])
    assert rc == 2 and "no such file" in capsys.readouterr().err


# --- end to end: a tiny embedder made here, converted, enrolled and recognised -------------------

SIZE = 32


def _tiny_embedder(keras, channels_first: bool):
    """Random weights: conv + pooling + a random projection to 32-d; similar crops stay similar."""
    keras.utils.set_random_seed(0)
    shape = (3, SIZE, SIZE) if channels_first else (SIZE, SIZE, 3)
    x = keras.Input(shape)
    h = keras.layers.Permute((2, 3, 1))(x) if channels_first else x
    h = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(h)
    h = keras.layers.AveragePooling2D(2)(h)
    y = keras.layers.Dense(32, use_bias=False)(keras.layers.Flatten()(h))
    return keras.Model(x, y)


def _synthetic_people(root: Path, people: range, photos: int, seed: int = 0) -> dict[str, list[np.ndarray]]:
    """Synthetic aligned colour "faces": each person a smooth random pattern, each photo with its own
    noise, brightness and one-pixel shift. Written as root/person/k.png; returned as BGR arrays."""
    import cv2

    out = {}
    for p in people:
        rng = np.random.default_rng(seed * 1000 + p)
        base = cv2.resize(rng.uniform(40, 215, (6, 6, 3)).astype(np.float32), (SIZE, SIZE),
                          interpolation=cv2.INTER_CUBIC)
        imgs = []
        for k in range(photos):
            im = np.roll(base, rng.integers(-1, 2), axis=1) * rng.uniform(0.9, 1.1)
            im = im + rng.normal(0, 6, base.shape)
            imgs.append(np.clip(im, 0, 255).astype(np.uint8))
            if root is not None:
                (root / f"p{p}").mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(root / f"p{p}" / f"{k}.png"), imgs[-1])
        out[f"p{p}"] = imgs
    return out


class _FixedFace:
    """A detector that finds one face whose landmarks sit on the ArcFace layout of a SIZE crop,
    so the aligned crop is the synthetic image itself."""

    name = "fixed"

    def detect(self, img: np.ndarray):
        from edgewise.edge.apps.face.detect import Detection

        return [Detection(box=(0.0, 0.0, float(SIZE), float(SIZE)), score=1.0,
                          landmarks=canonical_points(SIZE).copy(), kind="fixed")]


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The tiny embedder as .keras, NCHW .onnx and .tflite, and 12 synthetic calibration people."""
    from edgewise.converters.onnx import to_onnx
    from edgewise.converters.tfenv import import_tensorflow
    from edgewise.converters.tflite import to_tflite

    import_tensorflow()
    import keras

    d = tmp_path_factory.mktemp("byo")
    nhwc = _tiny_embedder(keras, channels_first=False)
    nhwc.save(d / "tiny.keras")
    nchw = _tiny_embedder(keras, channels_first=True)
    nchw.save(d / "tiny_nchw.keras")
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():  # TF's SavedModel chatter
        warnings.filterwarnings("ignore", message="Statistics for quantized inputs")  # float stats, by design
        (d / "tiny.tflite").write_bytes(to_tflite(nhwc, "float32"))
        rep = np.random.default_rng(3).uniform(-1, 1, (64, SIZE, SIZE, 3)).astype(np.float32)
        (d / "tiny_int8.tflite").write_bytes(to_tflite(nhwc, "int8", rep))  # like a third-party int8 file
        (d / "tiny_nchw.onnx").write_bytes(to_onnx(nchw))
    probe = np.random.default_rng(1).uniform(-1, 1, (4, SIZE, SIZE, 3)).astype(np.float32)
    np.save(d / "probe_nhwc.npy", probe)
    np.save(d / "keras_nchw_out.npy", nchw.predict(probe.transpose(0, 3, 1, 2), verbose=0))
    _synthetic_people(d / "calib", range(12), 8)
    return {"dir": d}


def _convert(model: Path, out: Path, calib: Path, *extra: str) -> None:
    from edgewise.edge.cli import main

    rc = main(["-q", "convert", "--task", "face-embedding", str(model), "--out", str(out), "--calib",
               str(calib), "--aligned", "--color", "rgb", "--normalization=-1-1", "--threads", "1", *extra])
    assert rc == 0


def test_nchw_onnx_embedder_converts_to_a_face_bundle_that_enrolls_and_recognises(made) -> None:
    """ONNX (NCHW) -> bundle with float32 and int8 variants and every threshold; the edge app then
    names enrolled synthetic people from new photos and calls strangers unknown."""
    from edgewise.edge.apps.face import FaceApp, FaceEmbedder, Gallery
    from edgewise.edge.apps.face.enroll import enroll_person
    from edgewise.edge.bundle import load_bundle
    from edgewise.edge.pipeline import Frame

    d = made["dir"]
    out = d / "onnx.bundle"
    _convert(d / "tiny_nchw.onnx", out, d / "calib")
    b = load_bundle(out)
    meta = json.loads((out / "bundle.json").read_text())  # the wire contract
    assert meta["app"] == "face" and set(meta["variants"]) == {"onnx_float32", "onnx_int8"}
    assert meta["input"]["shape"] == [None, SIZE, SIZE, 3] and meta["input"]["color"] == "rgb"
    assert meta["input"]["layout"] == "NHWC" and meta["config"]["source"]["layout"] == "NCHW"
    table = meta["thresholds"]["unknown_by_tta"]
    assert set(table) == {"none", "flip", "enroll"} and all(set(t) == {"0.01", "0.001", "0.0001"}
                                                           for t in table.values())
    # the transpose in front of the graph: NHWC crops give what Keras gives on the NCHW tensor
    emb = FaceEmbedder(b, "onnx_float32", 1)
    got = emb.model.predict(np.load(d / "probe_nhwc.npy"))
    assert np.allclose(got, np.load(d / "keras_nchw_out.npy"), atol=1e-4)
    assert not any(r["flagged"] for r in json.loads((out / "report" / "parity.json").read_text()))

    people = _synthetic_people(None, range(100, 104), 8, seed=1)
    strangers = _synthetic_people(None, range(200, 210), 2, seed=2)
    g = Gallery(d / "people.db")
    det = _FixedFace()
    for name, imgs in people.items():
        enroll_person(g, name, [(f"{name}/{k}", im) for k, im in enumerate(imgs[:5])], emb, det, tta="flip")
    app = FaceApp(b, g, det, "onnx_int8", 1)
    said = {}
    for name, imgs in {**people, **strangers}.items():
        start = 5 if name in people else 0
        said[name] = [app.postprocess(f, app.infer(app.preprocess(f))).answer
                      for f in (Frame(data=im, t_capture=0.0, index=i) for i, im in enumerate(imgs[start:]))]
    named = sum(a == n for n in people for a in said[n])
    accepted = sum(a != "unknown" for n in strangers for a in said[n])
    assert named == 12, said  # 4 people x 3 new photos, int8 variant, bundle threshold
    assert accepted <= 2, said  # 20 stranger photos


def test_tflite_float_embedder_is_kept_as_is_and_says_int8_needs_the_source(made) -> None:
    from edgewise.edge.bundle import load_bundle

    d = made["dir"]
    out = d / "tflite.bundle"
    _convert(d / "tiny.tflite", out, d / "calib")
    load_bundle(out)
    meta = json.loads((out / "bundle.json").read_text())
    assert list(meta["variants"]) == ["tflite_float32"]
    assert "int8 needs the source model" in meta["metrics"]["variants_not_made"]
    assert (out / "model_float32.tflite").read_bytes() == (d / "tiny.tflite").read_bytes()


def test_int8_tflite_embedder_is_kept_with_its_input_quantization(made) -> None:
    from edgewise.edge.apps.face import FaceEmbedder
    from edgewise.edge.bundle import load_bundle

    d = made["dir"]
    out = d / "int8.bundle"
    _convert(d / "tiny_int8.tflite", out, d / "calib")
    meta = json.loads((out / "bundle.json").read_text())
    assert list(meta["variants"]) == ["tflite_int8"]
    assert meta["variants"]["tflite_int8"]["input_quantization"]["dtype"] == "int8"
    e = FaceEmbedder(load_bundle(out), None, 1).embed(np.full((2, SIZE, SIZE, 3), 128, np.uint8))
    assert e.shape == (2, 32) and np.allclose(np.linalg.norm(e, axis=1), 1, atol=1e-5)


def test_keras_embedder_gets_int8_variants_that_keep_pair_auroc(made) -> None:
    from edgewise.edge.bundle import load_bundle

    d = made["dir"]
    out = d / "keras.bundle"
    _convert(d / "tiny.keras", out, d / "calib", "--variants", "tflite_float32", "tflite_int8", "onnx_int8")
    load_bundle(out)
    assert set(json.loads((out / "bundle.json").read_text())["variants"]) == {"tflite_float32", "tflite_int8",
                                                                                "onnx_int8"}
    rows = {r["variant"]: r for r in json.loads((out / "report" / "parity.json").read_text())}
    for v in ("tflite_int8", "onnx_int8"):
        assert rows[v]["metric"] == "pair_auroc" and not rows[v]["flagged"], rows[v]
        assert rows[v]["metric_delta"] > -0.02


def test_nchw_keras_embedder_gets_a_permute_in_front_and_takes_nhwc_crops(made) -> None:
    from edgewise.edge.apps.face import FaceEmbedder
    from edgewise.edge.bundle import load_bundle

    d = made["dir"]
    out = d / "keras_nchw.bundle"
    _convert(d / "tiny_nchw.keras", out, d / "calib", "--variants", "tflite_float32")
    m = FaceEmbedder(load_bundle(out), "tflite_float32", 1).model
    assert np.allclose(m.predict(np.load(d / "probe_nhwc.npy")), np.load(d / "keras_nchw_out.npy"), atol=1e-4)


def test_asking_for_a_variant_the_format_cannot_give_is_one_line(made, capsys) -> None:
    from edgewise.edge.cli import main

    d = made["dir"]
    rc = main(["convert", "--task", "face-embedding", str(d / "tiny.tflite"), "--out", str(d / "x.bundle"),
               "--calib", str(d / "calib"), "--aligned", "--color", "rgb", "--normalization=-1-1",
               "--variants", "tflite_int8"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "gives tflite_float32, not tflite_int8" in err and "\n" not in err
    assert not (d / "x.bundle").exists()


# --- real faces: ORL photos through YuNet, enroll and run face as commands ------------------------


def test_orl_photos_calibrate_enroll_and_recognise_through_the_commands(made, data_dir, tmp_path) -> None:
    """Real photos, synthetic network: ORL s1-s20 calibrate the converted ONNX embedder (YuNet
    finds and aligns the faces), s21-s26 are enrolled from photos 1-5 with `edgewise enroll` and
    recognised from photos 6-10 with `edgewise run face`; s27-s40 are strangers. The network is
    random, so the claim is the pipeline's, not accuracy: far above chance (1 in 6) on the enrolled
    people, and the stored threshold rejecting most strangers."""
    import cv2

    orl = data_dir / "faces" / "orl"
    for k in range(1, 41):
        dest = tmp_path / ("calib" if k <= 20 else "people") / f"s{k}"
        dest.mkdir(parents=True)
        for i in range(1, 11):
            img = cv2.imread(str(orl / f"s{k}" / f"{i}.pgm"), cv2.IMREAD_GRAYSCALE)
            cv2.imwrite(str(dest / f"{i}.png"), img)
    env = {**os.environ, "EDGEWISE_DATA": str(data_dir), "TF_CPP_MIN_LOG_LEVEL": "3"}

    def run(*args: str) -> subprocess.CompletedProcess:
        r = subprocess.run([sys.executable, "-m", "edgewise.edge.cli", "-q", *args], env=env,
                           capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr
        return r

    bundle = tmp_path / "orl.bundle"
    run("convert", "--task", "face-embedding", str(made["dir"] / "tiny_nchw.onnx"), "--out", str(bundle),
        "--calib", str(tmp_path / "calib"), "--color", "rgb", "--normalization=-1-1", "--threads", "1")
    probes = tmp_path / "probes"
    probes.mkdir()
    for k in range(21, 27):
        photos = tmp_path / "enroll" / f"s{k}"
        photos.mkdir(parents=True)
        for i in range(1, 11):
            (photos if i <= 5 else probes).joinpath(f"s{k}_{i}.png").write_bytes(
                (tmp_path / "people" / f"s{k}" / f"{i}.png").read_bytes())
        run("enroll", "--gallery", str(tmp_path / "g.db"), "--bundle", str(bundle), "--name", f"s{k}",
            "--images", str(photos))
    for k in range(27, 41):
        probes.joinpath(f"x{k}_1.png").write_bytes((tmp_path / "people" / f"s{k}" / "1.png").read_bytes())
    run("run", "face", "--bundle", str(bundle), "--gallery", str(tmp_path / "g.db"), "--source", str(probes),
        "--jsonl", str(tmp_path / "ev.jsonl"), "--threads", "1")
    events = [json.loads(line) for line in (tmp_path / "ev.jsonl").read_text().splitlines()]
    names = [Path(e["path"]).name for e in events]
    own = [(n.split("_")[0], e["person"]) for n, e in zip(names, events, strict=True) if n[0] == "s"]
    strangers = [e["person"] for n, e in zip(names, events, strict=True) if n[0] == "x"]
    assert len(own) == 30 and len(strangers) == 14
    named = sum(who == said for who, said in own)
    print(f"ORL via commands: {named}/30 enrolled photos named, "
          f"{sum(s != 'unknown' for s in strangers)}/14 strangers accepted")
    assert named >= 15, own  # chance: 5 of 30
    assert sum(s != "unknown" for s in strangers) <= 7, strangers
