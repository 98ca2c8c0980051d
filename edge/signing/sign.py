"""Sign a bundle in place: a directory gets ``bundle.sig``; a ``.zip`` is rewritten with it.

The bundle is loaded and every checksum verified first, so a bundle that was already tampered
with is never signed. An older ``bundle.sig`` is set aside for that check (re-signing after a
re-seal, or with another key, is normal) and put back if signing fails.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ..spec import BundleError
from .keys import load_private_key
from .signature import SIGNATURE_FILE, Signature, sign_manifest

__all__ = ["SignResult", "sign_bundle"]

BUNDLE_JSON = "bundle.json"
MAX_MANIFEST_BYTES = 64 << 20  # read into memory only below this; a larger one is the loader's to refuse


@dataclass(frozen=True)
class SignResult:
    """A signed bundle: where, by which key, over which manifest."""

    bundle: Path
    signature: str  # the signature file (inside the zip for a zipped bundle)
    key_id: str
    manifest_sha256: str


def sign_bundle(bundle: str | Path, key: str | Path) -> SignResult:
    """Verify ``bundle`` (directory or ``.zip``) and sign its manifest with the private ``key``."""
    private = load_private_key(key)  # a bad key fails before the bundle is touched
    path = Path(bundle)
    if not path.exists():
        raise BundleError(f"{path}: no such bundle")
    if path.is_dir():
        sig = _sign_dir(path, private)
        where = str(path / SIGNATURE_FILE)
    else:
        sig, member = _sign_zip(path, private)
        where = f"{path}:{member}"
    return SignResult(bundle=path, signature=where, key_id=sig.key_id, manifest_sha256=sig.manifest_sha256)


def _load_verified(path: Path) -> dict:
    """The manifest of an unsigned bundle, after every file's size and sha256 matched it."""
    from ..bundle import load_bundle

    with load_bundle(path, verify=True, trusted_keys=()) as b:  # a zip's unpacked copy goes at once
        return b.meta


def _refuse_listed_signature(manifest: bytes, where: str) -> None:
    """A manifest that pins ``bundle.sig`` can never be signed (the signature would pin itself)."""
    try:
        files = json.loads(manifest).get("files")
    except (ValueError, AttributeError):
        return  # malformed: the loader names the problem
    if isinstance(files, dict) and SIGNATURE_FILE in files:
        raise BundleError(f"{where}: lists {SIGNATURE_FILE} among its files (sealed over a signed bundle); "
                          f"remove {SIGNATURE_FILE}, seal the bundle again, then sign")


def _sign_dir(root: Path, private: object) -> Signature:
    sig_path = root / SIGNATURE_FILE
    if (root / BUNDLE_JSON).is_file():
        _refuse_listed_signature((root / BUNDLE_JSON).read_bytes(), str(root / BUNDLE_JSON))
    old = sig_path.read_bytes() if sig_path.is_file() else None
    if sig_path.exists() or sig_path.is_symlink():
        sig_path.unlink()
    try:
        sig = sign_manifest(_load_verified(root), private)
        tmp = root / f".{SIGNATURE_FILE}.tmp"
        tmp.write_bytes(sig.to_bytes())
        os.replace(tmp, sig_path)  # a reader sees the old state or the new, never half a file
    except BaseException:
        if old is not None and not sig_path.exists():
            sig_path.write_bytes(old)
        raise
    return sig


def _member_prefix(zf: zipfile.ZipFile, path: Path) -> str:
    """'' when bundle.json is at the zip's top, 'dir/' for a zip of the directory itself."""
    names = set(zf.namelist())
    if BUNDLE_JSON in names:
        return ""
    tops = [n for n in names if n.endswith("/" + BUNDLE_JSON) and n.count("/") == 1]
    if len(tops) != 1:
        raise BundleError(f"{path}: no {BUNDLE_JSON} at the top of the zip; is it a bundle?")
    return tops[0][: -len(BUNDLE_JSON)]


def _sign_zip(path: Path, private: object) -> tuple[Signature, str]:
    """Copy the zip without its old signature, verify that copy, add the signature, swap it in."""
    try:
        with zipfile.ZipFile(path) as src:
            prefix = _member_prefix(src, path)
            member = prefix + SIGNATURE_FILE
            if src.getinfo(prefix + BUNDLE_JSON).file_size < MAX_MANIFEST_BYTES:  # else the loader refuses it
                _refuse_listed_signature(src.read(prefix + BUNDLE_JSON), f"{path}:{prefix}{BUNDLE_JSON}")
            fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".signing", dir=path.parent)
            os.close(fd)
            tmp = Path(tmp_name)
            try:
                with zipfile.ZipFile(tmp, "w") as dst:
                    for info in src.infolist():
                        if info.filename != member:
                            with src.open(info) as r, dst.open(info, "w") as w:
                                shutil.copyfileobj(r, w, 1 << 20)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
    except zipfile.BadZipFile as e:
        raise BundleError(f"{path}: not a valid zip file ({e})") from None
    try:
        sig = sign_manifest(_load_verified(tmp), private)
        with zipfile.ZipFile(tmp, "a", zipfile.ZIP_DEFLATED) as dst:
            dst.writestr(member, sig.to_bytes())
        shutil.copymode(path, tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return sig, member
