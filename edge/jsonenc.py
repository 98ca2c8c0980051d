"""The one numpy-aware JSON encoder: events, bundle.json, reports and ``--json`` output.

numpy scalars and arrays, paths, sets and tuples become plain JSON; dict keys that are numpy
scalars or numbers become strings. Every writer of JSON in edgewise goes through here, so an
event, a report and a bundle can never disagree about how an ``np.float32`` is written.

>>> dumps({"score": np.float32(0.5), "box": np.arange(2)})
'{"score":0.5,"box":[0,1]}'
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import PurePath
from typing import Any

import numpy as np

__all__ = ["plain", "to_plain", "dumps"]


def plain(o: Any) -> Any:
    """``json.dumps(default=plain)``: the value JSON can hold, for what it cannot."""
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, PurePath):
        return str(o)
    if isinstance(o, (set, frozenset)):
        return sorted(o, key=str)
    to_dict = getattr(o, "to_dict", None)  # an Event inside a report or a stats snapshot
    if callable(to_dict):
        return to_dict()
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def to_plain(o: Any, fallback: Callable[[Any], Any] | None = None) -> Any:
    """A deep copy of ``o`` made of plain JSON types, dict keys as strings.

    ``json.dumps`` hands ``default`` only values, never keys; results keyed by a numpy
    integer (per class, per identity) need this walk. ``fallback`` (e.g. ``str``) converts
    what ``plain`` cannot; without it such a value raises ``TypeError``.
    """
    if isinstance(o, dict):
        return {k if isinstance(k, str) else str(plain(k) if isinstance(k, np.generic) else k):
                to_plain(v, fallback) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [to_plain(v, fallback) for v in o]
    if isinstance(o, (str, int, float, bool)) or o is None:
        return o
    try:
        return to_plain(plain(o), fallback)
    except TypeError:
        if fallback is None:
            raise
        return fallback(o)


def dumps(obj: Any, *, indent: int | None = None, fallback: Callable[[Any], Any] | None = None) -> str:
    """JSON text of ``obj``: compact (one line, as events are written) unless ``indent``.

    ``fallback=str`` suits reports for people (``--json``), where an odd value should be
    shown rather than stop the command; events and bundles use none.
    """
    seps = (",", ":") if indent is None else (",", ": ")
    return json.dumps(to_plain(obj, fallback), indent=indent, separators=seps)
