"""Which kernels ran, on what CPU: XNNPACK delegation, dot-product instructions, HWCAP features.

A comparison against LiteRT's reference kernels proves nothing about a Pi, which runs TFLite
models through XNNPACK; and a Pi 5's int8 kernels use the dot product (SDOT) a Pi 4 lacks.
These functions read what the runtime and the emulated CPU report (inside the root and on
this machine), and ``judge_kernels`` / ``cpu_check`` turn them into reasons to fail.
numpy only: this module runs inside the root too.
"""

from __future__ import annotations

import contextlib
import platform
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .emulator import Target

__all__ = [
    "dot_product_instructions", "hwcap_features", "cpu_facts", "cpu_check", "delegation", "model_kernels",
    "kernels_text", "judge_kernels", "AT_HWCAP", "AT_HWCAP2",
]

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
# The features that change which int8/float kernels XNNPACK and MLAS select on arm64.
KERNEL_FEATURES = ("asimd", "asimddp", "fphp", "asimdhp", "asimdfhm", "i8mm", "sve")


def hwcap_features(auxv: bytes) -> list[str]:
    """CPU features named by AT_HWCAP/AT_HWCAP2 in an arm64 process's ``/proc/self/auxv``."""
    words = np.frombuffer(auxv[: len(auxv) // 16 * 16], dtype="<u8").reshape(-1, 2)
    found: list[str] = []
    for key, val in words:
        table = {AT_HWCAP: HWCAP_BITS, AT_HWCAP2: HWCAP2_BITS}.get(int(key))
        if table:
            found += [name for bit, name in sorted(table.items()) if int(val) >> bit & 1]
    return found


def cpu_facts() -> dict[str, Any]:
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
