"""The bundle loader trusts nothing: tampered, truncated, missing files and bad JSON are refused."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import pytest

from edgewise.edge.bundle import BundleError, BundleWriter, Variant, load_bundle, pack_zip


def _tiny_bundle(root: Path) -> Path:
    w = BundleWriter(root, name="t", task="classification", app="generic")
    w.add_bytes("model_float32.tflite", b"\x00" * 64)
    w.add_bytes("report/parity.md", b"| x |\n")
    w.meta["input"] = {"shape": [None, 4], "dtype": "float32", "normalization": {"scale": 1.0, "offset": 0.0}}
    w.meta["output"] = {"shape": [None, 2], "dtype": "float32"}
    w.add_variant(Variant("tflite_float32", "model_float32.tflite", "litert", "float32"))
    return w.finish()


@pytest.fixture()
def bundle(tmp_path: Path) -> Path:
    return _tiny_bundle(tmp_path / "b")


def test_valid_bundle_loads_with_every_file_verified(bundle: Path) -> None:
    b = load_bundle(bundle)
    assert b.variant().name == "tflite_float32"
    assert set(b.meta["files"]) == {"model_float32.tflite", "report/parity.md"}


def test_tampered_model_is_refused_naming_the_file(bundle: Path) -> None:
    data = bytearray((bundle / "model_float32.tflite").read_bytes())
    data[10] ^= 0xFF
    (bundle / "model_float32.tflite").write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"model_float32\.tflite: sha256 mismatch"):
        load_bundle(bundle)


def test_truncated_model_is_refused_with_sizes(bundle: Path) -> None:
    p = bundle / "model_float32.tflite"
    p.write_bytes(p.read_bytes()[:20])
    with pytest.raises(BundleError, match=r"model_float32\.tflite: size 20 bytes, bundle.json says 64"):
        load_bundle(bundle)


def test_missing_file_is_refused(bundle: Path) -> None:
    (bundle / "report" / "parity.md").unlink()
    with pytest.raises(BundleError, match=r"report/parity\.md: listed in bundle.json but missing"):
        load_bundle(bundle)


def test_malformed_json_is_refused(bundle: Path) -> None:
    (bundle / "bundle.json").write_text('{"schema_version": 1,')
    with pytest.raises(BundleError, match=r"bundle\.json: malformed JSON"):
        load_bundle(bundle)


def test_missing_required_field_is_named(bundle: Path) -> None:
    meta = json.loads((bundle / "bundle.json").read_text())
    del meta["task"]
    (bundle / "bundle.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError, match=r"required field 'task' is missing"):
        load_bundle(bundle)


def test_variant_without_checksum_entry_is_refused(bundle: Path) -> None:
    meta = json.loads((bundle / "bundle.json").read_text())
    meta["variants"]["tflite_float32"]["file"] = "other.tflite"
    (bundle / "bundle.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError, match=r"file 'other\.tflite' has no checksum entry"):
        load_bundle(bundle)


def test_file_entry_escaping_the_bundle_is_refused(bundle: Path) -> None:
    meta = json.loads((bundle / "bundle.json").read_text())
    meta["files"]["../outside"] = {"sha256": "0", "size": 1}
    (bundle / "bundle.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError, match="points outside the bundle"):
        load_bundle(bundle)


def test_newer_schema_asks_for_an_upgrade(bundle: Path) -> None:
    meta = json.loads((bundle / "bundle.json").read_text())
    meta["schema_version"] = 99
    (bundle / "bundle.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError, match="upgrade edgewise"):
        load_bundle(bundle)


def test_zip_bundle_round_trips_and_tampering_inside_zip_is_caught(bundle: Path, tmp_path: Path) -> None:
    z = pack_zip(bundle, tmp_path / "b.zip")
    assert load_bundle(z).variant().file == "model_float32.tflite"
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(z) as src, zipfile.ZipFile(bad, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "model_float32.tflite":
                data = b"\x01" + data[1:]
            dst.writestr(info, data)
    with pytest.raises(BundleError, match="sha256 mismatch"):
        load_bundle(bad)


def test_zip_with_path_escape_is_refused(tmp_path: Path) -> None:
    z = tmp_path / "evil.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("../evil.txt", "x")
    with pytest.raises(BundleError, match="escapes the bundle"):
        load_bundle(z)


def test_not_a_bundle_directory_says_so(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="missing; is .* a bundle"):
        load_bundle(tmp_path)
    with pytest.raises(BundleError, match="no such bundle"):
        load_bundle(tmp_path / "nope")


def test_copied_bundle_stays_valid(bundle: Path, tmp_path: Path) -> None:
    dst = shutil.copytree(bundle, tmp_path / "copy")
    assert load_bundle(dst).name == "t"


# --- the typed spec ---------------------------------------------------------------------------


def _edit(bundle: Path, change) -> None:
    meta = json.loads((bundle / "bundle.json").read_text())
    change(meta)
    (bundle / "bundle.json").write_text(json.dumps(meta))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: m.update(labelz=["a"]), r"unknown key 'labelz' in bundle.json; known: schema_version"),
        (lambda m: m["input"].update(colour="rgb"), r"unknown key 'colour' in input; known: shape"),
        (lambda m: m["output"].update(kinds="logit"), r"unknown key 'kinds' in output"),
        (lambda m: m["input"]["normalization"].update(scael=2),
         r"unknown key 'scael' in input.normalization"),
        (lambda m: m["input"].pop("normalization"), r"input spec lacks 'normalization'"),
        (lambda m: m["input"].update(color="RGB"), r"input.color 'RGB' is not one of gray, rgb, bgr, none"),
        (lambda m: m["input"]["normalization"].update(scale=0), r"input.normalization.scale must not be 0"),
        (lambda m: m["variants"]["tflite_float32"].update(flaged=True), r"unknown key 'flaged' in variant"),
    ],
)
def test_unknown_or_missing_keys_are_refused_in_one_line_naming_the_key(bundle: Path, change, message):
    _edit(bundle, change)
    with pytest.raises(BundleError, match=message) as e:
        load_bundle(bundle, verify=False)
    assert "\n" not in str(e.value)


def test_writer_refuses_to_seal_a_bundle_the_device_would_refuse(tmp_path: Path) -> None:
    w = BundleWriter(tmp_path / "w", name="t", task="classification", app="generic")
    w.add_bytes("model_float32.tflite", b"\x00" * 8)
    w.meta["input"] = {"shape": [None, 4], "dtype": "float32"}  # no normalization
    w.meta["output"] = {"shape": [None, 2], "dtype": "float32"}
    w.add_variant(Variant("tflite_float32", "model_float32.tflite", "litert", "float32"))
    with pytest.raises(BundleError, match="lacks 'normalization'"):
        w.finish()
    assert not (tmp_path / "w" / "bundle.json").exists()


def test_spec_types_the_contract_and_thresholds_follow_the_variant(bundle: Path) -> None:
    def change(m):
        m["thresholds"] = {"decision": 0.5, "per_variant": {"tflite_int8": 0.7}, "far_target": 0.01}
        m["labels"] = ["no", "yes"]

    _edit(bundle, change)
    spec = load_bundle(bundle, verify=False).spec
    assert spec.input.shape == (None, 4) and spec.output.shape == (None, 2) and spec.labels == ("no", "yes")
    assert spec.thresholds.for_variant("tflite_int8") == 0.7
    assert spec.thresholds.for_variant("tflite_float32") == 0.5
    assert spec.thresholds.get("far_target") == 0.01
    assert spec.variants["tflite_float32"].backend == "litert"


def test_thresholds_without_a_decision_name_what_is_missing() -> None:
    from edgewise.edge.spec import Thresholds

    msg = r"b/bundle.json: thresholds has no 'decision' \(nor per_variant 'v'\)"
    with pytest.raises(BundleError, match=msg):
        Thresholds.from_json({"unknown": 0.8}, "b/bundle.json").for_variant("v")


@pytest.mark.parametrize(
    "norm",
    [{"scale": 1 / 255, "offset": 0}, {"scale": 1 / 127.5, "offset": -1.0},
     {"mean": [1.0, -2.0, 3.0], "std": [0.5, 2.0, 4.0]},
     {"scale": 2.0, "offset": 1.0, "mean": 3.0, "std": 0.5}],
)
def test_normalization_applies_in_float32_and_inverts_back_to_raw_values(norm: dict) -> None:
    import numpy as np

    from edgewise.edge.spec import Normalization

    n = Normalization.from_json(norm)
    raw = np.arange(12, dtype=np.uint8).reshape(4, 3) * 20
    x = n.apply(raw)
    assert x.dtype == np.float32
    want = raw.astype(np.float64) * norm.get("scale", 1.0) + norm.get("offset", 0.0)
    if "mean" in norm:
        want = (want - np.asarray(norm["mean"])) / np.asarray(norm["std"])
    np.testing.assert_allclose(x, want, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(n.invert(x), raw, atol=1e-3)
    assert Normalization.from_json(n.to_json()) == n
