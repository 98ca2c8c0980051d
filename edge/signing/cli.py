"""``edgewise keygen`` and ``edgewise sign``: make a signing key, sign a bundle with it."""

from __future__ import annotations

from ..cliargs import Parser, add_json, add_quiet, emit_json
from .keys import ENV_TRUSTED_KEYS, generate_keypair
from .sign import sign_bundle

__all__ = ["keygen_main", "sign_main"]


def keygen_main(argv: list[str]) -> int:
    """Write a new ed25519 key pair: KEY (private, 0600) and KEY.pub (for devices)."""
    p = Parser(prog="edgewise keygen",
               description="Make an ed25519 key pair for signing bundles. The private key stays on the "
               "workstation that signs; devices trust the public key (KEY.pub).",
               epilog="example:\n  edgewise keygen --out ~/.config/edgewise/signing.key\n"
               "  edgewise sign vibration.bundle --key ~/.config/edgewise/signing.key")
    p.add_argument("--out", required=True, metavar="KEY",
                   help="private key file to create (refuses to overwrite); the public key goes to KEY.pub")
    add_json(p, "the key paths and key id")
    add_quiet(p)
    a = p.parse_args(argv)
    priv, pub, kid = generate_keypair(a.out)
    if emit_json({"private_key": str(priv), "public_key": str(pub), "key_id": kid}, a.json):
        return 0
    print(f"private key  {priv}  (mode 0600: keep it on this workstation)")
    print(f"public key   {pub}  (devices: --trusted-key {pub} or {ENV_TRUSTED_KEYS})")
    print(f"key id       {kid}")
    return 0


def sign_main(argv: list[str]) -> int:
    """Verify a bundle's checksums and sign its manifest (bundle.json) into bundle.sig."""
    p = Parser(prog="edgewise sign",
               description="Verify every checksum of a bundle, then sign its manifest (bundle.json, which "
               "pins every file's size and sha256) with an ed25519 key: a detached bundle.sig beside it. "
               "A .zip bundle is rewritten with the signature inside. Re-signing replaces the signature.",
               epilog="example:\n  edgewise keygen --out signing.key\n"
               "  edgewise sign vibration.bundle --key signing.key\n"
               "  edgewise info vibration.bundle --trusted-key signing.key.pub")
    p.add_argument("bundle", help="bundle directory or .zip")
    p.add_argument("--key", required=True, help="private key made by `edgewise keygen`")
    add_json(p, "the signature summary")
    add_quiet(p)
    a = p.parse_args(argv)
    r = sign_bundle(a.bundle, a.key)
    if emit_json({"bundle": str(r.bundle), "signature": r.signature, "key_id": r.key_id,
                  "manifest_sha256": r.manifest_sha256}, a.json):
        return 0
    print(f"signed {r.bundle}: key {r.key_id}, manifest sha256 {r.manifest_sha256} -> {r.signature}")
    return 0
