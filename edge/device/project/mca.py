"""Blocks counted by the plugin -> instructions (``llvm-mc``) -> cycles on a core model (``llvm-mca``).

Each translated block that ran between the markers is disassembled; the hot ones (those that
together execute ``HOT_SHARE`` of all instructions) are priced by ``llvm-mca`` as a steady
loop of that block on the target core's scheduling model: cycles per execution = total cycles
/ iterations. The rest is priced at the hot blocks' mean cycles per instruction. That is a
compute-bound figure: caches, memory bandwidth and the OS are not modelled, so it is a lower
bound on a real board's time.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Block", "Pricing", "read_counts", "disassemble", "price", "instruction_mix", "HOT_SHARE"]

HOT_SHARE = 0.995  # share of executed instructions priced block by block
MAX_HOT = 6000  # at most this many blocks go to llvm-mca (each one region)
ITERATIONS = 100
# every A64 instruction an arm64 Linux user process may run on these cores decodes under this CPU
DISASM_CPU = "neoverse-n2"
MCA_ATTRS = "+v8.2a,+dotprod,+fullfp16,+rcpc,+lse,+crc,+aes,+sha2"
_WARN = re.compile(r"<stdin>:(\d+):\d+: warning: invalid instruction encoding")
_ERR = re.compile(r":(\d+):\d+: error:")


@dataclass(frozen=True)
class Block:
    """A translated block: where it starts, how often it ran between the markers, its code."""

    vaddr: int
    executions: int
    code: bytes

    @property
    def words(self) -> list[int]:
        return [int.from_bytes(self.code[i : i + 4], "little") for i in range(0, len(self.code) - 3, 4)]


@dataclass(frozen=True)
class Pricing:
    """Cycles for all counted executions, and how much of them llvm-mca priced directly."""

    cycles: float
    instructions: int
    hot_blocks: int
    hot_share: float  # executed instructions in the priced blocks / all executed instructions
    undecoded: int  # executed instructions llvm-mc could not decode (priced at the mean)
    dropped: int  # executed instructions llvm-mca refused (no scheduling data), left out of their block


def read_counts(path: Path) -> tuple[int, list[Block]]:
    """The plugin's output: (marker calls seen, blocks that ran between the markers)."""
    markers, blocks = 0, []
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            m = re.search(r"markers (\d+)", line)
            markers = int(m.group(1)) if m else 0
            continue
        addr, execs, _n, code = line.split()
        blocks.append(Block(int(addr, 16), int(execs), bytes.fromhex(code)))
    return markers, blocks


def disassemble(words: set[int], llvm_mc: Path) -> dict[int, str]:
    """Assembly text of each instruction word (one ``llvm-mc`` run); undecodable words are absent."""
    order = sorted(words)
    text = "\n".join(" ".join(f"0x{b:02x}" for b in w.to_bytes(4, "little")) for w in order) + "\n"
    p = subprocess.run([str(llvm_mc), "--disassemble", "-triple=aarch64", f"-mcpu={DISASM_CPU}"],
                       input=text, capture_output=True, text=True, timeout=600)
    bad = {int(m.group(1)) - 1 for m in _WARN.finditer(p.stderr)}
    lines = [ln.strip() for ln in p.stdout.splitlines()
             if ln.startswith("\t") and not ln.strip().startswith(".")]
    good = [w for i, w in enumerate(order) if i not in bad]
    if len(lines) != len(good):
        raise RuntimeError(f"llvm-mc printed {len(lines)} instructions for {len(good)} decodable words")
    return dict(zip(good, lines, strict=True))


def instruction_mix(blocks: list[Block], asm: dict[int, str]) -> Counter[str]:
    """Executed instructions per mnemonic (``fmla``, ``sdot``, ...), over every counted block."""
    mix: Counter[str] = Counter()
    for b in blocks:
        for w in b.words:
            text = asm.get(w)
            mix[text.split()[0] if text else "<undecoded>"] += b.executions
    return mix


def _hot(blocks: list[Block]) -> list[Block]:
    ranked = sorted(blocks, key=lambda b: b.executions * len(b.words), reverse=True)
    total = sum(b.executions * len(b.words) for b in ranked)
    hot, acc = [], 0
    for b in ranked:
        if acc >= HOT_SHARE * total or len(hot) >= MAX_HOT:
            break
        hot.append(b)
        acc += b.executions * len(b.words)
    return hot


def _mca_cycles(regions: list[list[str]], llvm_mca: Path, mcpu: str) -> tuple[list[float], list[int]]:
    """Cycles per iteration of each region; lines llvm-mca refuses are dropped and it runs again
    (the second value: the region of each dropped instruction)."""
    regions = [list(r) for r in regions]
    dropped: list[int] = []
    for _ in range(20):
        lines, where = [], {}
        for i, r in enumerate(regions):
            lines.append(f"# LLVM-MCA-BEGIN b{i}")
            for j, ins in enumerate(r):
                where[len(lines) + 1] = (i, j)
                lines.append(ins)
            lines.append("# LLVM-MCA-END")
        with tempfile.NamedTemporaryFile("w", suffix=".s", delete=False) as f:
            f.write("\n".join(lines) + "\n")
        try:
            p = subprocess.run([str(llvm_mca), "-mtriple=aarch64", f"-mcpu={mcpu}", f"-mattr={MCA_ATTRS}",
                                f"-iterations={ITERATIONS}", "-instruction-info=0", "-resource-pressure=0"],
                               stdin=open(f.name), capture_output=True, text=True, timeout=900)
        finally:
            Path(f.name).unlink(missing_ok=True)
        if p.returncode == 0:
            cycles: dict[int, float] = {}
            for m in re.finditer(r"Code Region - b(\d+)\s+Iterations:\s+(\d+)\s+Instructions:\s+\d+\s+"
                                 r"Total Cycles:\s+(\d+)", p.stdout):
                cycles[int(m.group(1))] = int(m.group(3)) / int(m.group(2))
            if len(cycles) != len(regions):
                raise RuntimeError(f"llvm-mca -mcpu={mcpu} reported {len(cycles)} of {len(regions)} blocks")
            return [cycles[i] for i in range(len(regions))], dropped
        refuse = {where[int(m.group(1))] for m in _ERR.finditer(p.stderr) if int(m.group(1)) in where}
        if not refuse:  # "unsupported instruction" names the text, not the line
            named = {m.group(1).strip() for m in re.finditer(r"note: instruction:\s*(.+)", p.stderr)}
            refuse = {(i, j) for i, r in enumerate(regions) for j, ins in enumerate(r)
                      if " ".join(ins.split()) in {" ".join(n.split()) for n in named}}
        if not refuse:
            tail = [ln for ln in p.stderr.splitlines() if ln.strip()][-1:] or ["no output"]
            raise RuntimeError(f"llvm-mca -mcpu={mcpu} failed: {tail[0]}")
        for i, j in sorted(refuse, reverse=True):
            del regions[i][j]
            dropped.append(i)
        regions = [r or ["nop"] for r in regions]
    raise RuntimeError(f"llvm-mca -mcpu={mcpu}: too many refused instructions")


def price(blocks: list[Block], asm: dict[int, str], llvm_mca: Path, mcpu: str) -> Pricing:
    """Cycles of every counted execution on ``mcpu``'s scheduling model (see the module doc)."""
    total_insns = sum(b.executions * len(b.words) for b in blocks)
    if total_insns == 0:
        raise RuntimeError("no instructions ran between the markers")
    hot = _hot(blocks)
    regions = [[asm[w] for w in b.words if w in asm] or ["nop"] for b in hot]
    undecoded = sum(b.executions * sum(w not in asm for w in b.words) for b in blocks)
    per_block, dropped = _mca_cycles(regions, llvm_mca, mcpu)
    hot_cycles = sum(b.executions * c for b, c in zip(hot, per_block, strict=True))
    dropped_executions = sum(hot[i].executions for i in dropped)
    hot_insns = sum(b.executions * len(b.words) for b in hot)
    cpi = hot_cycles / hot_insns
    rest = total_insns - hot_insns
    return Pricing(cycles=hot_cycles + rest * cpi, instructions=total_insns, hot_blocks=len(hot),
                   hot_share=hot_insns / total_insns, undecoded=undecoded, dropped=dropped_executions)
