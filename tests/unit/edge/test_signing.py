"""Signed bundles: the signature covers the checksums, trusted keys refuse unsigned and foreign bundles.

Bundles here are tiny synthetic ones (64 zero bytes as a "model"), built with the real writer:
what is under test is the manifest, the checksums and the signature, not a model.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import stat
import zipfile
from pathlib import Path

import pytest

from edgewise.edge import signing
from edgewise.edge.bundle import BundleError, BundleWriter, Variant, load_bundle, pack_zip
from edgewise.edge.cli import main
from edgewise.edge.signing import (
    ENV_TRUSTED_KEYS,
    SIGNATURE_FILE,
    SignatureError,
    check_signature,
    generate_keypair,
    sign_bundle,
)

MODEL = "model_float32.tflite"


def _tiny_bundle(root: Path) -> Path:
    w = BundleWriter(root, name="t", task="classification", app="generic")
    w.add_bytes(MODEL, b"\x00" * 64)
    w.add_bytes("labels.txt", b"ok\nbad\n")
    w.meta["input"] = {"shape": [None, 4], "dtype": "float32", "normalization": {"scale": 1.0, "offset": 0.0}}
    w.meta["output"] = {"shape": [None, 2], "dtype": "float32"}
    w.meta["labels"] = ["ok", "bad"]
    w.add_variant(Variant("tflite_float32", MODEL, "litert", "float32"))
    return w.finish()


@pytest.fixture(autouse=True)
def _no_ambient_trust(monkeypatch: pytest.MonkeyPatch):
    """Each test starts with no trusted keys: neither the environment nor an earlier --trusted-key."""
    monkeypatch.delenv(ENV_TRUSTED_KEYS, raising=False)
    signing.use_trusted_keys(None)
    yield
    signing.use_trusted_keys(None)


@pytest.fixture()
def bundle(tmp_path: Path) -> Path:
    return _tiny_bundle(tmp_path / "b")


@pytest.fixture()
def key(tmp_path: Path) -> Path:
    return generate_keypair(tmp_path / "signing.key")[0]


@pytest.fixture()
def other_key(tmp_path: Path) -> Path:
    return generate_keypair(tmp_path / "other.key")[0]


def _pub(key: Path) -> Path:
    return key.with_name(key.name + ".pub")


def _rewrite_checksum(root: Path, rel: str) -> None:
    """What an attacker who edits a file does next: make bundle.json agree with it again."""
    meta = json.loads((root / "bundle.json").read_text())
    data = (root / rel).read_bytes()
    meta["files"][rel] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    (root / "bundle.json").write_text(json.dumps(meta, indent=2))


# -- keys ------------------------------------------------------------------------------------------


def test_keygen_writes_a_0600_private_key_and_a_public_key_and_never_overwrites(tmp_path: Path) -> None:
    priv, pub, kid = generate_keypair(tmp_path / "k")
    assert stat.S_IMODE(priv.stat().st_mode) == 0o600
    assert b"PRIVATE KEY" in priv.read_bytes() and b"BEGIN PUBLIC KEY" in pub.read_bytes()
    assert signing.load_public_key(pub).key_id == kid and len(kid) == 16
    before = priv.read_bytes()
    with pytest.raises(BundleError, match="already exists; not overwriting"):
        generate_keypair(tmp_path / "k")
    assert priv.read_bytes() == before


def test_public_and_private_keys_cannot_be_mixed_up(key: Path) -> None:
    with pytest.raises(BundleError, match="is a public key; signing needs the private key"):
        signing.load_private_key(_pub(key))
    with pytest.raises(BundleError, match="is a private key; a device trusts the public key"):
        signing.load_public_key(key)


def test_a_non_ed25519_key_is_refused(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    k = ec.generate_private_key(ec.SECP256R1())
    p = tmp_path / "ec.pub"
    p.write_bytes(k.public_key().public_bytes(serialization.Encoding.PEM,
                                              serialization.PublicFormat.SubjectPublicKeyInfo))
    with pytest.raises(BundleError, match="not an ed25519 public key"):
        signing.load_public_key(p)


# -- round trip ------------------------------------------------------------------------------------


def test_sign_then_load_round_trip_names_the_key_and_trusts_it(bundle: Path, key: Path) -> None:
    r = sign_bundle(bundle, key)
    assert (bundle / SIGNATURE_FILE).is_file()
    b = load_bundle(bundle, trusted_keys=[_pub(key)])
    assert SIGNATURE_FILE not in b.meta["files"]  # the signature is detached, not pinned by itself
    st = check_signature(bundle, b.meta, [_pub(key)])
    assert (st.signed, st.key_id, st.trusted) == (True, r.key_id, True)
    assert r.key_id == signing.load_public_key(_pub(key)).key_id
    # without trusted keys the signature is still checked (integrity), the signer just is not judged
    st = check_signature(bundle, b.meta, [])
    assert (st.signed, st.trusted) == (True, None)


def test_reindenting_bundle_json_keeps_the_signature_but_any_value_change_breaks_it(
        bundle: Path, key: Path) -> None:
    sign_bundle(bundle, key)
    meta = json.loads((bundle / "bundle.json").read_text())
    (bundle / "bundle.json").write_text(json.dumps(meta, indent=7, sort_keys=False))
    load_bundle(bundle, trusted_keys=[_pub(key)])  # same document, other whitespace: still valid
    meta["labels"] = ["bad", "ok"]  # swapped labels: same files, different meaning
    (bundle / "bundle.json").write_text(json.dumps(meta))
    with pytest.raises(SignatureError, match="bad signature .bundle.json was changed after signing"):
        load_bundle(bundle)


@pytest.mark.parametrize("edit", [
    lambda m: m["thresholds"].update({"score": 0.01}),
    lambda m: m["input"]["normalization"].update({"scale": 255.0}),
    lambda m: m.update({"name": "other"}),
    lambda m: m["files"].pop("labels.txt"),
], ids=["threshold", "normalization", "name", "drop-file-entry"])
def test_editing_bundle_json_after_signing_is_refused_even_without_trusted_keys(
        bundle: Path, key: Path, edit) -> None:
    sign_bundle(bundle, key)
    meta = json.loads((bundle / "bundle.json").read_text())
    edit(meta)
    (bundle / "bundle.json").write_text(json.dumps(meta, indent=2))
    with pytest.raises(SignatureError, match="bad signature"):
        load_bundle(bundle)


def test_a_model_byte_changed_and_its_checksum_rewritten_is_refused(bundle: Path, key: Path) -> None:
    sign_bundle(bundle, key)
    data = bytearray((bundle / MODEL).read_bytes())
    data[10] ^= 0xFF
    (bundle / MODEL).write_bytes(bytes(data))
    with pytest.raises(BundleError, match="sha256 mismatch"):  # the checksum alone catches this
        load_bundle(bundle)
    _rewrite_checksum(bundle, MODEL)  # checksums agree again: only the signature can tell
    with pytest.raises(SignatureError, match="bad signature"):
        load_bundle(bundle)
    with pytest.raises(SignatureError, match="bad signature"):
        load_bundle(bundle, verify=False)  # skipping the file hashes does not skip the signature
    with pytest.raises(SignatureError, match="bad signature"):
        load_bundle(bundle, trusted_keys=[_pub(key)])


def test_swapped_files_with_rewritten_checksums_are_refused(bundle: Path, key: Path) -> None:
    sign_bundle(bundle, key)
    a, b = (bundle / MODEL).read_bytes(), (bundle / "labels.txt").read_bytes()
    (bundle / MODEL).write_bytes(b)
    (bundle / "labels.txt").write_bytes(a)
    _rewrite_checksum(bundle, MODEL)
    _rewrite_checksum(bundle, "labels.txt")
    with pytest.raises(SignatureError, match="bad signature"):
        load_bundle(bundle)


def test_an_attacker_who_re_signs_with_their_own_key_is_refused_by_a_device_with_trusted_keys(
        bundle: Path, key: Path, other_key: Path) -> None:
    sign_bundle(bundle, key)
    (bundle / MODEL).write_bytes(b"\x01" * 64)
    _rewrite_checksum(bundle, MODEL)
    sign_bundle(bundle, other_key)  # a valid signature, by the wrong signer
    with pytest.raises(SignatureError, match=r"signed by key [0-9a-f]{16}, which is not trusted here"):
        load_bundle(bundle, trusted_keys=[_pub(key)])
    # with no trusted keys configured it loads (integrity holds) and says who signed
    st = check_signature(bundle, load_bundle(bundle).meta, [])
    assert st.key_id == signing.load_public_key(_pub(other_key)).key_id and st.trusted is None


# -- trusted keys ----------------------------------------------------------------------------------


def test_unsigned_bundle_loads_without_trusted_keys_and_info_says_so(bundle: Path) -> None:
    b = load_bundle(bundle)
    st = check_signature(bundle, b.meta)
    assert not st.signed and "unsigned" in st.text()


def test_unsigned_bundle_is_refused_when_trusted_keys_are_given(bundle: Path, key: Path) -> None:
    with pytest.raises(SignatureError, match="unsigned bundle refused: only bundles signed by"):
        load_bundle(bundle, trusted_keys=[_pub(key)])


def test_the_environment_variable_sets_trusted_keys_file_directory_or_list(
        bundle: Path, key: Path, other_key: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_TRUSTED_KEYS, str(_pub(other_key)))
    with pytest.raises(SignatureError, match=f"unsigned bundle refused.*{ENV_TRUSTED_KEYS}"):
        load_bundle(bundle)
    sign_bundle(bundle, key)
    with pytest.raises(SignatureError, match="not trusted here"):
        load_bundle(bundle)
    keydir = tmp_path / "trusted"
    keydir.mkdir()
    (keydir / "a.pub").write_bytes(_pub(key).read_bytes())
    (keydir / "notes.txt").write_text("not a key, ignored: only *.pub are read")
    monkeypatch.setenv(ENV_TRUSTED_KEYS, str(keydir))
    assert check_signature(bundle, load_bundle(bundle).meta).trusted is True
    monkeypatch.setenv(ENV_TRUSTED_KEYS, f"{_pub(other_key)}{os.pathsep}{_pub(key)}")
    assert load_bundle(bundle).name == "t"


@pytest.mark.parametrize("setting, message", [
    ("missing.pub", "no such trusted key file or directory"),
    ("emptydir", r"no \*\.pub keys"),
    ("garbage.pub", "not a PEM public key"),
])
def test_a_configured_but_unusable_trust_setting_refuses_rather_than_trusting_everything(
        bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, setting: str, message: str) -> None:
    (tmp_path / "emptydir").mkdir()
    (tmp_path / "garbage.pub").write_text("hello")
    monkeypatch.setenv(ENV_TRUSTED_KEYS, str(tmp_path / setting))
    with pytest.raises(BundleError, match=f"{ENV_TRUSTED_KEYS}: .*{message}"):
        load_bundle(bundle)


def test_the_flag_sets_the_trust_of_every_loader_in_the_process(bundle: Path, key: Path) -> None:
    p = argparse.ArgumentParser()
    signing.add_trusted_key(p)
    a = p.parse_args(["--trusted-key", str(_pub(key)), "--trusted-key", str(_pub(key))])
    assert a.trusted_key == [str(_pub(key))] * 2
    with pytest.raises(SignatureError, match=r"unsigned bundle refused.*\(--trusted-key\)"):
        load_bundle(bundle)  # called without any argument, as the applications do
    sign_bundle(bundle, key)
    assert load_bundle(bundle).name == "t"


def test_the_flag_wins_over_the_environment(bundle: Path, key: Path, other_key: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    sign_bundle(bundle, key)
    monkeypatch.setenv(ENV_TRUSTED_KEYS, str(_pub(other_key)))
    with pytest.raises(SignatureError, match="not trusted"):
        load_bundle(bundle)
    signing.use_trusted_keys([_pub(key)])
    assert load_bundle(bundle).name == "t"


@pytest.mark.parametrize("content, message", [
    (b"{not json", "malformed JSON"),
    (b"[]", "must be a JSON object"),
    (b"x" * 20000, "bytes, not a signature"),
], ids=["bad-json", "not-object", "huge"])
def test_a_malformed_signature_file_is_refused(bundle: Path, content: bytes, message: str) -> None:
    (bundle / SIGNATURE_FILE).write_bytes(content)
    with pytest.raises(SignatureError, match=message):
        load_bundle(bundle)


@pytest.mark.parametrize("field, value, message", [
    ("signature", "AAAA", "has 3 bytes, ed25519 needs 64"),
    ("public_key", "!!", "not base64"),
    ("key_id", "0123456789abcdef", "is not its public key's"),
    ("version", 2, "unsupported"),
    ("algorithm", "rsa", "unsupported"),
    ("extra", 1, "unknown field extra"),
])
def test_a_forged_or_foreign_signature_field_is_refused(bundle: Path, key: Path, field: str, value,
                                                         message: str) -> None:
    sign_bundle(bundle, key)
    doc = json.loads((bundle / SIGNATURE_FILE).read_text())
    doc[field] = value
    (bundle / SIGNATURE_FILE).write_text(json.dumps(doc))
    with pytest.raises(SignatureError, match=message):
        load_bundle(bundle)


def test_a_signature_from_another_bundle_does_not_fit(bundle: Path, key: Path, tmp_path: Path) -> None:
    other = _tiny_bundle(tmp_path / "other")
    meta = json.loads((other / "bundle.json").read_text())
    meta["name"] = "other"
    (other / "bundle.json").write_text(json.dumps(meta))
    sign_bundle(other, key)
    (bundle / SIGNATURE_FILE).write_bytes((other / SIGNATURE_FILE).read_bytes())
    with pytest.raises(SignatureError, match="bad signature"):
        load_bundle(bundle, trusted_keys=[_pub(key)])


# -- signing ---------------------------------------------------------------------------------------


def test_sign_refuses_a_bundle_that_is_already_tampered(bundle: Path, key: Path) -> None:
    (bundle / MODEL).write_bytes(b"\x02" * 64)
    with pytest.raises(BundleError, match="sha256 mismatch"):
        sign_bundle(bundle, key)
    assert not (bundle / SIGNATURE_FILE).exists()


def test_re_signing_replaces_the_signature_even_a_stale_one(bundle: Path, key: Path, other_key: Path) -> None:
    sign_bundle(bundle, key)
    meta = json.loads((bundle / "bundle.json").read_text())
    meta["thresholds"] = {"score": 0.7}  # a legitimate re-seal on the workstation
    (bundle / "bundle.json").write_text(json.dumps(meta))
    with pytest.raises(SignatureError):
        load_bundle(bundle)
    r = sign_bundle(bundle, other_key)
    assert load_bundle(bundle, trusted_keys=[_pub(other_key)]).spec.thresholds is not None
    assert json.loads((bundle / SIGNATURE_FILE).read_text())["key_id"] == r.key_id


def test_a_failed_re_sign_keeps_the_old_signature(bundle: Path, key: Path, other_key: Path) -> None:
    sign_bundle(bundle, key)
    old = (bundle / SIGNATURE_FILE).read_bytes()
    (bundle / MODEL).write_bytes(b"\x03" * 64)
    with pytest.raises(BundleError, match="sha256 mismatch"):
        sign_bundle(bundle, other_key)
    assert (bundle / SIGNATURE_FILE).read_bytes() == old


def test_a_manifest_that_pins_the_signature_file_cannot_be_signed(bundle: Path, key: Path) -> None:
    sign_bundle(bundle, key)
    _rewrite_checksum(bundle, SIGNATURE_FILE)  # what sealing over a signed bundle would produce
    with pytest.raises(BundleError, match="lists bundle.sig among its files"):
        sign_bundle(bundle, key)


@pytest.mark.parametrize("nested", [False, True], ids=["contents-at-top", "directory-inside"])
def test_a_zip_bundle_is_signed_in_place_and_tampering_inside_is_caught(
        bundle: Path, key: Path, other_key: Path, tmp_path: Path, nested: bool) -> None:
    z = tmp_path / "b.zip"
    if nested:
        with zipfile.ZipFile(z, "w") as zf:
            for p in sorted(bundle.rglob("*")):
                if p.is_file():
                    zf.write(p, "b/" + p.relative_to(bundle).as_posix())
    else:
        pack_zip(bundle, z)
    r = sign_bundle(z, key)
    names = zipfile.ZipFile(z).namelist()
    assert ("b/" if nested else "") + SIGNATURE_FILE in names and r.signature.endswith(SIGNATURE_FILE)
    assert not list(tmp_path.glob(".b.zip.*"))  # no temporary zip left beside it
    assert load_bundle(z, trusted_keys=[_pub(key)]).name == "t"
    sign_bundle(z, other_key)  # re-signing a zip replaces its one signature member
    assert sum(n.endswith(SIGNATURE_FILE) for n in zipfile.ZipFile(z).namelist()) == 1
    with pytest.raises(SignatureError, match="not trusted"):
        load_bundle(z, trusted_keys=[_pub(key)])
    # an attacker rewrites the model and its checksum inside the signed zip
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(z) as src, zipfile.ZipFile(bad, "w") as dst:
        meta_name = next(n for n in src.namelist() if n.endswith("bundle.json"))
        meta = json.loads(src.read(meta_name))
        meta["files"][MODEL] = {"sha256": hashlib.sha256(b"\x04" * 64).hexdigest(), "size": 64}
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith(MODEL):
                data = b"\x04" * 64
            elif info.filename == meta_name:
                data = json.dumps(meta).encode()
            dst.writestr(info, data)
    with pytest.raises(SignatureError, match=r"bad\.zip:(b/)?bundle\.sig: bad signature"):
        load_bundle(bad)  # named by the zip, not by the private folder it was unpacked into


# -- the command -----------------------------------------------------------------------------------


def _one_error_line(capsys: pytest.CaptureFixture, cmd: str) -> str:
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1, err
    assert err[0].startswith(f"edgewise {cmd}: error: ")
    return err[0]


def test_cli_keygen_sign_info_round_trip(bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    k = tmp_path / "cli.key"
    assert main(["keygen", "--out", str(k)]) == 0
    kid = signing.load_public_key(_pub(k)).key_id
    assert kid in capsys.readouterr().out
    assert main(["info", str(bundle)]) == 0
    assert "signature unsigned" in capsys.readouterr().out
    assert main(["sign", str(bundle), "--key", str(k)]) == 0
    assert kid in capsys.readouterr().out
    assert main(["info", str(bundle), "--trusted-key", str(_pub(k))]) == 0
    assert f"key {kid}: valid, trusted (--trusted-key)" in capsys.readouterr().out
    out = tmp_path / "info.json"
    assert main(["info", str(bundle), "--json", str(out)]) == 0
    assert json.loads(out.read_text())["signature"] == {"signed": True, "key_id": kid, "trusted": None,
                                                          "policy": None}


def test_cli_errors_are_one_line_with_exit_2(bundle: Path, key: Path, other_key: Path,
                                            capsys: pytest.CaptureFixture) -> None:
    assert main(["keygen", "--out", str(key)]) == 2
    assert "already exists" in _one_error_line(capsys, "keygen")
    assert main(["sign", str(bundle), "--key", str(_pub(key))]) == 2
    assert "is a public key" in _one_error_line(capsys, "sign")
    assert main(["sign", str(bundle.parent / "nope"), "--key", str(key)]) == 2
    assert "no such bundle" in _one_error_line(capsys, "sign")
    assert main(["info", str(bundle), "--trusted-key", str(_pub(key))]) == 2
    assert "unsigned bundle refused" in _one_error_line(capsys, "info")
    signing.use_trusted_keys(None)
    assert main(["sign", str(bundle), "--key", str(other_key)]) == 0
    capsys.readouterr()
    assert main(["info", str(bundle), "--trusted-key", str(_pub(key))]) == 2
    assert "which is not trusted here" in _one_error_line(capsys, "info")
    signing.use_trusted_keys(None)
    (bundle / MODEL).write_bytes(b"\x05" * 64)
    _rewrite_checksum(bundle, MODEL)
    assert main(["info", str(bundle)]) == 2
    assert "bad signature" in _one_error_line(capsys, "info")


def test_run_enroll_and_verify_accept_the_trusted_key_flag(bundle: Path, key: Path) -> None:
    from edgewise.edge.apps.face.cli import _enroll_parser
    from edgewise.edge.apps.settings import run_parser
    from edgewise.edge.device.verify import build_parser

    for p in (run_parser("classify", "d", "e"), _enroll_parser(), build_parser()):
        assert "--trusted-key" in p.format_help()
    run_parser("classify", "d", "e").parse_args(
        ["--bundle", str(bundle), "--source", "x", "--trusted-key", str(_pub(key))])
    with pytest.raises(SignatureError, match="unsigned bundle refused"):
        load_bundle(bundle)  # what `edgewise run classify` does next with that command line


@pytest.mark.parametrize("cmd", ["keygen", "sign"])
def test_keygen_and_sign_follow_the_command_conventions(cmd: str, capsys: pytest.CaptureFixture,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from edgewise.edge import cliargs

    seen: list = []
    monkeypatch.setattr(cliargs.Parser, "print_help", lambda self, file=None: seen.append(self))
    with pytest.raises(SystemExit) as e:
        main([cmd, "--help"])
    assert e.value.code == 0 and len(seen) == 1
    opts = {o for a in seen[0]._actions for o in a.option_strings}
    assert {"-q", "--quiet", "--json"} <= opts
    assert all(a.help for a in seen[0]._actions)
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:  # a missing required flag: argparse's one line, exit 2
        main([cmd, "-q"])
    assert e.value.code == 2 and "required" in _one_error_line(capsys, cmd)
