"""Loaders for public dataset formats, and where the data lives (``EDGEWISE_DATA``)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["data_root"]


def data_root(explicit: str | Path | None = None) -> Path | None:
    """The datasets folder: ``explicit`` (a --data flag), else ``$EDGEWISE_DATA``, else None."""
    p = explicit or os.environ.get("EDGEWISE_DATA")
    if not p:
        return None
    p = Path(p).expanduser()
    if not p.is_dir():
        raise ValueError(f"data folder '{p}' does not exist (from --data or EDGEWISE_DATA)")
    return p
