"""Ed25519 keys for bundles: make a key pair, read keys, and the device's set of trusted keys.

The private key stays on the workstation that signs (PEM, PKCS#8, mode 0600); its public half
(``KEY.pub``, PEM SubjectPublicKeyInfo) is what a device trusts. A device's trust comes from
``--trusted-key PATH`` (repeatable) or, when that flag is absent, from the environment variable
``EDGEWISE_TRUSTED_KEYS``: one or more paths separated by ``:``, each a ``.pub`` file or a
directory of ``*.pub`` files. A configured path that yields no key is an error, never "no
policy": a device that meant to trust one key must not silently accept everything.

``cryptography`` is imported only when a key is read or made, so an unsigned bundle on a
device without trusted keys loads without it.
"""

from __future__ import annotations

import argparse
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..spec import BundleError

__all__ = [
    "ENV_TRUSTED_KEYS", "KeyFileError", "TrustedKey", "add_trusted_key", "generate_keypair", "key_id",
    "load_private_key", "load_public_key", "load_trusted_keys", "trusted_keys", "use_trusted_keys",
]

ENV_TRUSTED_KEYS = "EDGEWISE_TRUSTED_KEYS"


class KeyFileError(BundleError):
    """A key file that cannot be used: missing, not ed25519, private where public was meant.

    A ``BundleError``, so every loader's handler already reports it in one line.
    """


@dataclass(frozen=True)
class TrustedKey:
    """One ed25519 public key: ``raw`` its 32 bytes, ``key_id`` their short fingerprint."""

    key_id: str
    raw: bytes
    source: str

    def verify(self, signature: bytes, message: bytes) -> bool:
        """True when ``signature`` is this key's signature of ``message``."""
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        try:
            Ed25519PublicKey.from_public_bytes(self.raw).verify(signature, message)
        except (InvalidSignature, ValueError):
            return False
        return True


def key_id(raw: bytes) -> str:
    """The first 16 hex digits of sha256 over the raw public key: short, and stable across formats."""
    return hashlib.sha256(raw).hexdigest()[:16]


def _raw_public(key: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def generate_keypair(out: str | Path) -> tuple[Path, Path, str]:
    """Write a new private key to ``out`` (0600) and its public key to ``out.pub``; (paths, key id).

    Refuses to overwrite either file: losing a signing key by a repeated command is not undoable.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    priv_path = Path(out)
    pub_path = priv_path.with_name(priv_path.name + ".pub")
    for p in (priv_path, pub_path):
        if p.exists():
            raise KeyFileError(f"{p}: already exists; not overwriting a key (choose another --out)")
    if not priv_path.parent.is_dir():
        raise KeyFileError(f"{priv_path.parent}: no such directory")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    pub = key.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    fd = os.open(priv_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # O_EXCL: never clobber
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    os.chmod(priv_path, 0o600)  # the umask may have narrowed it further, never widened it; make it exact
    fd = os.open(pub_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(pub)
    return priv_path, pub_path, key_id(_raw_public(key.public_key()))


def _read(path: Path, what: str) -> bytes:
    if not path.is_file():
        raise KeyFileError(f"{path}: no such {what} file")
    return path.read_bytes()


def load_private_key(path: str | Path) -> Any:
    """The ed25519 private key in ``path`` (PEM, unencrypted), refused in one line otherwise."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    path = Path(path)
    data = _read(path, "key")
    if b"PUBLIC KEY" in data and b"PRIVATE KEY" not in data:
        raise KeyFileError(f"{path}: is a public key; signing needs the private key (the file without .pub)")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as e:
        raise KeyFileError(f"{path}: not an unencrypted PEM private key ({str(e).splitlines()[0]})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path}: a {type(key).__name__.lstrip('_')}, not an ed25519 key "
                           "(use `edgewise keygen`)")
    return key


def load_public_key(path: str | Path) -> TrustedKey:
    """The ed25519 public key in ``path`` (PEM SubjectPublicKeyInfo, as ``edgewise keygen`` writes)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    path = Path(path)
    data = _read(path, "public key")
    if b"PRIVATE KEY" in data:
        raise KeyFileError(f"{path}: is a private key; a device trusts the public key ({path.name}.pub)")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as e:
        raise KeyFileError(f"{path}: not a PEM public key ({str(e).splitlines()[0]})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError(f"{path}: a {type(key).__name__.lstrip('_')}, not an ed25519 public key")
    raw = _raw_public(key)
    return TrustedKey(key_id=key_id(raw), raw=raw, source=str(path))


def load_trusted_keys(paths: Sequence[str | Path]) -> tuple[TrustedKey, ...]:
    """Every key named by ``paths`` (files, or directories of ``*.pub``); a path with none is an error."""
    keys: dict[str, TrustedKey] = {}
    for entry in paths:
        p = Path(entry)
        if p.is_dir():
            found = sorted(p.glob("*.pub"))
            if not found:
                raise KeyFileError(f"{p}: no *.pub keys in this trusted-keys directory")
        elif p.exists():
            found = [p]
        else:
            raise KeyFileError(f"{p}: no such trusted key file or directory")
        for f in found:
            k = load_public_key(f)
            keys.setdefault(k.key_id, k)
    return tuple(keys.values())


# --trusted-key paths given on this process's command line (None: the flag was not used)
_flag_paths: list[str] | None = None


def use_trusted_keys(paths: Sequence[str | Path] | None) -> None:
    """Set the process's trusted keys (what ``--trusted-key`` does); None goes back to the environment."""
    global _flag_paths
    _flag_paths = None if paths is None else [str(p) for p in paths]


def trusted_keys() -> tuple[tuple[TrustedKey, ...], str]:
    """The process's trusted keys and where they come from: ``--trusted-key``, else the environment.

    ``((), "")`` means none are configured: unsigned bundles load.
    """
    if _flag_paths:
        return load_trusted_keys(_flag_paths), "--trusted-key"
    env = os.environ.get(ENV_TRUSTED_KEYS, "").strip()
    if env:
        parts = [s for s in env.split(os.pathsep) if s]
        try:
            return load_trusted_keys(parts), ENV_TRUSTED_KEYS
        except KeyFileError as e:
            raise KeyFileError(f"{ENV_TRUSTED_KEYS}: {e}") from None
    return (), ""


class _TrustAction(argparse.Action):
    """Appends the path and makes the whole list the process's trusted keys.

    Every bundle this process opens is then held to it, whichever module opens it, so a
    command needs this one flag and nothing threaded through its settings.
    """

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        paths = [*(getattr(namespace, self.dest, None) or []), str(values)]
        setattr(namespace, self.dest, paths)
        use_trusted_keys(paths)


def add_trusted_key(p: argparse.ArgumentParser) -> None:
    """``--trusted-key PATH`` (repeatable): refuse bundles not signed by one of these keys.

    A command builds its parser once per run, so adding the flag also clears an earlier run's
    keys in the same process (``main`` called twice): only this command line, or the
    environment, decides.
    """
    use_trusted_keys(None)
    p.add_argument("--trusted-key", action=_TrustAction, metavar="PATH", default=None,
                   help="accept only bundles signed by this public key (.pub file, or a directory of "
                   f"*.pub; repeatable; default: ${ENV_TRUSTED_KEYS} if set, else unsigned bundles load)")
