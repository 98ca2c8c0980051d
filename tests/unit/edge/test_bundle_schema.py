"""Property-based: malformed bundle.json documents are refused in ONE line naming the field.

Each example starts from a valid document and breaks it the way a bad copy, a careless edit
or an attacker would (a value of another type, a key dropped or added, deep nesting, a path
that leaves the bundle). Whatever happens, the only exception is ``BundleError``, its message
is one line, starts with the file and names a field.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from edgewise.edge.spec import MAX_DEPTH, BundleError, BundleSpec, parse_json  # noqa: E402

WHERE = "b.bundle/bundle.json"
SHA = "ab" * 32
VALID: dict[str, Any] = {
    "schema_version": 1, "name": "t", "task": "classification", "app": "inspect",
    "created": "2026-01-01T00:00:00+0000", "edgewise_version": "0.1.0",
    "input": {"shape": [None, 8, 8, 1], "dtype": "float32", "layout": "NHWC", "color": "gray",
              "normalization": {"scale": 0.0625, "offset": 0.0},
              "int8_quantization": {"scale": 0.004, "zero_point": -128, "dtype": "int8"}, "tile": 8},
    "output": {"shape": [None, 2], "dtype": "float32", "kind": "probabilities", "meaning": "p",
               "head": {"kind": "nearest-good", "size": 4, "banks": {"tflite_int8": "memory.npy"}}},
    "labels": ["good", "defect"],
    "thresholds": {"decision": 0.5, "per_variant": {"tflite_int8": 0.4}, "far_target": 0.01},
    "config": {"tiling": {"tile": 8, "stride": 4}}, "metrics": {"auroc": 0.9},
    "variants": {
        "tflite_int8": {"file": "model_int8.tflite", "backend": "litert", "precision": "int8",
                        "input_quantization": {"scale": 0.004, "zero_point": -128, "dtype": "int8"},
                        "output_quantization": {"scale": 0.0039, "zero_point": -128, "dtype": "int8"},
                        "parity": {"samples": 10, "reasons": []}, "flagged": False},
        "onnx_float32": {"file": "model.onnx", "backend": "onnxruntime", "precision": "float32",
                         "input_quantization": None, "output_quantization": None, "parity": {},
                         "flagged": False},
    },
    "files": {rel: {"sha256": SHA, "size": 10} for rel in
              ("model_int8.tflite", "model.onnx", "memory.npy", "eval/x.npy", "eval/keras.npy",
               "eval/y.npy")},
    "evaluation": {"samples": 10, "x": "eval/x.npy", "reference": "eval/keras.npy", "y": "eval/y.npy",
                   "decision": "argmax", "score": "last", "threshold": None, "metric": "accuracy"},
}
# objects whose keys are the author's own (free-form settings and measurements)
FREE_FORM = {("config",), ("metrics",), ("thresholds",), ("files",), ("variants",),
             ("output", "head", "banks"), ("thresholds", "per_variant")}
FIELD = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*|\[|top level)")  # input.shape[1], ['odd key'], top level


def _paths(node: Any, here: tuple = ()) -> list[tuple]:
    """Every key/index path of the document (the root excluded)."""
    out = []
    if isinstance(node, dict):
        for k, v in node.items():
            out += [(*here, k), *_paths(v, (*here, k))]
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += [(*here, i), *_paths(v, (*here, i))]
    return out


def _get(doc: Any, path: tuple) -> Any:
    for k in path:
        doc = doc[k]
    return doc


def _free_form(path: tuple) -> bool:
    """Inside a section whose keys and values are the author's own (settings, measurements,
    app-specific thresholds, parity rows), or a key chosen by the author (a file, a variant)."""
    return (path[:1] in (("config",), ("metrics",)) or "parity" in path
            or (path[:1] == ("thresholds",) and path[1:2] not in (("decision",), ("per_variant",)))
            or path in FREE_FORM)


PATHS = _paths(VALID)
# typed fields with a non-null value: another JSON type there must be refused
TYPED_PATHS = [p for p in PATHS if not _free_form(p) and _get(VALID, p) is not None]
# objects with a fixed set of keys: any other key must be refused
CLOSED_OBJECTS = [()] + [p for p in PATHS if isinstance(_get(VALID, p), dict) and not _free_form(p)]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
bad_paths = st.sampled_from(["../x.npy", "/etc/passwd", "a/../../b", "a//b", "./a", "a\\b", "", "C:/x", "..",
                             "a/.", "x\x00y"])


def _refused_in_one_line(doc: Any) -> str | None:
    """None when ``doc`` is valid, else the error line (asserting its form)."""
    try:
        BundleSpec.from_json(doc, WHERE)
    except BundleError as e:
        msg = str(e)
        assert "\n" not in msg and "\r" not in msg, msg
        assert msg.startswith(f"{WHERE}: "), msg
        named = msg[len(WHERE) + 2:]
        assert FIELD.match(named), f"no field named in: {msg}"
        assert "Traceback" not in msg and "pydantic" not in msg.lower(), msg
        return named
    return None


def _shown(path: tuple) -> str:
    from edgewise.edge.spec import _path

    return _path(path)


SETTINGS = settings(max_examples=150, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow])


def test_the_base_document_is_valid() -> None:
    assert _refused_in_one_line(copy.deepcopy(VALID)) is None


@SETTINGS
@given(path=st.sampled_from(PATHS), value=json_values)
def test_any_value_replaced_is_accepted_or_refused_in_one_line(path: tuple, value: Any) -> None:
    doc = copy.deepcopy(VALID)
    _get(doc, path[:-1])[path[-1]] = value
    _refused_in_one_line(doc)


def _json_kind(v: Any) -> str:
    return {bool: "bool", int: "number", float: "number", str: "string", list: "array", dict: "object",
            type(None): "null"}[type(v)]


@SETTINGS
@given(data=st.data(), path=st.sampled_from(TYPED_PATHS))
def test_a_value_of_another_json_type_in_a_typed_field_is_refused_naming_it(data, path: tuple) -> None:
    old = _json_kind(_get(VALID, path))
    value = data.draw(json_values.filter(lambda v: _json_kind(v) not in (old, "null")))
    doc = copy.deepcopy(VALID)
    _get(doc, path[:-1])[path[-1]] = value
    named = _refused_in_one_line(doc)
    assert named is not None, (path, value)
    assert named.startswith(_shown(path)), (path, named)


@SETTINGS
@given(path=st.sampled_from(PATHS))
def test_a_dropped_key_is_refused_or_optional(path: tuple) -> None:
    if isinstance(path[-1], int):
        return
    doc = copy.deepcopy(VALID)
    del _get(doc, path[:-1])[path[-1]]
    named = _refused_in_one_line(doc)
    required_top = {"schema_version", "name", "task", "app", "created", "edgewise_version", "input", "output",
                    "variants", "files"}
    if len(path) == 1 and path[0] in required_top:
        assert named == f"{path[0]}: required field is missing", named


@SETTINGS
@given(data=st.data(), where=st.sampled_from(CLOSED_OBJECTS), value=json_values)
def test_an_unknown_key_is_refused_naming_it(data, where: tuple, value: Any) -> None:
    target = _get(VALID, where)
    key = data.draw(st.text(min_size=1, max_size=12).filter(lambda k: k not in target))
    doc = copy.deepcopy(VALID)
    _get(doc, where)[key] = value
    named = _refused_in_one_line(doc)
    assert named is not None and "unknown key" in named, (where, key, named)
    assert named.startswith(_shown((*where, key))), (where, key, named)


@SETTINGS
@given(path=st.sampled_from(PATHS), extra=st.integers(MAX_DEPTH + 1, 400), as_dict=st.booleans())
def test_deep_nesting_anywhere_is_refused_in_one_line(path: tuple, extra: int, as_dict: bool) -> None:
    value: Any = 0
    for _ in range(extra):
        value = {"k": value} if as_dict else [value]
    doc = copy.deepcopy(VALID)
    _get(doc, path[:-1])[path[-1]] = value
    named = _refused_in_one_line(doc)
    assert named is not None and "nested deeper than" in named, named


@SETTINGS
@given(bad=bad_paths, field=st.sampled_from([("variants", "tflite_int8", "file"), ("evaluation", "x"),
                                             ("evaluation", "reference"), ("output", "head", "banks",
                                                                           "tflite_int8")]))
def test_a_path_that_leaves_the_bundle_is_refused_naming_the_field(bad: str, field: tuple) -> None:
    doc = copy.deepcopy(VALID)
    _get(doc, field[:-1])[field[-1]] = bad
    named = _refused_in_one_line(doc)
    assert named is not None and named.startswith(_shown(field)), named


@SETTINGS
@given(bad=bad_paths)
def test_a_files_entry_that_leaves_the_bundle_is_refused_naming_it(bad: str) -> None:
    doc = copy.deepcopy(VALID)
    doc["files"][bad] = {"sha256": SHA, "size": 1}
    named = _refused_in_one_line(doc)
    assert named is not None and named.startswith("files"), named


@SETTINGS
@given(text=st.text(max_size=200) | st.binary(max_size=200).map(lambda b: b.decode("latin-1")))
def test_any_text_as_bundle_json_parses_or_is_one_line(text: str) -> None:
    try:
        doc = parse_json(text.encode("utf-8", "surrogatepass"), WHERE)
    except BundleError as e:
        assert "\n" not in str(e) and str(e).startswith(f"{WHERE}: ")
        return
    _refused_in_one_line(doc) if isinstance(doc, dict) else None


@SETTINGS
@given(doc=st.dictionaries(st.sampled_from(sorted(VALID)), json_values, max_size=8))
def test_random_documents_with_real_keys_are_refused_in_one_line(doc: dict) -> None:
    assert _refused_in_one_line(json.loads(json.dumps(doc))) is not None
