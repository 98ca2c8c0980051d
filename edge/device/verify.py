"""``edgewise verify``: run a bundle on an emulated Raspberry Pi CPU before it is flashed.

A bundle that crashes on arm64, or whose int8 kernels answer differently on ARM than on the
workstation, should be caught here and not on the device. The cached arm64 Debian bookworm
root (``rootfs``, the Python 3.11 of Raspberry Pi OS Bookworm) runs under QEMU with the Pi's
CPU model (``emulator``); every variant of the bundle runs there on the bundle's own
evaluation samples (``inside_root``) and on this machine, and the outputs are compared
(``compare``). It also reports which kernels ran on each side (``kernels``: XNNPACK
delegation, the dot-product instructions of int8 variants, the emulated CPU's features) and
fails when arm64 did not run the kernels a Pi runs, then runs the application's pipeline
end to end on both sides (``app_check``); for a vibration bundle with ``--commission-source``,
each side first commissions the bundle on that healthy signal and its run applies the result.

Emulation proves the instruction set and the numbers, never the speed: QEMU timings say
nothing about a Pi, so none are reported as Pi timings.

>>> verify_main(["digits.bundle", "--target", "pi4"])   # doctest: +SKIP
0
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..evaluate import DEFAULT_TOLERANCES, DEVICE_REL_TOLERANCE, Decider, DeviceTolerance
from ..progress import log
from .app_check import COMMISSION_RESERVED, run_app
from .compare import COMMISSION_REL_TOLERANCE, compare_outputs, judge
from .emulator import (
    APT_PACKAGES,
    TARGETS,
    EnvironmentProblem,
    Target,
    VerifyError,
    cache_lock,
    check_environment,
    chroot,
)
from .inside_root import MODULE, run_variants
from .kernels import cpu_check, dot_product_instructions, judge_kernels
from .report import report_text
from .rootfs import DEFAULT_CACHE, DEFAULT_MIRROR, Stage, prepare_root, root_dir

__all__ = ["verify_main", "build_parser", "EXIT_OK", "EXIT_DISAGREE", "EXIT_ERROR", "EXIT_NO_EMULATION"]

EXIT_OK, EXIT_DISAGREE, EXIT_ERROR, EXIT_NO_EMULATION = 0, 1, 2, 3
# Samples the dot-product probe runs: every kernel the variant uses gets translated on the first
# batch, and logging translations slows QEMU down, so a few samples suffice.
DOT_PROBE_SAMPLES = 4


def _per_precision(field: str) -> dict[str, float]:
    return {p: getattr(t, field) for p, t in DEFAULT_TOLERANCES.items()}


def build_parser() -> argparse.ArgumentParser:
    from ..cliargs import Parser, add_json
    from ..signing import add_trusted_key

    p = Parser(
        prog="edgewise verify",
        description="Run every variant of a bundle on an emulated Raspberry Pi CPU (QEMU, arm64 "
        "Debian bookworm root) and compare its answers with this machine's. Needs root and "
        f"{', '.join(APT_PACKAGES)}. Exit 0: agreement within tolerance; 1: beyond it; 2: error; "
        "3: this machine cannot emulate (not root, tools missing).",
        epilog="examples:\n"
        "  sudo edgewise verify digits.bundle --target pi4\n"
        "  sudo edgewise verify vibration.bundle --target pi5 --app-source recording.csv --json report.json\n"
        "  sudo edgewise verify vib.bundle --app-source fault.npy --app-args '--fs 12000' "
        "--commission-source healthy.npy --commission-args '--fs 48000'",
    )
    d = DeviceTolerance()
    p.add_argument("bundle", nargs="?", help="bundle directory or .zip")
    add_trusted_key(p)
    p.add_argument("--prepare", action="store_true",
                   help="only build or update the cached root (no bundle): CI runs it beside training")
    p.add_argument("--target", choices=sorted(TARGETS), default="pi4",
                   help="pi4: Cortex-A72, pi5: Cortex-A76 (default pi4)")
    p.add_argument("--root", default=os.environ.get("EDGEWISE_PI_ROOT", DEFAULT_CACHE),
                   help=f"cache directory of the emulated root (default {DEFAULT_CACHE}, "
                   "or $EDGEWISE_PI_ROOT)")
    p.add_argument("--variants", nargs="+", help="only these variants (default: all)")
    p.add_argument("--threads", type=int, default=1, help="inference threads on both sides")
    p.add_argument("--max-steps", type=int, default=d.max_steps,
                   help=f"allowed difference of int8 outputs in quantization steps (default {d.max_steps})")
    p.add_argument("--min-cosine", type=float, default=d.min_cosine,
                   help="embeddings: minimum cosine between the host's and arm64's embedding of "
                   f"each sample, used instead of --max-steps (default {d.min_cosine})")
    p.add_argument("--min-agreement", type=float, help="minimum decision agreement (default per precision: "
                   + ", ".join(f"{k} {v}" for k, v in _per_precision("min_agreement").items()) + ")")
    p.add_argument("--max-metric-drop", type=float, help="maximum task-metric drop (default per precision: "
                   + ", ".join(f"{k} {v}" for k, v in _per_precision("max_metric_drop").items()) + ")")
    p.add_argument("--app-source", help="input for the application's edge pipeline run "
                   "(default for image bundles: the evaluation samples as PNGs)")
    p.add_argument("--app-args", help="extra arguments for `edgewise run APP`, e.g. '--fs 12000' or "
                   "'--gallery people.db' (files named here are copied into the root)")
    p.add_argument("--app-frames", type=int, default=32, help="frames for the pipeline run")
    p.add_argument("--no-app", action="store_true", help="skip the end-to-end pipeline run")
    p.add_argument("--commission-source", metavar="FILE",
                   help="vibration: a healthy recording; each side runs `edgewise commission vibration` on "
                   "it, then the pipeline run on --app-source applies that side's commissioning")
    p.add_argument("--commission-args", help="extra arguments for `edgewise commission vibration`, e.g. "
                   "'--fs 48000 --minutes 1' (files named here are copied into the root)")
    p.add_argument("--commission-rtol", type=float, default=COMMISSION_REL_TOLERANCE,
                   help="largest relative difference of a commissioned figure (thresholds, normalisation, "
                   f"baseline, levels) between arm64 and this machine (default {COMMISSION_REL_TOLERANCE:g})")
    p.add_argument("--mirror", default=os.environ.get("EDGEWISE_DEBIAN_MIRROR", DEFAULT_MIRROR),
                   help="Debian mirror the emulated root is built from ($EDGEWISE_DEBIAN_MIRROR)")
    add_json(p, "the report")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    return p


def verify_main(argv: list[str]) -> int:
    from ..cliargs import fail

    a = build_parser().parse_args(argv)
    if a.threads < 1 or a.app_frames < 1:
        return fail("edgewise verify", "--threads and --app-frames must be at least 1", EXIT_ERROR)
    if a.commission_rtol <= 0:
        return fail("edgewise verify", "--commission-rtol must be positive", EXIT_ERROR)
    try:
        return _verify(a)
    except EnvironmentProblem as e:
        return fail("edgewise verify", f"cannot emulate a Raspberry Pi here: {e}", EXIT_NO_EMULATION)
    except VerifyError as e:
        return fail("edgewise verify", e, EXIT_ERROR)


def _dot_probe(env: dict[str, Any], target: Target, work: Path, inroot: str, name: str,
               threads: int) -> dict[str, Any]:
    """Run one int8 variant again with QEMU logging the code it translates, and count the dot
    product instructions in it: the evidence that XNNPACK picked its SDOT kernels (Pi 5)."""
    qlog = work / f"qemu-{name}.log"
    try:
        chroot(env["root"], target, [env["python"], "-m", MODULE, "--inside", "variants",
                                     "--bundle", f"{inroot}/bundle", "--out", f"{inroot}/probe",
                                     "--threads", str(threads), "--variants", name,
                                     "--limit", str(DOT_PROBE_SAMPLES)],
               what=f"{name} with QEMU's instruction log", timeout=1800,
               extra_env={"QEMU_LOG": "in_asm", "QEMU_LOG_FILENAME": f"{inroot}/{qlog.name}"})
        if not qlog.exists():
            return {"error": "QEMU wrote no instruction log"}
        with qlog.open(errors="replace") as f:
            return dot_product_instructions(f)
    except VerifyError as e:
        return {"error": str(e)}
    finally:
        qlog.unlink(missing_ok=True)


def _emulated(bundle: Any, names: list[str], a: argparse.Namespace, env: dict[str, Any], target: Target,
              stage: Stage) -> tuple[dict[str, Any], dict[str, np.ndarray], dict[str, Any] | None]:
    """Every variant, then the pipeline, inside the root: (its results, outputs, pipeline report)."""
    root: Path = env["root"]
    work = Path(tempfile.mkdtemp(prefix="edgewise-verify-", dir=root / "tmp"))
    inroot = "/" + work.relative_to(root).as_posix()
    try:
        shutil.copytree(bundle.path, work / "bundle")
        with stage("emulated_run", f"every variant on {target.qemu_cpu} (emulated; not Pi speed)"):
            chroot(root, target, [env["python"], "-m", MODULE, "--inside", "variants",
                                  "--bundle", f"{inroot}/bundle", "--out", f"{inroot}/out",
                                  "--threads", str(a.threads), "--variants", *names],
                   what="running the bundle inside the emulated root", timeout=3600)
            inside = json.loads((work / "out" / "results.json").read_text())
            arm_out = {n: np.load(work / "out" / f"{n}.npy", allow_pickle=False) for n in names
                       if (work / "out" / f"{n}.npy").exists()}
            for n in names:  # which int8 kernels ran: dot product (SDOT) or not
                k = inside["variants"].get(n, {}).get("kernels") or {}
                if bundle.variant(n).precision == "int8" and (k.get("delegate") or k.get("providers")):
                    k["dot_product"] = _dot_probe(env, target, work, inroot, n, a.threads)
        app_rep = None
        if not a.no_app:
            what = "commissioning, then " if a.commission_source else ""
            with stage("app", f"{what}the application's edge pipeline, end to end in the root"):
                app_rep = run_app(bundle, a, env, target, work, inroot)
        else:
            stage.n += 1
        return inside, arm_out, app_rep
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _variant_row(bundle: Any, n: str, info: dict[str, Any], h: dict[str, Any], arm: np.ndarray | None,
                 ev: dict[str, np.ndarray | None], rule: Decider, tol: DeviceTolerance) -> dict[str, Any]:
    """One variant: skipped (runtime missing), FAIL (arm64 failed, or beyond tolerance) or pass."""
    v = bundle.variant(n)
    row: dict[str, Any] = {"variant": n, "backend": v.backend, "precision": v.precision,
                           "kernels": {"host": h.get("kernels"), "arm64": info.get("kernels")}}
    if info["status"] == "skipped":
        return {**row, "status": "skipped", "reasons": [f"runtime unavailable on arm64: {info['reason']}"]}
    if h["status"] != "ran":
        return {**row, "status": "skipped", "reasons": [f"cannot run on this machine: {h.get('reason')}"]}
    if info["status"] != "ran" or arm is None:
        return {**row, "status": "FAIL", "reasons": [f"failed on arm64: {info.get('reason')}"]}
    how = {"x": ev["x"], "y": ev["y"], "decision": rule.kind, "score": rule.score,
           "threshold": rule.threshold}
    scale = (v.output_quantization or {}).get("scale")
    row.update(compare_outputs(h["outputs"], arm, output_scale=scale, **how))
    ref = ev["reference"]
    if ref is not None and ref.shape == arm.shape:
        kh, ka = compare_outputs(ref, h["outputs"], **how), compare_outputs(ref, arm, **how)
        row["vs_keras"] = {
            "host_max_abs_diff": kh["max_abs_diff"], "arm64_max_abs_diff": ka["max_abs_diff"],
            "host_agreement": kh["decision_agreement"], "arm64_agreement": ka["decision_agreement"],
            "metric_keras": kh["metric_host"],
        }
    reasons = judge_kernels(v.backend, h.get("kernels"), info.get("kernels"))
    reasons += judge(row, v.precision, tol, rule.kind)
    return {**row, "status": "FAIL" if reasons else "pass", "reasons": reasons}


def _verify(a: argparse.Namespace) -> int:
    from ..bundle import load_bundle
    from ..cliargs import emit_json

    t_start = time.monotonic()
    target = TARGETS[a.target]
    cache = Path(a.root).resolve()
    if a.prepare:
        stage = Stage(4, a.quiet)
        with cache_lock(cache, a.quiet):
            env = prepare_root(cache, target, mirror=a.mirror, stage=stage, quiet=a.quiet)
        print(f"edgewise verify: emulated Pi root ready: {env['root']} ({env['python']}); "
              f"{sum(stage.seconds.values()):.0f}s")
        return EXIT_OK
    check_environment(need_debootstrap=not root_dir(cache).is_dir())
    if not a.bundle:
        raise VerifyError("a bundle is required (or --prepare to only build the root)")
    bundle = load_bundle(a.bundle)
    names = a.variants or list(bundle.variants)
    for n in names:
        bundle.variant(n)  # unknown names fail now, with the list of valid ones
    if a.commission_source:  # refused now, not after the slow emulated run
        if bundle.app != "vibration":
            raise VerifyError(f"--commission-source is for vibration bundles; {bundle.path} is "
                              f"'{bundle.app}'")
        if a.no_app or not a.app_source:
            raise VerifyError("--commission-source needs the pipeline run: give --app-source "
                              "(and not --no-app)")
        if not Path(a.commission_source).is_file():
            raise VerifyError(f"{a.commission_source}: --commission-source not found")
        clash = {t.split("=")[0] for t in shlex.split(a.commission_args or "")} & set(COMMISSION_RESERVED)
        if clash:
            raise VerifyError(f"--commission-args must not set {', '.join(sorted(clash))}: verify sets them "
                              "per side")
        if "--commissioning" in shlex.split(a.app_args or ""):
            raise VerifyError("--app-args must not set --commissioning: verify applies each side's own")
    spec_ev = bundle.spec.evaluation
    if spec_ev is None or not spec_ev.x:
        raise VerifyError(f"{bundle.path}: bundle.json has no evaluation samples (eval/x.npy)")
    stage = Stage(7, a.quiet)
    with cache_lock(cache, a.quiet):
        env = prepare_root(cache, target, mirror=a.mirror, stage=stage, quiet=a.quiet)
        inside, arm_out, app_rep = _emulated(bundle, names, a, env, target, stage)
    if inside["facts"].get("machine") != "aarch64":
        raise VerifyError(f"the root ran on {inside['facts'].get('machine')}, not aarch64")

    log(f"[verify {stage.total}/{stage.total}] comparing with this machine", quiet=a.quiet)
    host_res = run_variants(bundle.path, names, a.threads)
    ev = {k: (np.load(bundle.file(f), allow_pickle=False) if f else None)
          for k, f in (("x", spec_ev.x), ("y", spec_ev.y), ("reference", spec_ev.reference))}
    tol = DeviceTolerance(max_steps=a.max_steps, min_cosine=a.min_cosine, min_agreement=a.min_agreement,
                          max_metric_drop=a.max_metric_drop)
    rule = Decider.for_spec(bundle.spec)
    rows = [_variant_row(bundle, n, inside["variants"].get(n, {"status": "error", "reason": "no result from "
                         "the root"}), host_res[n], arm_out.get(n), ev, rule, tol) for n in names]
    cpu = cpu_check(target, inside["facts"])
    failed = sum(r["status"] == "FAIL" for r in rows) + bool(app_rep and app_rep.get("status") == "FAIL")
    failed += bool(cpu["problems"])
    rep = {
        "bundle": bundle.name,
        "bundle_path": str(a.bundle),
        "target": {"name": target.name, "qemu_cpu": target.qemu_cpu, "model": target.model},
        "host": {"machine": platform.machine(), "python": platform.python_version()},
        "arm64": inside["facts"],
        "cpu": cpu,
        "samples": int(len(ev["x"])),
        "decision": rule.kind,
        "threshold": rule.threshold,
        "tolerance": {"max_steps": tol.max_steps, "min_cosine": tol.min_cosine,
                      "min_agreement": tol.min_agreement or _per_precision("min_agreement"),
                      "max_metric_drop": tol.max_metric_drop or _per_precision("max_metric_drop"),
                      "relative": DEVICE_REL_TOLERANCE},
        "variants": rows,
        "app": app_rep,
        "passed": sum(r["status"] == "pass" for r in rows),
        "failed": failed,
        "skipped": sum(r["status"] == "skipped" for r in rows),
        "result": "FAIL" if failed else "agree",
        "stage_seconds": stage.seconds,
        "wall_seconds": round(time.monotonic() - t_start, 1),
        "timings_note": "all times are of the verification on this machine under QEMU; not Pi timings",
    }
    if not emit_json(rep, a.json):
        print(report_text(rep))
    return EXIT_DISAGREE if failed else EXIT_OK
