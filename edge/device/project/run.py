"""One projection: each model runs in the emulated Pi root under the block-count plugin, then its
counted blocks are priced on the board's core model.

The emulated root is verify's (``rootfs.prepare_root``), with the same Pi CPU model and the same
``/proc``, ``/sys`` and cpuinfo, so XNNPACK and ONNX Runtime pick the kernels they pick on the
Pi (SDOT int8 kernels on a Pi 5, NEON SMLAL on a Pi 4). Only the emulator differs: the
dynamically linked ``qemu-aarch64`` that loads the plugin, started inside the chroot.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...progress import log
from ..emulator import TARGETS, Target, VerifyError, cache_lock, check_environment, chroot
from ..rootfs import Stage, prepare_root, root_dir
from .figures import BOARDS, Board, VariantFigures, band
from .inside import MODULE
from .mca import disassemble, instruction_mix, price, read_counts
from .tools import Tools, find_tools, install_host_tools

__all__ = ["ModelJob", "ProjectStage", "prepare", "project_models"]

DOT = ("sdot", "udot")
TOP = 8


@dataclass(frozen=True)
class ModelJob:
    """One model to project: a bundle's variant, a bare model file (``--model``) or the face
    pipeline's YuNet detector run as the pipeline runs it (``yunet``)."""

    name: str
    backend: str
    precision: str
    bundle: Path | None = None
    variant: str | None = None
    model: Path | None = None
    yunet: Path | None = None


class ProjectStage(Stage):
    """Progress lines ``[project 2/5] ...`` (verify's stages, under this command's name)."""

    @contextlib.contextmanager
    def __call__(self, key: str, msg: str) -> Iterator[None]:
        self.n += 1
        log(f"[project {self.n}/{self.total}] {msg}", quiet=self.quiet)
        t0 = time.monotonic()
        yield
        self.seconds[key] = round(time.monotonic() - t0, 1)


def _count(env: dict[str, Any], target: Target, prefix: list[str], hosttools: str, work: Path, inroot: str,
           job: ModelJob, runs: int) -> tuple[Path, dict[str, Any]]:
    """Run ``job`` ``runs`` times between the markers under the plugin; (counts file, what ran)."""
    import json

    counts, info = work / f"counts-{job.name}.txt", work / f"info-{job.name}.json"
    if job.model is not None:
        src = ["--model", f"{inroot}/models/{job.model.name}"]
    elif job.yunet is not None:
        src = ["--yunet", f"{inroot}/models/{job.yunet.name}"]
    else:
        src = ["--bundle", f"{inroot}/bundle", "--variant", str(job.variant)]
    chroot(env["root"], target,
           [*prefix, "-cpu", target.qemu_cpu,
            "-plugin", f"{hosttools}/blockcount.so,outfile={inroot}/{counts.name}",
            env["python"], "-m", MODULE, *src, "--runs", str(runs), "--threads", "1",
            "--out", f"{inroot}/{info.name}"],
           what=f"{job.name} under the block-count plugin", timeout=3600)
    if not counts.exists() or not info.exists():
        raise VerifyError(f"{job.name}: the plugin or the model run wrote no result")
    return counts, json.loads(info.read_text())


def _figures(job: ModelJob, counts: Path, info: dict[str, Any], tools: Tools, board: Board,
             runs: int) -> VariantFigures:
    markers, blocks = read_counts(counts)
    if markers != 2 or not blocks:
        raise VerifyError(f"{job.name}: the plugin saw {markers} of 2 markers; nothing was counted")
    words = {w for b in blocks for w in b.words}
    asm = disassemble(words, tools.llvm_mc)
    pricing = price(blocks, asm, tools.llvm_mca, board.mcpu)
    mix = instruction_mix(blocks, asm)
    cycles = pricing.cycles / runs
    ms = cycles / (board.ghz * 1e6)
    k = info.get("kernels") or {}
    fmla = sum(n for m, n in mix.items() if m == "fmla")  # vector and scalar-by-element FMLA
    return VariantFigures(
        name=job.name, backend=job.backend, precision=job.precision,
        role="detector" if job.yunet else "model", cycles=round(cycles),
        ms=round(ms, 5), ms_band=band(ms), instructions=round(pricing.instructions / runs),
        hot_share=round(pricing.hot_share, 4),
        unpriced=round((pricing.undecoded + pricing.dropped) / runs, 1),
        dot_product=round(sum(mix[m] for m in DOT) / runs),
        fmla=round(fmla / runs), top=[(m, round(n / runs)) for m, n in mix.most_common(TOP)],
        delegate=k.get("delegate") or (", ".join(k.get("providers") or []) or None),
    )


def prepare(target_name: str, *, cache: Path, tool_cache: Path, mirror: str, quiet: bool) -> Tools:
    """Setup only: build the plugin, find llvm, build or refresh the emulated root."""
    target = TARGETS[target_name]
    check_environment(need_debootstrap=not root_dir(cache).is_dir())
    stage = ProjectStage(5, quiet)
    with stage("tools", "QEMU with the block-count plugin, llvm-mc and llvm-mca"):
        tools = find_tools(tool_cache, mirror, quiet)
    with cache_lock(cache, quiet):
        env = prepare_root(cache, target, mirror=mirror, stage=stage, quiet=quiet)
        install_host_tools(env["root"], tools)
    return tools


def project_models(jobs: list[ModelJob], target_name: str, *, cache: Path, tool_cache: Path, mirror: str,
                   runs: int, quiet: bool) -> tuple[list[VariantFigures], Tools]:
    """Project every job on ``target_name``; returns the figures and the tools used."""
    target, board = TARGETS[target_name], BOARDS[target_name]
    check_environment(need_debootstrap=not root_dir(cache).is_dir())
    stage = ProjectStage(5 + len(jobs), quiet)
    with stage("tools", "QEMU with the block-count plugin, llvm-mc and llvm-mca"):
        tools = find_tools(tool_cache, mirror, quiet)
    figs = []
    with cache_lock(cache, quiet):
        env = prepare_root(cache, target, mirror=mirror, stage=stage, quiet=quiet)
        hosttools, prefix = install_host_tools(env["root"], tools)
        work = Path(tempfile.mkdtemp(prefix="edgewise-project-", dir=env["root"] / "tmp"))
        inroot = "/" + work.relative_to(env["root"]).as_posix()
        try:
            for job in jobs:
                if job.bundle is not None and not (work / "bundle").exists():
                    shutil.copytree(job.bundle, work / "bundle")
                for f in (job.model, job.yunet):
                    if f is not None:
                        (work / "models").mkdir(exist_ok=True)
                        shutil.copy2(f, work / "models" / f.name)
                with stage(job.name, f"{job.name}: {runs} inferences on {target.qemu_cpu}, counted, "
                           f"priced on {board.mcpu}"):
                    counts, info = _count(env, target, prefix, hosttools, work, inroot, job, runs)
                    figs.append(_figures(job, counts, info, tools, board, runs))
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return figs, tools
