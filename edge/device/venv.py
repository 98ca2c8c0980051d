"""How edgewise is installed on a device: a ``--system-site-packages`` venv pinned to the
device's own numpy.

Raspberry Pi OS's apt-installed Python packages (python3-picamera2, simplejpeg) are compiled
against the system numpy, and a numpy of another ABI inside the venv breaks them ("numpy.dtype
size changed"). Deploy and image builders run this one recipe.

>>> numpy_constraint("1.24.2\\n")
'numpy==1.24.2'
"""

from __future__ import annotations

import re
import shlex

__all__ = ["NUMPY_PROBE", "CONSTRAINTS_FILE", "numpy_constraint", "venv_recipe", "shell_words"]

# Asked of the interpreter that creates the venv: the device's own numpy.
NUMPY_PROBE = "import numpy; print(numpy.__version__)"
CONSTRAINTS_FILE = "edgewise-constraints.txt"
_VERSION = re.compile(r"\d+(\.\d+)+([.+-]?[A-Za-z0-9.+]*)?")
_EXTRAS = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(,[A-Za-z0-9][A-Za-z0-9._-]*)*")


def shell_words(args: str, what: str) -> str:
    """A user's argument string (``--pip-args``) as shell words that stay exactly those arguments:
    split as a shell would, then every word quoted, so ``;``, ``$( )`` or a backquote is text."""
    try:
        return " ".join(shlex.quote(w) for w in shlex.split(args))
    except ValueError as e:  # unbalanced quotes
        raise ValueError(f"{what} {args!r}: {e}") from None


def numpy_constraint(probe_output: str) -> str | None:
    """The pip constraint ``numpy==X`` for the system numpy the probe printed; None when the
    system Python has no numpy (then pip may choose one: nothing apt-installed depends on it)."""
    lines = probe_output.strip().splitlines()
    version = lines[-1].strip() if lines else ""
    return f"numpy=={version}" if _VERSION.fullmatch(version) else None


def venv_recipe(venv: str, wheel: str, constraints: list[str], *, python: str = "python3",
                pip_args: str = "", extras: str = "pi", no_deps: bool = False) -> str:
    """The shell script that installs an edgewise wheel on a device.

    It creates the venv once with ``--system-site-packages`` (apt's picamera2 stays visible),
    writes ``constraints`` to ``VENV/edgewise-constraints.txt`` and installs with ``-c`` on it,
    so pip never replaces the system numpy those apt packages were compiled against; the
    dependency ranges of setup.cfg admit OpenCV and LiteRT releases that work with it.
    ``venv`` and ``wheel`` are shell words (already quoted; ``wheel`` may be a glob); ``pip_args``
    is split and quoted word by word, ``extras`` must be a comma-separated list of names.
    """
    if extras and not _EXTRAS.fullmatch(extras):
        raise ValueError(f"--extras {extras!r}: expected names separated by commas (e.g. pi or pi,mqtt)")
    cfile = f"{venv}/{CONSTRAINTS_FILE}"
    pip = (f"{venv}/bin/python -m pip install --disable-pip-version-check -q "
           f"{shell_words(pip_args, '--pip-args')}").rstrip()
    text = "".join(f"{c}\n" for c in constraints)
    make = f"{shlex.quote(python)} -m venv --system-site-packages {venv}"
    script = (f"set -e\n"
              f"if [ ! -x {venv}/bin/python ]; then {make}; fi\n"
              f"printf %s {shlex.quote(text)} > {cfile}\n"
              f"set -- {wheel}\n")
    if not no_deps:
        target = '"$1"' + shlex.quote(f"[{extras}]") if extras else '"$1"'
        script += f"{pip} -c {cfile} {target}\n"
    script += f'{pip} -c {cfile} --no-deps --force-reinstall "$1"\n'
    return script
