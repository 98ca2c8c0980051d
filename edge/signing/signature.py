"""The detached signature of a bundle (``bundle.sig``) and the check every loader makes.

What is signed is the manifest: ``bundle.json`` in canonical form (keys sorted, no whitespace,
ASCII escapes) behind a fixed domain prefix. The manifest pins every file by size and sha256,
so one signature covers every file: a changed model is caught by its checksum, and a checksum
rewritten to match is caught by the signature. The canonical form is taken from the parsed
document the loader goes on to use, so what is verified is exactly what runs, and re-indenting
``bundle.json`` does not break a signature while changing any value does.

``bundle.sig`` sits beside ``bundle.json`` and is not listed in its ``files`` (it cannot pin
its own checksum). It is JSON, so a person can read who signed::

    {"format": "edgewise-bundle-signature", "version": 1, "algorithm": "ed25519",
     "key_id": "<16 hex>", "public_key": "<base64, 32 bytes>", "signed": "bundle.json",
     "manifest_sha256": "<hex of the canonical bytes>", "signature": "<base64, 64 bytes>"}

The embedded public key lets any loader check the signature (integrity); only a device that
trusts that key (``--trusted-key`` / ``EDGEWISE_TRUSTED_KEYS``) learns who made the bundle.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..spec import BundleError
from .keys import TrustedKey, key_id, load_trusted_keys, trusted_keys

__all__ = [
    "SIGNATURE_FILE", "Signature", "SignatureError", "SignatureStatus", "canonical_manifest",
    "check_signature", "sign_manifest",
]

SIGNATURE_FILE = "bundle.sig"
FORMAT = "edgewise-bundle-signature"
VERSION = 1
# Signed before the manifest, so this key's signatures cannot be replayed as anything else.
DOMAIN = b"edgewise bundle signature v1\n"
MAX_SIGNATURE_BYTES = 16 * 1024  # a real one is ~400 bytes; never read a large file into memory
_FIELDS = ("format", "version", "algorithm", "key_id", "public_key", "signed", "manifest_sha256", "signature")


class SignatureError(BundleError):
    """A signature that is malformed or wrong, or a bundle this device's trusted keys refuse."""


def canonical_manifest(meta: Mapping[str, Any]) -> bytes:
    """The bytes that are signed for this parsed ``bundle.json`` (sorted keys, compact, ASCII)."""
    return json.dumps(meta, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: Any, size: int, field: str, where: str) -> bytes:
    try:
        data = base64.b64decode(str(text), validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError(f"{where}: '{field}' is not base64") from None
    if len(data) != size:
        raise SignatureError(f"{where}: '{field}' has {len(data)} bytes, ed25519 needs {size}")
    return data


@dataclass(frozen=True)
class Signature:
    """The parsed ``bundle.sig``: who signed (``key_id``, ``public_key``) and the signature."""

    key_id: str
    public_key: bytes
    manifest_sha256: str
    signature: bytes

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": VERSION, "algorithm": "ed25519", "key_id": self.key_id,
                "public_key": _b64(self.public_key), "signed": "bundle.json",
                "manifest_sha256": self.manifest_sha256, "signature": _b64(self.signature)}

    def to_bytes(self) -> bytes:
        return (json.dumps(self.to_json(), indent=2) + "\n").encode("ascii")

    @classmethod
    def read(cls, path: Path, where: str | None = None) -> Signature:
        """Parse ``path`` (``where``: its name in messages); only a well-formed version-1 ed25519
        signature passes."""
        where = where or str(path)
        if not path.is_file():
            raise SignatureError(f"{where}: not a regular file")
        if path.stat().st_size > MAX_SIGNATURE_BYTES:
            raise SignatureError(f"{where}: {path.stat().st_size} bytes, not a signature")
        try:
            doc = json.loads(path.read_bytes())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise SignatureError(f"{where}: malformed JSON ({e})") from None
        if not isinstance(doc, dict):
            raise SignatureError(f"{where}: must be a JSON object")
        missing = [k for k in _FIELDS if k not in doc]
        unknown = sorted(set(doc) - set(_FIELDS))
        if missing or unknown:
            raise SignatureError(f"{where}: " + (f"missing {', '.join(missing)}" if missing
                                                   else f"unknown field {', '.join(unknown)}"))
        if doc["format"] != FORMAT or doc["signed"] != "bundle.json":
            raise SignatureError(f"{where}: not an edgewise bundle signature")
        if doc["version"] != VERSION or doc["algorithm"] != "ed25519":
            raise SignatureError(f"{where}: version {doc['version']!r} / algorithm {doc['algorithm']!r} "
                                 f"unsupported (this edgewise reads version {VERSION}, ed25519)")
        public = _unb64(doc["public_key"], 32, "public_key", where)
        if doc["key_id"] != key_id(public):
            raise SignatureError(f"{where}: key_id {doc['key_id']!r} is not its public key's "
                                 f"({key_id(public)})")
        return cls(key_id=key_id(public), public_key=public, manifest_sha256=str(doc["manifest_sha256"]),
                   signature=_unb64(doc["signature"], 64, "signature", where))


@dataclass(frozen=True)
class SignatureStatus:
    """What a loader found: ``signed``, by ``key_id``; ``trusted`` is None when no keys are configured."""

    signed: bool
    key_id: str | None = None
    trusted: bool | None = None
    policy: str = ""  # where the trusted keys came from: "--trusted-key" or the environment variable

    def text(self) -> str:
        """One line for ``edgewise info``."""
        if not self.signed:
            return "unsigned (loads because no trusted keys are configured; see `edgewise sign`)"
        if self.trusted:
            return f"ed25519, key {self.key_id}: valid, trusted ({self.policy})"
        return (f"ed25519, key {self.key_id}: valid, signer not checked "
                "(no trusted keys configured: --trusted-key or EDGEWISE_TRUSTED_KEYS)")

    def to_json(self) -> dict[str, Any]:
        return {"signed": self.signed, "key_id": self.key_id, "trusted": self.trusted,
                "policy": self.policy or None}


def sign_manifest(meta: Mapping[str, Any], private_key: Any) -> Signature:
    """Sign a parsed ``bundle.json`` with an ed25519 private key (``keys.load_private_key``)."""
    from cryptography.hazmat.primitives import serialization

    body = canonical_manifest(meta)
    public = private_key.public_key().public_bytes(serialization.Encoding.Raw,
                                                   serialization.PublicFormat.Raw)
    return Signature(key_id=key_id(public), public_key=public,
                     manifest_sha256=hashlib.sha256(body).hexdigest(),
                     signature=private_key.sign(DOMAIN + body))


def _policy(keys: Sequence[str | Path] | None) -> tuple[tuple[TrustedKey, ...], str]:
    if keys is None:
        return trusted_keys()
    return load_trusted_keys(keys), "trusted_keys" if keys else ""


def check_signature(root: str | Path, meta: Mapping[str, Any],
                    keys: Sequence[str | Path] | None = None, *, shown: str | None = None) -> SignatureStatus:
    """Verify ``root``'s ``bundle.sig`` over ``meta`` (the parsed ``bundle.json`` the loader uses).

    ``keys``: public key paths this bundle must be signed by; None takes the process's
    (``--trusted-key``, else ``EDGEWISE_TRUSTED_KEYS``); empty: none required. A present but bad
    signature is refused whatever the keys; with keys, so are unsigned and foreign-signed bundles.
    ``shown``: how messages name the bundle ("b.zip:" for a zip unpacked into a private folder).
    """
    root = Path(root)
    trusted, policy = _policy(keys)
    sig_path = root / SIGNATURE_FILE
    name = shown.rstrip(":/") if shown else str(root)
    if not sig_path.exists() and not sig_path.is_symlink():
        if trusted:
            raise SignatureError(f"{name}: unsigned bundle refused: only bundles signed by "
                                 f"{_ids(trusted)} are accepted ({policy})")
        return SignatureStatus(signed=False)
    shown_sig = f"{shown}{SIGNATURE_FILE}" if shown else str(sig_path)
    sig = Signature.read(sig_path, shown_sig)
    body = canonical_manifest(meta)
    signer = TrustedKey(key_id=sig.key_id, raw=sig.public_key, source=str(sig_path))
    if not signer.verify(sig.signature, DOMAIN + body):
        changed = hashlib.sha256(body).hexdigest() != sig.manifest_sha256
        why = "bundle.json was changed after signing" if changed else "it does not match bundle.json"
        raise SignatureError(f"{shown_sig}: bad signature ({why}); bundle refused")
    if not trusted:
        return SignatureStatus(signed=True, key_id=sig.key_id)
    if not any(k.raw == sig.public_key for k in trusted):
        raise SignatureError(f"{name}: signed by key {sig.key_id}, which is not trusted here "
                             f"(trusted: {_ids(trusted)}; {policy})")
    return SignatureStatus(signed=True, key_id=sig.key_id, trusted=True, policy=policy)


def _ids(keys: Sequence[TrustedKey]) -> str:
    return ", ".join(k.key_id for k in keys)
