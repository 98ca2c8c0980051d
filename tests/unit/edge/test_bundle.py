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
    with pytest.raises(BundleError, match=r"bundle\.json: task: required field is missing"):
        load_bundle(bundle)


def test_variant_without_checksum_entry_is_refused(bundle: Path) -> None:
    meta = json.loads((bundle / "bundle.json").read_text())
    meta["variants"]["tflite_float32"]["file"] = "other.tflite"
    (bundle / "bundle.json").write_text(json.dumps(meta))
    msg = r"variants\.tflite_float32\.file: 'other\.tflite' has no checksum entry"
    with pytest.raises(BundleError, match=msg):
        load_bundle(bundle)


def test_file_entry_escaping_the_bundle_is_refused(bundle: Path) -> None:
    meta = json.loads((bundle / "bundle.json").read_text())
    meta["files"]["../outside"] = {"sha256": "0" * 64, "size": 1}
    (bundle / "bundle.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError, match=r"files\['\.\./outside'\]: path '\.\./outside' leaves the bundle"):
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
    with pytest.raises(BundleError, match=r"zip member '\.\./evil\.txt' leaves the bundle"):
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
        (lambda m: m.update(labelz=["a"]), r"bundle.json: labelz: unknown key; known: schema_version"),
        (lambda m: m["input"].update(colour="rgb"), r"input\.colour: unknown key; known: shape"),
        (lambda m: m["output"].update(kinds="logit"), r"output\.kinds: unknown key"),
        (lambda m: m["input"]["normalization"].update(scael=2), r"input\.normalization\.scael: unknown key"),
        (lambda m: m["input"].pop("normalization"), r"input\.normalization: required field is missing \(raw"),
        (lambda m: m["input"].update(color="RGB"), r"input.color 'RGB' is not one of gray, rgb, bgr, none"),
        (lambda m: m["input"]["normalization"].update(scale=0), r"normalization\.scale: must not be 0"),
        (lambda m: m["variants"]["tflite_float32"].update(flaged=True),
         r"variants\.tflite_float32\.flaged: unknown key"),
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
    with pytest.raises(BundleError, match=r"input\.normalization: required field is missing"):
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


# --- refusals: one line naming the field, never a traceback ---------------------------------------


def _one_line_error(bundle: Path, match: str, **kw) -> BundleError:
    with pytest.raises(BundleError, match=match) as e:
        load_bundle(bundle, **kw)
    assert "\n" not in str(e.value)
    return e.value


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: m["files"].update({"x.npy": "abc"}), r"files\['x\.npy'\]: must be an object, got 'abc'"),
        (lambda m: m.update(labels=5), r"labels: must be an array, got 5"),
        (lambda m: m["input"].update(shape="8x8"), r"input\.shape: must be an array, got '8x8'"),
        (lambda m: m["input"].update(shape=[None, 0]), r"input\.shape\[1\]: must be greater than or equal"),
        (lambda m: m["input"].update(shape=[None, -4]), r"input\.shape\[1\]: must be greater than or equal"),
        (lambda m: m["input"].update(shape=[None, True]), r"input\.shape\[1\]: must be an integer, got True"),
        (lambda m: m["input"].update(shape=[None, 1 << 20, 1 << 20]), r"input\.shape: \d+ values per sample"),
        (lambda m: m["input"].update(shape=[None, 1 << 30]), r"input\.shape\[1\]: must be less than"),
        (lambda m: m["output"].update(shape=[]), r"output\.shape: must have at least 1 item"),
        (lambda m: m.update(schema_version=-1), r"schema_version: must be greater .* got -1"),
        (lambda m: m.update(schema_version=0), r"schema_version: must be greater than or equal to 1"),
        (lambda m: m.update(schema_version=2), r"schema_version: 2 is newer than .* upgrade edgewise"),
        (lambda m: m.update(schema_version="1"), r"schema_version: must be an integer, got '1'"),
        (lambda m: m["files"].update({"/etc/passwd": {"sha256": "0" * 64, "size": 1}}),
         r"files\['/etc/passwd'\]: absolute path"),
        (lambda m: m["files"].update({"a\\..\\b": {"sha256": "0" * 64, "size": 1}}), r"backslash"),
        (lambda m: m["files"]["model_float32.tflite"].update(size=-1),
         r"files\['model_float32\.tflite'\]\.size: must be greater than or equal to 0"),
        (lambda m: m["files"]["model_float32.tflite"].update(sha256="abc"),
         r"files\['model_float32\.tflite'\]\.sha256: must match pattern"),
        (lambda m: m["variants"]["tflite_float32"].update(file="../b-evil/model.tflite"),
         r"variants\.tflite_float32\.file: path '\.\./b-evil/model\.tflite' leaves the bundle"),
        (lambda m: m["variants"]["tflite_float32"].update(backend="tensorrt"),
         r"variants\.tflite_float32\.backend 'tensorrt' is not one of litert, onnxruntime"),
        (lambda m: m["variants"]["tflite_float32"].update(input_quantization={"scale": 0.1}),
         r"variants\.tflite_float32\.input_quantization\.zero_point: required field is missing"),
        (lambda m: m["variants"]["tflite_float32"].update(
            input_quantization={"scale": 0.1, "zero_point": 200, "dtype": "int8"}),
         r"input_quantization\.zero_point: 200 is outside int8"),
        (lambda m: m.update(variants={}), r"variants: must have at least 1 item"),
        (lambda m: m["input"]["normalization"].update(scale=float("nan")),
         r"input\.normalization\.scale: must be a finite number"),
        (lambda m: m["input"]["normalization"].update(mean=[1.0, 2.0], std=[1.0]),
         r"input\.normalization\.std: has 1 values, mean has 2"),
        (lambda m: m["input"]["normalization"].update(mean=[1.0, "a"], std=1.0),
         r"input\.normalization\.mean\[1\]: must be a number, got 'a'"),
        (lambda m: m["thresholds"].update(decision="0.5"), r"thresholds\.decision: must be a number, got '0"),
        (lambda m: m.update(input=[]), r"input: must be an object, got an array"),
        (lambda m: m.update(labels=["a", "b", "c"], output={**m["output"], "kind": "probabilities"}),
         r"labels: 3 labels for 2 output probabilities"),
    ],
)
def test_a_wrong_value_is_refused_in_one_line_naming_its_field(bundle: Path, change, message: str) -> None:
    _edit(bundle, change)
    err = _one_line_error(bundle, message, verify=False)
    assert str(err).startswith(f"{bundle / 'bundle.json'}: ")


def test_a_path_into_a_sibling_folder_with_the_same_prefix_is_refused(tmp_path: Path) -> None:
    """``../b-evil/model.tflite`` starts with the bundle's own path as a string: the old prefix
    check let it through; the schema refuses any '..' and the loader resolves every path."""
    root = _tiny_bundle(tmp_path / "b")
    evil = tmp_path / "b-evil"
    evil.mkdir()
    (evil / "model.tflite").write_bytes(b"\x01" * 64)
    from edgewise.edge.bundle import sha256_file

    def change(m):
        m["files"]["../b-evil/model.tflite"] = {"sha256": sha256_file(evil / "model.tflite"), "size": 64}
        m["variants"]["tflite_float32"]["file"] = "../b-evil/model.tflite"

    _edit(root, change)
    _one_line_error(root, r"variants\.tflite_float32\.file: path '\.\./b-evil/model\.tflite' leaves")
    # and the loader's own check, below the schema, resolves the path (no string prefix)
    from edgewise.edge.bundle import verify_files

    meta = json.loads((root / "bundle.json").read_text())
    with pytest.raises(BundleError, match=r"files\['\.\./b-evil/model\.tflite'\] points outside the bundle"):
        verify_files(root, meta)


def test_a_symlink_out_of_the_bundle_is_refused_after_resolving(bundle: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.tflite"
    outside.write_bytes(b"\x00" * 64)  # same bytes: size and sha256 would match
    (bundle / "model_float32.tflite").unlink()
    (bundle / "model_float32.tflite").symlink_to(outside)
    _one_line_error(bundle, r"files\['model_float32\.tflite'\] points outside the bundle")
    b = load_bundle(bundle, verify=False)  # checksums skipped; the file is still refused when used
    with pytest.raises(BundleError, match="points outside the bundle"):
        b.file("model_float32.tflite")


def test_bundle_json_itself_may_not_be_a_symlink_out_of_the_bundle(bundle: Path, tmp_path: Path) -> None:
    real = tmp_path / "elsewhere.json"
    real.write_text((bundle / "bundle.json").read_text())
    (bundle / "bundle.json").unlink()
    (bundle / "bundle.json").symlink_to(real)
    _one_line_error(bundle, r"bundle\.json: points outside the bundle")


def test_a_file_larger_than_declared_is_refused_without_reading_past_it(bundle: Path) -> None:
    with open(bundle / "model_float32.tflite", "ab") as f:
        f.write(b"\x00" * 10)
    _one_line_error(bundle, r"model_float32\.tflite: size 74 bytes, bundle.json says 64 \(larger than")


def test_oversized_bundle_json_is_refused_before_it_is_read(bundle: Path) -> None:
    from edgewise.edge.spec import MAX_JSON_BYTES

    with open(bundle / "bundle.json", "r+b") as f:
        f.truncate(MAX_JSON_BYTES + 1)  # sparse: no disk used
    _one_line_error(bundle, r"bundle\.json: \d+ bytes is more than the 32 MB a bundle.json may have")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[" * 100_000 + "]" * 100_000, r"malformed JSON \(nested too deeply\)|nested deeper than"),
        ('{"config": ' + "[" * 200 + "]" * 200 + "}", r"bundle\.json: config(\[0\])+\.\.\.: nested deeper"),
        ('{"a": 1, "a": 2}', r"bundle\.json: duplicate key 'a'"),
        ('{"n": ' + "9" * 5000 + "}", r"bundle\.json: malformed JSON \(Exceeds the limit"),
        ("[1, 2]", r"bundle\.json: top level must be an object, got an array"),
        ('"text"', r"bundle\.json: top level must be an object, got a string"),
    ],
)
def test_hostile_json_gives_one_line_not_a_traceback(bundle: Path, text: str, message: str) -> None:
    (bundle / "bundle.json").write_text(text)
    _one_line_error(bundle, message)


def test_bundle_json_that_is_not_utf8_is_one_line(bundle: Path) -> None:
    (bundle / "bundle.json").write_bytes(b'{"name": "\xff\xfe"}')
    _one_line_error(bundle, r"bundle\.json: malformed JSON \(not UTF-8")


def test_a_signature_beside_bundle_json_is_neither_listed_nor_refused(tmp_path: Path) -> None:
    root = tmp_path / "b"
    root.mkdir()
    (root / "bundle.sig").write_text("{}")  # the signature covers bundle.json: it cannot list itself
    (root / "signature.json").write_text("{}")
    _tiny_bundle(root)
    meta = json.loads((root / "bundle.json").read_text())
    assert "bundle.sig" not in meta["files"] and "signature.json" not in meta["files"]
    (root / "bundle.sig").unlink()  # (this one is verified by edge.signing when present)
    assert load_bundle(root, verify=True, trusted_keys=()).name == "t"


def test_shipped_json_schema_is_the_one_the_models_generate() -> None:
    from edgewise.edge.spec import SCHEMA_FILE, json_schema

    shipped = json.loads(SCHEMA_FILE.read_text())
    assert shipped == json_schema(), (
        "edge/bundle.schema.json is stale: run `.venv/bin/python -c 'from edgewise.edge.spec import "
        "write_json_schema; write_json_schema()'`"
    )


def test_json_schema_and_the_loader_agree_on_a_real_and_a_forged_document(bundle: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    from edgewise.edge.spec import SCHEMA_FILE

    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA_FILE.read_text()))
    meta = json.loads((bundle / "bundle.json").read_text())
    assert list(validator.iter_errors(meta)) == []
    for forged in ({**meta, "files": {**meta["files"], "../x": {"sha256": "0" * 64, "size": 1}}},
                   {**meta, "schema_version": 2}, {**meta, "labels": 5}, {**meta, "extra": 1}):
        assert list(validator.iter_errors(forged)), forged
        with pytest.raises(BundleError):
            from edgewise.edge.spec import BundleSpec

            BundleSpec.from_json(forged)


# --- zip bundles ---------------------------------------------------------------------------------


@pytest.fixture()
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Zip bundles unpack under this folder (tempfile's directory), so leftovers can be counted."""
    import tempfile

    d = tmp_path / "tmpdir"
    d.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(d))
    return d


def _zip(tmp_path: Path, members: dict[str, bytes], name: str = "b.zip") -> Path:
    z = tmp_path / name
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as zf:
        for n, data in members.items():
            zf.writestr(n, data)
    return z


def test_zip_unpacks_into_a_private_folder_that_close_removes(bundle: Path, tmp_path: Path, private_tmp):
    import stat

    b = load_bundle(pack_zip(bundle, tmp_path / "b.zip"))
    assert b.path.is_relative_to(private_tmp) and b.source == tmp_path / "b.zip"
    assert stat.S_IMODE(b.path.stat().st_mode) == 0o700
    b.close()
    assert not b.path.exists() and list(private_tmp.iterdir()) == []


def test_zip_of_the_bundle_folder_itself_loads_and_errors_name_the_zip(bundle: Path, tmp_path: Path,
                                                                      private_tmp) -> None:
    z = tmp_path / "nested.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for p in sorted(q for q in bundle.rglob("*") if q.is_file()):
            data = p.read_bytes() if p.name != "model_float32.tflite" else b"\x01" * 64
            zf.writestr(f"b/{p.relative_to(bundle).as_posix()}", data)
    with pytest.raises(BundleError, match=rf"^{z}:b/model_float32\.tflite: sha256 mismatch"):
        load_bundle(z)
    assert list(private_tmp.iterdir()) == []  # a refused zip leaves nothing behind


def test_zip_bomb_is_refused_from_its_directory_before_writing(tmp_path: Path, private_tmp) -> None:
    z = _zip(tmp_path, {"bundle.json": b"{}", "zeros.bin": b"\x00" * (8 << 20)})
    assert z.stat().st_size < 64 << 10  # 8 MiB of zeros in a few KB
    with pytest.raises(BundleError, match=r"unpacks to 8\.0 MiB, more than the limit of 1 MiB"):
        load_bundle(z, max_unpacked_mb=1)
    assert list(private_tmp.iterdir()) == []


def test_a_zip_that_inflates_a_hundredfold_is_refused_under_the_size_limit(tmp_path: Path,
                                                                           private_tmp) -> None:
    """The issue's bomb: a few hundred KB that unpack to 200 MB, well under the default size limit."""
    z = _zip(tmp_path, {"bundle.json": b"{}", "zeros.bin": b"\x00" * (200 << 20)})
    assert z.stat().st_size < 400 << 10
    with pytest.raises(BundleError, match=r"unpacks to 200\.0 MiB from 0\.\d+ MiB \(ratio \d+:1, .*zip bomb"):
        load_bundle(z)
    assert list(private_tmp.iterdir()) == []


def test_the_unpack_limit_comes_from_the_environment_and_bad_values_are_one_line(
        tmp_path: Path, private_tmp, monkeypatch: pytest.MonkeyPatch) -> None:
    z = _zip(tmp_path, {"bundle.json": b"{}", "zeros.bin": b"\x00" * (3 << 20)})
    monkeypatch.setenv("EDGEWISE_MAX_UNPACKED_MB", "2")
    with pytest.raises(BundleError, match=r"more than the limit of 2 MiB"):
        load_bundle(z)
    monkeypatch.setenv("EDGEWISE_MAX_UNPACKED_MB", "lots")
    with pytest.raises(BundleError, match=r"EDGEWISE_MAX_UNPACKED_MB='lots': .* positive number of MiB"):
        load_bundle(z)
    with pytest.raises(BundleError, match=r"--max-unpacked-mb=-1: .* positive number"):
        load_bundle(z, max_unpacked_mb=-1)


def test_info_takes_the_unpack_limit_as_a_flag(tmp_path: Path, private_tmp, capsys) -> None:
    from edgewise.edge.cli import main

    z = _zip(tmp_path, {"bundle.json": b"{}", "zeros.bin": b"\x00" * (3 << 20)})
    assert main(["info", str(z), "--max-unpacked-mb", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"edgewise info: error: {z}: unpacks to 3.0 MiB, more than the limit of 2 MiB "
                   f"(--max-unpacked-mb or EDGEWISE_MAX_UNPACKED_MB)")


def test_run_commands_take_the_unpack_limit_as_a_flag(tmp_path: Path, private_tmp, capsys) -> None:
    from edgewise.edge.cli import main

    z = _zip(tmp_path, {"bundle.json": b"{}", "zeros.bin": b"\x00" * (3 << 20)})
    argv = ["run", "classify", "--bundle", str(z), "--source", str(tmp_path), "--max-unpacked-mb", "2"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("edgewise run classify: error: ") and "more than the limit of 2 MiB" in err
    assert "\n" not in err and list(private_tmp.iterdir()) == []


def test_a_member_larger_than_its_directory_entry_is_stopped_while_unpacking(tmp_path: Path,
                                                                             private_tmp) -> None:
    """The directory says 10 bytes, the data inflates to 4 MiB: unpacking stops, nothing is left."""
    import struct

    z = _zip(tmp_path, {"big.bin": b"\x00" * (4 << 20)})
    raw = bytearray(z.read_bytes())
    for sig, off in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):  # local header, central directory
        i = raw.index(sig)
        raw[i + off:i + off + 4] = struct.pack("<I", 10)
    z.write_bytes(bytes(raw))
    with pytest.raises(BundleError, match=r"big\.bin' unpacks to more than its declared 10 bytes|damaged"):
        load_bundle(z, max_unpacked_mb=1)
    assert list(private_tmp.iterdir()) == []


@pytest.mark.parametrize(
    ("member", "message"),
    [
        ("../evil.txt", r"zip member '\.\./evil\.txt' leaves the bundle"),
        ("/etc/evil.txt", r"zip member '/etc/evil\.txt' is an absolute path"),
        ("a/../../evil.txt", r"leaves the bundle"),
        ("a\\..\\evil.txt", r"has a backslash"),
    ],
)
def test_zip_members_that_escape_are_refused(tmp_path: Path, private_tmp, member: str, message: str) -> None:
    z = _zip(tmp_path, {"bundle.json": b"{}", member: b"x"})
    with pytest.raises(BundleError, match=message):
        load_bundle(z)
    assert list(private_tmp.iterdir()) == []


def test_zip_symlink_encrypted_and_duplicate_members_are_refused(tmp_path: Path, private_tmp) -> None:
    import stat

    link = zipfile.ZipInfo("model.tflite")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    z = tmp_path / "link.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("bundle.json", "{}")
        zf.writestr(link, "/etc/passwd")
    with pytest.raises(BundleError, match=r"zip member 'model\.tflite' is a symlink"):
        load_bundle(z)
    z = _zip(tmp_path, {"bundle.json": b"{}", "secret.bin": b"x"}, "enc.zip")
    raw = bytearray(z.read_bytes())
    cdh = raw.index(b"PK\x01\x02", raw.index(b"PK\x01\x02") + 4)  # the second entry: secret.bin
    raw[cdh + 8] |= 0x1  # "encrypted" in the central directory (zipfile cannot write encrypted zips)
    z.write_bytes(bytes(raw))
    with pytest.raises(BundleError, match=r"zip member 'secret\.bin' is encrypted"):
        load_bundle(z)
    z = tmp_path / "dup.zip"
    with zipfile.ZipFile(z, "w") as zf, pytest.warns(UserWarning, match="Duplicate name"):
        zf.writestr("bundle.json", "{}")
        zf.writestr("bundle.json", "{}")
    with pytest.raises(BundleError, match=r"zip member 'bundle\.json' appears twice"):
        load_bundle(z)
    assert list(private_tmp.iterdir()) == []


def test_too_many_zip_members_are_refused(tmp_path: Path, private_tmp) -> None:
    from edgewise.edge.bundlezip import extract_zip

    z = _zip(tmp_path, {f"f{i}": b"" for i in range(5)})
    with pytest.raises(BundleError, match=r"5 members, more than the 4 a bundle may have"):
        extract_zip(z, 1 << 20, max_members=4)


def test_not_a_zip_is_one_line(tmp_path: Path, bundle: Path) -> None:
    (tmp_path / "b.zip").write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(BundleError, match=r"b\.zip: not a valid zip file"):
        load_bundle(tmp_path / "b.zip")
    with pytest.raises(BundleError, match=r"bundle\.json: give the bundle folder \(.*\), not its"):
        load_bundle(bundle / "bundle.json")


def test_folders_of_killed_processes_are_swept_and_live_ones_kept(bundle: Path, tmp_path: Path,
                                                                   private_tmp) -> None:
    import os
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()
    stale = private_tmp / f"edgewise-bundle-{dead}-abc"
    live = private_tmp / f"edgewise-bundle-{os.getppid()}-abc"
    other = private_tmp / "edgewise-bundle-notapid"
    for d in (stale, live, other):
        d.mkdir()
    with load_bundle(pack_zip(bundle, tmp_path / "b.zip")):
        pass
    assert not stale.exists() and live.exists() and other.exists()


def _spawn_loader(z: Path, tmpdir: Path, extra: str = "") -> tuple[object, Path]:
    import os
    import subprocess
    import sys

    code = ("import sys, time\nfrom edgewise.edge.bundle import load_bundle\n"
            f"b = load_bundle({str(z)!r})\n{extra}print(b.path, flush=True)\ntime.sleep(60)\n")
    env = {**os.environ, "TMPDIR": str(tmpdir)}
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    line = proc.stdout.readline().strip()
    assert line, proc.stderr.read()
    return proc, Path(line)


def test_sigterm_removes_the_unpacked_folder(bundle: Path, tmp_path: Path) -> None:
    import signal

    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    proc, unpacked = _spawn_loader(pack_zip(bundle, tmp_path / "b.zip"), tmpdir)
    assert unpacked.is_dir() and unpacked.is_relative_to(tmpdir)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 128 + signal.SIGTERM
    assert "Traceback" not in proc.stderr.read()
    assert not unpacked.exists() and list(tmpdir.iterdir()) == []


def test_sigterm_keeps_a_handler_someone_else_installed(bundle: Path, tmp_path: Path) -> None:
    """A runner that stops its loop on SIGTERM keeps its own handler; its exit still cleans up."""
    import signal

    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    z = pack_zip(bundle, tmp_path / "b.zip")
    handler = "import signal\nsignal.signal(signal.SIGTERM, lambda *a: sys.exit(0))\n"
    import subprocess
    import sys

    code = (f"import sys, time\n{handler}from edgewise.edge.bundle import load_bundle\n"
            f"b = load_bundle({str(z)!r})\nprint(b.path, flush=True)\ntime.sleep(60)\n")
    import os

    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "TMPDIR": str(tmpdir)})
    unpacked = Path(proc.stdout.readline().strip())
    assert unpacked.is_dir()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0  # the process's own handler decided the exit code
    assert list(tmpdir.iterdir()) == []


def test_edgewise_info_on_a_zip_leaves_nothing_in_tmp(bundle: Path, tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    z = pack_zip(bundle, tmp_path / "b.zip")
    r = subprocess.run([sys.executable, "-m", "edgewise.edge.cli", "info", str(z), "-q"], capture_output=True,
                       text=True, timeout=120, env={**os.environ, "TMPDIR": str(tmpdir)})
    assert r.returncode == 0, r.stderr
    assert list(tmpdir.iterdir()) == []


# --- the model must be the one bundle.json describes -----------------------------------------------


def _onnx_model(inputs: int = 4, outputs: int = 2, *, in_type: str = "float", argmax: bool = False,
                two_outputs: bool = False) -> bytes:
    """A tiny ONNX model (x @ W) built in the test: no training, no TensorFlow."""
    import numpy as np

    pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    types = {"float": TensorProto.FLOAT, "int32": TensorProto.INT32}
    w = helper.make_tensor("w", TensorProto.FLOAT, [inputs, outputs],
                           np.linspace(-1, 1, inputs * outputs).astype(np.float32).ravel().tolist())
    nodes = []
    x = "x"
    if in_type != "float":
        nodes.append(helper.make_node("Cast", ["x"], ["xf"], to=TensorProto.FLOAT))
        x = "xf"
    nodes.append(helper.make_node("MatMul", [x, "w"], ["y"]))
    outs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", outputs])]
    if argmax:
        nodes.append(helper.make_node("ArgMax", ["y"], ["k"], axis=1, keepdims=0))
        outs = [helper.make_tensor_value_info("k", TensorProto.INT64, ["n"])]
    if two_outputs:
        nodes.append(helper.make_node("Identity", ["y"], ["z"]))
        outs.append(helper.make_tensor_value_info("z", TensorProto.FLOAT, ["n", outputs]))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", types[in_type], ["n", inputs])],
                              outs, [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model.SerializeToString()


def _onnx_bundle(root: Path, model: bytes, **variant) -> Path:
    pytest.importorskip("onnxruntime")
    w = BundleWriter(root, name="t", task="classification", app="generic")
    w.add_bytes("model.onnx", model)
    w.meta["input"] = {"shape": [None, 4], "dtype": "float32", "normalization": {"scale": 1.0, "offset": 0.0}}
    w.meta["output"] = {"shape": [None, 2], "dtype": "float32"}
    w.add_variant(Variant("onnx_float32", "model.onnx", "onnxruntime", "float32", **variant))
    return w.finish()


def test_a_model_that_matches_its_spec_loads_and_runs(tmp_path: Path) -> None:
    import numpy as np

    from edgewise.edge.backends import load_model

    b = load_bundle(_onnx_bundle(tmp_path / "b", _onnx_model()))
    with load_model(b, threads=1) as m:
        assert m.predict(np.ones((3, 4), np.float32)).shape == (3, 2)


@pytest.mark.parametrize(
    ("model", "variant", "message"),
    [
        (dict(outputs=3), {}, r"model output shape \[null, 3\] disagrees with output\.shape \[null, 2\]"),
        (dict(inputs=5), {}, r"model input shape \[null, 5\] disagrees with input\.shape \[null, 4\]"),
        (dict(two_outputs=True), {}, r"model has 2 outputs, bundle\.json describes one"),
        (dict(argmax=True), {}, r"model output shape \[null\] disagrees"),
        (dict(in_type="int32"), {}, r"model input dtype int32 disagrees with input\.dtype float32"),
        ({}, dict(input_quantization={"scale": 0.5, "zero_point": 0, "dtype": "int8"}),
         r"input quantization None does not match bundle\.json \{'scale': 0\.5"),
        ({}, dict(output_quantization={"scale": 0.5, "zero_point": 0, "dtype": "int8"}),
         r"output quantization None does not match bundle\.json"),
    ],
)
def test_a_model_that_disagrees_with_its_spec_is_refused_at_load_naming_the_variant(
        tmp_path: Path, model: dict, variant: dict, message: str) -> None:
    """E.g. another float model re-checksummed into the bundle: refused once, at load, not on
    every frame while the service looks healthy."""
    from edgewise.edge.backends import load_model

    root = _onnx_bundle(tmp_path / "b", _onnx_model(), **variant)
    if model:
        (root / "model.onnx").write_bytes(_onnx_model(**model))
        from edgewise.edge.bundle import reopen

        reopen(root).finish()  # re-checksummed: every sha256 matches the swapped file
    b = load_bundle(root)
    with pytest.raises(BundleError, match=rf"variant 'onnx_float32' \(model\.onnx\): {message}") as e:
        load_model(b, threads=1)
    assert "\n" not in str(e.value)


def test_an_unloadable_model_file_is_a_bundle_error_naming_the_variant(tmp_path: Path) -> None:
    from edgewise.edge.backends import load_model

    b = load_bundle(_onnx_bundle(tmp_path / "b", b"not a model" * 8))
    with pytest.raises(BundleError, match=r"variant 'onnx_float32': .*model\.onnx: not a loadable ONNX"):
        load_model(b, threads=1)


def test_no_np_load_on_the_edge_can_unpickle() -> None:
    """Bundles and recordings come from elsewhere: a pickled .npy would run code on load."""
    import re

    from conftest import REPO

    offenders = []
    for py in sorted((REPO / "edge").rglob("*.py")):
        text = py.read_text()
        for m in re.finditer(r"\b(np|numpy)\.load\(", text):
            depth, i = 1, m.end()
            while depth and i < len(text):
                depth += {"(": 1, ")": -1}.get(text[i], 0)
                i += 1
            if "allow_pickle=False" not in text[m.end():i]:
                offenders.append(f"{py.relative_to(REPO)}:{text.count(chr(10), 0, m.start()) + 1}")
        if re.search(r"^\s*(import|from) (pickle|dill|joblib)\b|allow_pickle=True|pickle\.load", text, re.M):
            offenders.append(f"{py.relative_to(REPO)}: pickle")
    assert offenders == [], offenders
