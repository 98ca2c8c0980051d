"""Where a bench command's result goes: the same four flags for every ``edgewise bench`` command.

``--out DIR`` (``<stem>.json`` and ``<stem>.md`` in it), ``--json PATH`` (``-`` for stdout),
``--md PATH``; without ``--json`` the Markdown is printed. One place, so every command
writes the same files the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgewise.edge.cliargs import emit_json

__all__ = ["write_outputs"]


def write_outputs(result: dict[str, Any], md: str, *, stem: str, out: str | None, json_path: str | None,
                  md_path: str | None) -> Path | None:
    """Write ``result`` and its Markdown where the flags say; the ``--out`` folder (or None)."""
    folder = None
    if out:
        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        emit_json(result, str(folder / f"{stem}.json"))
        (folder / f"{stem}.md").write_text(md)
    if not emit_json(result, json_path):
        print(md)
    if md_path:
        Path(md_path).write_text(md)
    return folder
