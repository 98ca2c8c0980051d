"""``edgewise info BUNDLE``: a bundle's metadata, every file checked against its checksum, its signature.

On the device this is the first thing to run after a copy: it reads only ``bundle.json`` and
hashes the files, so it needs neither a runtime nor a camera.
"""

from __future__ import annotations

import json
from typing import Any

from .cliargs import Parser, add_json, add_quiet, add_unpack_limit, emit_json
from .signing import add_trusted_key, check_signature

__all__ = ["info_main"]


def _metric_text(p: dict[str, Any]) -> str:
    """'accuracy=0.9667 (delta +0.0028)': figures rounded for people."""
    if not p.get("metric") or p.get("metric_variant") is None:
        return ""
    delta = p.get("metric_delta")
    d = f" (delta {delta:+.4f})" if isinstance(delta, (int, float)) else ""
    return f" {p['metric']}={p['metric_variant']:.4f}{d}"


def info_main(argv: list[str]) -> int:
    p = Parser(prog="edgewise info", description="Print a bundle's metadata and verify every checksum.",
               epilog="example:\n  edgewise info digits.bundle --json info.json")
    p.add_argument("bundle", help="bundle directory or .zip")
    add_trusted_key(p)
    add_unpack_limit(p)
    add_json(p, "the metadata and checksum results")
    add_quiet(p)
    a = p.parse_args(argv)

    from .bundle import load_bundle, verify_files

    # a bad signature, or one trusted keys refuse, stops here; so does a zip over the unpack limit
    b = load_bundle(a.bundle, verify=False, max_unpacked_mb=a.max_unpacked_mb)
    checks = verify_files(b.path, b.meta)
    signature = check_signature(b.path, b.meta)
    if emit_json({"bundle": b.meta, "verified": checks, "signature": signature.to_json()}, a.json):
        return 0
    m = b.meta
    print(f"bundle   {b.source or b.path}")
    print(f"name     {m['name']}  task={m['task']}  app={m['app']}")
    print(f"created  {m['created']}  edgewise {m['edgewise_version']}  schema {m['schema_version']}")
    print(f"input    {json.dumps(m['input'])}")
    print(f"output   {json.dumps(m['output'])}")
    if m.get("labels"):
        print(f"labels   {', '.join(m['labels'])}")
    if m.get("thresholds"):
        print(f"thresholds {json.dumps(m['thresholds'])}")
    parity_n = next((v.parity.get("samples") for v in b.variants.values() if v.parity.get("samples")), None)
    print("variants (agreement with Keras and metric on the conversion evaluation set"
          + (f", {parity_n} samples" if parity_n else "") + "):")
    for v in b.variants.values():
        par = v.parity
        flag = "FLAGGED " + "; ".join(par.get("reasons", [])) if v.flagged else "ok"
        agree = par.get("decision_agreement")
        agree_s = f"{agree:.4f}" if isinstance(agree, (int, float)) else "-"
        print(f"  {v.name:15s} {v.backend:11s} {v.precision:8s} {v.file:24s}"
              f" agree={agree_s}{_metric_text(par)} {flag}")
    ev = m.get("evaluation") or {}
    if ev.get("samples"):
        print(f"evaluation samples stored in the bundle (eval/, scored by `edgewise bench`): {ev['samples']}")
    print(f"files: {len(checks)} verified (size + sha256)")
    print(f"signature {signature.text()}")
    return 0
