"""What runs inside the emulated root (and, for the comparison, on this machine).

``python -m edgewise.edge.device.inside_root --inside variants --bundle B --out DIR`` runs
every variant on the bundle's evaluation samples and writes ``DIR/<variant>.npy`` plus
``DIR/results.json`` (status, kernels, and the facts of the process: machine, Python, runtime
versions, CPU features). ``--inside app --out DIR -- APP ARGS...`` runs ``edgewise run APP``
and writes ``DIR/app.json``; ``--inside commission --out DIR -- APP ARGS...`` runs ``edgewise
commission APP``, writes ``DIR/commission.json`` and exits with the command's code, so a failed
commissioning surfaces as its own one-line error. It imports only the edge runtime, never
TensorFlow, and reports whether TensorFlow got imported.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..jsonenc import dumps
from .emulator import VerifyError
from .kernels import cpu_facts, model_kernels
from .rootfs import WHEEL_PACKAGES

__all__ = ["MODULE", "run_variants", "runtime_facts", "inside_main"]

MODULE = "edgewise.edge.device.inside_root"  # python -m MODULE, in the root and on this machine
BATCH = 32


def run_variants(bundle_path: str | Path, names: list[str] | None, threads: int,
                 limit: int | None = None) -> dict[str, Any]:
    """Every (or the named) variant on the bundle's evaluation inputs (the first ``limit``):
    outputs, status and the kernels that ran."""
    from ..backends import load_model
    from ..bundle import load_bundle

    bundle = load_bundle(bundle_path)
    ev = bundle.spec.evaluation
    if ev is None or not ev.x:
        raise VerifyError(f"{bundle.path}: bundle.json has no evaluation samples to verify on")
    x = np.load(bundle.file(ev.x), allow_pickle=False)[:limit]
    results: dict[str, Any] = {}
    for name in names or list(bundle.variants):
        v = bundle.variant(name)
        try:
            model = load_model(bundle, name, threads=threads)
        except ImportError as e:
            results[name] = {"status": "skipped", "reason": str(e).splitlines()[0], "outputs": None}
            continue
        except Exception as e:  # a crash-free load failure on arm64 is exactly what to report
            results[name] = {"status": "error", "reason": f"{type(e).__name__}: {e}", "outputs": None}
            continue
        try:
            outs = np.concatenate([model.predict(x[i : i + BATCH]) for i in range(0, len(x), BATCH)])
            results[name] = {"status": "ran", "backend": v.backend, "outputs": outs,
                             "kernels": model_kernels(model)}
        except Exception as e:
            results[name] = {"status": "error", "reason": f"{type(e).__name__}: {e}", "outputs": None}
        finally:
            model.close()
    return results


def runtime_facts() -> dict[str, Any]:
    """What the process runs on: machine, Python, runtime versions, CPU features numpy sees."""
    from importlib import metadata

    facts: dict[str, Any] = {
        "machine": platform.machine(),
        "python": platform.python_version(),
        "qemu_cpu": os.environ.get("QEMU_CPU"),
        "tensorflow_imported": "tensorflow" in sys.modules,
        "versions": {},
    }
    for pkg in ("edgewise", *WHEEL_PACKAGES):
        try:
            facts["versions"][pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            facts["versions"][pkg] = None
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as feats
    except ImportError:  # numpy < 2
        try:
            from numpy.core._multiarray_umath import __cpu_features__ as feats
        except ImportError:
            feats = {}
    facts["cpu_features"] = sorted(k for k, on in feats.items() if on)
    facts.update(cpu_facts())
    return facts


def inside_main(argv: list[str]) -> int:
    """``python -m edgewise.edge.device.inside_root --inside variants|app ...``."""
    p = argparse.ArgumentParser(prog=f"python -m {MODULE}")
    p.add_argument("--inside", choices=["variants", "app", "commission"], required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--bundle")
    p.add_argument("--variants", nargs="*")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--limit", type=int, help="only the first N evaluation samples")
    p.add_argument("rest", nargs=argparse.REMAINDER,
                   help="edgewise run / edgewise commission arguments (app and commission modes)")
    a = p.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    if a.inside == "variants":
        res = run_variants(a.bundle, a.variants or None, a.threads, a.limit)
        summary = {}
        for name, r in res.items():
            if r["outputs"] is not None:
                np.save(out / f"{name}.npy", r["outputs"])
            summary[name] = {k: v for k, v in r.items() if k != "outputs"}
        (out / "results.json").write_text(dumps({"facts": runtime_facts(), "variants": summary}))
        return 0
    from ..cli import main as cli_main

    rest = [r for r in a.rest if r != "--"]
    if a.inside == "commission":
        t0 = time.monotonic()
        rc = cli_main(["commission", *rest])
        (out / "commission.json").write_text(dumps({"rc": rc, "seconds": round(time.monotonic() - t0, 2),
                                                    "facts": runtime_facts()}))
        return rc
    rc = cli_main(["run", *rest])
    (out / "app.json").write_text(dumps({"rc": rc, "facts": runtime_facts()}))
    return 0


if __name__ == "__main__":
    sys.exit(inside_main(sys.argv[1:]))
