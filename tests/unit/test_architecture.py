"""The floor plan in docs/ARCHITECTURE.md is true: who may import whom, read from the source itself.

Every ``import`` of every module is resolved to the room it lands in (edge, train, converters,
benchmarks). An arrow the plan does not draw fails here, with the file and line, so the plan
cannot drift from the code. The one allowed exception is the ``edgewise`` command in
``edge/cli.py``: it reaches the workstation rooms only from inside a subcommand (lazily), so a
Raspberry Pi running ``edgewise run`` never imports them.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ROOMS = ("edge", "train", "converters", "benchmarks")
# room -> rooms it may import (ARCHITECTURE.md, "Who imports whom")
ALLOWED = {
    "edge": set(),
    "converters": {"edge"},
    "train": {"edge", "converters"},
    "benchmarks": {"edge", "converters", "train"},
}
LAZY_ONLY = {REPO / "edge" / "cli.py"}


def _module_name(path: Path) -> list[str]:
    rel = path.relative_to(REPO).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return parts


def _target_room(path: Path, node: ast.Import | ast.ImportFrom) -> list[str]:
    """Rooms an import statement lands in (absolute ``edgewise.<room>`` or relative)."""
    names: list[str] = []
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    elif node.level == 0:
        names = [node.module or ""]
    else:
        pkg = _module_name(path)
        if path.name != "__init__.py":
            pkg = pkg[:-1]
        base = pkg[: len(pkg) - (node.level - 1)]
        names = [".".join(["edgewise", *base, *(node.module.split(".") if node.module else [])])]
    rooms = []
    for n in names:
        m = re.match(r"edgewise\.(\w+)", n)
        if m and m.group(1) in ROOMS:
            rooms.append(m.group(1))
    return rooms


def _imports(path: Path) -> list[tuple[int, str, bool]]:
    """(line, room, at module level) for every import of another room in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    top = {id(n) for n in tree.body}
    for n in tree.body:  # imports under `if TYPE_CHECKING:` / try at module level count as top level
        if isinstance(n, (ast.If, ast.Try)):
            top |= {id(c) for c in ast.walk(n)}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for room in _target_room(path, node):
                out.append((node.lineno, room, id(node) in top))
    return out


def arrows() -> list[tuple[str, str, Path, int, bool]]:
    found = []
    for room in ROOMS:
        for path in sorted((REPO / room).rglob("*.py")):
            for line, target, top in _imports(path):
                if target != room:
                    found.append((room, target, path, line, top))
    return found


def test_every_import_between_rooms_follows_the_floor_plan() -> None:
    bad = [
        f"{p.relative_to(REPO)}:{line} imports {dst}/ ({src}/ may import: {sorted(ALLOWED[src]) or 'none'})"
        for src, dst, p, line, top in arrows()
        if dst not in ALLOWED[src] and not (p in LAZY_ONLY and not top)
    ]
    assert not bad, "\n".join(bad)


def test_the_command_reaches_workstation_rooms_only_lazily() -> None:
    eager = [
        f"{p.relative_to(REPO)}:{line} imports {dst}/ at module level"
        for src, dst, p, line, top in arrows()
        if p in LAZY_ONLY and top and dst != "edge"
    ]
    assert not eager, "\n".join(eager)


def test_the_checker_sees_a_forbidden_arrow(tmp_path: Path) -> None:
    """The checker itself can fail: a relative import from edge/ into train/ is resolved and caught."""
    fake = REPO / "edge" / "apps" / "x.py"
    node = ast.parse("from ...train.face import Trainer").body[0]
    assert isinstance(node, ast.ImportFrom)
    assert _target_room(fake, node) == ["train"]
    node = ast.parse("from ..pipeline import Runner").body[0]
    assert isinstance(node, ast.ImportFrom)
    assert _target_room(fake, node) == ["edge"]


def test_architecture_doc_draws_the_same_arrows() -> None:
    """Each room's line in the plan's table lists exactly the rooms this test allows."""
    doc = (REPO / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    for room, allowed in ALLOWED.items():
        m = re.search(rf"^\| `{room}/` \|([^|]*)\|", doc, flags=re.M)
        assert m, f"docs/ARCHITECTURE.md has no table row for {room}/"
        listed = set(re.findall(r"`(\w+)/`", m.group(1)))
        assert listed == allowed, f"{room}/: plan lists {sorted(listed)}, test allows {sorted(allowed)}"
