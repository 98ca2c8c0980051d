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
    w.meta["input"] = {"shape": [None, 4], "dtype": "float32"}
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
