"""A FAT partition inside a disk image, read and written with mtools: no mount, no root.

Every call is ``m<tool> -i IMAGE@@OFFSET``; file names keep their case (VFAT long names), as
Raspberry Pi Imager writes ``user-data`` and ``network-config``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from .mbr import Partition

__all__ = ["MTOOLS", "FatError", "FatImage", "require_mtools"]

MTOOLS = ("mcopy", "mdir", "mmd", "mtype", "mdel", "minfo")
_FREE = re.compile(r"([\d ]+) bytes free")


class FatError(RuntimeError):
    """An mtools call failed; the message is one line."""


def require_mtools() -> None:
    missing = [t for t in MTOOLS if shutil.which(t) is None]
    if missing:
        raise FatError(f"{', '.join(missing)} not found: install mtools (apt install mtools) to write the "
                       "card's boot partition without mounting it")


class FatImage:
    """The FAT file system of one partition of ``image``."""

    def __init__(self, image: str | Path, part: Partition) -> None:
        self.image, self.part = Path(image), part
        self.spec = f"{self.image}@@{part.offset}"

    def _run(self, tool: str, *args: str, data: bytes | None = None) -> bytes:
        env = {**os.environ, "MTOOLS_SKIP_CHECK": "1", "MTOOLS_NO_VFAT": "0", "LC_ALL": "C"}
        r = subprocess.run([tool, "-i", self.spec, *args], input=data, capture_output=True, env=env,
                           timeout=600)
        if r.returncode != 0:
            err = (r.stderr or r.stdout).decode(errors="replace").strip().splitlines()
            raise FatError(f"{tool} {' '.join(args)}: {err[-1] if err else f'exit {r.returncode}'}")
        return r.stdout

    def names(self, folder: str = "") -> list[str]:
        """The names in ``folder`` ('' = the root), long names as written."""
        out = self._run("mdir", "-b", f"::/{folder}").decode(errors="replace")
        prefix = f"::/{folder}".rstrip("/") + "/"
        return [ln[len(prefix):].rstrip("/") for ln in out.splitlines() if ln.startswith(prefix)]

    def exists(self, name: str) -> bool:
        folder, _, leaf = name.rpartition("/")
        try:
            return leaf in self.names(folder)
        except FatError:
            return False

    def read(self, name: str) -> bytes:
        """The bytes of ``name`` (mcopy to stdout: byte-exact, unlike mtype's text mode)."""
        return self._run("mcopy", "-n", f"::/{name}", "-")

    def write(self, name: str, data: bytes) -> None:
        """Create or replace the file ``name`` with ``data``."""
        self._run("mcopy", "-o", "-n", "-", f"::/{name}", data=data)

    def mkdir(self, name: str) -> None:
        if not self.exists(name):
            self._run("mmd", f"::/{name}")

    def put_tree(self, local: Path, dest: str) -> None:
        """Copy the folder ``local`` to ``dest`` (replacing files of the same name)."""
        self.mkdir(dest)
        self._run("mcopy", "-s", "-o", "-n", "-Q", *(str(p) for p in sorted(local.iterdir())), f"::/{dest}/")

    def free_bytes(self) -> int:
        out = self._run("mdir", "::/").decode(errors="replace")
        m = _FREE.search(out)
        if not m:
            raise FatError(f"mdir: no free space figure for {self.spec}")
        return int(m.group(1).replace(" ", ""))
