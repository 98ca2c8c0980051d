"""The one thing every application emits, and that every sink, the status page and verify read.

An ``Event`` carries one decided ``answer`` (classify's label, inspect's PASS/FAIL, face's
person, vibration's alarm state), an optional ``score``, and app-specific detail in
``extra``. On the wire (JSON lines, SQLite, MQTT, the status page) it is a flat object whose
answer and score keep each application's own names, so consumers written against
``{"decision": "FAIL", "score": 0.93}`` keep working:

>>> e = Event(app="inspect", kind="part", answer="FAIL", score=0.93, extra={"tiles": 12})
>>> e.to_dict()["decision"], Event.from_dict(e.to_dict()).answer
('FAIL', 'FAIL')
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .jsonenc import dumps

__all__ = ["Event", "WIRE_KEYS", "answer_key", "score_key"]

# app -> (answer key, score key) on the wire; an app not listed writes "answer" and "score".
WIRE_KEYS: dict[str, tuple[str, str]] = {
    "classify": ("label", "probability"),
    "inspect": ("decision", "score"),
    "face": ("person", "similarity"),
    "vibration": ("alarm", "score"),
}
_DEFAULT_KEYS = ("answer", "score")
# Keys a dict without a known app may carry its answer under, most specific first.
_ANSWER_GUESSES = ("answer", "label", "decision", "person", "alarm")
_OWN = ("ts", "app", "kind", "frame", "path", "source", "latency_ms")


def answer_key(app: str) -> str:
    """The wire name of ``app``'s answer: ``label``, ``decision``, ``person``, ``alarm``."""
    return WIRE_KEYS.get(app, _DEFAULT_KEYS)[0]


def score_key(app: str) -> str:
    """The wire name of ``app``'s score: ``probability``, ``score``, ``similarity``."""
    return WIRE_KEYS.get(app, _DEFAULT_KEYS)[1]


@dataclass
class Event:
    """One decision of one application about one frame (image, part, signal window).

    ``ts``: wall-clock time (``time.time()``). ``frame`` and ``latency_ms`` are stamped by
    the ``Runner`` (stage name -> milliseconds; an app may add its own stages, e.g. face's
    ``detect``). ``path``: the image file, when the source is a folder or file; ``source``:
    the source's own name (a recording, a sensor). ``extra`` holds JSON-able detail (numpy
    values allowed) written next to the answer.
    """

    app: str
    kind: str
    answer: Any = None
    score: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    ts: float = field(default_factory=time.time)
    frame: int | None = None
    path: str | None = None
    source: str | None = None
    latency_ms: dict[str, float] = field(default_factory=dict)

    @property
    def answer_key(self) -> str:
        return answer_key(self.app)

    @property
    def score_key(self) -> str:
        return score_key(self.app)

    def to_dict(self) -> dict[str, Any]:
        """The wire form: a flat object; the answer key is always present, ``None`` fields are not."""
        d: dict[str, Any] = {"ts": self.ts, "app": self.app, "kind": self.kind, self.answer_key: self.answer}
        if self.score is not None:
            d[self.score_key] = self.score
        clash = [k for k in self.extra if k in d or k in _OWN]
        if clash:
            raise ValueError(f"{self.app} event: extra key '{clash[0]}' would overwrite a field of the event")
        d.update(self.extra)
        for k in ("path", "source", "frame"):
            v = getattr(self, k)
            if v is not None:
                d[k] = v
        if self.latency_ms:
            d["latency_ms"] = dict(self.latency_ms)
        return d

    def to_json(self) -> str:
        """One line of JSON (numpy values made plain)."""
        return dumps(self.to_dict())

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Event:
        """The event a wire object describes (a JSON line, an SQLite row, an MQTT payload).

        The answer is read under the app's own key; an object of an unknown app gives the
        first of ``answer``, ``label``, ``decision``, ``person``, ``alarm`` it has.
        """
        rest = dict(d)
        app = str(rest.pop("app", "") or "")
        if app in WIRE_KEYS:
            a_key, s_key = WIRE_KEYS[app]
        else:
            a_key = next((k for k in _ANSWER_GUESSES if k in rest), "answer")
            s_key = "score"
        answer = rest.pop(a_key, None)
        score = rest.pop(s_key, None)
        ts = rest.pop("ts", None)
        frame = rest.pop("frame", None)
        return cls(
            app=app,
            kind=str(rest.pop("kind", "event")),
            answer=answer,
            score=None if score is None else float(score),
            ts=time.time() if ts is None else float(ts),
            frame=None if frame is None else int(frame),
            path=rest.pop("path", None),
            source=rest.pop("source", None),
            latency_ms=dict(rest.pop("latency_ms", None) or {}),
            extra=rest,
        )

    @classmethod
    def coerce(cls, e: Event | Mapping[str, Any]) -> Event:
        """``e`` itself, or the event a wire object describes (apps still returning dicts)."""
        return e if isinstance(e, Event) else cls.from_dict(e)
