"""Command-line conventions shared by every ``edgewise`` subcommand, forwarded ones included.

One parser class so that the whole command behaves the same whatever module owns a
subcommand: help shows defaults, a bad flag is one line ``edgewise <cmd>: error: ...`` (exit 2)
rather than a usage block, ``-q/--quiet`` is accepted everywhere and ``--json PATH`` always
means "write the JSON to PATH, ``-`` for stdout". The exceptions and helpers here let a
module say "this optional part is not installed" in one line, with the pip command that fixes it.
Standard library only: the device imports this too.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from typing import Any, NoReturn

__all__ = [
    "CliError", "HelpFormatter", "Parser", "add_quiet", "add_json", "emit_json", "missing_module",
    "require", "error_line", "fail", "EXTRAS",
]

# top-level module -> how to install it (the extra of setup.cfg that brings it, or another way)
EXTRAS: dict[str, str] = {
    "tensorflow": "pip install 'edgewise[train]'",
    "keras": "pip install 'edgewise[train]'",
    "tf2onnx": "pip install 'edgewise[train]'",
    "onnx": "pip install 'edgewise[train]'",
    "sklearn": "pip install 'edgewise[train]'",
    "scipy": "pip install 'edgewise[train]' (or pip install scipy)",
    "matplotlib": "pip install 'edgewise[train]' (or pip install matplotlib)",
    "onnxruntime": "pip install 'edgewise[onnx]'",
    "gpiozero": "pip install 'edgewise[pi]'",
    "smbus2": "pip install 'edgewise[pi]'",
    "paho": "pip install 'edgewise[mqtt]'",
    "ai_edge_litert": "pip install ai-edge-litert",
    "cv2": "pip install opencv-contrib-python-headless",
    "cryptography": "pip install cryptography (Raspberry Pi OS: sudo apt install python3-cryptography)",
    "picamera2": "sudo apt install python3-picamera2 (and a venv with --system-site-packages)",
}


class CliError(Exception):
    """A user-facing error: printed as one line ``edgewise <cmd>: error: ...``; ``code`` is the exit code."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


def missing_module(name: str) -> str:
    """'keras is not installed: pip install ...' for a top-level module name."""
    top = name.split(".")[0]
    how = EXTRAS.get(top)
    return f"{top} is not installed" + (f": {how}" if how else "")


def require(*modules: str, what: str) -> None:
    """Fail in one line, before any heavy work, when an optional module ``what`` needs is absent.

    Uses ``find_spec`` only, so checking costs nothing (TensorFlow is not imported here).
    """
    for m in modules:
        try:
            found = importlib.util.find_spec(m) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            how = EXTRAS.get(m.split(".")[0])
            raise CliError(f"{what} needs {m}, which is not installed" + (f": {how}" if how else ""))


def error_line(exc: BaseException) -> str:
    """The one line a user sees for an expected error (no traceback, no chained causes)."""
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        return missing_module(exc.name)
    if isinstance(exc, OSError) and exc.filename and exc.strerror:
        return f"{exc.filename}: {exc.strerror}"
    text = str(exc).strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return "; ".join(lines[:1]) if lines else type(exc).__name__


def fail(prog: str, exc: BaseException | str, code: int = 2) -> int:
    """Print ``<prog>: error: <one line>`` on stderr and return ``code``: for mains that return codes."""
    msg = exc if isinstance(exc, str) else error_line(exc)
    print(f"{prog}: error: {msg}", file=sys.stderr)
    return code


def _show(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return " ".join(str(v) for v in value)
    return str(value)


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps hand-wrapped descriptions/examples and appends ``(default: X)`` where there is one."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            default is None or default is False or default == argparse.SUPPRESS
            or (isinstance(default, (list, tuple)) and not default)
            or isinstance(action, (argparse._HelpAction, argparse._VersionAction))  # noqa: SLF001
            or "default" in text.lower()
            or (not action.option_strings and action.nargs not in ("?", "*"))
        ):
            return text
        if default == "" and action.option_strings:
            shown = "''"
        else:
            shown = _show(default)
        return f"{text} (default: {shown.replace('%', '%%')})".lstrip()


class Parser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` with the edgewise conventions (see the module docstring)."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        kw.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kw)

    def error(self, message: str) -> NoReturn:
        """One line on stderr, exit 2: the usage block is one ``--help`` away."""
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def add_quiet(p: argparse.ArgumentParser) -> None:
    """``-q/--quiet``: results only, no progress lines."""
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output, results only")


def add_unpack_limit(p: argparse.ArgumentParser) -> None:
    """``--max-unpacked-mb``: how large a ``.zip`` bundle may unpack to, checked before writing.

    Parsing the flag sets the limit for every bundle this command opens (building the parser
    resets it, so a second ``main`` in one process starts from the default).
    """
    from .bundlezip import use_unpack_limit

    class _Limit(argparse.Action):
        def __call__(self, parser: argparse.ArgumentParser, ns: argparse.Namespace, value: Any,
                      option: str | None = None) -> None:
            setattr(ns, self.dest, value)
            use_unpack_limit(value)

    use_unpack_limit(None)
    p.add_argument("--max-unpacked-mb", type=float, metavar="MIB", action=_Limit,
                   help="refuse a .zip bundle whose files add up to more than this "
                        "(default: $EDGEWISE_MAX_UNPACKED_MB, else 2048)")


def add_json(p: argparse.ArgumentParser, what: str = "the results") -> None:
    """``--json PATH``: the same meaning in every subcommand."""
    p.add_argument("--json", metavar="PATH",
                   help=f"write {what} as JSON to PATH ('-': to stdout, instead of the table)")


def emit_json(obj: Any, dest: str | None) -> bool:
    """Write ``obj`` for ``--json dest``; True when it went to stdout (so skip the human table)."""
    if not dest:
        return False
    from .jsonenc import dumps  # numpy-aware; imported here so this module stays stdlib-only

    text = dumps(obj, indent=2, fallback=str)
    if dest == "-":
        print(text)
        return True
    path = Path(dest)
    if path.parent != Path():
        path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n", encoding="utf-8")
    print(f"JSON written: {path}", file=sys.stderr)
    return False
