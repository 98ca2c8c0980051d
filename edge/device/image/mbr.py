"""The partitions of a disk image, read from its MBR (DOS) partition table in Python.

Raspberry Pi OS images carry an MBR with two primary partitions: FAT boot (type 0x0c) and
ext4 root (0x83). mtools needs the FAT partition's byte offset (``-i IMG@@OFFSET``); reading
16 bytes per entry is simpler and more exact than parsing another tool's output.

>>> Partition(1, 0x0C, 8192, 1048576).offset
4194304
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Partition", "SECTOR", "FAT_TYPES", "LINUX_TYPE", "read_partitions"]

SECTOR = 512
FAT_TYPES = {0x01, 0x04, 0x06, 0x0B, 0x0C, 0x0E}  # FAT12/16/32, CHS or LBA
LINUX_TYPE = 0x83
_EXTENDED = {0x05, 0x0F, 0x85}


@dataclass(frozen=True)
class Partition:
    """One primary partition: its number (1-4), MBR type byte, first sector and sector count."""

    number: int
    type: int
    start: int
    sectors: int

    @property
    def offset(self) -> int:
        return self.start * SECTOR

    @property
    def size(self) -> int:
        return self.sectors * SECTOR

    @property
    def is_fat(self) -> bool:
        return self.type in FAT_TYPES


def read_partitions(image: str | Path) -> list[Partition]:
    """The primary partitions of ``image`` in table order; ValueError (one line) when the file
    has no MBR, uses GPT, or a partition reaches past the end of the file."""
    path = Path(image)
    size = path.stat().st_size
    with path.open("rb") as f:
        mbr = f.read(SECTOR)
    if len(mbr) < SECTOR or mbr[510:512] != b"\x55\xaa":
        raise ValueError(f"{path}: no MBR partition table (not a Raspberry Pi OS disk image)")
    parts = []
    for i in range(4):
        _, ptype, start, sectors = struct.unpack_from("<B3xB3xII", mbr, 446 + 16 * i)
        if ptype == 0 or sectors == 0:
            continue
        if ptype == 0xEE:
            raise ValueError(f"{path}: GPT disk image; Raspberry Pi OS images use an MBR table")
        if ptype in _EXTENDED:
            continue
        p = Partition(i + 1, ptype, start, sectors)
        if p.offset + p.size > size:
            raise ValueError(f"{path}: partition {p.number} ends at byte {p.offset + p.size}, past the "
                             f"end of the file ({size} bytes): truncated image?")
        parts.append(p)
    return parts
