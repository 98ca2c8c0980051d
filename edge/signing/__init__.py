"""Signed bundles: ed25519 over the manifest, checked by every loader, enforced by trusted keys.

``keys`` makes and reads keys and holds the device's trusted keys (``--trusted-key``,
``EDGEWISE_TRUSTED_KEYS``); ``signature`` is the ``bundle.sig`` format and the check
``load_bundle`` runs; ``sign`` signs a directory or zip; ``cli`` is ``edgewise keygen|sign``.
"""

from __future__ import annotations

from .keys import (
    ENV_TRUSTED_KEYS,
    KeyFileError,
    TrustedKey,
    add_trusted_key,
    generate_keypair,
    key_id,
    load_private_key,
    load_public_key,
    load_trusted_keys,
    trusted_keys,
    use_trusted_keys,
)
from .sign import SignResult, sign_bundle
from .signature import (
    SIGNATURE_FILE,
    Signature,
    SignatureError,
    SignatureStatus,
    canonical_manifest,
    check_signature,
    sign_manifest,
)

__all__ = [
    "ENV_TRUSTED_KEYS", "KeyFileError", "SIGNATURE_FILE", "Signature", "SignatureError", "SignatureStatus",
    "SignResult", "TrustedKey", "add_trusted_key", "canonical_manifest", "check_signature",
    "generate_keypair", "key_id", "load_private_key", "load_public_key", "load_trusted_keys",
    "sign_bundle", "sign_manifest", "trusted_keys", "use_trusted_keys",
]
