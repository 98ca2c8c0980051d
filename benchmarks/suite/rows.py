"""The suite's typed result: one row per (application, level, method, threads), latency beside accuracy.

A row is what ``--compare`` matches across runs, so its key is built from names only (never from
figures): the same bundle variant or peer method at the same thread count on the same level.
``SCHEMA`` is written into every result; a baseline of another major version is refused rather
than compared field by field.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["SCHEMA", "SuiteRow", "SuiteResult", "schema_major"]

SCHEMA = "edgewise-bench-suite/1"


def schema_major(schema: str) -> str:
    """``edgewise-bench-suite/1`` -> ``1``: rows of one major version can be compared."""
    name, _, version = schema.partition("/")
    if name != "edgewise-bench-suite" or not version:
        raise ValueError(f"not an edgewise bench suite result (schema {schema!r})")
    return version.split(".")[0]


@dataclass
class SuiteRow:
    """One measured cell: its latency percentiles and, beside them, the accuracy it was measured with.

    ``level`` says what the time covers: ``model`` (one inference of the bundle's model on its
    stored evaluation samples), ``pipeline`` (the application's whole per-item work: a face from
    a camera frame, a part image with all its tiles, a vibration window with features and
    scoring). ``metric`` names ``value``; every metric here is higher-is-better.
    """

    app: str
    level: str
    method: str
    backend: str
    precision: str
    threads: int
    p50_ms: float | None
    p99_ms: float | None = None
    spread_ms: dict[str, float] = field(default_factory=dict)  # min / p90 / max where measured
    metric: str | None = None
    value: float | None = None
    peer: bool = False  # a classical or reference method measured beside the bundle's models
    note: str = ""

    @property
    def key(self) -> str:
        return f"{self.app}/{self.level}/{self.method}/t{self.threads}"

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SuiteRow:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass
class SuiteResult:
    """Everything one ``edgewise bench all`` run writes: header, rows, what was skipped and why."""

    header: dict[str, Any]
    rows: list[SuiteRow]
    skipped: list[str] = field(default_factory=list)
    quick: bool = False
    threads: list[int] = field(default_factory=list)
    comparison: dict[str, Any] | None = None
    schema: str = SCHEMA

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SuiteResult:
        schema = str(d.get("schema", ""))
        schema_major(schema)
        if not isinstance(d.get("rows"), list):
            raise ValueError("suite result without a 'rows' list")
        return cls(header=dict(d.get("header") or {}), rows=[SuiteRow.from_dict(r) for r in d["rows"]],
                   skipped=list(d.get("skipped") or []), quick=bool(d.get("quick")),
                   threads=list(d.get("threads") or []), comparison=d.get("comparison"), schema=schema)
