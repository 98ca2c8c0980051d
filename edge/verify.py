"""``edgewise verify``: run a bundle on an emulated Raspberry Pi CPU before it is flashed.

A bundle that crashes on arm64, or whose int8 kernels answer differently on ARM than on the
workstation, should be caught here and not on the device. This module builds (once, cached)
an arm64 Debian bookworm root — the Python 3.11 of Raspberry Pi OS Bookworm — runs it under
QEMU user-mode emulation with the Pi's CPU model (``QEMU_CPU=cortex-a72`` for a Pi 4,
``cortex-a76`` for a Pi 5), installs the locally built edgewise wheel and its arm64 wheels in
it, runs every variant of the bundle on the bundle's own evaluation samples with edgewise's
edge runtime, and compares the answers with the same runtime on this machine. It also reports
which kernels ran on each side (XNNPACK delegation per variant, the dot-product instructions
of int8 variants, the emulated CPU's features) and fails when arm64 did not run the kernels a
Pi runs: a comparison against LiteRT's reference kernels proves nothing about the device.

Emulation proves the instruction set and the numbers, never the speed: QEMU timings say
nothing about a Pi, so none are reported as Pi timings.

The part that runs inside the root is ``python -m edgewise.edge.verify --inside ...``; it
imports only the edge runtime (never TensorFlow) and reports whether TensorFlow got imported.

>>> verify_main(["digits.bundle", "--target", "pi4"])   # doctest: +SKIP
0
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .progress import log

__all__ = [
    "TARGETS",
    "APT_PACKAGES",
    "Target",
    "EnvironmentProblem",
    "cpuinfo_text",
    "quantized_steps",
    "compare_outputs",
    "judge",
    "judge_kernels",
    "delegation",
    "kernels_text",
    "hwcap_features",
    "cpu_check",
    "possible_cpus",
    "dot_product_instructions",
    "mounts_below",
    "root_key",
    "wheel_requirements",
    "check_environment",
    "verify_main",
]

APT_PACKAGES = ("qemu-user-static", "binfmt-support", "debootstrap")
DEFAULT_CACHE = "/var/cache/edgewise/pi-root"
SUITE = "bookworm"  # Raspberry Pi OS Bookworm: Debian 12, Python 3.11
# Debian's own numpy and a package compiled against it (scipy) stand in for Raspberry Pi OS's
# apt-installed python3-picamera2/simplejpeg: the Pi-venv check proves a --system-site-packages
# venv made by deploy's recipe keeps them importable.
DEBOOTSTRAP_INCLUDE = (
    "python3", "python3-venv", "python3-pip", "ca-certificates", "python3-numpy", "python3-scipy",
)
DEFAULT_MIRROR = "http://deb.debian.org/debian"
# The device's runtime packages, fetched on this machine as arm64 wheels for CPython 3.11.
WHEEL_PACKAGES = ("numpy", "opencv-contrib-python-headless", "ai-edge-litert", "onnxruntime")
WHEEL_PLATFORMS = (
    "manylinux_2_27_aarch64",
    "manylinux_2_28_aarch64",
    "manylinux2014_aarch64",
    "manylinux_2_17_aarch64",
    "any",
)
TARGET_PYTHON = "311"
CHROOT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
EXIT_OK, EXIT_DISAGREE, EXIT_ERROR, EXIT_NO_EMULATION = 0, 1, 2, 3


@dataclass(frozen=True)
class Target:
    """A Raspberry Pi model: the QEMU CPU that emulates its cores and its ``/proc/cpuinfo``."""

    name: str
    qemu_cpu: str
    model: str
    part: str
    variant: str
    revision: str
    board_revision: str
    features: str


TARGETS: dict[str, Target] = {
    "pi4": Target(
        "pi4", "cortex-a72", "Raspberry Pi 4 Model B Rev 1.4", "0xd08", "0x0", "3", "c03114",
        "fp asimd evtstrm crc32 cpuid",
    ),
    "pi5": Target(
        "pi5", "cortex-a76", "Raspberry Pi 5 Model B Rev 1.0", "0xd0b", "0x4", "1", "d04170",
        "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc "
        "dcpop asimddp",
    ),
}


class EnvironmentProblem(RuntimeError):
    """This machine cannot emulate a Pi (not root, tools missing, binfmt off): exit code 3."""


class VerifyError(RuntimeError):
    """Verification could not run (bundle, wheel build, install or in-root failure): exit 2."""


# ---------------------------------------------------------------------------------------------
# Pure helpers (unit-tested): cpuinfo text, cache keys, comparison math, tolerances


def cpuinfo_text(target: Target, cores: int = 4) -> str:
    """The ``/proc/cpuinfo`` of a 64-bit Raspberry Pi OS on ``target``.

    LiteRT reads ``/proc/cpuinfo`` when it creates an interpreter and segfaults on the
    workstation's x86 text, so the emulated root sees the Pi's text instead (bind mount).
    """
    block = (
        "processor\t: {i}\n"
        "BogoMIPS\t: 108.00\n"
        f"Features\t: {target.features}\n"
        "CPU implementer\t: 0x41\n"
        "CPU architecture: 8\n"
        f"CPU variant\t: {target.variant}\n"
        f"CPU part\t: {target.part}\n"
        f"CPU revision\t: {target.revision}\n"
    )
    body = "\n".join(block.format(i=i) for i in range(cores))
    return (
        f"{body}\n"
        "Hardware\t: BCM2835\n"
        f"Revision\t: {target.board_revision}\n"
        "Serial\t\t: 0000000000000000\n"
        f"Model\t\t: {target.model}\n"
    )


_INSN = re.compile(r"^0x[0-9a-f]+:\s+([0-9a-f]{8})\b")


def dot_product_instructions(log_lines: Any) -> dict[str, int]:
    """SDOT/UDOT instructions (vector and by element) in a QEMU ``-d in_asm`` log.

    Counted from the instruction words, not the mnemonics (QEMU's disassembler may not name
    them): each translated instruction appears once, so this counts distinct instructions
    that ran at least once, not executions. Instructions read: how much code was translated.
    """
    counts = {"sdot": 0, "udot": 0, "instructions": 0}
    for line in log_lines:
        m = _INSN.match(line)
        if not m:
            continue
        w = int(m.group(1), 16)
        counts["instructions"] += 1
        # A64: DOT (vector) 0Q U01110 10 0 Rm 100101 Rn Rd; DOT (by element) 0Q U01111 10 LM Rm 1110 H0 Rn Rd
        if (w & 0x9FE0FC00) == 0x0E809400 or (w & 0x9FC0F400) == 0x0F80E000:
            counts["udot" if w >> 29 & 1 else "sdot"] += 1
    return counts


def possible_cpus(text: str) -> int:
    """Number of CPUs in a ``/sys/devices/system/cpu/possible`` list such as ``0-3`` or ``0,2-5``.

    The emulated Pi runs on this machine's cores, so its ``/proc/cpuinfo`` lists as many
    processors as ``/sys`` says exist: LiteRT's cpuinfo reads both and they must agree.
    """
    n = 0
    for part in text.strip().split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        n += int(hi or lo) - int(lo) + 1
    if n < 1:
        raise ValueError(f"not a CPU list: {text!r}")
    return n


# Linux arm64 HWCAP bits (arch/arm64/include/uapi/asm/hwcap.h) that decide which kernels
# XNNPACK and ONNX Runtime's MLAS pick: cpuinfo reads them with getauxval(AT_HWCAP), which
# QEMU user mode answers from the emulated CPU model (not from /proc/cpuinfo).
HWCAP_BITS = dict(enumerate(
    "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm jscvt fcma "
    "lrcpc dcpop sha3 sm3 sm4 asimddp sha512 sve asimdfhm dit uscat ilrcpc flagm ssbs sb paca "
    "pacg".split()
))
HWCAP2_BITS = {1: "sve2", 13: "i8mm", 14: "bf16"}
AT_HWCAP, AT_HWCAP2 = 16, 26


def hwcap_features(auxv: bytes) -> list[str]:
    """CPU features named by AT_HWCAP/AT_HWCAP2 in an arm64 process's ``/proc/self/auxv``."""
    words = np.frombuffer(auxv[: len(auxv) // 16 * 16], dtype="<u8").reshape(-1, 2)
    found: list[str] = []
    for key, val in words:
        table = {AT_HWCAP: HWCAP_BITS, AT_HWCAP2: HWCAP2_BITS}.get(int(key))
        if table:
            found += [name for bit, name in sorted(table.items()) if int(val) >> bit & 1]
    return found


# The features that change which int8/float kernels XNNPACK and MLAS select on arm64.
KERNEL_FEATURES = ("asimd", "asimddp", "fphp", "asimdhp", "asimdfhm", "i8mm", "sve")


def cpu_check(target: Target, facts: dict[str, Any]) -> dict[str, Any]:
    """Does the emulated CPU offer the kernels' features exactly as the Pi does?

    ``problems`` (each fails the verification): HWCAP unreadable, a kernel-relevant feature
    the Pi has but the emulated CPU lacks or the other way round (the arm64 side would run
    kernels the Pi does not: a Pi 5's Cortex-A76 has the dot product ``asimddp``, which int8
    kernels use for SDOT; a Pi 4's Cortex-A72 has not), or no /sys in the root.
    """
    pi = set(target.features.split())
    hw = facts.get("hwcap")
    problems = []
    if hw is None:
        problems.append("cannot read the emulated CPU's HWCAP (/proc/self/auxv)")
    else:
        missing = [f for f in KERNEL_FEATURES if f in pi and f not in hw]
        extra = [f for f in KERNEL_FEATURES if f in hw and f not in pi]
        if missing:
            problems.append(f"the emulated {target.qemu_cpu} lacks {' '.join(missing)}, which a "
                            f"{target.model} has")
        if extra:
            problems.append(f"the emulated {target.qemu_cpu} has {' '.join(extra)}, which a "
                            f"{target.model} has not")
    if not facts.get("sys_cpus_possible"):
        problems.append("no /sys in the root: LiteRT's cpuinfo cannot read the CPU topology")
    return {"hwcap": hw, "cpuinfo_features": facts.get("cpuinfo_features"),
            "sys_cpus_possible": facts.get("sys_cpus_possible"),
            "dotprod": bool(hw and "asimddp" in hw), "dotprod_expected": "asimddp" in pi,
            "problems": problems}


# LiteRT applies no delegate but its default one, XNNPACK, when no ``experimental_delegates``
# are passed (edge/backends.py passes none): every DELEGATE node is an XNNPACK partition.
DELEGATE_OP = "DELEGATE"


def delegation(nodes: list[dict[str, Any]]) -> dict[str, Any]:
    """Which of a LiteRT graph's nodes the default (XNNPACK) delegate took over.

    ``nodes`` is ``Interpreter._get_ops_details()`` after ``allocate_tensors``: the model's
    own nodes, then one DELEGATE node per delegated partition, whose inputs and outputs are
    the partition's boundary tensors. The delegated nodes are those reached walking back from
    a partition's outputs to its inputs; the rest run on LiteRT's built-in kernels.
    """
    delegates = [n for n in nodes if n["op_name"] == DELEGATE_OP]
    own = {int(n["index"]): n for n in nodes if n["op_name"] != DELEGATE_OP}
    producer = {int(t): i for i, n in own.items() for t in n["outputs"] if t >= 0}
    covered: set[int] = set()
    for d in delegates:
        boundary = {int(t) for t in d["inputs"] if t >= 0}
        stack = [int(t) for t in d["outputs"] if t >= 0]
        while stack:
            t = stack.pop()
            p = producer.get(t)
            if t in boundary or p is None or p in covered:
                continue
            covered.add(p)
            stack += [int(i) for i in own[p]["inputs"] if i >= 0]
    builtin = sorted({n["op_name"] for i, n in own.items() if i not in covered})
    return {"delegate": "XNNPACK" if delegates else None, "partitions": len(delegates),
            "nodes": len(own), "delegated": len(covered), "builtin_ops": builtin}


def kernels_text(k: dict[str, Any] | None) -> str:
    """One cell of the kernel table: ``XNNPACK 5/6 nodes (built-in: SOFTMAX)`` or the EP."""
    if not k:
        return "-"
    if "error" in k:
        return f"unknown ({k['error']})"
    dot = k.get("dot_product")
    sdot = "" if not dot else (f"; dot product in the code that ran: SDOT {dot['sdot']}, UDOT {dot['udot']}"
                               if "error" not in dot else f"; dot product unknown ({dot['error']})")
    if k.get("runtime") == "onnxruntime":
        return (", ".join(k.get("providers") or []) or "-") + sdot
    if not k.get("delegate"):
        return f"built-in reference kernels, {k['nodes']} nodes (no XNNPACK)"
    rest = f" (built-in: {', '.join(k['builtin_ops'])})" if k.get("builtin_ops") else ""
    return f"{k['delegate']} {k['delegated']}/{k['nodes']} nodes{rest}{sdot}"


def judge_kernels(backend: str, host: dict[str, Any] | None, arm: dict[str, Any] | None) -> list[str]:
    """Reasons a variant's kernels disqualify the comparison (empty: the Pi's kernels ran).

    A Pi runs TFLite models through XNNPACK; without it (LiteRT could not read the CPU's
    topology) the emulated side would test kernels the device never runs, so that fails, and
    so does a different delegation on the two sides (different kernels, different rounding).
    """
    if backend != "litert":
        return []
    reasons = []
    for side, k in (("arm64", arm), ("this machine", host)):
        if not k or "error" in k:
            why = (k or {}).get("error", "no kernel report")
            reasons.append(f"cannot tell whether XNNPACK ran on {side}: {why}")
        elif not k.get("delegate"):
            reasons.append(f"XNNPACK delegate not applied on {side}: LiteRT ran its built-in "
                           "reference kernels, which a Pi does not run")
    if reasons or arm is None or host is None:
        return reasons
    if (arm["delegated"], arm["nodes"]) != (host["delegated"], host["nodes"]):
        reasons.append(f"XNNPACK took {arm['delegated']}/{arm['nodes']} nodes on arm64 but "
                       f"{host['delegated']}/{host['nodes']} on this machine")
    return reasons


def _digest(parts: list[str] | tuple[str, ...]) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:12]


def root_key(suite: str = SUITE, include: tuple[str, ...] = DEBOOTSTRAP_INCLUDE) -> str:
    """Cache key of the base root: a hash of the Debian suite, architecture and package list."""
    return _digest([suite, "arm64", "minbase", ",".join(sorted(include))])


def wheel_requirements(pin: bool = True) -> list[str]:
    """The arm64 wheels to fetch: pinned to this machine's versions so both sides run the
    same runtime release and a difference can only come from the instruction set."""
    from importlib import metadata

    reqs = []
    for name in WHEEL_PACKAGES:
        try:
            reqs.append(f"{name}=={metadata.version(name)}" if pin else name)
        except metadata.PackageNotFoundError:
            reqs.append(name)
    return reqs


def quantized_steps(a: np.ndarray, b: np.ndarray, scale: float) -> np.ndarray:
    """|a - b| in quantization steps of an int8 output dequantized with ``scale``.

    Both sides computed ``(q - zero_point) * scale``, so the difference is an integer number
    of steps up to float rounding; rounding recovers it exactly.
    """
    if not scale or scale <= 0:
        raise ValueError(f"quantization scale must be positive, got {scale}")
    d = np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)) / float(scale)
    return np.rint(d).astype(np.int64)


def _scores(kind: str, score: str, x: np.ndarray, out: np.ndarray) -> np.ndarray:
    from .scoring import score_outputs

    return score_outputs(score, x, out).ravel()


def _unit_rows(out: np.ndarray) -> np.ndarray:
    e = out.reshape(len(out), -1).astype(np.float64)
    return e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)


def _pair_similarities(out: np.ndarray) -> np.ndarray:
    """Cosine similarity of every pair of samples (embeddings): how a face is matched."""
    e = _unit_rows(out)
    return (e @ e.T)[np.triu_indices(len(e), 1)]


def _decisions(kind: str, score: str, threshold: float | None, x: np.ndarray, out: np.ndarray):
    if kind == "pairs":
        return _pair_similarities(out) >= threshold
    if kind == "argmax":
        return out.reshape(len(out), -1).argmax(-1)
    if kind == "threshold":
        return _scores(kind, score, x, out) >= threshold
    return None


def _metric(kind: str, score: str, x: np.ndarray, out: np.ndarray, y: np.ndarray | None):
    if y is None:
        return None, ""
    if kind == "pairs":
        from .metrics import auroc

        yy = np.asarray(y).ravel()
        i, j = np.triu_indices(len(yy), 1)
        return float(auroc(_pair_similarities(out), yy[i] == yy[j])), "pair_auroc"
    if kind == "argmax":
        return float((out.reshape(len(out), -1).argmax(-1) == np.asarray(y).ravel()).mean()), "accuracy"
    if kind == "threshold":
        from .metrics import auroc

        return float(auroc(_scores(kind, score, x, out), np.asarray(y).ravel())), "auroc"
    return None, ""


def compare_outputs(
    host: np.ndarray,
    arm: np.ndarray,
    *,
    x: np.ndarray,
    y: np.ndarray | None = None,
    decision: str = "argmax",
    score: str = "last",
    threshold: float | None = None,
    output_scale: float | None = None,
) -> dict[str, Any]:
    """Differences between the host's and the emulated Pi's outputs of one variant.

    ``output_scale`` (int8 outputs) adds the difference in quantization steps. Decisions
    follow the bundle's evaluation rule (top-1, or score >= threshold; without a stored
    threshold the host's median score), the metric is the task's (accuracy or AUROC).
    ``decision="pairs"`` (embeddings): every pair of samples is "same" when its cosine
    similarity >= threshold, and the metric is the same-identity pair AUROC.
    """
    host = np.asarray(host, np.float64)
    arm = np.asarray(arm, np.float64)
    row: dict[str, Any] = {"samples": int(len(host))}
    if host.shape != arm.shape:
        row["error"] = f"output shape {arm.shape} on arm64, {host.shape} on host"
        return row
    row["finite"] = bool(np.isfinite(arm).all())
    diff = np.abs(host - arm)
    row["max_abs_diff"] = float(diff.max()) if diff.size else 0.0
    row["mean_abs_diff"] = float(diff.mean()) if diff.size else 0.0
    row["output_range"] = float(host.max() - host.min()) if host.size else 0.0
    if output_scale:
        steps = quantized_steps(host, arm, output_scale)
        row["max_steps"] = int(steps.max()) if steps.size else 0
        row["values_off_by_steps"] = int((steps > 0).sum())
        row["output_scale"] = float(output_scale)
    if len(host) and host.ndim == 2:
        row["min_cosine"] = float((_unit_rows(host) * _unit_rows(arm)).sum(axis=1).min())
    if decision == "threshold" and threshold is None:
        threshold = float(np.median(_scores(decision, score, x, host)))
    if decision == "pairs" and threshold is None:
        threshold = float(np.median(_pair_similarities(host)))
    dh = _decisions(decision, score, threshold, x, host)
    da = _decisions(decision, score, threshold, x, arm)
    row["decision_agreement"] = None if dh is None else float((dh == da).mean())
    m_host, name = _metric(decision, score, x, host, y)
    m_arm, _ = _metric(decision, score, x, arm, y)
    row["metric"] = name or None
    row["metric_host"] = m_host
    row["metric_arm"] = m_arm
    row["metric_delta"] = None if m_host is None or m_arm is None else m_arm - m_host
    return row


# Allowed |host - arm| relative to the host output range, per precision, for outputs without
# an int8 scale. float32/float16 kernels differ only in summation order between x86 and ARM;
# dynamic-range kernels re-quantize activations per batch, so allow a little more. ONNX int8
# (QDQ) models end in float, so they are judged by their decisions and metric only.
REL_TOLERANCE = {"float32": 1e-4, "float16": 1e-3, "dynamic": 2e-2}
# Decision agreement and metric drop: the limits the converter applied to each precision
# against Keras (converters/parity.py DEFAULT_TOLERANCES), now applied to arm64 vs this machine
# and to arm64 vs Keras. edge/ cannot import converters/, hence the copy.
MIN_AGREEMENT = {"float32": 0.995, "float16": 0.99, "dynamic": 0.95, "int8": 0.95}
MAX_METRIC_DROP = {"float32": 0.005, "float16": 0.01, "dynamic": 0.02, "int8": 0.02}


@dataclass(frozen=True)
class Tolerance:
    """Limits of ``edgewise verify``; beyond any of them the command exits 1.

    ``max_steps`` bounds int8 outputs. Optimized int8 kernels round differently per
    architecture (XNNPACK on x86 and on ARM; on x86 XNNPACK also differs from TFLite's own
    kernels by a few steps), so a few steps are expected and decisions decide; only
    TFLite's reference kernels agree bit for bit. ``None`` agreement/drop: per precision.

    Embeddings (``decision="pairs"``) are consumed only through their direction (cosine
    similarity against a gallery), so they are bounded by ``min_cosine`` between the host's
    and arm64's embedding of every sample instead of by steps in single components: a deep
    int8 network ending in an L2 normalization shifts a few components by more steps than a
    classifier's logits while the vector's direction, and every match decision, stays put.
    The steps are still reported.
    """

    max_steps: int = 8
    min_cosine: float = 0.99
    min_agreement: float | None = None
    max_metric_drop: float | None = None


def judge(row: dict[str, Any], precision: str, tol: Tolerance, decision: str = "argmax") -> list[str]:
    """The reasons a variant fails (empty: it agrees within tolerance)."""
    if "error" in row:
        return [row["error"]]
    reasons = []
    if not row.get("finite", True):
        reasons.append("non-finite outputs on arm64")
    by_direction = decision == "pairs" and row.get("min_cosine") is not None
    if by_direction and row["min_cosine"] < tol.min_cosine:
        reasons.append(f"min cosine host vs arm64 {row['min_cosine']:.4f} < {tol.min_cosine}")
    if "max_steps" in row:  # embeddings: the direction bound above replaces the step bound
        if not by_direction and row["max_steps"] > tol.max_steps:
            reasons.append(f"max difference {row['max_steps']} quantization steps > {tol.max_steps}")
    elif precision in REL_TOLERANCE:
        rel = REL_TOLERANCE[precision]
        limit = rel * (row.get("output_range") or 1.0)
        if row["max_abs_diff"] > limit:
            reasons.append(f"max abs diff {row['max_abs_diff']:.3g} > {rel} x output range")
    min_agree = tol.min_agreement if tol.min_agreement is not None else MIN_AGREEMENT.get(precision, 0.99)
    max_drop = (tol.max_metric_drop if tol.max_metric_drop is not None
                else MAX_METRIC_DROP.get(precision, 0.01))
    agree = row.get("decision_agreement")
    if agree is not None and agree < min_agree:
        reasons.append(f"decision agreement {agree:.4f} < {min_agree}")
    delta = row.get("metric_delta")
    if delta is not None and -delta > max_drop:
        reasons.append(f"{row['metric']} drop {-delta:.4f} > {max_drop}")
    keras_agree = (row.get("vs_keras") or {}).get("arm64_agreement")
    if keras_agree is not None and keras_agree < min_agree:
        reasons.append(f"arm64 vs Keras decision agreement {keras_agree:.4f} < {min_agree}")
    return reasons


# ---------------------------------------------------------------------------------------------
# The part that runs inside the emulated root (and, for the comparison, on the host)


def run_variants(bundle_path: str | Path, names: list[str] | None, threads: int,
                 limit: int | None = None) -> dict[str, Any]:
    """Every (or the named) variant on the bundle's evaluation inputs (the first ``limit``):
    outputs, status and the kernels that ran."""
    from .backends import load_model
    from .bundle import load_bundle

    bundle = load_bundle(bundle_path)
    ev = bundle.meta.get("evaluation") or {}
    if not ev.get("x"):
        raise VerifyError(f"{bundle.path}: bundle.json has no evaluation samples to verify on")
    x = np.load(bundle.file(ev["x"]))[:limit]
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
            outs = np.concatenate([model.predict(x[i : i + 32]) for i in range(0, len(x), 32)])
            results[name] = {"status": "ran", "backend": v.backend, "outputs": outs,
                             "kernels": model_kernels(model)}
        except Exception as e:
            results[name] = {"status": "error", "reason": f"{type(e).__name__}: {e}", "outputs": None}
        finally:
            model.close()
    return results


def model_kernels(model: Any) -> dict[str, Any]:
    """The kernels a loaded model runs on: XNNPACK delegation (LiteRT) or execution providers
    (ONNX Runtime), plus what the runtime said on stderr while loading (cpuinfo errors)."""
    said = [ln.strip() for ln in getattr(model, "runtime_log", None) or []
            if any(w in ln.lower() for w in ("cpuinfo", "error", "delegate"))]
    try:
        if getattr(model, "backend", None) == "onnxruntime":
            k: dict[str, Any] = {"runtime": "onnxruntime", "providers": list(model._sess.get_providers())}
        else:
            k = {"runtime": "litert", **delegation(model._it._get_ops_details())}
    except Exception as e:  # a private LiteRT API: say so rather than guess
        k = {"runtime": getattr(model, "backend", None), "error": f"{type(e).__name__}: {e}"}
    if said:
        k["log"] = said[:5]
    return k


def _cpu_facts() -> dict[str, Any]:
    """What the kernels' CPU detection sees: the emulated CPU's HWCAP (from the auxiliary
    vector, which QEMU fills from its CPU model), the Features line of /proc/cpuinfo and the
    CPUs /sys lists (missing /sys is what stops LiteRT's cpuinfo)."""
    facts: dict[str, Any] = {"hwcap": None, "cpuinfo_features": None, "sys_cpus_possible": None}
    if platform.machine() == "aarch64":
        with contextlib.suppress(OSError):
            facts["hwcap"] = hwcap_features(Path("/proc/self/auxv").read_bytes())
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("Features"):
                facts["cpuinfo_features"] = line.split(":", 1)[1].split()
                break
    with contextlib.suppress(OSError):
        facts["sys_cpus_possible"] = Path("/sys/devices/system/cpu/possible").read_text().strip()
    return facts


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
    facts.update(_cpu_facts())
    return facts


def _inside_main(argv: list[str]) -> int:
    """``python -m edgewise.edge.verify --inside variants|app ...`` (run inside the root)."""
    p = argparse.ArgumentParser(prog="python -m edgewise.edge.verify")
    p.add_argument("--inside", choices=["variants", "app"], required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--bundle")
    p.add_argument("--variants", nargs="*")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--limit", type=int, help="only the first N evaluation samples")
    p.add_argument("rest", nargs=argparse.REMAINDER, help="edgewise run arguments (app mode)")
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
        (out / "results.json").write_text(json.dumps({"facts": runtime_facts(), "variants": summary}))
        return 0
    from .cli import main as cli_main

    rest = [r for r in a.rest if r != "--"]
    rc = cli_main(["run", *rest])
    (out / "app.json").write_text(json.dumps({"rc": rc, "facts": runtime_facts()}))
    return 0


# ---------------------------------------------------------------------------------------------
# Host side: environment checks, the cached root, wheels, running inside


def _which(cmd: str) -> str | None:
    return shutil.which(cmd)


def check_environment(need_debootstrap: bool) -> None:
    """Raise ``EnvironmentProblem`` with one line naming what to do, before touching anything."""
    install = f"apt-get install {' '.join(APT_PACKAGES)}"
    if os.geteuid() != 0:
        raise EnvironmentProblem(
            "needs root to build and enter the emulated root (debootstrap, mount, chroot): "
            "run it as root, e.g. sudo edgewise verify ..."
        )
    missing = [c for c in ("chroot", "unshare", "mount") if _which(c) is None]
    if missing:
        raise EnvironmentProblem(f"{', '.join(missing)} not found; install util-linux and coreutils")
    if _which("qemu-aarch64-static") is None and _which("qemu-aarch64") is None:
        raise EnvironmentProblem(f"qemu-aarch64-static not found (QEMU user emulation); install: {install}")
    if _which("update-binfmts") is None:
        raise EnvironmentProblem(f"update-binfmts not found (binfmt-support); install: {install}")
    if need_debootstrap and _which("debootstrap") is None:
        raise EnvironmentProblem(
            f"debootstrap not found (needed once to build the arm64 root); install: {install}"
        )


def _run(cmd: list[str], *, what: str, env: dict[str, str] | None = None, timeout: float = 3600,
         problem: type[RuntimeError] = VerifyError) -> str:
    """Run a command; on failure raise ``problem`` with its last output line."""
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise problem(f"{what}: timed out after {timeout:.0f}s") from None
    except OSError as e:
        raise problem(f"{what}: {e}") from None
    if p.returncode != 0:
        lines = [ln for ln in (p.stderr + p.stdout).strip().splitlines() if ln.strip()]
        raise problem(f"{what} failed (exit {p.returncode}): {lines[-1] if lines else 'no output'}")
    return p.stdout


def ensure_binfmt() -> tuple[str, bool]:
    """Make arm64 binaries run here; returns (interpreter path, whether it is preloaded)."""
    d = Path("/proc/sys/fs/binfmt_misc")
    if not (d / "status").exists():
        _run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(d)],
             what="mounting binfmt_misc", problem=EnvironmentProblem)
    entry = d / "qemu-aarch64"
    if not entry.exists() or "enabled" not in entry.read_text():
        _run(["update-binfmts", "--enable", "qemu-aarch64"],
             what="update-binfmts --enable qemu-aarch64", problem=EnvironmentProblem)
    if not entry.exists() or not entry.read_text().startswith("enabled"):
        raise EnvironmentProblem(
            "binfmt_misc has no enabled qemu-aarch64 entry: arm64 binaries cannot run here "
            f"(install {' '.join(APT_PACKAGES)}; in a container the host must register it)"
        )
    interp, flags = "", ""
    for line in entry.read_text().splitlines():
        if line.startswith("interpreter "):
            interp = line.split(" ", 1)[1]
        elif line.startswith("flags:"):
            flags = line.split(":", 1)[1].strip()
    return interp, "F" in flags


class _Stage:
    """Progress lines: ``[verify 2/6] ...`` with the elapsed time of each stage."""

    def __init__(self, total: int, quiet: bool) -> None:
        self.total, self.quiet, self.n = total, quiet, 0
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, key: str, msg: str) -> Iterator[None]:
        self.n += 1
        log(f"[verify {self.n}/{self.total}] {msg}", quiet=self.quiet)
        t0 = time.monotonic()
        yield
        self.seconds[key] = round(time.monotonic() - t0, 1)


@contextlib.contextmanager
def _cache_lock(cache: Path, quiet: bool) -> Iterator[None]:
    """One verify at a time per cache: they share the root's Python environment."""
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"waiting for another edgewise verify using {cache} ...", quiet=quiet)
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _debootstrap(root: Path, mirror: str, quiet: bool) -> None:
    """Build the base root in ``ROOT.partial`` and rename it when complete (crash-safe)."""
    partial = root.with_name(root.name + ".partial")
    if partial.exists():
        log(f"removing an unfinished root {partial}", quiet=quiet)
        _umount_below(partial)
        shutil.rmtree(partial)
    cmd = [
        "debootstrap", "--arch=arm64", "--variant=minbase",
        f"--include={','.join(DEBOOTSTRAP_INCLUDE)}", SUITE, str(partial), mirror,
    ]
    log(f"  {' '.join(cmd)}  (about 10 minutes, once per machine)", quiet=quiet)
    t0 = time.monotonic()
    last_print = 0.0
    tail: list[str] = []
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        line = line.rstrip()
        tail = (tail + [line])[-5:]
        now = time.monotonic()
        if now - last_print >= 15 or line.startswith(("I: Base system installed", "E:", "W: Failure")):
            last_print = now
            log(f"  debootstrap {now - t0:5.0f}s  {line}", quiet=quiet)
    if proc.wait() != 0:
        why = next((ln for ln in reversed(tail) if ln.startswith(("E:", "W:"))), tail[-1] if tail else "")
        raise EnvironmentProblem(
            f"debootstrap failed (exit {proc.returncode}): {why} (log: {partial}/debootstrap/debootstrap.log)"
        )
    partial.rename(root)


def _umount_below(path: Path) -> None:
    """Unmount anything left mounted below ``path`` (only possible after a hard kill)."""
    for m in sorted(mounts_below(path), reverse=True):
        subprocess.run(["umount", "-l", m], check=False)


def mounts_below(path: Path) -> list[str]:
    """Mount points below ``path`` in this machine's mount table (none after a verify)."""
    mounts = [ln.split()[1] for ln in Path("/proc/mounts").read_text().splitlines()]
    return [m for m in mounts if m.startswith(str(path).rstrip("/") + "/")]


def _host_cpus() -> int:
    try:
        return possible_cpus(Path("/sys/devices/system/cpu/possible").read_text())
    except (OSError, ValueError):
        return os.cpu_count() or 1


def _chroot(root: Path, target: Target, cmd: list[str], *, what: str, timeout: float = 3600,
            extra_env: dict[str, str] | None = None) -> str:
    """Run ``cmd`` in the root under emulation of ``target``'s CPU.

    What LiteRT and ONNX Runtime probe is mounted as on a Pi: /proc (with the Pi's cpuinfo
    bound over /proc/cpuinfo), /sys read-only (cpuinfo's CPU topology: without it LiteRT
    creates no XNNPACK delegate and runs its reference kernels) and /dev with /dev/shm. They
    live in a private mount namespace, so they disappear with the process even if it is
    killed: nothing is ever mounted on this machine (``mounts_below`` checks it).
    """
    cpuinfo = root.parent / f"cpuinfo-{target.name}.txt"
    text = cpuinfo_text(target, cores=_host_cpus())
    if not cpuinfo.exists() or cpuinfo.read_text() != text:
        cpuinfo.write_text(text)
    script = (
        'r="$1"; c="$2"; shift 2; '
        'mount -t proc proc "$r/proc" && mount --bind "$c" "$r/proc/cpuinfo" && '
        'mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$r/sys" && '
        'mount --rbind /dev "$r/dev" && exec chroot "$r" "$@"'
    )
    env = {
        "PATH": CHROOT_PATH, "HOME": "/root", "LANG": "C.UTF-8", "QEMU_CPU": target.qemu_cpu,
        "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PYTHONUNBUFFERED": "1", **(extra_env or {}),
    }
    full = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh",
            str(root), str(cpuinfo), *cmd]
    return _run(full, what=what, env=env, timeout=timeout)


def _download_wheels(cache: Path, quiet: bool) -> tuple[Path, list[str]]:
    """arm64 CPython 3.11 wheels of the runtime, fetched with this machine's pip (cached)."""
    reqs = wheel_requirements(pin=True)
    for attempt, pinned in enumerate((reqs, wheel_requirements(pin=False))):
        key = _digest([*pinned, *WHEEL_PLATFORMS, TARGET_PYTHON])
        dest = cache / "wheels" / key
        if (dest / ".complete").exists():
            log(f"  arm64 wheels: cached {dest}", quiet=quiet)
            return dest, pinned
        dest.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check",
               "--only-binary=:all:", "--python-version", TARGET_PYTHON, "-d", str(dest)]
        for plat in WHEEL_PLATFORMS:
            cmd += ["--platform", plat]
        log(f"  pip download (arm64, cp311): {' '.join(pinned)}", quiet=quiet)
        try:
            _run(cmd + pinned, what="pip download of the arm64 wheels", timeout=1800)
        except VerifyError as e:
            if attempt == 0:
                log(f"  pinned versions unavailable for arm64 ({e}); trying the newest", quiet=quiet)
                continue
            raise
        (dest / ".complete").write_text("\n".join(pinned) + "\n")
        return dest, pinned
    raise VerifyError("pip download of the arm64 wheels failed")  # pragma: no cover


def _source_tree() -> Path:
    """The edgewise checkout this module runs from (setup.cfg beside edge/)."""
    src = Path(__file__).resolve().parent.parent
    if not (src / "setup.cfg").is_file() or not (src / "edge" / "verify.py").is_file():
        raise VerifyError(
            f"cannot build the edgewise wheel: no source tree with setup.cfg at {src} "
            "(install edgewise from a checkout: pip install -e .)"
        )
    return src


SOURCE_DIRS = ("edge", "train", "converters", "benchmarks")
SOURCE_FILES = ("setup.cfg", "pyproject.toml", "README.md", "LICENSE")


def _source_files(src: Path) -> list[Path]:
    files = [src / f for f in SOURCE_FILES if (src / f).is_file()]
    for d in SOURCE_DIRS:
        if (src / d).is_dir():
            files += sorted(
                p for p in (src / d).rglob("*")
                if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
            )
    return files


def _source_hash(src: Path) -> str:
    h = hashlib.sha256()
    for p in _source_files(src):
        h.update(p.relative_to(src).as_posix().encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def _build_wheel(src: Path, out: Path) -> Path:
    """The edgewise wheel from a clean copy of the checkout (no build/ left in the repo)."""
    with tempfile.TemporaryDirectory(prefix="edgewise-wheel-") as tmp:
        copy = Path(tmp) / "src"
        for p in _source_files(src):
            dst = copy / p.relative_to(src)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(p, dst)
        if not (copy / "README.md").exists():
            (copy / "README.md").write_text("edgewise\n")
        cmd = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--disable-pip-version-check",
               "-w", str(out)]
        try:
            import setuptools  # noqa: F401

            cmd.append("--no-build-isolation")
        except ImportError:
            pass
        _run(cmd + [str(copy)], what="building the edgewise wheel", timeout=900)
    wheels = sorted(out.glob("edgewise-*.whl"))
    if not wheels:
        raise VerifyError(f"building the edgewise wheel produced no edgewise-*.whl in {out}")
    return wheels[-1]


def _pip(venv: str) -> list[str]:
    """The root's pip (Debian's python3-pip) acting on ``venv``, offline."""
    return ["python3", "-m", "pip", "--python", f"{venv}/bin/python", "install", "-q", "--no-index"]


def prepare_root(cache: Path, target: Target, *, mirror: str, stage: _Stage, quiet: bool) -> dict[str, Any]:
    """Build or reuse the root, its Python environment and the current edgewise install."""
    check_environment(need_debootstrap=not (cache / f"{SUITE}-arm64-{root_key()}").is_dir())
    interp, preloaded = ensure_binfmt()
    root = cache / f"{SUITE}-arm64-{root_key()}"
    with stage("root", f"emulated arm64 Debian {SUITE} root in {cache}"):
        if root.is_dir():
            log(f"  reusing {root}", quiet=quiet)
        else:
            _debootstrap(root, mirror, quiet)
        if not preloaded and interp:  # without binfmt's F flag the emulator must be in the root
            dst = root / interp.lstrip("/")
            if not dst.exists():
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(interp, dst)
        _chroot(root, target, ["/bin/true"], what=f"running an arm64 binary ({target.qemu_cpu})",
                timeout=120)
    with stage("wheels", "arm64 wheels of the runtime (fetched on this machine)"):
        wheels, reqs = _download_wheels(cache, quiet)
    venv = f"/opt/edgewise/venv-{wheels.name}"
    with stage("venv", f"Python environment in the root ({venv})"):
        marker = root / venv.lstrip("/") / ".edgewise-complete"
        if marker.exists():
            log("  reusing it", quiet=quiet)
        else:
            inroot_wheels = root / "opt" / "edgewise" / f"wheels-{wheels.name}"
            if inroot_wheels.exists():
                shutil.rmtree(inroot_wheels)
            shutil.copytree(wheels, inroot_wheels)
            shutil.rmtree(root / venv.lstrip("/"), ignore_errors=True)
            # The root's own pip installs into a pip-less venv, without byte-compiling: both
            # are slow under emulation, and modules compile on first import anyway.
            log("  python3 -m venv --without-pip (emulated)", quiet=quiet)
            _chroot(root, target, ["python3", "-m", "venv", "--without-pip", venv],
                    what="creating the venv in the root")
            log(f"  pip install --no-index {' '.join(reqs)} (emulated, 1-2 minutes)", quiet=quiet)
            _chroot(root, target, [*_pip(venv), "--no-compile", "--find-links",
                                   f"/opt/edgewise/wheels-{wheels.name}", *reqs],
                    what="installing the arm64 wheels in the root")
            marker.write_text("\n".join(reqs) + "\n")
    with stage("edgewise", "the local edgewise wheel in the root"):
        src = _source_tree()
        digest = _source_hash(src)
        mark = root / venv.lstrip("/") / ".edgewise-source"
        if mark.exists() and mark.read_text().strip() == digest:
            log(f"  unchanged source ({digest}): already installed", quiet=quiet)
        else:
            dest = root / "opt" / "edgewise" / "dist"
            shutil.rmtree(dest, ignore_errors=True)
            dest.mkdir(parents=True)
            whl = _build_wheel(src, dest)
            log(f"  built {whl.name}; installing it with --no-index (emulated)", quiet=quiet)
            _chroot(root, target, [*_pip(venv), "--force-reinstall", "--no-deps",
                                   f"/opt/edgewise/dist/{whl.name}"],
                    what="installing the edgewise wheel in the root")
            _chroot(root, target, [f"{venv}/bin/python", "-m", "edgewise.edge.cli", "--version"],
                    what="importing edgewise in the root")
            mark.write_text(digest + "\n")
    return {"root": root, "python": f"{venv}/bin/python", "requirements": reqs}


# ---------------------------------------------------------------------------------------------
# Application pipeline, end to end


RUN_APPS = {"generic": "classify", "classify": "classify", "vibration": "vibration",
            "inspect": "inspect", "face": "face"}


def export_eval_images(bundle: Any, folder: Path, limit: int) -> int:
    """The bundle's evaluation inputs as PNGs (undoing its normalization), for an image app.

    Returns how many were written, 0 when the input is not an image (NHWC with 1 or 3 channels).
    """
    import cv2

    shape = bundle.input.get("shape") or []
    ev = bundle.meta.get("evaluation") or {}
    if len(shape) != 4 or shape[-1] not in (1, 3) or not ev.get("x"):
        return 0
    x = np.load(bundle.file(ev["x"]))[:limit].astype(np.float64)
    norm = bundle.input.get("normalization") or {}
    if "mean" in norm:
        x = x * float(norm.get("std", 1.0)) + float(norm["mean"])
    if "scale" in norm:
        x = (x - float(norm.get("offset", 0.0))) / float(norm["scale"])
    folder.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(x):
        img = np.clip(np.rint(img), 0, 255).astype(np.uint8)
        if img.shape[-1] == 3 and bundle.input.get("color") == "rgb":
            img = img[..., ::-1]
        cv2.imwrite(str(folder / f"{i:04d}.png"), img[..., 0] if img.shape[-1] == 1 else img)
    return len(x)


def _read_events(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            out.append(json.loads(line))
    return out


def _event_answer(e: dict[str, Any]) -> Any:
    """The decision an event carries (class, PASS/FAIL, anomalous, identity), for comparison."""
    for k in ("label", "decision", "anomalous", "anomaly", "identity", "name", "verdict", "kind"):
        if k in e:
            return e[k]
    return None


# ---------------------------------------------------------------------------------------------
# The command


def _fmt(v: Any, nd: int = 4) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3g}" if (v != 0 and abs(v) < 1e-3) else f"{v:.{nd}f}"
    return str(v)


def _cpu_lines(rep: dict[str, Any]) -> list[str]:
    c = rep.get("cpu") or {}
    hw = c.get("hwcap")
    dot = ("yes (asimddp): int8 kernels can use SDOT" if c.get("dotprod")
           else "no (no asimddp on this core)")
    lines = [
        f"  emulated CPU {rep['target']['qemu_cpu']}: HWCAP {' '.join(hw) if hw else '-'}; "
        f"dot product {dot}",
        f"  /proc/cpuinfo Features (the Pi's): {' '.join(c.get('cpuinfo_features') or []) or '-'}; "
        f"/sys CPUs possible: {c.get('sys_cpus_possible') or 'none (no /sys)'}",
    ]
    lines += [f"  CPU check FAILED: {p}" for p in c.get("problems", [])]
    return lines


def _report_text(rep: dict[str, Any]) -> str:
    f = rep["arm64"]
    lines = [
        f"edgewise verify: {rep['bundle']} on an emulated {rep['target']['model']} "
        f"({rep['target']['qemu_cpu']}, QEMU user mode, arm64 Debian {SUITE}, Python {f.get('python')})",
        f"  arm64 runtime: numpy {f['versions'].get('numpy')}, ai-edge-litert "
        f"{f['versions'].get('ai-edge-litert')}, onnxruntime {f['versions'].get('onnxruntime')}; "
        f"CPU features seen: {' '.join(f.get('cpu_features', [])) or '-'}",
        *_cpu_lines(rep),
        f"  compared with this machine ({rep['host']['machine']}, same edge runtime) on "
        f"{rep['samples']} evaluation samples of the bundle",
        "",
        "| variant | precision | status | max steps | max abs diff | agreement | metric | host | arm64 "
        "| delta | vs Keras agreement host / arm64 | notes |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rep["variants"]:
        k = r.get("vs_keras") or {}
        lines.append(
            f"| {r['variant']} | {r['precision']} | {r['status']} | {_fmt(r.get('max_steps'))} | "
            f"{_fmt(r.get('max_abs_diff'))} | {_fmt(r.get('decision_agreement'))} | "
            f"{r.get('metric') or '-'} | {_fmt(r.get('metric_host'))} | {_fmt(r.get('metric_arm'))} | "
            f"{_fmt(r.get('metric_delta'))} | {_fmt(k.get('host_agreement'))} / "
            f"{_fmt(k.get('arm64_agreement'))} | "
            + "; ".join(([f"min cosine {r['min_cosine']:.5f}"] if rep.get("decision") == "pairs"
                         and r.get("min_cosine") is not None else []) + r.get("reasons", []))
            + " |"
        )
    lines += ["", "| variant | kernels on this machine | kernels on arm64 (emulated) |", "|---|---|---|"]
    for r in rep["variants"]:
        k = r.get("kernels") or {}
        lines.append(f"| {r['variant']} | {kernels_text(k.get('host'))} | {kernels_text(k.get('arm64'))} |")
    said = dict.fromkeys(m for r in rep["variants"] for m in ((r.get("kernels") or {}).get("arm64") or {})
                         .get("log", []) if "created tensorflow lite xnnpack" not in m.lower())
    lines += [f"  arm64 runtime said: {m}" for m in said]
    app = rep.get("app")
    if app:
        if app.get("status") == "skipped":
            lines.append(f"\nedge pipeline: skipped ({app['reason']})")
        else:
            lines.append(
                f"\nedge pipeline: `edgewise run {app['app']}` inside the root on {app['inputs']} "
                f"inputs: exit {app['rc']}, {app['events']} events, answers agree with this machine "
                f"{app['agree']}/{app['compared']}, TensorFlow imported: {app['tensorflow_imported']} "
                f"-> {app['status']}"
            )
    lines.append(
        f"\nresult: {rep['result']} ({rep['passed']} passed, {rep['failed']} failed, "
        f"{rep['skipped']} skipped). Emulated timings say nothing about a Pi and are not reported "
        f"as Pi timings (verification wall time {rep['wall_seconds']}s, emulated)."
    )
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    from .cliargs import Parser, add_json

    p = Parser(
        prog="edgewise verify",
        description="Run every variant of a bundle on an emulated Raspberry Pi CPU (QEMU, arm64 "
        "Debian bookworm root) and compare its answers with this machine's. Needs root and "
        f"{', '.join(APT_PACKAGES)}. Exit 0: agreement within tolerance; 1: beyond it; 2: error; "
        "3: this machine cannot emulate (not root, tools missing).",
        epilog="examples:\n"
        "  sudo edgewise verify digits.bundle --target pi4\n"
        "  sudo edgewise verify vibration.bundle --target pi5 --app-source recording.csv --json report.json",
    )
    p.add_argument("bundle", nargs="?", help="bundle directory or .zip")
    p.add_argument("--prepare", action="store_true",
                   help="only build or update the cached root (no bundle): CI runs it beside training")
    p.add_argument("--target", choices=sorted(TARGETS), default="pi4",
                   help="pi4: Cortex-A72, pi5: Cortex-A76 (default pi4)")
    p.add_argument("--root", default=os.environ.get("EDGEWISE_PI_ROOT", DEFAULT_CACHE),
                   help=f"cache directory of the emulated root (default {DEFAULT_CACHE}, "
                   "or $EDGEWISE_PI_ROOT)")
    p.add_argument("--variants", nargs="+", help="only these variants (default: all)")
    p.add_argument("--threads", type=int, default=1, help="inference threads on both sides")
    p.add_argument("--max-steps", type=int, default=Tolerance.max_steps,
                   help="allowed difference of int8 outputs in quantization steps "
                   f"(default {Tolerance.max_steps})")
    p.add_argument("--min-cosine", type=float, default=Tolerance.min_cosine,
                   help="embeddings: minimum cosine between the host's and arm64's embedding of "
                   f"each sample, used instead of --max-steps (default {Tolerance.min_cosine})")
    p.add_argument("--min-agreement", type=float,
                   help="minimum decision agreement (default per precision: "
                   + ", ".join(f"{k} {v}" for k, v in MIN_AGREEMENT.items()) + ")")
    p.add_argument("--max-metric-drop", type=float,
                   help="maximum task-metric drop (default per precision: "
                   + ", ".join(f"{k} {v}" for k, v in MAX_METRIC_DROP.items()) + ")")
    p.add_argument("--app-source", help="input for the application's edge pipeline run "
                   "(default for image bundles: the evaluation samples as PNGs)")
    p.add_argument("--app-args", help="extra arguments for `edgewise run APP`, e.g. '--fs 12000' or "
                   "'--gallery people.db' (files named here are copied into the root)")
    p.add_argument("--app-frames", type=int, default=32, help="frames for the pipeline run")
    p.add_argument("--no-app", action="store_true", help="skip the end-to-end pipeline run")
    p.add_argument("--mirror", default=os.environ.get("EDGEWISE_DEBIAN_MIRROR", DEFAULT_MIRROR),
                   help="Debian mirror the emulated root is built from ($EDGEWISE_DEBIAN_MIRROR)")
    add_json(p, "the report")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    return p


def verify_main(argv: list[str]) -> int:
    from .cliargs import fail

    a = build_parser().parse_args(argv)
    if a.threads < 1 or a.app_frames < 1:
        return fail("edgewise verify", "--threads and --app-frames must be at least 1", EXIT_ERROR)
    try:
        return _verify(a)
    except EnvironmentProblem as e:
        return fail("edgewise verify", f"cannot emulate a Raspberry Pi here: {e}", EXIT_NO_EMULATION)
    except VerifyError as e:
        return fail("edgewise verify", e, EXIT_ERROR)


def _verify(a: argparse.Namespace) -> int:
    from .bundle import load_bundle
    from .cliargs import emit_json

    t_start = time.monotonic()
    target = TARGETS[a.target]
    quiet = a.quiet
    cache = Path(a.root).resolve()
    check_environment(need_debootstrap=not (cache / f"{SUITE}-arm64-{root_key()}").is_dir())
    if a.prepare:
        stage = _Stage(4, quiet)
        with _cache_lock(cache, quiet):
            env = prepare_root(cache, target, mirror=a.mirror, stage=stage, quiet=quiet)
        print(f"edgewise verify: emulated Pi root ready: {env['root']} ({env['python']}); "
              f"{sum(stage.seconds.values()):.0f}s")
        return EXIT_OK
    if not a.bundle:
        raise VerifyError("a bundle is required (or --prepare to only build the root)")
    bundle = load_bundle(a.bundle)
    names = a.variants or list(bundle.variants)
    for n in names:
        bundle.variant(n)  # unknown names fail now, with the list of valid ones
    ev = bundle.meta.get("evaluation") or {}
    if not ev.get("x"):
        raise VerifyError(f"{bundle.path}: bundle.json has no evaluation samples (eval/x.npy)")
    stage = _Stage(7, quiet)
    with _cache_lock(cache, quiet):
        env = prepare_root(cache, target, mirror=a.mirror, stage=stage, quiet=quiet)
        root: Path = env["root"]
        work = Path(tempfile.mkdtemp(prefix="edgewise-verify-", dir=root / "tmp"))
        inroot = "/" + work.relative_to(root).as_posix()
        try:
            shutil.copytree(bundle.path, work / "bundle")
            with stage("emulated_run", f"every variant on {target.qemu_cpu} (emulated; not Pi speed)"):
                _chroot(root, target, [env["python"], "-m", "edgewise.edge.verify", "--inside", "variants",
                                       "--bundle", f"{inroot}/bundle", "--out", f"{inroot}/out",
                                       "--threads", str(a.threads), "--variants", *names],
                        what="running the bundle inside the emulated root", timeout=3600)
                inside = json.loads((work / "out" / "results.json").read_text())
                arm_out = {n: np.load(work / "out" / f"{n}.npy") for n in names
                           if (work / "out" / f"{n}.npy").exists()}
                for n in names:  # which int8 kernels ran: dot product (SDOT) or not
                    k = inside["variants"].get(n, {}).get("kernels") or {}
                    if bundle.variant(n).precision == "int8" and (k.get("delegate") or k.get("providers")):
                        k["dot_product"] = _dot_probe(root, target, env["python"], work, inroot, n, a.threads)
            app_rep = None
            if not a.no_app:
                with stage("app", "the application's edge pipeline, end to end in the root"):
                    app_rep = _run_app(bundle, a, env, target, work, inroot, quiet)
            else:
                stage.n += 1
        finally:
            shutil.rmtree(work, ignore_errors=True)

    log(f"[verify {stage.total}/{stage.total}] comparing with this machine", quiet=quiet)
    host_res = run_variants(bundle.path, names, a.threads)
    x = np.load(bundle.file(ev["x"]))
    y = np.load(bundle.file(ev["y"])) if ev.get("y") else None
    ref = np.load(bundle.file(ev["reference"])) if ev.get("reference") else None
    tol = Tolerance(max_steps=a.max_steps, min_cosine=a.min_cosine, min_agreement=a.min_agreement,
                    max_metric_drop=a.max_metric_drop)
    rule = {"decision": ev.get("decision", "argmax"), "score": ev.get("score", "last"),
            "threshold": ev.get("threshold")}
    if rule["decision"] == "none" and bundle.output.get("kind") == "embedding":
        # Embeddings decide by pairs: the bundle's match threshold (face: "unknown").
        rule.update(decision="pairs", threshold=bundle.thresholds.get("unknown"))
    rows = []
    for n in names:
        v = bundle.variant(n)
        info = inside["variants"].get(n, {"status": "error", "reason": "no result from the root"})
        row: dict[str, Any] = {"variant": n, "backend": v.backend, "precision": v.precision}
        h = host_res[n]
        row["kernels"] = {"host": h.get("kernels"), "arm64": info.get("kernels")}
        if info["status"] == "skipped":
            row.update(status="skipped", reasons=[f"runtime unavailable on arm64: {info['reason']}"])
        elif h["status"] != "ran":
            row.update(status="skipped", reasons=[f"cannot run on this machine: {h.get('reason')}"])
        elif info["status"] != "ran" or n not in arm_out:
            row.update(status="FAIL", reasons=[f"failed on arm64: {info.get('reason')}"])
        else:
            scale = (v.output_quantization or {}).get("scale")
            row.update(compare_outputs(h["outputs"], arm_out[n], x=x, y=y, output_scale=scale, **rule))
            if ref is not None and ref.shape == arm_out[n].shape:
                kh = compare_outputs(ref, h["outputs"], x=x, y=y, **rule)
                ka = compare_outputs(ref, arm_out[n], x=x, y=y, **rule)
                row["vs_keras"] = {
                    "host_max_abs_diff": kh["max_abs_diff"], "arm64_max_abs_diff": ka["max_abs_diff"],
                    "host_agreement": kh["decision_agreement"], "arm64_agreement": ka["decision_agreement"],
                    "metric_keras": kh["metric_host"],
                }
            reasons = judge_kernels(v.backend, h.get("kernels"), info.get("kernels"))
            reasons += judge(row, v.precision, tol, rule["decision"])
            row.update(status="FAIL" if reasons else "pass", reasons=reasons)
        rows.append(row)

    failed = sum(r["status"] == "FAIL" for r in rows)
    if app_rep and app_rep.get("status") == "FAIL":
        failed += 1
    cpu = cpu_check(target, inside["facts"])
    failed += bool(cpu["problems"])
    rep = {
        "bundle": bundle.name,
        "bundle_path": str(a.bundle),
        "target": {"name": target.name, "qemu_cpu": target.qemu_cpu, "model": target.model},
        "host": {"machine": platform.machine(), "python": platform.python_version()},
        "arm64": inside["facts"],
        "cpu": cpu,
        "samples": int(len(x)),
        "decision": rule["decision"],
        "threshold": rule["threshold"],
        "tolerance": {"max_steps": tol.max_steps, "min_cosine": tol.min_cosine,
                      "min_agreement": tol.min_agreement or MIN_AGREEMENT,
                      "max_metric_drop": tol.max_metric_drop or MAX_METRIC_DROP,
                      "relative": REL_TOLERANCE},
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
    if inside["facts"].get("machine") != "aarch64":
        raise VerifyError(f"the root ran on {inside['facts'].get('machine')}, not aarch64")
    if not emit_json(rep, a.json):
        print(_report_text(rep))
    return EXIT_DISAGREE if failed else EXIT_OK


# Samples the dot-product probe runs: every kernel the variant uses gets translated on the first
# batch, and logging translations slows QEMU down, so a few samples suffice.
DOT_PROBE_SAMPLES = 4


def _dot_probe(root: Path, target: Target, python: str, work: Path, inroot: str, name: str,
               threads: int) -> dict[str, Any]:
    """Run one int8 variant again with QEMU logging the code it translates, and count the dot
    product instructions in it: the evidence that XNNPACK picked its SDOT kernels (Pi 5)."""
    log = work / f"qemu-{name}.log"
    try:
        _chroot(root, target, [python, "-m", "edgewise.edge.verify", "--inside", "variants", "--bundle",
                               f"{inroot}/bundle", "--out", f"{inroot}/probe", "--threads", str(threads),
                               "--variants", name, "--limit", str(DOT_PROBE_SAMPLES)],
                what=f"{name} with QEMU's instruction log", timeout=1800,
                extra_env={"QEMU_LOG": "in_asm", "QEMU_LOG_FILENAME": f"{inroot}/{log.name}"})
        if not log.exists():
            return {"error": "QEMU wrote no instruction log"}
        with log.open(errors="replace") as f:
            return dot_product_instructions(f)
    except VerifyError as e:
        return {"error": str(e)}
    finally:
        log.unlink(missing_ok=True)


def _stage_app_args(app_args: str | None, work: Path, inroot: str) -> tuple[list[str], list[str]]:
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


def _run_app(bundle: Any, a: argparse.Namespace, env: dict[str, Any], target: Target, work: Path,
             inroot: str, quiet: bool) -> dict[str, Any]:
    """``edgewise run APP`` inside the root and on this machine, on the same inputs."""
    app = RUN_APPS.get(bundle.app)
    if app is None:
        return {"status": "skipped", "reason": f"no edge application for app '{bundle.app}'"}
    src_dir = work / "app_input"
    if a.app_source:
        s = Path(a.app_source)
        if not s.exists():
            raise VerifyError(f"{s}: --app-source not found")
        if s.is_dir():
            shutil.copytree(s, src_dir)
        else:
            src_dir.mkdir()
            shutil.copy2(s, src_dir / s.name)
            src_dir = src_dir / s.name
        n_inputs: Any = "the given"
    else:
        n_inputs = export_eval_images(bundle, src_dir, a.app_frames)
        if not n_inputs:
            return {"status": "skipped", "app": app,
                    "reason": f"pass --app-source to run the {app} pipeline end to end"}
    rel = src_dir.relative_to(work).as_posix()
    args = [app, "--bundle", f"{inroot}/bundle", "--source", f"{inroot}/{rel}", "--max-frames",
            str(a.app_frames), "--threads", str(a.threads), "--jsonl", f"{inroot}/app/events.jsonl"]
    if a.variants:
        args += ["--variant", a.variants[0]]
    arm_extra, host_extra = _stage_app_args(a.app_args, work, inroot)
    args += arm_extra
    try:
        _chroot(env["root"], target, [env["python"], "-m", "edgewise.edge.verify", "--inside", "app",
                                      "--out", f"{inroot}/app", "--", *args],
                what=f"edgewise run {app} inside the emulated root", timeout=1800)
    except VerifyError as e:
        return {"status": "FAIL", "app": app, "reason": str(e), "rc": None, "events": 0,
                "inputs": n_inputs, "agree": 0, "compared": 0, "tensorflow_imported": None}
    res = json.loads((work / "app" / "app.json").read_text())
    arm_events = _read_events(work / "app" / "events.jsonl")
    # The same command on this machine, on the same files, for the answers to compare.
    host_dir = work / "host_app"
    host_dir.mkdir()
    host_args = [app, "--bundle", str(work / "bundle"), "--source", str(work / rel),
                 "--max-frames", str(a.app_frames), "--threads", str(a.threads),
                 "--jsonl", str(host_dir / "events.jsonl")]
    if a.variants:
        host_args += ["--variant", a.variants[0]]
    host_args += host_extra
    host_cmd = [sys.executable, "-m", "edgewise.edge.verify", "--inside", "app", "--out", str(host_dir),
                "--", *host_args]
    _run(host_cmd, what=f"edgewise run {app} on this machine", timeout=1800)
    host_events = _read_events(host_dir / "events.jsonl")
    # Same files, same order, no pacing: the i-th event of each run is about the same input.
    pairs = list(zip(arm_events, host_events, strict=False))
    agree = sum(_event_answer(ea) == _event_answer(eh) for ea, eh in pairs)
    ok = (res["rc"] == 0 and len(arm_events) > 0 and not res["facts"]["tensorflow_imported"]
          and agree == len(pairs) and len(arm_events) == len(host_events))
    return {
        "status": "pass" if ok else "FAIL", "app": app, "inputs": n_inputs, "rc": res["rc"],
        "events": len(arm_events), "host_events": len(host_events), "compared": len(pairs),
        "agree": agree, "tensorflow_imported": res["facts"]["tensorflow_imported"],
        "machine": res["facts"]["machine"],
    }


if __name__ == "__main__":
    sys.exit(_inside_main(sys.argv[1:]))
