"""The application's edge pipeline end to end: ``edgewise run APP`` inside the root and on this
machine, on the same inputs, with their answers compared event by event (``compare.compare_events``).

Image bundles get their own evaluation samples as PNGs (normalization undone); other apps need
``--app-source``. Files named in ``--app-args`` (a face gallery, a detector model) are copied
where the root can see them.
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

from .compare import compare_events
from .emulator import Target, VerifyError, chroot, run
from .inside_root import MODULE

__all__ = ["RUN_APPS", "export_eval_images", "stage_app_args", "read_events", "run_app"]

# bundle.json "app" -> the `edgewise run` application that serves it
RUN_APPS = {"generic": "classify", "classify": "classify", "vibration": "vibration",
            "inspect": "inspect", "face": "face"}


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


def stage_app_args(app_args: str | None, work: Path, inroot: str) -> tuple[list[str], list[str]]:
    """``--app-args`` for the root and for this machine: files and folders named there (a
    face gallery, a detector model) are copied into the work folder the root can see."""
    arm: list[str] = []
    host: list[str] = []
    for i, tok in enumerate(shlex.split(app_args or "")):
        p = Path(tok)
        if tok.startswith("-") or not p.exists():
            arm.append(tok)
            host.append(tok)
            continue
        dst = work / "app_files" / f"{i}_{p.name}"
        dst.parent.mkdir(exist_ok=True)
        if p.is_dir():
            shutil.copytree(p, dst)
        else:
            shutil.copy2(p, dst)
        arm.append(f"{inroot}/app_files/{dst.name}")
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
    return {
        "status": "pass" if ok else "FAIL", "app": app, "inputs": n_inputs, "rc": res["rc"],
        "events": len(arm_events), "host_events": len(host_events), **cmp,
        "tensorflow_imported": res["facts"]["tensorflow_imported"], "machine": res["facts"]["machine"],
    }
