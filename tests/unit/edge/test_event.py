"""One Event for every app: its wire form keeps each app's names and reads back the same answer."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgewise.edge.event import Event
from edgewise.edge.jsonenc import dumps, to_plain
from edgewise.edge.pipeline import Frame, Runner
from edgewise.edge.sinks import JsonLinesSink, SQLiteSink


@pytest.mark.parametrize(
    ("app", "answer", "key", "score_key"),
    [("classify", "7", "label", "probability"), ("inspect", "FAIL", "decision", "score"),
     ("face", "ann", "person", "similarity"), ("vibration", True, "alarm", "score")],
)
def test_each_app_writes_its_answer_under_its_own_key_and_reads_it_back(app, answer, key, score_key):
    e = Event(app=app, kind="k", answer=answer, score=0.5, extra={"box": [1, 2]}, frame=3, path="a.png")
    d = json.loads(e.to_json())
    assert d[key] == answer and d[score_key] == 0.5 and d["box"] == [1, 2] and d["frame"] == 3
    back = Event.from_dict(d)
    assert back == e


def test_face_without_a_face_still_says_who_nobody_is():
    d = Event(app="face", kind="no_face").to_dict()
    assert "person" in d and d["person"] is None and "similarity" not in d


def test_an_event_of_an_unknown_app_uses_the_first_known_answer_key():
    assert Event.from_dict({"decision": "PASS", "score": 1}).answer == "PASS"
    assert Event.from_dict({"app": "x", "answer": 3}).to_dict()["answer"] == 3


def test_extra_cannot_overwrite_the_events_own_fields():
    with pytest.raises(ValueError, match="extra key 'frame' would overwrite"):
        Event(app="inspect", kind="part", extra={"frame": 1}).to_dict()


def test_numpy_values_become_plain_json_keys_included():
    obj = {"s": np.float32(0.25), "a": np.arange(3), np.int64(4): Path("x/y"), "t": (np.bool_(True),)}
    assert json.loads(dumps(obj)) == {"s": 0.25, "a": [0, 1, 2], "4": "x/y", "t": [True]}
    assert to_plain({1: {2: np.int8(3)}}) == {"1": {"2": 3}}
    with pytest.raises(TypeError, match="not JSON serializable: object"):
        dumps(object())
    assert json.loads(dumps({"x": object()}, fallback=str))["x"].startswith("<object object")


class _DictApp:
    """An app that still returns a dict: the runner turns it into an Event for the sinks."""

    name = "inspect"

    def preprocess(self, frame: Frame) -> np.ndarray:
        return frame.data

    def infer(self, x: np.ndarray) -> float:
        return float(x.mean())

    def postprocess(self, frame: Frame, y: float) -> dict:
        return {"app": "inspect", "kind": "part", "decision": "FAIL" if y > 1 else "PASS", "score": y,
                "latency_ms": {"tiles": 1.5}}


class _Frames:
    name, dropped = "frames", 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def __iter__(self):
        for i in range(3):
            yield Frame(np.full((2, 2), i, np.float32), 0.0, i, {})


def test_sinks_record_the_runners_events_with_frame_and_stage_timings(tmp_path: Path):
    jl, db = JsonLinesSink(tmp_path / "e.jsonl"), SQLiteSink(tmp_path / "e.db")
    runner = Runner(_DictApp(), [jl, SQLiteSink(tmp_path / "e2.db"), db])
    runner.run(_Frames())
    lines = [json.loads(x) for x in (tmp_path / "e.jsonl").read_text().splitlines()]
    assert [d["decision"] for d in lines] == ["PASS", "PASS", "FAIL"]
    assert [d["frame"] for d in lines] == [0, 1, 2]
    assert set(lines[0]["latency_ms"]) == {"tiles", "preprocess", "inference", "postprocess", "end_to_end"}
    assert isinstance(runner.last_event, Event) and runner.last_event.answer == "FAIL"
    db = SQLiteSink(tmp_path / "e.db")
    assert [e.answer for e in db.events()] == ["PASS", "PASS", "FAIL"]
    db.close()


def test_status_text_names_the_person_a_face_event_recognised():
    from edgewise.edge.status import _text_lines

    lines = _text_lines(Event(app="face", kind="person", answer="ann", score=0.81234,
                              latency_ms={"end_to_end": 3.0}))
    assert lines == ["person=ann similarity=0.8123", "end-to-end 3.0 ms"]
