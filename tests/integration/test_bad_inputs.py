"""The bad-input corpus: every row is one hostile or broken input, flag or fault, and what the
command must do with it.

A row either is **refused** (exit 2, exactly one line ``edgewise <cmd>: error: <what>`` naming
the problem), **fails as a whole run** (exit 1 with that line last: nothing went through, so a
service manager sees a failed unit), or **goes on** (exit 0; the bad frames are skipped and
counted by kind in the ``--stats`` JSON). No row may print a traceback, on stderr or in the
log. The parametrised ids are the table. Bundles, images, videos and signals are tiny
SYNTHETIC ones built in the test (``badinputs``); the rows run in this process unless they
need a child (stdin pipes, signals, file permissions).

Stdin rows in this process read an in-memory stream; the ``-child`` ones read a real pipe
(the ``select`` path a service uses). Permission rows run as a normal user; under root they
run without the two capabilities that bypass file permissions (``setpriv``), else skip.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import badinputs as B
import numpy as np
import pytest

from edgewise.edge import signing

# -- what a row expects ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Refused:
    """Exit ``code`` with exactly one line ``edgewise <cmd>: error: ...`` matching ``pattern``."""

    cmd: str
    pattern: str
    code: int = 2


@dataclass(frozen=True)
class RunFails:
    """Exit 1: the run happened but nothing went through; the last line says why."""

    cmd: str
    pattern: str
    errors: dict[str, int] = field(default_factory=dict)  # exact counts of these kinds


@dataclass(frozen=True)
class GoesOn:
    """Exit 0: the loop went on; ``--stats`` holds these counts (None: not checked)."""

    frames_ok: int | None = None
    errors: dict[str, int] = field(default_factory=dict)
    sinks: dict[str, dict[str, int]] = field(default_factory=dict)
    min_frames_ok: int = 0


@dataclass(frozen=True)
class Row:
    """One case: its id (the table's row name), how to build its input and argv, what must happen."""

    id: str
    argv: Callable[[Ctx], list[str]]
    expect: Refused | RunFails | GoesOn
    child: bool = False  # run in a child process (with a timeout) instead of this one
    unprivileged: bool = False  # ... with file permissions enforced even for root
    stdin: bytes | None = None
    env: dict[str, str] = field(default_factory=dict)


class Ctx:
    """A row's temporary folder and the inputs it builds there."""

    def __init__(self, tmp: Path) -> None:
        self.t = tmp
        self.n = 0
        self.stats = tmp / "stats.json"

    def _fresh(self, stem: str) -> Path:
        self.n += 1
        return self.t / f"{stem}{self.n}"

    def cb(self, edit: Callable[[dict[str, Any]], Any] | None = None, *, reseal: bool = False,
           then: Callable[[Path], Any] | None = None) -> str:
        """A fresh classify bundle; ``edit`` changes bundle.json, ``then`` the files; ``reseal``
        rewrites the checksums afterwards (a forger's move)."""
        root = B.classify_bundle(self._fresh("c"))
        if edit is not None:
            B.edit_meta(root, edit)
        if then is not None:
            then(root)
        if reseal:
            B.reseal(root)
        return str(root)

    def vb(self) -> str:
        return str(B.vibration_bundle(self._fresh("v")))

    def file(self, name: str, data: bytes | str) -> str:
        p = self.t / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data.encode() if isinstance(data, str) else data)
        return str(p)

    def imgs(self, files: dict[str, bytes | None], good: bool = True) -> str:
        """An image folder: ``files`` (None: a directory of that name), plus one good image."""
        d = self._fresh("imgs")
        d.mkdir()
        if good:
            (d / "0good.png").write_bytes(B.png())
        for name, data in files.items():
            if data is None:
                (d / name).mkdir()
            else:
                (d / name).write_bytes(data)
        return str(d)

    def keypair(self, name: str = "k") -> tuple[str, str]:
        priv, pub, _ = signing.generate_keypair(self.t / name)
        return str(priv), str(pub)

    def signed(self, name: str = "k") -> tuple[str, str]:
        """(a classify bundle signed by key ``name``, that key's public half)."""
        b = self.cb()
        if (self.t / name).exists():
            priv, pub = str(self.t / name), str(self.t / f"{name}.pub")
        else:
            priv, pub = self.keypair(name)
        signing.sign_bundle(b, priv)
        return b, pub


def _noise(n: int) -> bytes:
    """Garbage bytes, the same on every run (random bytes could, once in a while, parse as something)."""
    return np.random.default_rng(n).bytes(n)


def run_classify(ctx: Ctx, source: str, *extra: str, bundle: str | None = None) -> list[str]:
    return ["run", "classify", "--bundle", bundle or ctx.cb(), "--source", source, "--jsonl", "",
            "--stats", str(ctx.stats), *extra]


def run_vibration(ctx: Ctx, source: str, *extra: str, bundle: str | None = None) -> list[str]:
    return ["run", "vibration", "--bundle", bundle or ctx.vb(), "--source", source, "--jsonl", "",
            "--stats", str(ctx.stats), *extra]


def one_image(ctx: Ctx) -> str:
    return ctx.imgs({})


# -- bundles: bundle.json, field by field -------------------------------------------------------------


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """An edit that sets ``a.b.c`` (``variants.*`` means the one variant) to ``value``."""

    def change(meta: dict[str, Any]) -> None:
        keys = path.split(".")
        node = meta
        for k in keys[:-1]:
            node = node[next(iter(node))] if k == "*" else node.setdefault(k, {})
        if value is _DELETE:
            del node[keys[-1]]
        else:
            node[keys[-1]] = value

    return change


_DELETE = object()
NESTED: Any = 0
for _ in range(40):
    NESTED = [NESTED]

SCHEMA: list[tuple[str, str, Any, str]] = [
    # (id, field, value, what the one line must say)
    ("schema_version-negative", "schema_version", -1, r"schema_version: must be greater than or equal to 1"),
    ("schema_version-future", "schema_version", 99, r"schema_version: 99 is newer .*upgrade edgewise"),
    ("schema_version-string", "schema_version", "1", r"schema_version: must be an integer"),
    ("schema_version-bool", "schema_version", True, r"schema_version: must be an integer"),
    ("name-empty", "name", "", r"name: .*at least 1 character"),
    ("name-number", "name", 5, r"name: must be a string"),
    ("task-missing", "task", _DELETE, r"task: required field is missing"),
    ("app-bad-pattern", "app", "Face!", r"app: .*match pattern"),
    ("created-empty", "created", "", r"created: .*at least 1 character"),
    ("unknown-top-level-key", "surprise", 1, r"surprise: unknown key; known: schema_version"),
    ("input-shape-string", "input.shape", "8x8", r"input\.shape: must be an array"),
    ("input-shape-zero-dim", "input.shape", [None, 0, 8, 1], r"input\.shape\[1\]: must be greater than or "
                                                            r"equal to 1"),
    ("input-shape-too-large", "input.shape", [None, 1 << 20, 1 << 20, 1], r"input\.shape: \d+ values per "
                                                                          r"sample is more than"),
    ("input-shape-rank-9", "input.shape", [None] + [1] * 8, r"input\.shape: .*at most 8"),
    ("input-dtype-unknown", "input.dtype", "float64", r"input\.dtype 'float64' is not one of"),
    ("input-normalization-missing", "input.normalization", _DELETE, r"input\.normalization: required field"),
    ("input-normalization-scale-zero", "input.normalization.scale", 0.0, r"input\.normalization\.scale: "
                                                                        r"must not be 0"),
    ("input-normalization-std-zero", "input.normalization", {"mean": [0.0], "std": [0.0]},
     r"input\.normalization\.std: must not contain 0"),
    ("input-normalization-mean-without-std", "input.normalization", {"mean": 1.0},
     r"input\.normalization\.std: needs both 'mean' and 'std'"),
    ("input-color-uppercase", "input.color", "RGB", r"input\.color 'RGB' is not one of"),
    ("input-quantization-zero-point", "input.int8_quantization", {"scale": 0.1, "zero_point": 300,
                                                                  "dtype": "int8"},
     r"input\.int8_quantization\.zero_point: .*(less than or equal to 255|outside int8)"),
    ("input-quantization-scale-negative", "input.int8_quantization", {"scale": -1.0, "zero_point": 0,
                                                                      "dtype": "int8"},
     r"input\.int8_quantization\.scale: must be greater than 0"),
    ("output-kind-unknown", "output.kind", "logits", r"output\.kind 'logits' is not one of"),
    ("output-shape-empty", "output.shape", [], r"output\.shape: .*at least 1"),
    ("labels-number", "labels", 5, r"labels: must be an array"),
    ("labels-count-mismatch", "labels", ["a", "b"], r"labels: 2 labels for 3 output probabilities"),
    ("labels-empty-string", "labels", ["a", "", "c"], r"labels\[1\]: .*at least 1 character"),
    ("variants-empty", "variants", {}, r"variants: .*at least 1 item"),
    ("variant-backend-unknown", "variants.*.backend", "tensorflow", r"variants\.onnx_float32\.backend "
                                                                   r"'tensorflow' is not one of"),
    ("variant-precision-unknown", "variants.*.precision", "int4", r"variants\.onnx_float32\.precision 'int4' "
                                                                 r"is not one of"),
    ("variant-file-absolute", "variants.*.file", "/etc/passwd", r"variants\.onnx_float32\.file: absolute "
                                                               r"path '/etc/passwd'"),
    ("variant-file-dotdot", "variants.*.file", "../model.onnx", r"variants\.onnx_float32\.file: path "
                                                               r"'\.\./model\.onnx' leaves the bundle"),
    ("variant-file-unlisted", "variants.*.file", "other.onnx",
     r"variants\.onnx_float32\.file: 'other\.onnx' has no checksum entry in files"),
    ("variant-name-key", "variants.*.name", "x", r"variants\.onnx_float32\.name: unknown key"),
    ("variant-flagged-string", "variants.*.flagged", "no", r"variants\.onnx_float32\.flagged: must be true "
                                                          r"or false"),
    ("files-entry-string", "files.model.onnx", "deadbeef", r"files\['model\.onnx'\]: must be an object"),
    ("files-sha256-not-hex", "files.model.onnx", {"sha256": "z" * 64, "size": 1},
     r"files\['model\.onnx'\]\.sha256: .*match pattern"),
    ("files-size-negative", "files.model.onnx", {"sha256": "0" * 64, "size": -1},
     r"files\['model\.onnx'\]\.size: must be greater than or equal to 0"),
    ("files-backslash-path", "files.a\\b", {"sha256": "0" * 64, "size": 1},
     r"files\['a\\\\b'\]: path contains a NUL or a backslash"),
    ("thresholds-decision-nan", "thresholds.decision", float("nan"), r"thresholds\.decision: must be a "
                                                                     r"finite number"),
    ("thresholds-per-variant-string", "thresholds.per_variant", {"onnx_float32": "0.5"},
     r"thresholds\.per_variant\.onnx_float32: must be a number"),
    ("config-nested-40-deep", "config.deep", NESTED,
     r"config\.deep\[0\]\[0\].*: nested deeper than 32 levels"),
    ("evaluation-samples-zero", "evaluation", {"samples": 0, "x": "model.onnx", "reference": "model.onnx"},
     r"evaluation\.samples: must be greater than or equal to 1"),
]


def _files_key_fix(rid: str, fld: str) -> Callable[[dict[str, Any]], None]:
    """``files.model.onnx`` is one key with a dot in it."""
    if fld.startswith("files."):
        key = fld[len("files."):]
        return lambda m, v=dict(SCHEMA_VALUES)[rid]: m["files"].__setitem__(key, v)
    return _set(fld, dict(SCHEMA_VALUES)[rid])


SCHEMA_VALUES = [(r[0], r[2]) for r in SCHEMA]

ROWS: list[Row] = [
    Row(f"bundle-json-{rid}", lambda c, rid=rid, fld=fld: ["info", c.cb(_files_key_fix(rid, fld))],
        Refused("info", rf"bundle\.json: {pat}"))
    for rid, fld, _, pat in SCHEMA
]

# -- bundles: the document itself, the files, paths that leave ----------------------------------------


def _write(rel: str, data: bytes | str) -> Callable[[Path], None]:
    def change(root: Path) -> None:
        p = root / rel
        p.write_bytes(data.encode() if isinstance(data, str) else data)

    return change


def _flip(rel: str) -> Callable[[Path], None]:
    def change(root: Path) -> None:
        data = bytearray((root / rel).read_bytes())
        data[len(data) // 2] ^= 0xFF
        (root / rel).write_bytes(bytes(data))

    return change


def _sibling_escape(root: Path) -> None:
    """``files`` names ``../<bundle>-evil/model.onnx``: the same string prefix, another folder."""
    evil = root.parent / f"{root.name}-evil"
    evil.mkdir()
    shutil.copy(root / "model.onnx", evil / "model.onnx")
    meta = json.loads((root / "bundle.json").read_text())
    meta["files"][f"../{root.name}-evil/model.onnx"] = meta["files"].pop("model.onnx")
    meta["variants"]["onnx_float32"]["file"] = f"../{root.name}-evil/model.onnx"
    (root / "bundle.json").write_text(json.dumps(meta))


def _symlink_out(root: Path) -> None:
    outside = root.parent / "outside.onnx"
    shutil.copy(root / "model.onnx", outside)
    (root / "model.onnx").unlink()
    (root / "model.onnx").symlink_to(outside)


def _bundle_json_symlink(root: Path) -> None:
    outside = root.parent / "outside.json"
    (root / "bundle.json").rename(outside)
    (root / "bundle.json").symlink_to(outside)


def _huge_bundle_json(root: Path) -> None:
    with open(root / "bundle.json", "r+b") as f:
        f.truncate(33 << 20)  # sparse: nothing is written, the size is what counts


def _swap_model(classes: int) -> Callable[[Path], None]:
    model = B.onnx_model((B.IMG, B.IMG, 1), classes, softmax=True)
    return lambda root: (root / "model.onnx").write_bytes(model)


ROWS += [
    Row("bundle-json-malformed",
        lambda c: ["info", c.cb(then=_write("bundle.json", '{"schema_version": 1,'))],
        Refused("info", r"bundle\.json: malformed JSON")),
    Row("bundle-json-empty-file", lambda c: ["info", c.cb(then=_write("bundle.json", ""))],
        Refused("info", r"bundle\.json: malformed JSON")),
    Row("bundle-json-not-utf8", lambda c: ["info", c.cb(then=_write("bundle.json", b'{"name": "\xff\xfe"}'))],
        Refused("info", r"bundle\.json: malformed JSON \(not UTF-8")),
    Row("bundle-json-array", lambda c: ["info", c.cb(then=_write("bundle.json", "[1, 2]"))],
        Refused("info", r"bundle\.json: top level must be an object, got an array")),
    Row("bundle-json-duplicate-key", lambda c: ["info", c.cb(then=_write(
        "bundle.json", '{"schema_version": 1, "schema_version": 1}'))],
        Refused("info", r"bundle\.json: duplicate key 'schema_version'")),
    Row("bundle-json-5000-digit-number", lambda c: ["info", c.cb(then=_write(
        "bundle.json", '{"schema_version": ' + "9" * 5000 + "}"))],
        Refused("info", r"bundle\.json: malformed JSON")),
    Row("bundle-json-nesting-100000", lambda c: ["info", c.cb(then=_write("bundle.json", "[" * 100000))],
        Refused("info", r"bundle\.json: malformed JSON")),
    Row("bundle-json-33MB", lambda c: ["info", c.cb(then=_huge_bundle_json)],
        Refused("info", r"bundle\.json: \d+ bytes is more than the 32 MB")),
    Row("bundle-json-missing", lambda c: ["info", c.cb(then=lambda r: (r / "bundle.json").unlink())],
        Refused("info", r"bundle\.json: missing; is .* a bundle\?")),
    Row("bundle-json-symlink-outside", lambda c: ["info", c.cb(then=_bundle_json_symlink)],
        Refused("info", r"bundle\.json: points outside the bundle")),
    Row("bundle-path-does-not-exist", lambda c: ["info", str(c.t / "nope.bundle")],
        Refused("info", r"nope\.bundle: no such bundle")),
    Row("bundle-model-tampered", lambda c: ["info", c.cb(then=_flip("model.onnx"))],
        Refused("info", r"model\.onnx: sha256 mismatch")),
    Row("bundle-model-truncated", lambda c: ["info", c.cb(then=lambda r: _write(
        "model.onnx", (r / "model.onnx").read_bytes()[:50])(r))],
        Refused("info", r"model\.onnx: size 50 bytes, bundle\.json says \d+ \(truncated")),
    Row("bundle-model-larger-than-declared", lambda c: ["info", c.cb(then=lambda r: _write(
        "model.onnx", (r / "model.onnx").read_bytes() + b"\x00" * 9)(r))],
        Refused("info", r"model\.onnx: size \d+ bytes, .*larger than declared")),
    Row("bundle-model-missing", lambda c: ["info", c.cb(then=lambda r: (r / "model.onnx").unlink())],
        Refused("info", r"model\.onnx: listed in bundle\.json but missing")),
    Row("bundle-model-symlink-outside", lambda c: ["info", c.cb(then=_symlink_out)],
        Refused("info", r"files\['model\.onnx'\] points outside the bundle")),
    Row("bundle-files-sibling-prefix-escape", lambda c: ["info", c.cb(then=_sibling_escape)],
        Refused("info", r"leaves the bundle")),
    Row("bundle-model-swapped-and-rechecksummed", lambda c: run_classify(
        c, one_image(c), bundle=c.cb(then=_swap_model(5), reseal=True)),
        Refused("run classify", r"variant 'onnx_float32' \(model\.onnx\): model output shape \[null, 5\] "
                                r"disagrees with output\.shape \[null, 3\]")),
    Row("bundle-model-not-a-model-rechecksummed", lambda c: run_classify(
        c, one_image(c), bundle=c.cb(then=_write("model.onnx", b"not a model" * 8), reseal=True)),
        Refused("run classify", r"variant 'onnx_float32'.*not a loadable ONNX")),
    Row("bundle-variant-unknown", lambda c: run_classify(c, one_image(c), "--variant", "tflite_int8"),
        Refused("run classify", r"no variant 'tflite_int8'; available: onnx_float32")),
    Row("bundle-wrong-app-vibration", lambda c: run_vibration(c, B.wav(c.t / "s.wav").as_posix(),
                                                               bundle=c.cb()),
        Refused("run vibration", r"made for the 'classify' application, not 'vibration'")),
    Row("bundle-wrong-app-inspect",
        lambda c: ["run", "inspect", "--bundle", c.cb(), "--source", one_image(c)],
        Refused("run inspect", r"made for the 'classify' application, not 'inspect'")),
    Row("bundle-wrong-app-classify", lambda c: run_classify(c, one_image(c), bundle=c.vb()),
        Refused("run classify", r"made for the 'vibration' application, not 'generic' or 'classify'")),
    Row("bundle-wrong-app-commission", lambda c: ["commission", "vibration", "--bundle", c.cb(), "--source",
                                                  B.wav(c.t / "s.wav").as_posix()],
        Refused("commission vibration", r"made for the 'classify' application, not 'vibration'")),
]

# -- bundles: signatures -------------------------------------------------------------------------------


def _signed_then(change: Callable[[Path], Any], reseal: bool = False) -> Callable[[Ctx], list[str]]:
    def argv(c: Ctx) -> list[str]:
        b, pub = c.signed()
        change(Path(b))
        if reseal:
            B.reseal(Path(b))
        return ["info", b, "--trusted-key", pub]

    return argv


def _foreign(c: Ctx) -> list[str]:
    b, _ = c.signed("theirs")
    _, mine = c.keypair("mine")
    return ["info", b, "--trusted-key", mine]


ROWS += [
    Row("signed-model-tampered", _signed_then(_flip("model.onnx")),
        Refused("info", r"model\.onnx: sha256 mismatch")),
    Row("signed-model-tampered-and-rechecksummed", _signed_then(_flip("model.onnx"), reseal=True),
        Refused("info", r"bundle\.sig: bad signature")),
    Row("signed-bundle-json-edited", _signed_then(lambda r: B.edit_meta(r, _set("labels", ["x", "y", "z"]))),
        Refused("info", r"bundle\.sig: bad signature")),
    Row("signed-signature-garbage", _signed_then(_write("bundle.sig", b"\x00garbage")),
        Refused("info", r"bundle\.sig")),
    Row("signed-signature-removed", _signed_then(lambda r: (r / "bundle.sig").unlink()),
        Refused("info", r"unsigned bundle refused: only bundles signed by")),
    Row("signed-by-a-foreign-key", _foreign,
        Refused("info", r"signed by key [0-9a-f]{16}, which is not trusted here")),
    Row("unsigned-with-trusted-key-flag", lambda c: ["info", c.cb(), "--trusted-key", c.keypair()[1]],
        Refused("info", r"unsigned bundle refused.*--trusted-key")),
    Row("unsigned-run-with-trusted-key-flag", lambda c: run_classify(c, one_image(c), "--trusted-key",
                                                                     c.keypair()[1]),
        Refused("run classify", r"unsigned bundle refused")),
    Row("unsigned-with-trusted-keys-env", lambda c: ["info", c.cb()],
        Refused("info", r"EDGEWISE_TRUSTED_KEYS"), env={"EDGEWISE_TRUSTED_KEYS": "{t}/envkey.pub"}),
    Row("trusted-key-missing-file", lambda c: ["info", c.cb(), "--trusted-key", str(c.t / "nope.pub")],
        Refused("info", r"nope\.pub: no such trusted key file or directory")),
    Row("trusted-key-is-private", lambda c: ["info", c.cb(), "--trusted-key", c.keypair()[0]],
        Refused("info", r"is a private key; a device trusts the public key")),
    Row("trusted-key-not-a-key", lambda c: ["info", c.cb(), "--trusted-key", c.file("junk.pub", "hello")],
        Refused("info", r"junk\.pub: not a PEM public key")),
    Row("trusted-key-empty-directory", lambda c: ["info", c.cb(), "--trusted-key", c.imgs({}, good=False)],
        Refused("info", r"no \*\.pub keys in this trusted-keys directory")),
    Row("sign-with-public-key", lambda c: ["sign", c.cb(), "--key", c.keypair()[1]],
        Refused("sign", r"is a public key; signing needs the private key")),
    Row("sign-a-tampered-bundle", lambda c: ["sign", c.cb(then=_flip("model.onnx")), "--key", c.keypair()[0]],
        Refused("sign", r"model\.onnx: sha256 mismatch")),
    Row("sign-missing-key", lambda c: ["sign", c.cb(), "--key", str(c.t / "none.key")],
        Refused("sign", r"none\.key: no such")),
    Row("keygen-would-overwrite", lambda c: ["keygen", "--out", c.keypair()[0]],
        Refused("keygen", r"already exists; not overwriting")),
    Row("keygen-into-missing-folder", lambda c: ["keygen", "--out", str(c.t / "no" / "dir" / "k")],
        Refused("keygen", r"no such directory")),
]

# -- bundles: zips ---------------------------------------------------------------------------------------


def _zip_bundle(c: Ctx, change: Callable[[dict[str, bytes]], Any] | None = None, **flags: str) -> str:
    root = Path(c.cb())
    members = B.zip_bundle_members(root)
    if change is not None:
        change(members)
    return str(B.zip_of(c.t / f"b{c.n}.zip", members, **flags))


def _corrupt_member(c: Ctx) -> str:
    z = Path(_zip_bundle(c))
    raw = bytearray(z.read_bytes())
    i = raw.find(b"PK\x03\x04", raw.find(b"model.onnx") - 40)
    start = i + 30 + len("model.onnx") + 8
    for k in range(start, start + 32):
        raw[k] ^= 0x5A
    z.write_bytes(bytes(raw))
    return str(z)


ROWS += [
    Row("zip-declared-bomb-over-limit", lambda c: ["info", _zip_bundle(
        c, lambda m: m.__setitem__("pad.bin", b"\x00" * (3 << 20))), "--max-unpacked-mb", "1"],
        Refused("info", r"unpacks to 3\.\d MiB, more than the limit of 1 MiB")),
    Row("zip-underdeclared-member", lambda c: ["info", str(B.underdeclared_zip(
        c.t / "u.zip", Path(c.cb()), "pad.bin", 1 << 20))],
        Refused("info", r"u\.zip: (zip member 'pad\.bin' unpacks to more than its declared 10 bytes|"
                        r"damaged zip member \(Bad CRC-32 for file 'pad\.bin'\))")),
    Row("zip-member-dotdot", lambda c: ["info", _zip_bundle(c, lambda m: m.__setitem__("../evil.txt", b"x"))],
        Refused("info", r"zip member '\.\./evil\.txt' leaves the bundle")),
    Row("zip-member-absolute", lambda c: ["info", _zip_bundle(c, lambda m: m.__setitem__("/tmp/evil", b"x"))],
        Refused("info", r"zip member '/tmp/evil' is an absolute path")),
    Row("zip-member-symlink",
        lambda c: ["info", _zip_bundle(c, lambda m: m.__setitem__("link", b"/etc/passwd"),
                                                             symlink="link")],
        Refused("info", r"zip member 'link' is a symlink")),
    Row("zip-member-encrypted", lambda c: ["info", _zip_bundle(c, encrypted="model.onnx")],
        Refused("info", r"zip member 'model\.onnx' is encrypted")),
    Row("zip-member-corrupt-data", lambda c: ["info", _corrupt_member(c)],
        Refused("info", r"(damaged zip member|sha256 mismatch)")),
    Row("zip-truncated", lambda c: ["info", c.file("t.zip", Path(_zip_bundle(c)).read_bytes()[:300])],
        Refused("info", r"t\.zip: not a valid zip file")),
    Row("zip-garbage", lambda c: ["info", c.file("g.zip", _noise(4096))],
        Refused("info", r"g\.zip: not a valid zip file")),
    Row("zip-empty-file", lambda c: ["info", c.file("e.zip", b"")],
        Refused("info", r"e\.zip: not a valid zip file")),
    Row("zip-without-bundle-json", lambda c: ["info", str(B.zip_of(c.t / "n.zip", {"readme.txt": b"hi"}))],
        Refused("info", r"bundle\.json: missing")),
    Row("zip-10001-members", lambda c: ["info", str(B.zip_of(c.t / "many.zip",
                                                             {f"f{i}": b"" for i in range(10001)}))],
        Refused("info", r"10001 members, more than the 10000")),
    Row("zip-limit-flag-zero", lambda c: ["info", _zip_bundle(c), "--max-unpacked-mb", "0"],
        Refused("info", r"--max-unpacked-mb=0\.0: the unpacked-size limit must be a positive number")),
    Row("zip-limit-flag-nan", lambda c: ["info", _zip_bundle(c), "--max-unpacked-mb", "nan"],
        Refused("info", r"--max-unpacked-mb=nan: the unpacked-size limit must be a positive number")),
    Row("zip-limit-env-garbage", lambda c: ["info", _zip_bundle(c)],
        Refused("info", r"EDGEWISE_MAX_UNPACKED_MB='lots'"), env={"EDGEWISE_MAX_UNPACKED_MB": "lots"}),
]

# -- images: one bad file among good ones is skipped and counted ---------------------------------------

BAD_IMAGES: list[tuple[str, dict[str, bytes | None]]] = [
    ("zero-bytes", {"a.png": b""}),
    ("truncated-png-header", {"a.png": B.png()[:20]}),
    ("truncated-jpeg", {"a.jpg": B.jpeg()[:40]}),
    ("png-bomb-60000x60000", {"a.png": B.png_bomb()}),
    ("jpeg-bomb-65000x65000", {"a.jpg": B.jpeg_bomb()}),
    ("bmp-bomb-60000x60000", {"a.bmp": B.bmp_bomb()}),
    ("gif-bomb-named-png", {"a.png": B.gif_bomb()}),
    ("webp-bomb-named-png", {"a.png": B.webp_bomb()}),
    ("tiff-bomb", {"a.tif": B.tiff_bomb()}),
    ("pgm-bomb", {"a.pgm": B.pnm_bomb()}),
    ("png-claims-0x0", {"a.png": B.png_bomb(0, 0)}),
    ("text-file-named-png", {"a.png": b"this is not an image\n"}),
    ("html-named-jpg", {"a.jpg": b"<html><body>404</body></html>"}),
    ("directory-named-png", {"a.png": None}),
]

ROWS += [
    Row(f"image-{rid}", lambda c, files=files: run_classify(c, c.imgs(files)),
        GoesOn(frames_ok=1, errors={"decode": 1}))
    for rid, files in BAD_IMAGES
]


def _dangling(c: Ctx) -> list[str]:
    d = c.imgs({})
    os.symlink("/nonexistent/x.png", Path(d) / "z.png")
    return run_classify(c, d)


def _unreadable(c: Ctx) -> list[str]:
    d = c.imgs({"secret.png": B.png()})
    os.chmod(Path(d) / "secret.png", 0)
    return run_classify(c, d)


ROWS += [
    Row("image-dangling-symlink", _dangling, GoesOn(frames_ok=1, errors={"decode": 1})),
    Row("image-unreadable-permission", _unreadable, GoesOn(frames_ok=1, errors={"decode": 1}),
        child=True, unprivileged=True),
    # unusual but valid images are decoded and classified, not refused
    Row("image-jpeg-named-png", lambda c: run_classify(c, c.imgs({"a.png": B.jpeg()})),
        GoesOn(frames_ok=2, errors={"decode": 0})),
    Row("image-16-bit-png", lambda c: run_classify(c, c.imgs({"a.png": B.png(dtype=np.uint16)})),
        GoesOn(frames_ok=2, errors={"decode": 0})),
    Row("image-png-with-alpha", lambda c: run_classify(c, c.imgs({"a.png": B.png(channels=4)})),
        GoesOn(frames_ok=2, errors={"decode": 0})),
    Row("image-1x1", lambda c: run_classify(c, c.imgs({"a.png": B.png(1, 1)})),
        GoesOn(frames_ok=2, errors={"decode": 0})),
    Row("image-1x20000-aspect", lambda c: run_classify(c, c.imgs({"a.png": B.png(20000, 1)})),
        GoesOn(frames_ok=2, errors={"decode": 0})),
    Row("image-over-max-image-pixels-flag", lambda c: run_classify(c, c.imgs({"a.png": B.png(64, 64)}),
                                                                   "--max-image-pixels", "1000"),
        GoesOn(frames_ok=1, errors={"decode": 1})),
    # nothing usable at all
    Row("image-folder-all-corrupt", lambda c: run_classify(c, c.imgs(
        {"a.png": b"", "b.png": B.png_bomb(), "c.jpg": b"junk"}, good=False)),
        RunFails("run classify", r"the source delivered no frame \(errors: decode 3\)",
                 errors={"decode": 3})),
    Row("image-folder-empty", lambda c: run_classify(c, c.imgs({}, good=False)),
        Refused("run classify", r"no images \(")),
    Row("image-folder-only-other-suffixes", lambda c: run_classify(c, c.imgs({"a.txt": b"x", "b.gif":
                                                                              B.gif_bomb()}, good=False)),
        Refused("run classify", r"no images \(")),
]

# -- video ------------------------------------------------------------------------------------------------


def _patched_fourcc(c: Ctx) -> list[str]:
    p = B.avi(c.t / "v.avi")
    raw = p.read_bytes().replace(b"MJPG", b"XQZ9")
    p.write_bytes(raw)
    return run_classify(c, str(p))


def _truncated_video(c: Ctx) -> list[str]:
    p = B.avi(c.t / "v.avi", frames=20)
    raw = p.read_bytes()
    p.write_bytes(raw[: len(raw) * 2 // 3])
    return run_classify(c, str(p))


ROWS += [
    Row("video-random-bytes", lambda c: run_classify(c, c.file("v.mp4", _noise(8192))),
        Refused("run classify", r"v\.mp4: cannot open video")),
    Row("video-zero-bytes", lambda c: run_classify(c, c.file("v.mp4", b"")),
        Refused("run classify", r"v\.mp4: cannot open video")),
    Row("video-text-named-avi", lambda c: run_classify(c, c.file("v.avi", "not a video\n" * 100)),
        Refused("run classify", r"v\.avi: cannot open video")),
    Row("video-zero-frames", lambda c: run_classify(c, str(B.avi(c.t / "v.avi", frames=0))),
        GoesOn(frames_ok=0, errors={"decode": 0})),
    Row("video-unknown-codec", _patched_fourcc, Refused("run classify", r"v\.avi: cannot open video")),
    Row("video-truncated", _truncated_video, GoesOn(min_frames_ok=1)),
    Row("video-frames-over-pixel-limit", lambda c: run_classify(c, str(B.avi(c.t / "v.avi")),
                                                                "--max-image-pixels", "100"),
        Refused("run classify", r"frames of 32x24 = .* over the limit")),
    Row("video-source-missing", lambda c: run_classify(c, str(c.t / "nope.mp4")),
        Refused("run classify", r"source '.*nope\.mp4': no such file, folder or camera")),
    Row("video-source-char-device", lambda c: run_classify(c, "/dev/null"),
        Refused("run classify", r"source '/dev/null': no such file, folder or camera")),
]

# -- recordings (run vibration) ----------------------------------------------------------------------------


def _rec(name: str, data: bytes | Callable[[Path], Any], *extra: str) -> Callable[[Ctx], list[str]]:
    def argv(c: Ctx) -> list[str]:
        p = c.t / name
        if callable(data):
            data(p)
        else:
            p.write_bytes(data.encode() if isinstance(data, str) else data)
        return run_vibration(c, str(p), *extra)

    return argv


ROWS += [
    Row("wav-empty-file", _rec("s.wav", b""), Refused("run vibration", r"s\.wav: not a WAV file")),
    Row("wav-truncated-header", _rec("s.wav", B.wav_bytes()[:30]),
        Refused("run vibration", r"s\.wav: WAV file without a valid fmt chunk")),
    Row("wav-no-data-chunk", _rec("s.wav", B.wav_bytes(with_data=False)),
        Refused("run vibration", r"s\.wav: WAV file without a data chunk")),
    Row("wav-alaw-encoding", _rec("s.wav", B.wav_bytes(fmt_tag=6, bits=8)),
        Refused("run vibration", r"s\.wav: unsupported WAV encoding \(format tag 6, 8-bit\)")),
    Row("wav-float-16-bit", _rec("s.wav", B.wav_bytes(fmt_tag=3, bits=16)),
        Refused("run vibration", r"s\.wav: unsupported WAV encoding \(float, 16-bit\)")),
    Row("wav-12-bit-in-16-bit-words-runs", _rec("s.wav", B.wav_bytes(bits=12)),
        GoesOn(frames_ok=2, errors={"preprocess": 0})),
    Row("wav-zero-channels", _rec("s.wav", B.wav_bytes(channels=0)),
        Refused("run vibration", r"s\.wav: corrupt WAV header \(0 channels")),
    Row("wav-zero-rate", _rec("s.wav", B.wav_bytes(rate=0)),
        Refused("run vibration", r"s\.wav: corrupt WAV header")),
    Row("wav-mp3-bytes", _rec("s.wav", b"ID3\x03\x00" + _noise(2000)),
        Refused("run vibration", r"s\.wav: not a WAV file")),
    Row("wav-shorter-than-a-window", _rec("s.wav", lambda p: B.wav(p, B.signal(100))),
        Refused("run vibration", r"100 samples, shorter than one window of 2048")),
    Row("wav-8kHz-for-a-12kHz-model", _rec("s.wav", lambda p: B.wav(p, B.signal(30000, 8000), rate=8000)),
        Refused("run vibration", r"sampled at 8000 Hz, cannot bring it to 12000 Hz")),
    Row("wav-fs-flag-contradicts-header", _rec("s.wav", lambda p: B.wav(p), "--fs", "48000"),
        Refused("run vibration", r"WAV header says 12000 Hz, but --fs 48000 was given")),
    Row("wav-channel-out-of-range", _rec("s.wav", lambda p: B.wav(p), "--channel", "5"),
        Refused("run vibration", r"channel 5 out of range \(file has 1\)")),
    Row("wav-48kHz-is-decimated-and-runs", _rec("s.wav", lambda p: B.wav(p, B.signal(4 * B.WINDOW * 4, 48000),
                                                                         rate=48000)),
        GoesOn(frames_ok=4, errors={"preprocess": 0})),
    Row("mat-missing-channel-key", _rec("s.mat", lambda p: B.mat(p, {"X097_FE_time": B.signal()}),
                                        "--fs", "12000"),
        Refused("run vibration", r"s\.mat: no '\*_DE_time' channel \(keys: X097_FE_time\)")),
    Row("mat-string-where-signal-belongs", _rec("s.mat", lambda p: B.mat(p, {"X097_DE_time": "hello"}),
                                                "--fs", "12000"),
        Refused("run vibration", r"s\.mat: channel X097_DE_time is not numeric \(could not convert string")),
    Row("mat-2d-matrix-channel", _rec("s.mat", lambda p: B.mat(p, {"X097_DE_time": np.ones((3, 3))}),
                                      "--fs", "12000"),
        Refused("run vibration", r"9 samples, shorter than one window")),
    Row("mat-garbage-bytes", _rec("s.mat", b"\x5f\x3b" * 2048, "--fs", "12000"),
        Refused("run vibration", r"s\.mat: not a readable MATLAB file .*Unknown mat file type")),
    Row("npy-object-array-pickle", _rec("s.npy", B.npy_object, "--fs", "12000"),
        Refused("run vibration", r"s\.npy: not a readable \.npy array .*allow_pickle=False")),
    Row("npy-garbage-bytes", _rec("s.npy", b"\x93NUMPY garbage" + _noise(100), "--fs", "12000"),
        Refused("run vibration", r"s\.npy: not a readable \.npy array \(we only support format version")),
    Row("npy-empty-array", _rec("s.npy", lambda p: np.save(p, np.zeros(0)), "--fs", "12000"),
        Refused("run vibration", r"s\.npy: recording is empty")),
    Row("npy-all-nan", _rec("s.npy", lambda p: np.save(p, np.full(3 * B.WINDOW, np.nan)), "--fs", "12000"),
        RunFails("run vibration", r"all 3 frames failed \(errors: preprocess 3\)", errors={"preprocess": 3})),
    Row("npy-some-inf", _rec("s.npy", lambda p: np.save(p, np.r_[B.signal(2 * B.WINDOW), np.full(B.WINDOW,
                                                                                                    np.inf)]),
                            "--fs", "12000"),
        GoesOn(frames_ok=2, errors={"preprocess": 1})),
    Row("npy-without-fs", _rec("s.npy", lambda p: np.save(p, B.signal())),
        Refused("run vibration",
                r"s\.npy: this format carries no sampling rate; pass it explicitly \(--fs HZ\)")),
    Row("npy-fs-zero", _rec("s.npy", lambda p: np.save(p, B.signal()), "--fs", "0"),
        Refused("run vibration", r"--fs -?\d+: must be a positive, finite number of Hz")),
    Row("npy-fs-negative", _rec("s.npy", lambda p: np.save(p, B.signal()), "--fs", "-12000"),
        Refused("run vibration", r"--fs -?\d+: must be a positive, finite number of Hz")),
    Row("npy-fs-nan", _rec("s.npy", lambda p: np.save(p, B.signal()), "--fs", "nan"),
        Refused("run vibration", r"--fs nan: must be a positive, finite number of Hz")),
    Row("npy-fs-inf", _rec("s.npy", lambda p: np.save(p, B.signal()), "--fs", "inf"),
        Refused("run vibration", r"--fs inf: must be a positive, finite number of Hz")),
    Row("csv-garbage", _rec("s.csv", "1.0\nhello,world\n\x00\x01\n", "--fs", "12000"),
        Refused("run vibration", r"s\.csv: not a numeric CSV \(could not convert string .hello,world.")),
    Row("csv-nan-and-inf", _rec("s.csv", "\n".join(["nan"] * B.WINDOW + ["inf"] * B.WINDOW
                                                   + ["0.5"] * B.WINDOW) + "\n", "--fs", "12000"),
        GoesOn(frames_ok=1, errors={"preprocess": 2})),
    Row("csv-unknown-column", _rec("s.csv", "a,b\n" + "1,2\n" * 10, "--fs", "12000", "--channel", "z"),
        Refused("run vibration", r"s\.csv: no column 'z'")),
    Row("csv-empty-file", _rec("s.csv", b"", "--fs", "12000"),
        Refused("run vibration", r"s\.csv: recording is empty")),
    Row("recording-unknown-suffix", _rec("s.flac", b"fLaC" + _noise(100), "--fs", "12000"),
        Refused("run vibration", r"unknown recording type '\.flac'")),
    Row("recording-missing", lambda c: run_vibration(c, str(c.t / "nope.wav")),
        Refused("run vibration", r"nope\.wav: no such recording")),
    Row("recording-is-a-directory", lambda c: run_vibration(c, c.imgs({}, good=False)),
        Refused("run vibration", r"no such recording")),
]

# -- stdin (run vibration --source -) ----------------------------------------------------------------------

GOOD_LINES = "".join(f"{v:.6f}\n" for v in B.signal(B.WINDOW * 2)).encode()


def _stdin(*extra: str) -> Callable[[Ctx], list[str]]:
    return lambda c: run_vibration(c, "-", "--fs", "12000", *extra)


ROWS += [
    Row("stdin-empty", _stdin(), GoesOn(frames_ok=0, errors={"preprocess": 0}), stdin=b""),
    Row("stdin-garbage-text", _stdin(), RunFails("run vibration", r"all 2 frames failed", {"preprocess": 2}),
        stdin=b"hello\n" * (B.WINDOW * 2)),
    Row("stdin-binary-garbage", _stdin(), RunFails("run vibration", r"frames failed"),
        stdin=b"\xff\xfe\x00\x01\x80\x7f\n" * (B.WINDOW * 2)),
    Row("stdin-nan-lines", _stdin(), RunFails("run vibration", r"all 1 frames failed", {"preprocess": 1}),
        stdin=b"nan\n" * B.WINDOW),
    Row("stdin-good-then-garbage", _stdin(), GoesOn(frames_ok=2, errors={"preprocess": 1}),
        stdin=GOOD_LINES + b"x\n" * B.WINDOW),
    Row("stdin-partial-last-line", _stdin(), GoesOn(frames_ok=1, errors={"preprocess": 0}),
        stdin=b"0.1\n" * (B.WINDOW - 1) + b"0.2"),
    Row("stdin-one-endless-line", _stdin(), RunFails("run vibration", r"frames failed"),
        stdin=b"1" * (300 * B.WINDOW)),
    Row("stdin-f32le-odd-byte-count", _stdin("--stdin-format", "f32le"), GoesOn(frames_ok=1),
        stdin=B.signal(B.WINDOW).astype("<f4").tobytes() + b"\x01\x02"),
    Row("stdin-f32le-nan-payload", _stdin("--stdin-format", "f32le"),
        RunFails("run vibration", r"all 1 frames failed", {"preprocess": 1}),
        stdin=np.full(B.WINDOW, np.nan, "<f4").tobytes()),
    Row("stdin-without-fs", lambda c: run_vibration(c, "-"),
        Refused("run vibration", r"stdin carries no sampling rate; pass it explicitly \(--fs HZ\)"),
        stdin=b""),
    Row("stdin-format-unknown", _stdin("--stdin-format", "f64be"),
        Refused("run vibration", r"argument --stdin-format: invalid choice: 'f64be'"), stdin=b""),
    Row("stdin-piped-garbage-child", _stdin(), RunFails("run vibration", r"frames failed"),
        stdin=b"\xc3\x28\xa0\xa1\n" * (B.WINDOW * 2), child=True),
]

# -- command-line flags --------------------------------------------------------------------------------------

RC = run_classify


def _run_flag(*flags: str) -> Callable[[Ctx], list[str]]:
    return lambda c: RC(c, one_image(c), *flags)


def _vib_flag(*flags: str) -> Callable[[Ctx], list[str]]:
    return lambda c: run_vibration(c, str(B.wav(c.t / "s.wav")), *flags)


FLAGS: list[tuple[Any, ...]] = [  # (id, argv, command, one-line pattern[, exit code])
    ("run-classify-threads-0", _run_flag("--threads", "0"), "run classify",
     r"--threads 0: must be at least 1"),
    ("run-classify-threads-negative", _run_flag("--threads", "-4"), "run classify", r"--threads -4: must be"),
    ("run-classify-threads-word", _run_flag("--threads", "many"), "run classify",
     r"argument --threads: invalid int value: 'many'"),
    ("run-classify-max-frames-negative", _run_flag("--max-frames", "-1"), "run classify",
     r"--max-frames -1: must be at least 1"),
    ("run-classify-stats-window-0", _run_flag("--stats-window", "0"), "run classify",
     r"--stats-window 0: must be at least 1"),
    ("run-classify-give-up-after-negative", _run_flag("--give-up-after", "-1"), "run classify",
     r"--give-up-after -1: must be 0 \(never\) or more"),
    ("run-classify-max-image-pixels-0", _run_flag("--max-image-pixels", "0"), "run classify",
     r"--max-image-pixels 0: must be at least 1"),
    ("run-classify-status-port-70000", _run_flag("--status-port", "70000"), "run classify",
     r"--status-port 70000: must be 0-65535"),
    ("run-classify-status-port-negative", _run_flag("--status-port", "-1"), "run classify",
     r"--status-port -1: must be 0-65535"),
    ("run-classify-status-port-word", _run_flag("--status-port", "http"), "run classify",
     r"argument --status-port: invalid int value: 'http'"),
    ("run-classify-log-every-negative", _run_flag("--log-every", "-5"), "run classify",
     r"--log-every -5: must be 0 \(off\) or more seconds"),
    ("run-classify-mqtt-port-word", _run_flag("--mqtt", "broker:abc"), "run classify",
     r"MQTT broker 'broker:abc': port 'abc' is not a number"),
    ("run-classify-mqtt-no-host", _run_flag("--mqtt", ":1883"), "run classify",
     r"MQTT broker ':1883': expected HOST\[:PORT\]"),
    ("run-classify-mqtt-port-99999", _run_flag("--mqtt", "127.0.0.1:99999"), "run classify",
     r"MQTT broker '127\.0\.0\.1:99999': port 99999 is outside 1-65535"),
    ("run-classify-mqtt-device-id-slash", _run_flag("--mqtt", "127.0.0.1:1", "--device-id", "a/#"),
     "run classify", r"MQTT device id 'a/#': use letters, digits"),
    ("run-classify-camera-size-garbage", _run_flag("--camera-size", "big"), "run classify",
     r"--camera-size 'big': expected WIDTHxHEIGHT"),
    ("run-classify-camera-size-zero", _run_flag("--camera-size", "0x480"), "run classify",
     r"--camera-size '0x480': width and height must be at least 1"),
    ("run-classify-camera-format-unknown", _run_flag("--camera-format", "MJPEG"), "run classify",
     r"argument --camera-format: invalid choice: 'MJPEG'"),
    ("run-classify-bundle-flag-missing", lambda c: ["run", "classify", "--source", one_image(c)],
     "run classify",
     r"the following arguments are required: --bundle"),
    ("run-classify-unknown-flag", _run_flag("--frobnicate"), "run classify",
     r"unrecognized arguments: --frobnicate"),
    ("run-vibration-hop-0", _vib_flag("--hop", "0"), "run vibration", r"--hop 0: must be at least 1 sample"),
    ("run-vibration-hop-negative", _vib_flag("--hop", "-100"), "run vibration",
     r"--hop -100: must be at least 1 sample"),
    ("run-vibration-alarm-n-0", _vib_flag("--alarm-n", "0"), "run vibration",
     r"debounce needs 1 <= n <= m, got n=0 m=3"),
    ("run-vibration-alarm-m-negative", _vib_flag("--alarm-m", "-3"), "run vibration",
     r"debounce needs 1 <= n <= m, got n=2 m=-3"),
    ("run-vibration-alarm-n-over-m", _vib_flag("--alarm-n", "5", "--alarm-m", "2"), "run vibration",
     r"debounce needs 1 <= n <= m, got n=5 m=2"),
    ("run-vibration-rpm-negative", _vib_flag("--rpm", "-1800"), "run vibration",
     r"--rpm -1800: the shaft speed must be a positive number of rev/min"),
    ("run-vibration-rpm-nan", _vib_flag("--rpm", "nan"), "run vibration",
     r"--rpm nan: the shaft speed must be a positive number of rev/min"),
    ("run-vibration-threads-0", _vib_flag("--threads", "0"), "run vibration",
     r"--threads 0: must be at least 1"),
    ("run-vibration-commissioning-missing", _vib_flag("--commissioning", "/nonexistent/c.json"),
     "run vibration",
     r"/nonexistent/c\.json: cannot read \(No such file or directory\)"),
    ("run-inspect-pulse-0", lambda c: ["run", "inspect", "--bundle", c.cb(), "--source", one_image(c),
                                       "--pulse", "0"], "run inspect", r"--pulse 0\.0: must be positive"),
    ("run-inspect-roi-short", lambda c: ["run", "inspect", "--bundle", c.cb(), "--source", one_image(c),
                                         "--roi", "1,2"], "run inspect", r"--roi must be x,y,w,h"),
    ("run-inspect-gpio-pin-99", lambda c: ["run", "inspect", "--bundle", c.cb(), "--source", one_image(c),
                                           "--gpio-pin", "99"], "run inspect",
     r"--gpio-pin 99: a Raspberry Pi BCM pin is 0\.\.27"),
    ("run-face-missing-gallery", lambda c: ["run", "face", "--bundle", c.cb(), "--source", one_image(c)],
     "run face", r"the following arguments are required: --gallery"),
    ("run-unknown-app", lambda c: ["run", "teleport"], "run", r"argument APP: invalid choice: 'teleport'"),
    ("unknown-command", lambda c: ["frobnicate"], "", r"argument COMMAND: invalid choice: 'frobnicate'"),
    ("info-unknown-flag", lambda c: ["info", c.cb(), "--fast"], "info", r"unrecognized arguments: --fast"),
    ("info-json-without-path", lambda c: ["info", c.cb(), "--json"], "info",
     r"argument --json: expected one argument"),
    ("bench-threads-0", lambda c: ["bench", c.cb(), "--threads", "0"], "bench",
     r"--threads and --iterations must be at least 1"),
    ("bench-iterations-negative", lambda c: ["bench", c.cb(), "--iterations", "-5"], "bench",
     r"--threads and --iterations must be at least 1"),
    ("bench-warmup-negative", lambda c: ["bench", c.cb(), "--warmup", "-1"], "bench", r"--warmup at least 0"),
    ("bench-variant-unknown", lambda c: ["bench", c.cb(), "--variants", "tflite_int8"], "bench",
     r"no variant 'tflite_int8'; available: onnx_float32"),
    ("commission-minutes-0", lambda c: ["commission", "vibration", "--bundle", c.vb(), "--source",
                                        str(B.wav(c.t / "s.wav")), "--minutes", "0"], "commission vibration",
     r"--minutes must be positive, got 0"),
    ("verify-threads-0", lambda c: ["verify", c.cb(), "--threads", "0"], "verify",
     r"--threads and --app-frames must be at least 1"),
    ("convert-model-missing", lambda c: ["convert", str(c.t / "m.keras"), "--data", str(c.t / "d.npz"),
                                         "--out", str(c.t / "o")], "convert", r"m\.keras: no such file"),
    ("convert-face-detector-model-missing",
     lambda c: ["convert", "--task", "face-detector", str(c.t / "y.onnx"), "--calib", c.imgs({}),
                "--eval", c.imgs({}), "--out", str(c.t / "o")], "convert",
     r"y\.onnx: expected a YuNet \.onnx file"),
    ("convert-face-detector-corrupt-onnx",
     lambda c: ["convert", "--task", "face-detector", c.file("y.onnx", _noise(500)), "--calib", c.imgs({}),
                "--eval", c.imgs({}), "--out", str(c.t / "o")], "convert",
     r"y\.onnx: not a readable ONNX model"),
    ("convert-face-detector-no-images",
     lambda c: ["convert", "--task", "face-detector", c.file("y.onnx", _noise(500)), "--calib",
                c.imgs({}, good=False), "--eval", c.imgs({}), "--out", str(c.t / "o")], "convert",
     r"imgs.*: no images \("),
    ("bench-face-detector-missing-file",
     lambda c: ["bench", "face-detector", "--data", str(c.t), "--detector", str(c.t / "d.tflite")],
     "bench face-detector", r"OpenCV's YuNet \(the reference\) is not in the --data folder"),
    ("enroll-remove-from-empty-gallery",
     lambda c: ["enroll", "--gallery", str(c.t / "g.db"), "--remove", "bob"],
     "enroll", r"'bob' is not in", 1),
    ("soak-bundle-spec-garbage", lambda c: ["soak", "--bundle", "nonsense"], "soak",
     r"--bundle nonsense: expected APP=PATH"),
    ("demo-unknown-part", lambda c: ["demo", "--apps", "bogus"], "demo", r"--apps bogus: unknown part"),
    ("deploy-host-looks-like-an-option", lambda c: ["deploy", c.cb(), "--app", "classify", "--host",
                                                    "-oProxyCommand=x"], "deploy",
     r"argument --host: expected one argument"),
    ("deploy-host-starts-with-dash", lambda c: ["deploy", c.cb(), "--app", "classify",
                                                "--host=-oProxyCommand=x"], "deploy",
     r"host '-oProxyCommand=x': must not start with '-' or contain whitespace"),
    ("deploy-host-with-space", lambda c: ["deploy", c.cb(), "--app", "classify", "--host", "pi@pi local"],
     "deploy", r"must not start with '-' or contain whitespace"),
    ("deploy-host-shell-chars", lambda c: ["deploy", c.cb(), "--app", "classify", "--host", "pi@$(reboot)"],
     "deploy", r"is not a host name or IP address"),
    ("deploy-host-port-70000", lambda c: ["deploy", c.cb(), "--app", "classify", "--host", "pi@pi:70000"],
     "deploy", r"port 70000 is outside 1-65535"),
    ("deploy-host-port-word", lambda c: ["deploy", c.cb(), "--app", "classify", "--host", "pi@pi:ssh"],
     "deploy", r"port 'ssh' is not a number"),
    ("deploy-keep-0", lambda c: ["deploy", c.cb(), "--app", "classify", "--host", "pi@pi", "--keep", "0"],
     "deploy", r"--keep and --jobs must be at least 1"),
    ("deploy-health-wait-negative", lambda c: ["deploy", c.cb(), "--app", "classify", "--host", "pi@pi",
                                               "--health-wait", "-1"], "deploy", r"--health-wait at least 0"),
    ("deploy-ssh-option-without-value", lambda c: ["deploy", c.cb(), "--app", "classify", "--host", "pi@pi",
                                                   "--ssh-option=-oProxyCommand=x"], "deploy",
     r"--ssh-option '-oProxyCommand=x': expected KEY=VALUE"),
    ("deploy-trusted-and-untrusted", lambda c: ["deploy", c.cb(), "--app", "classify", "--host", "pi@pi",
                                                "--trusted-key", c.keypair()[1], "--no-trusted-keys"],
     "deploy",
     r"--trusted-key and --no-trusted-keys contradict each other"),
    ("deploy-extras-shell", lambda c: ["deploy", c.cb(), "--app", "classify", "--host", "pi@pi",
                                       "--extras", "pi;rm -rf /"], "deploy", r"--extras 'pi;rm -rf /'"),
    ("deploy-run-args-unbalanced-quote", lambda c: ["deploy", c.cb(), "--app", "classify", "--host", "pi@pi",
                                                    "--run-args", "--source 'x"], "deploy", r"--run-args"),
    ("deploy-app-unknown", lambda c: ["deploy", c.cb(), "--app", "toaster", "--host", "pi@pi"], "deploy",
     r"argument --app: invalid choice: 'toaster'"),
    ("deploy-no-target", lambda c: ["deploy", c.cb(), "--app", "classify"], "deploy", r"no target"),
]

ROWS += [Row(f"flag-{rid}", argv, Refused(cmd, pat, *code)) for rid, argv, cmd, pat, *code in FLAGS]

# -- faults: sinks, brokers, disks -------------------------------------------------------------------------


def _jsonl_flag(c: Ctx, *flags: str) -> list[str]:
    argv = RC(c, one_image(c))
    i = argv.index("--jsonl")
    return argv[:i] + argv[i + 2:] + list(flags)


def _readonly_dir(c: Ctx) -> str:
    d = c.t / "ro"
    d.mkdir(exist_ok=True)
    os.chmod(d, 0o555)
    return str(d)


def _busy_port(c: Ctx) -> list[str]:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    c.keep = s  # type: ignore[attr-defined]  # held open for the row
    return RC(c, one_image(c), "--status-port", str(s.getsockname()[1]))


ROWS += [
    Row("fault-jsonl-disk-full", lambda c: RC(c, c.imgs({"1.png": B.png(), "2.png": B.png()}))[:-4]
        + ["--jsonl", "/dev/full", "--stats", str(c.stats)],
        GoesOn(frames_ok=3, sinks={"jsonl": {"written": 0, "failed": 3}})),
    Row("fault-jsonl-is-a-directory", lambda c: _jsonl_flag(c, "--jsonl", str(c.t)),
        Refused("run classify", r"Is a directory")),
    Row("fault-jsonl-parent-is-a-file", lambda c: _jsonl_flag(c, "--jsonl", c.file("f", "x") + "/e.jsonl"),
        Refused("run classify", r"f: (File exists|Not a directory)")),
    Row("fault-jsonl-read-only-folder", lambda c: _jsonl_flag(c, "--jsonl", _readonly_dir(c) + "/e.jsonl"),
        Refused("run classify", r"e\.jsonl: Permission denied"), child=True, unprivileged=True),
    Row("fault-sqlite-is-a-directory", lambda c: RC(c, one_image(c), "--sqlite", str(c.t)),
        Refused("run classify", r"SQLite event log .*: unable to open database file")),
    Row("fault-sqlite-not-a-database",
        lambda c: RC(c, one_image(c), "--sqlite", c.file("e.db", _noise(4096))),
        Refused("run classify", r"SQLite event log .*e\.db: file is not a database")),
    Row("fault-sqlite-read-only-folder",
        lambda c: RC(c, one_image(c), "--sqlite", _readonly_dir(c) + "/e.db"),
        Refused("run classify", r"e\.db"), child=True, unprivileged=True),
    Row("fault-stats-path-is-a-directory", lambda c: RC(c, one_image(c))[:-2] + ["--stats", str(c.t)],
        Refused("run classify", r"--stats .*: is a folder; give a file name")),
    Row("fault-stats-folder-missing",
        lambda c: RC(c, one_image(c))[:-2] + ["--stats", str(c.t / "no/s.json")],
        Refused("run classify", r"--stats .*s\.json: folder .*no does not exist")),
    Row("fault-mqtt-broker-unreachable",
        lambda c: RC(c, one_image(c), "--mqtt", "127.0.0.1:1", "--mqtt-buffer",
                                                      str(c.t / "out.db")),
        GoesOn(frames_ok=1, sinks={"mqtt": {"buffered": 1}})),
    Row("fault-mqtt-buffer-is-a-directory", lambda c: RC(c, one_image(c), "--mqtt", "127.0.0.1:1",
                                                         "--mqtt-buffer", str(c.t)),
        Refused("run classify", r"--mqtt-buffer .*: is a directory")),
    Row("fault-mqtt-buffer-parent-is-a-file", lambda c: RC(c, one_image(c), "--mqtt", "127.0.0.1:1",
                                                           "--mqtt-buffer", c.file("f", "x") + "/o.db"),
        Refused("run classify", r"--mqtt-buffer .*: .* is not a folder")),
    Row("fault-mqtt-buffer-not-a-database", lambda c: RC(c, one_image(c), "--mqtt", "127.0.0.1:1",
                                                         "--mqtt-buffer", c.file("o.db", _noise(4096))),
        Refused("run classify", r"--mqtt-buffer .*o\.db: file is not a database")),
    Row("fault-mqtt-buffer-read-only-folder", lambda c: RC(c, one_image(c), "--mqtt", "127.0.0.1:1",
                                                           "--mqtt-buffer", _readonly_dir(c) + "/o.db"),
        Refused("run classify", r"--mqtt-buffer .*: folder .* is not writable"),
        child=True, unprivileged=True),
    Row("fault-status-port-in-use", _busy_port,
        Refused("run classify",
                r"status page: cannot listen on 127\.0\.0\.1:\d+ \(Address already in use\)")),
    Row("fault-model-fails-every-frame", lambda c: RC(c, c.imgs({f"{i}.png": B.png() for i in range(3)}),
                                                      bundle=c.cb(_set("input.normalization.mean", [1.0] * 7),
                                                                  then=lambda r: B.edit_meta(
                                                                      r, _set("input.normalization.std",
                                                                              [1.0] * 7)))),
        RunFails("run classify", r"all 4 frames failed")),
]


# -- the same refusals through the other loaders, and the commands not covered above ---------------------


def _face(c: Ctx, bundle: str, gallery: bytes | None = b"") -> list[str]:
    g = c.t / "g.db"
    if gallery is not None:
        g.write_bytes(gallery)
    return ["run", "face", "--bundle", bundle, "--gallery", str(g), "--source", one_image(c),
            "--detector", "haar", "--jsonl", ""]


def _signed_zip_edited(c: Ctx) -> list[str]:
    b, pub = c.signed()
    B.edit_meta(Path(b), _set("labels", ["x", "y", "z"]))
    return ["info", str(B.zip_of(c.t / "s.zip", B.zip_bundle_members(Path(b)))), "--trusted-key", pub]


ROWS += [
    Row("run-bundle-tampered", lambda c: RC(c, one_image(c), bundle=c.cb(then=_flip("model.onnx"))),
        Refused("run classify", r"model\.onnx: sha256 mismatch")),
    Row("run-bundle-json-wrong-type", lambda c: RC(c, one_image(c), bundle=c.cb(_set("labels", 5))),
        Refused("run classify", r"bundle\.json: labels: must be an array")),
    Row("run-zip-bundle-over-unpack-limit", lambda c: RC(c, one_image(c), "--max-unpacked-mb", "0.001",
                                                         bundle=_zip_bundle(c)),
        Refused("run classify", r"unpacks to .* MiB, more than the limit")),
    Row("run-zip-bundle-escaping-member", lambda c: RC(c, one_image(c), bundle=_zip_bundle(
        c, lambda m: m.__setitem__("a/../../x", b"x"))),
        Refused("run classify", r"zip member 'a/\.\./\.\./x' leaves the bundle")),
    Row("run-vibration-bundle-tampered", lambda c: run_vibration(c, str(B.wav(c.t / "s.wav")), bundle=(
        lambda v: (_flip("model.onnx")(Path(v)), v)[1])(c.vb())),
        Refused("run vibration", r"model\.onnx: sha256 mismatch")),
    Row("signed-zip-bundle-json-edited", _signed_zip_edited, Refused("info", r"bundle\.sig: bad signature")),
    Row("signed-run-by-a-foreign-key-env", lambda c: RC(c, one_image(c), bundle=c.signed("theirs")[0]),
        Refused("run classify", r"signed by key [0-9a-f]{16}, which is not trusted here"),
        env={"EDGEWISE_TRUSTED_KEYS": "{t}/envkey.pub"}),
    Row("bundle-wrong-app-face", lambda c: _face(c, c.cb()),
        Refused("run face", r"made for the 'classify' application, not 'face'")),
    Row("face-gallery-missing", lambda c: _face(c, c.cb(), gallery=None),
        Refused("run face", r"g\.db: no such gallery")),
    Row("face-gallery-not-a-database", lambda c: _face(c, c.cb(), gallery=b"\x00garbage" * 500),
        Refused("run face", r"g\.db")),
    Row("bench-vibration-with-a-classify-bundle", lambda c: ["bench", "vibration", "--bundle", c.cb()],
        Refused("bench vibration", r"app is 'classify', not a vibration bundle")),
    Row("flag-bench-face-threads-0", lambda c: ["bench", "face", "--bundle", c.cb(), "--threads", "0"],
        Refused("bench face", r"--threads must be at least 1")),
    Row("flag-bench-inspect-threads-list",
        lambda c: ["bench", "inspect", "--bundle", c.cb(), "--threads", "1,2"],
        Refused("bench inspect", r"argument --threads: invalid int value: '1,2'")),
    Row("flag-train-classify-epochs-negative", lambda c: ["train", "classify", "--out", str(c.t / "o"),
                                                          "--epochs", "-3"],
        Refused("train classify", r"--epochs -3: must be at least 1")),
    Row("flag-train-vibration-window-8",
        lambda c: ["train", "vibration", "--out", str(c.t / "o"), "--window", "8"],
        Refused("train vibration", r"--window must be at least 64")),
    Row("flag-train-inspect-data-missing", lambda c: ["train", "inspect", "--data", str(c.t / "no"), "--out",
                                                      str(c.t / "o")],
        Refused("train inspect", r"no such data folder")),
    Row("flag-train-inspect-unseen-kind-unknown",
        lambda c: ["train", "inspect", "--good-dir", c.imgs({}), "--defect-dir", c.imgs({}), "--out",
                   str(c.t / "o"), "--unseen-kinds", "scratch"],
        Refused("train inspect", r"--unseen-kinds: no defect kind scratch in the data")),
    Row("flag-train-inspect-save-weights-suffix",
        lambda c: ["train", "inspect", "--good-dir", c.imgs({}), "--defect-dir", c.imgs({}), "--out",
                   str(c.t / "o"), "--save-weights", str(c.t / "w.h5")],
        Refused("train inspect", r"--save-weights .*w\.h5: the name must end in \.weights\.h5")),
    Row("flag-train-inspect-epochs-0-without-weights",
        lambda c: ["train", "inspect", "--good-dir", c.imgs({}), "--defect-dir", c.imgs({}), "--out",
                   str(c.t / "o"), "--epochs", "0"],
        Refused("train inspect", r"epochs must be >= 1 \(0 only with --weights")),
    Row("flag-train-face-data-missing", lambda c: ["train", "face", "--data", str(c.t / "no"), "--out",
                                                   str(c.t / "o")],
        Refused("train face", r"does not exist")),
    Row("flag-soak-frames-1", lambda c: ["soak", "--bundle", f"classify={c.cb()}", "--frames", "1"],
        Refused("soak", r"--frames must be at least 2")),
    Row("flag-enroll-without-images", lambda c: ["enroll", "--gallery", str(c.t / "g.db"), "--name", "bob"],
        Refused("enroll", r"enrolling needs --name, --bundle and --images DIR or --camera")),
    Row("flag-enroll-images-missing", lambda c: ["enroll", "--gallery", str(c.t / "g.db"), "--bundle", c.cb(),
                                                 "--name", "bob", "--images", str(c.t / "no")],
        Refused("enroll", r"no such image folder")),
    Row("flag-verify-app-frames-0", lambda c: ["verify", c.cb(), "--app-frames", "0"],
        Refused("verify", r"--threads and --app-frames must be at least 1")),
    Row("flag-run-classify-max-frames-0", _run_flag("--max-frames", "0"),
        Refused("run classify", r"--max-frames 0: must be at least 1")),
    Row("flag-run-classify-mqtt-port-0", _run_flag("--mqtt", "127.0.0.1:0"),
        Refused("run classify", r"MQTT broker '127\.0\.0\.1:0': port 0 is outside 1-65535")),
    Row("stdin-empty-child", _stdin(), GoesOn(frames_ok=0), stdin=b"", child=True),
    Row("stdin-partial-last-line-child", _stdin(), GoesOn(frames_ok=1, errors={"preprocess": 0}),
        stdin=b"0.25\n" * (B.WINDOW - 1) + b"-0.25", child=True),
]


# -- running a row ------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No ambient trusted keys, unpack limit or datasets; a private temporary folder for zips."""
    for var in ("EDGEWISE_TRUSTED_KEYS", "EDGEWISE_MAX_UNPACKED_MB", "EDGEWISE_DATA"):
        monkeypatch.delenv(var, raising=False)
    signing.use_trusted_keys(None)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.chdir(tmp_path)


def _own_lines(err: str) -> list[str]:
    """The command's own lines (log lines of a child process are timestamped and left out)."""
    return [ln for ln in err.strip().splitlines() if ln.startswith("edgewise")]


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_bad_input(row: Row, tmp_path: Path, capsys: pytest.CaptureFixture, caplog: pytest.LogCaptureFixture,
                   monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = Ctx(tmp_path)
    env = {k: v.format(t=tmp_path) for k, v in row.env.items()}
    if "EDGEWISE_TRUSTED_KEYS" in env:
        ctx.keypair("envkey")
    argv = row.argv(ctx)
    capsys.readouterr()
    if row.child:
        rc, out, err = B.run_child(argv, stdin=row.stdin, unprivileged=row.unprivileged, env=env, timeout=90)
    else:
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        if row.stdin is not None:
            import io

            monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(row.stdin)))
        caplog.set_level(logging.INFO)
        rc, out, err = B.run_inproc(argv, capsys)
        logged = [r for r in caplog.records if r.exc_info and r.levelno > logging.DEBUG]
        assert not logged, f"a traceback was logged: {logged[0].getMessage()}"
    assert "Traceback" not in err and "Traceback" not in out, err
    cmd = getattr(row.expect, "cmd", " ".join(argv[:2]) if argv[0] in ("run",) else argv[0])
    prefix = f"edgewise {cmd}: error: " if cmd else "edgewise: error: "
    e = row.expect
    if isinstance(e, Refused):
        lines = _own_lines(err)
        assert rc == e.code, err
        assert len(lines) == 1, err
        assert lines[0].startswith(prefix) and re.search(e.pattern, lines[0][len(prefix):]), lines[0]
        if not row.child:
            assert len(err.strip().splitlines()) == 1, err  # nothing else: no usage block, no stats
        return
    if isinstance(e, RunFails):
        assert rc == 1, err
        last = err.strip().splitlines()[-1]
        assert last.startswith(prefix) and re.search(e.pattern, last[len(prefix):]), last
        stats = json.loads(ctx.stats.read_text())
        assert stats["frames_ok"] == 0
        for kind, n in e.errors.items():
            assert stats["errors_by_kind"][kind] == n, stats["errors_by_kind"]
        return
    assert rc == 0, err
    assert not [ln for ln in _own_lines(err) if "error:" in ln], err
    stats = json.loads(ctx.stats.read_text())
    if e.frames_ok is not None:
        assert stats["frames_ok"] == e.frames_ok, stats
    assert stats["frames_ok"] >= e.min_frames_ok, stats
    for kind, n in e.errors.items():
        assert stats["errors_by_kind"][kind] == n, stats["errors_by_kind"]
    for sink, counts in e.sinks.items():
        for k, n in counts.items():
            assert stats["sinks"][sink][k] == n, stats["sinks"]


# -- rows that need a signal or a clock ---------------------------------------------------------------------


def test_bad_input_all_corrupt_folder_with_loop_stops_on_sigterm_within_a_second(tmp_path: Path) -> None:
    """A folder whose every file is corrupt, run with ``--loop``: SIGTERM ends it promptly, and
    the error log stays within its budget instead of a line per attempt."""
    ctx = Ctx(tmp_path)
    folder = ctx.imgs({"a.png": b"", "b.jpg": B.jpeg_bomb(), "c.png": b"junk"}, good=False)
    argv = run_classify(ctx, folder, "--loop")
    p = subprocess.Popen([sys.executable, "-m", "edgewise.edge.cli", *argv], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    try:
        time.sleep(4.0)  # a few passes over the folder (one per second when nothing is readable)
        assert p.poll() is None, p.stderr.read().decode()  # type: ignore[union-attr]
        t0 = time.monotonic()
        p.send_signal(signal.SIGTERM)
        _, err_b = p.communicate(timeout=10)
        stopped_after = time.monotonic() - t0
    finally:
        if p.poll() is None:
            p.kill()
    err = err_b.decode()
    assert stopped_after < 1.5, stopped_after
    assert "Traceback" not in err
    assert len(err.splitlines()) < 40, err  # rate-limited: not one line per failed attempt
    stats = json.loads(ctx.stats.read_text())
    assert stats["frames_ok"] == 0 and stats["errors_by_kind"]["decode"] >= 6
    assert p.returncode == 1 and err.strip().splitlines()[-1].startswith("edgewise run classify: error: ")


def test_bad_input_corpus_has_at_least_120_distinct_rows() -> None:
    ids = [r.id for r in ROWS]
    assert len(ids) == len(set(ids))
    assert len(ids) >= 120, len(ids)
