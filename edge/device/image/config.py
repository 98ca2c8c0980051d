"""What one card carries, checked once at the command's edge (``ImageConfig``), and the Wi-Fi
secret kept out of every log.

The Wi-Fi passphrase is read from a file (never a flag: a flag lands in the shell history and
in ``ps``) and only its WPA hash leaves this module (``wpa_psk``): the card stores the 256-bit
key Raspberry Pi Imager also stores, never the passphrase.
"""

from __future__ import annotations

import hashlib
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["ImageConfig", "WifiConfig", "wpa_psk", "read_ssh_keys", "APPS"]

APPS = ("classify", "face", "inspect", "vibration")
_HOSTNAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_USER = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
_COUNTRY = re.compile(r"[A-Z]{2}")
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_SSH_KEY = re.compile(r"(ssh-(ed25519|rsa|dss)|ecdsa-sha2-nistp\d+|sk-[a-z0-9@.-]+) [A-Za-z0-9+/=]+( .*)?")


def wpa_psk(ssid: str, passphrase: str) -> str:
    """The WPA2 pre-shared key (PBKDF2-HMAC-SHA1, 4096 rounds, SSID as salt, 32 bytes) in hex, as
    wpa_passphrase and Raspberry Pi Imager compute it; a 64-hex-digit key is already one."""
    if _HEX64.fullmatch(passphrase):
        return passphrase.lower()
    if not 8 <= len(passphrase) <= 63 or not passphrase.isascii() or not passphrase.isprintable():
        raise ValueError("--wifi-psk-file: a WPA passphrase is 8 to 63 printable ASCII characters "
                         "(or 64 hex digits)")
    return hashlib.pbkdf2_hmac("sha1", passphrase.encode(), ssid.encode(), 4096, 32).hex()


@dataclass(frozen=True)
class WifiConfig:
    ssid: str
    psk_hash: str = field(repr=False)  # never printed, never logged
    country: str = "GB"

    @classmethod
    def from_files(cls, ssid: str, psk_file: str | Path, country: str | None) -> WifiConfig:
        if not ssid or len(ssid.encode()) > 32 or not ssid.isprintable():
            raise ValueError("--wifi-ssid: 1 to 32 bytes of printable text")
        if not country or not _COUNTRY.fullmatch(country):
            raise ValueError("--wifi-country: the two-letter country code the Wi-Fi regulatory domain needs "
                             "(e.g. GB, DE, US); without it the Pi keeps Wi-Fi blocked")
        try:
            text = Path(psk_file).read_text()
        except OSError as e:
            raise ValueError(f"--wifi-psk-file {psk_file}: {e.strerror}") from None
        lines = text.splitlines()
        return cls(ssid, wpa_psk(ssid, lines[0] if lines else ""), country)


def read_ssh_keys(paths: list[str]) -> list[str]:
    """Public keys, one per line of each file; a private key or another text is refused."""
    keys: list[str] = []
    for p in paths:
        try:
            text = Path(p).read_text()
        except (OSError, UnicodeDecodeError) as e:
            raise ValueError(f"--ssh-key {p}: {getattr(e, 'strerror', None) or 'not a text file'}") from None
        if "PRIVATE KEY" in text:
            raise ValueError(f"--ssh-key {p}: this is a private key; give the .pub file")
        found = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
        if not found or not all(_SSH_KEY.fullmatch(k) for k in found):
            raise ValueError(f"--ssh-key {p}: not an OpenSSH public key (ssh-ed25519 AAAA...)")
        keys += found
    return keys


@dataclass
class ImageConfig:
    """Everything the card carries besides the payload files, validated (one line on error)."""

    app: str
    hostname: str = "edgewise"
    user: str = "pi"
    run_args: list[str] = field(default_factory=list)
    ssh_keys: list[str] = field(default_factory=list)
    wifi: WifiConfig | None = None

    @property
    def home(self) -> str:
        return "/root" if self.user == "root" else f"/home/{self.user}"

    @property
    def base(self) -> str:
        """Where releases live on the device: deploy's default ``~/edgewise`` of the user."""
        return f"{self.home}/edgewise"

    def check(self) -> None:
        if self.app not in APPS:
            raise ValueError(f"--app {self.app}: one of {', '.join(APPS)}")
        if not _HOSTNAME.fullmatch(self.hostname):
            raise ValueError(f"--hostname {self.hostname!r}: letters, digits and '-', at most 63, "
                             "not starting or ending with '-'")
        if not _USER.fullmatch(self.user):
            raise ValueError(f"--user {self.user!r}: a Linux user name (lower case letters, digits, "
                             "'_', '-')")

    @staticmethod
    def split_run_args(text: str | None, app: str, mqtt: str | None) -> list[str]:
        """The service's ``edgewise run APP`` arguments: ``--run-args`` split as a shell would, deploy's
        default for camera apps, plus ``--mqtt``."""
        from ..deploy import DEFAULT_RUN_ARGS

        if text is None:
            if app not in DEFAULT_RUN_ARGS:
                raise ValueError(f"--app {app}: give its source with --run-args (e.g. '--source adxl345')")
            text = DEFAULT_RUN_ARGS[app]
        try:
            args = shlex.split(text)
        except ValueError as e:
            raise ValueError(f"--run-args {text!r}: {e}") from None
        if mqtt:
            if "--mqtt" in args:
                raise ValueError("--mqtt is given twice (in --run-args and as --mqtt)")
            args += ["--mqtt", mqtt]
        return args
