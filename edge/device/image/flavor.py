"""Which first-boot mechanism a Raspberry Pi OS image uses, read from its boot partition.

Raspberry Pi OS Trixie (images from 2025-10-01 on) is provisioned by cloud-init from
``user-data`` / ``network-config`` / ``meta-data`` on the boot partition, and ships them
there; Bookworm is provisioned by Raspberry Pi Imager's ``firstrun.sh``, started by a
``systemd.run=`` hook on ``cmdline.txt``. ``issue.txt`` ("Raspberry Pi reference YYYY-MM-DD")
dates the image. An image with neither signature is refused: writing a mechanism the image
does not run would give a card that silently never provisions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from .fat import FatImage

__all__ = ["Flavor", "FLAVORS", "TRIXIE_FROM", "detect_flavor", "CLOUD_INIT_FILES"]

CLOUD_INIT_FILES = ("user-data", "network-config", "meta-data")
TRIXIE_FROM = date(2025, 10, 1)  # the first Raspberry Pi OS release on Debian 13
_REFERENCE = re.compile(r"Raspberry Pi reference (\d{4})-(\d{2})-(\d{2})")


@dataclass(frozen=True)
class Flavor:
    """A Raspberry Pi OS release as the card builder needs it: how it provisions itself at first
    boot, the Python its wheels are for, and the numpy its apt packages are compiled against
    (the pip constraint; deploy probes the same value on a running device)."""

    name: str
    init: str  # "cloud-init" | "firstrun"
    python: str  # major.minor of /usr/bin/python3
    numpy: str  # Debian's python3-numpy in that release
    boot_mount: str = "/boot/firmware"  # where the FAT partition is mounted on the Pi


FLAVORS = {
    "trixie": Flavor("trixie", "cloud-init", "3.13", "2.2.4"),
    "bookworm": Flavor("bookworm", "firstrun", "3.11", "1.24.2"),
}


def reference_date(issue: str) -> date | None:
    m = _REFERENCE.search(issue)
    return date(int(m[1]), int(m[2]), int(m[3])) if m else None


def detect_flavor(fat: FatImage) -> tuple[Flavor, str]:
    """The image's flavor and the evidence, in words; ValueError (one line) for an image that is
    neither a cloud-init (Trixie) nor a firstrun.sh (Bookworm) Raspberry Pi OS image."""
    names = set(fat.names())
    issue = fat.read("issue.txt").decode(errors="replace") if "issue.txt" in names else ""
    when = reference_date(issue)
    ci = [n for n in CLOUD_INIT_FILES if n in names]
    if ci:
        return FLAVORS["trixie"], f"cloud-init files on the boot partition ({', '.join(ci)})"
    if when is not None and when >= TRIXIE_FROM:
        return FLAVORS["trixie"], f"issue.txt: Raspberry Pi reference {when} (Trixie, cloud-init)"
    if when is not None and "cmdline.txt" in names:
        return FLAVORS["bookworm"], f"issue.txt: Raspberry Pi reference {when}, cmdline.txt (firstrun.sh)"
    what = "no issue.txt" if not issue else "issue.txt is not a Raspberry Pi OS reference image"
    if when is not None:
        what = "no cmdline.txt"
    raise ValueError(f"not a Raspberry Pi OS image this builder knows ({what}; neither cloud-init files "
                     "nor a firstrun.sh boot partition)")
