"""The application's edge pipeline end to end: ``edgewise run APP`` inside the root and on this
machine, on the same inputs, with their answers compared event by event (``compare.compare_events``).

Image bundles get their own evaluation samples as PNGs (normalization undone); other apps need
``--app-source``. Files named in ``--app-args`` (a face gallery, a detector model) are copied
where the root can see them.

With ``--commission-source`` (vibration), each side first commissions the bundle on that healthy
signal (``edgewise commission vibration``, ``commission_both``) and its run applies its own
commissioning file: the learned figures are compared within a relative tolerance
(``compare.compare_commissioning``), and each run's events must carry the threshold its side
learned, the proof that the file was applied.
"""

from __future__ import annotations

import contextlib
import json
import shlex
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np

from .compare import COMMISSION_REL_TOLERANCE, compare_commissioning, compare_events
from .emulator import Target, VerifyError, chroot, run
from .inside_root import MODULE

__all__ = ["RUN_APPS", "COMMISSION_RESERVED", "export_eval_images", "stage_app_args", "read_events",
           "commission_both", "thresholds_applied", "run_app"]

# bundle.json "app" -> the `edgewise run` application that serves it
RUN_APPS = {"generic": "classify", "classify": "classify", "vibration": "vibration",
            "inspect": "inspect", "face": "face"}
# flags verify sets itself for `edgewise commission vibration` (each side its own files)
COMMISSION_RESERVED = ("--bundle", "--source", "--out", "--json")


def export_eval_images(bundle: Any, folder: Path, limit: int) -> int:
    """The bundle's evaluation inputs as PNGs (undoing its normalization), for an image app.

    Returns how many were written, 0 when the input is not an image (NHWC with 1 or 3 channels).
    """
    import cv2

    spec = bundle.spec
    shape = spec.input.shape
    if len(shape) != 4 or shape[-1] not in (1, 3) or spec.evaluation is None:
        return 0
    x = spec.input.normalization.invert(np.load(bundle.file(spec.evaluation.x), allow_pickle=False)[:limit])
    folder.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(x):
        img = np.clip(np.rint(img), 0, 255).astype(np.uint8)
        if img.shape[-1] == 3 and spec.input.color == "rgb":
            img = img[..., ::-1]
        cv2.imwrite(str(folder / f"{i:04d}.png"), img[..., 0] if img.shape[-1] == 1 else img)
    return len(x)


def stage_app_args(app_args: str | None, work: Path, inroot: str,
                   folder: str = "app_files") -> tuple[list[str], list[str]]:
    """``--app-args`` for the root and for this machine: files and folders named there (a
    face gallery, a detector model) are copied into ``work/folder``, which the root can see."""
    arm: list[str] = []
    host: list[str] = []
    for i, tok in enumerate(shlex.split(app_args or "")):
        p = Path(tok)
        if tok.startswith("-") or not p.exists():
            arm.append(tok)
            host.append(tok)
            continue
        dst = work / folder / f"{i}_{p.name}"
        dst.parent.mkdir(exist_ok=True)
        if p.is_dir():
            shutil.copytree(p, dst)
        else:
            shutil.copy2(p, dst)
        arm.append(f"{inroot}/{folder}/{dst.name}")
        host.append(str(dst))
    return arm, host


def read_events(path: Path) -> list[dict[str, Any]]:
    """The wire events of a JSON-lines file (a line that is not JSON is skipped)."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            out.append(json.loads(line))
    return out


def _inputs(bundle: Any, source: str | None, src_dir: Path, frames: int) -> tuple[Path, Any]:
    """The pipeline's input in the work folder: ``--app-source`` copied, or the evaluation
    images exported; (path, how many inputs: a count, "the given", or 0 when none)."""
    if not source:
        return src_dir, export_eval_images(bundle, src_dir, frames)
    s = Path(source)
    if not s.exists():
        raise VerifyError(f"{s}: --app-source not found")
    if s.is_dir():
        shutil.copytree(s, src_dir)
        return src_dir, "the given"
    src_dir.mkdir()
    shutil.copy2(s, src_dir / s.name)
    return src_dir / s.name, "the given"


def thresholds_applied(events: list[dict[str, Any]], per_variant: dict[str, float]) -> bool:
    """Whether every event was decided at the threshold commissioning learned for its variant
    (events carry it rounded to 6 decimals): a run that ignored the file uses the bundle's."""
    for e in events:
        t, v = e.get("threshold"), e.get("variant")
        if t is None or v not in per_variant:
            return False
        if abs(float(t) - float(per_variant[v])) > 1e-6 * max(1.0, abs(float(per_variant[v]))):
            return False
    return bool(events)


def commission_both(bundle: Any, a: Any, env: dict[str, Any], target: Target, work: Path,
                    inroot: str) -> tuple[dict[str, Any], dict[str, str]]:
    """``edgewise commission vibration`` on ``--commission-source``, on this machine and then
    inside the root, and the two results compared.

    Returns (the report's ``commissioning`` entry, each side's file as that side sees it). A
    commissioning that fails on this machine is an input problem (``VerifyError``: exit 2, before
    the slow emulated run); one that fails only inside the root is a FAIL, with its one line.
    """
    from ..apps.vibration.commission import load_commissioning
    from ..spec import BundleError

    s = Path(a.commission_source)
    if not s.is_file():
        raise VerifyError(f"{s}: --commission-source not found")
    rtol = getattr(a, "commission_rtol", None) or COMMISSION_REL_TOLERANCE
    (work / "commission_input").mkdir()
    shutil.copy2(s, work / "commission_input" / s.name)
    arm_x, host_x = stage_app_args(a.commission_args, work, inroot, "commission_files")
    clash = sorted({t.split("=")[0] for t in arm_x} & set(COMMISSION_RESERVED))
    if clash:
        raise VerifyError(f"--commission-args must not set {', '.join(clash)}: verify sets them per side")

    def args(bundle_dir: str, source: str, out: str, extra: list[str]) -> list[str]:
        return ["vibration", "--bundle", bundle_dir, "--source", source, "--out", f"{out}/commissioning.json",
                "--json", f"{out}/report.json", "--threads", str(a.threads), "--quiet", *extra]

    host_dir = work / "host_commission"
    run([sys.executable, "-m", MODULE, "--inside", "commission", "--out", str(host_dir), "--",
         *args(str(work / "bundle"), str(work / "commission_input" / s.name), str(host_dir), host_x)],
        what="edgewise commission vibration on this machine", timeout=1800)
    files = {"arm64": f"{inroot}/arm_commission/commissioning.json",
             "host": str(host_dir / "commissioning.json")}
    rep: dict[str, Any] = {"source": s.name, "args": a.commission_args or "", "rtol": rtol}
    try:
        chroot(env["root"], target, [env["python"], "-m", MODULE, "--inside", "commission", "--out",
                                     f"{inroot}/arm_commission", "--",
                                     *args(f"{inroot}/bundle", f"{inroot}/commission_input/{s.name}",
                                           f"{inroot}/arm_commission", arm_x)],
               what="edgewise commission vibration inside the emulated root", timeout=1800)
        arm = load_commissioning(work / "arm_commission" / "commissioning.json", bundle)
    except (VerifyError, BundleError) as e:
        return {**rep, "status": "FAIL", "reason": str(e), "reasons": [str(e)]}, files
    host = load_commissioning(host_dir / "commissioning.json", bundle)
    res = json.loads((work / "arm_commission" / "commission.json").read_text())
    cmp = compare_commissioning(arm.body(), host.body(), rtol)
    reasons = list(cmp.pop("reasons"))
    if res["facts"]["tensorflow_imported"]:
        reasons.append("TensorFlow was imported inside the root")
    thr = {side: {**c.thresholds["per_variant"], "baseline": c.thresholds["baseline"]}
           for side, c in (("arm64", arm), ("host", host))}
    return {**rep, "status": "FAIL" if reasons else "pass", "reasons": reasons,
            "seconds_emulated": res["seconds"], "tensorflow_imported": res["facts"]["tensorflow_imported"],
            "thresholds": thr, **cmp}, files


def run_app(bundle: Any, a: Any, env: dict[str, Any], target: Target, work: Path,
            inroot: str) -> dict[str, Any]:
    """``edgewise run APP`` inside the root and on this machine, on the same inputs.

    ``a`` carries the verify options: app_source, app_args, app_frames, threads, variants.
    """
    app = RUN_APPS.get(bundle.app)
    if app is None:
        return {"status": "skipped", "reason": f"no edge application for app '{bundle.app}'"}
    src, n_inputs = _inputs(bundle, a.app_source, work / "app_input", a.app_frames)
    if not n_inputs:
        return {"status": "skipped", "app": app,
                "reason": f"pass --app-source to run the {app} pipeline end to end"}
    rel = src.relative_to(work).as_posix()
    variant = ["--variant", a.variants[0]] if a.variants else []
    arm_extra, host_extra = stage_app_args(a.app_args, work, inroot)
    comm = None
    if getattr(a, "commission_source", None):
        if app != "vibration":
            raise VerifyError(f"--commission-source is for vibration bundles; this one runs '{app}'")
        if "--commissioning" in arm_extra:
            raise VerifyError("--app-args must not set --commissioning: verify applies each side's own")
        comm, files = commission_both(bundle, a, env, target, work, inroot)
        if comm["status"] == "FAIL" and "reason" in comm:  # no commissioning inside the root: no run
            return {"status": "FAIL", "app": app, "reason": f"commissioning: {comm['reason']}", "rc": None,
                    "events": 0, "inputs": n_inputs, "agree": 0, "compared": 0, "tensorflow_imported": None,
                    "commissioning": comm}
        arm_extra += ["--commissioning", files["arm64"]]
        host_extra += ["--commissioning", files["host"]]

    def args(bundle_dir: str, source: str, jsonl: str, extra: list[str]) -> list[str]:
        return [app, "--bundle", bundle_dir, "--source", source, "--max-frames", str(a.app_frames),
                "--threads", str(a.threads), "--jsonl", jsonl, *variant, *extra]

    try:
        chroot(env["root"], target, [env["python"], "-m", MODULE, "--inside", "app", "--out", f"{inroot}/app",
                                     "--", *args(f"{inroot}/bundle", f"{inroot}/{rel}",
                                                 f"{inroot}/app/events.jsonl", arm_extra)],
               what=f"edgewise run {app} inside the emulated root", timeout=1800)
    except VerifyError as e:
        return {"status": "FAIL", "app": app, "reason": str(e), "rc": None, "events": 0,
                "inputs": n_inputs, "agree": 0, "compared": 0, "tensorflow_imported": None}
    res = json.loads((work / "app" / "app.json").read_text())
    arm_events = read_events(work / "app" / "events.jsonl")
    # The same command on this machine, on the same files, for the answers to compare.
    host_dir = work / "host_app"
    host_dir.mkdir()
    run([sys.executable, "-m", MODULE, "--inside", "app", "--out", str(host_dir), "--",
         *args(str(work / "bundle"), str(work / rel), str(host_dir / "events.jsonl"), host_extra)],
        what=f"edgewise run {app} on this machine", timeout=1800)
    host_events = read_events(host_dir / "events.jsonl")
    cmp = compare_events(arm_events, host_events)
    ok = (res["rc"] == 0 and len(arm_events) > 0 and not res["facts"]["tensorflow_imported"]
          and cmp["agree"] == cmp["compared"] and len(arm_events) == len(host_events))
    out = {
        "status": "pass" if ok else "FAIL", "app": app, "inputs": n_inputs, "rc": res["rc"],
        "events": len(arm_events), "host_events": len(host_events), **cmp,
        "tensorflow_imported": res["facts"]["tensorflow_imported"], "machine": res["facts"]["machine"],
    }
    if comm is not None:
        thr = comm["thresholds"]
        comm["applied"] = {"arm64": thresholds_applied(arm_events, thr["arm64"]),
                           "host": thresholds_applied(host_events, thr["host"])}
        comm["reasons"] += [f"the run on {side} did not decide at its commissioned threshold"
                            for side, done in comm["applied"].items() if not done]
        comm["status"] = "FAIL" if comm["reasons"] else "pass"
        out["commissioning"] = comm
        if comm["status"] == "FAIL":
            out["status"] = "FAIL"
            out["reason"] = "commissioning: " + "; ".join(comm["reasons"])
    return out
