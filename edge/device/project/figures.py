"""The projection's typed results: boards, per-variant figures, int8/float32 ratios, calibration.

Every figure here is a projection, a compute-bound lower bound: llvm-mca prices the executed
instructions on a core model with ideal caches. ``BAND`` is the sensitivity band the figures
carry from the core model (a stand-in model for the Pi 5's core, scheduling data that is
approximate for both). A published Pi 4 point (float32 MobileNet v1, 1 thread, 312 ms) is
about 2.9x slower than this projection, so absolute times are lower bounds; ratios between
variants on one board are what the projection is for. ``Calibration`` scales the times by a
board's own ``edgewise bench`` result.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["BAND", "LABEL", "MEASURED_NOTE", "Board", "BOARDS", "VariantFigures", "Ratio", "Calibration",
           "Pipeline", "Projection", "ratios", "pipelines", "pipeline_ratios", "calibration_from_bench",
           "calibration_path", "load_calibration",
           "store_calibration"]

BAND = 0.30
LABEL = "projected, compute-bound lower bound"
MEASURED_NOTE = ("measured figures come from `edgewise bench BUNDLE --threads 1 --json bench.json` on the "
                 "board (`--calibrate bench.json` scales this projection by them)")


@dataclass(frozen=True)
class Board:
    """A Raspberry Pi as projected: clock and the llvm-mca core model that prices its cycles."""

    name: str
    ghz: float
    mcpu: str
    core: str
    model_note: str


BOARDS: dict[str, Board] = {
    "pi4": Board("pi4", 1.5, "cortex-a72", "Cortex-A72",
                 "llvm-mca cortex-a72 scheduling model"),
    "pi5": Board("pi5", 2.4, "neoverse-n2", "Cortex-A76",
                 "llvm-mca neoverse-n2 scheduling model as the stand-in for the Cortex-A76 (LLVM's "
                 "cortex-a76 entry reuses an older core's model)"),
}


@dataclass
class VariantFigures:
    """One variant (or model) at 1 thread on one board: projected cost per inference."""

    name: str
    backend: str
    precision: str
    cycles: float
    ms: float
    ms_band: tuple[float, float]
    instructions: float  # executed per inference
    hot_share: float  # executed instructions priced block by block by llvm-mca (the rest at their mean)
    unpriced: float  # per inference: instructions llvm-mc could not decode or llvm-mca refused
    dot_product: float  # SDOT + UDOT executed per inference
    fmla: float  # vector FMLA executed per inference
    top: list[tuple[str, float]]  # most executed mnemonics per inference
    delegate: str | None
    calibrated_ms: float | None = None
    threads: int = 1
    label: str = LABEL
    role: str = "model"  # "detector": the face pipeline's detector, run before the bundle's model


@dataclass
class Ratio:
    """int8 over float32 on one backend: float32 time / int8 time (above 1: int8 is faster)."""

    backend: str
    int8: str
    float32: str
    ratio: float
    band: tuple[float, float]
    label: str = LABEL


@dataclass
class Pipeline:
    """The models one frame of an application's pipeline runs, with one variant of the bundle's
    model (face: the detector, then the embedder for one face): their projected sum."""

    variant: str
    models: list[str]
    cycles: float
    ms: float
    ms_band: tuple[float, float]
    label: str = LABEL


@dataclass
class Calibration:
    """measured / projected time on a real board, from an ``edgewise bench --json`` result."""

    target: str
    factor: float
    per_variant: dict[str, float]
    bench: str
    board_cpu: str
    bundle: str
    created: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))


@dataclass
class Projection:
    """Everything ``edgewise project`` reports for one bundle (or model) and board."""

    target: str
    board: Board
    source: str
    runs: int
    variants: list[VariantFigures]
    ratios: list[Ratio]
    pipelines: list[Pipeline]
    pipeline_ratios: list[Ratio]
    tools: dict[str, Any]
    calibration: Calibration | None
    band: float = BAND
    label: str = LABEL
    measured_note: str = MEASURED_NOTE
    host: dict[str, Any] = field(default_factory=dict)
    wall_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def band(value: float) -> tuple[float, float]:
    return (round(value * (1 - BAND), 4), round(value * (1 + BAND), 4))


def ratios(figs: list[VariantFigures]) -> list[Ratio]:
    """int8 against float32 per backend (LiteRT, ONNX Runtime), where a bundle has both; the
    detector's own ratio apart (backend ``"<backend> detector"``)."""
    out = []
    for role, backend in dict.fromkeys((f.role, f.backend) for f in figs):
        group = [f for f in figs if f.role == role and f.backend == backend]
        f32 = next((f for f in group if f.precision == "float32"), None)
        i8 = next((f for f in group if f.precision == "int8"), None)
        if f32 and i8 and i8.cycles > 0:
            r = f32.cycles / i8.cycles
            name = backend if role == "model" else f"{backend} {role}"
            out.append(Ratio(name, i8.name, f32.name, round(r, 3), band(r)))
    return out


def pipelines(figs: list[VariantFigures], board_ghz: float) -> list[Pipeline]:
    """Each bundle variant after the face detector, as the pipeline runs them. Given several
    detectors (OpenCV's float32 YuNet, LiteRT float32/int8), a variant is paired with the one of
    its own precision, else the float32 one: an int8 pipeline runs the int8 detector if it has one."""
    dets = [f for f in figs if f.role == "detector"]
    if not dets:
        return []
    out = []
    for f in figs:
        if f.role == "detector":
            continue
        same = [d for d in dets if d.precision == f.precision]
        det = min(same or [d for d in dets if d.precision == "float32"] or dets, key=lambda d: d.cycles)
        cycles = f.cycles + det.cycles
        ms = cycles / (board_ghz * 1e6)
        out.append(Pipeline(f.name, [det.name, f.name], round(cycles), round(ms, 5), band(ms)))
    return out


def pipeline_ratios(figs: list[VariantFigures], pipes: list[Pipeline]) -> list[Ratio]:
    """int8/float32 of the whole pipeline (detector included) per backend."""
    by = {p.variant: p for p in pipes}
    out = []
    for r in ratios(figs):
        f32, i8 = by.get(r.float32), by.get(r.int8)
        if f32 and i8 and i8.cycles > 0:
            x = f32.cycles / i8.cycles
            out.append(Ratio(r.backend, i8.variant, f32.variant, round(x, 3), band(x)))
    return out


def calibration_from_bench(bench_path: Path, target: str, figs: list[VariantFigures],
                           bundle: str) -> Calibration:
    """Scale from a board's ``edgewise bench --json``: median of measured p50 / projected ms over
    the variants both ran at 1 thread. Refuses results not measured on an arm64 board."""
    try:
        bench = json.loads(bench_path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{bench_path}: not an `edgewise bench --json` result ({e})") from None
    host = bench.get("host") or {}
    if not isinstance(bench.get("rows"), list):
        raise ValueError(f"{bench_path}: no rows; expected the JSON of `edgewise bench BUNDLE --json`")
    if host.get("machine") != "aarch64" or host.get("emulated"):
        raise ValueError(f"{bench_path}: measured on {host.get('machine') or 'an unknown machine'}"
                         f"{' (emulated)' if host.get('emulated') else ''}, not on a Raspberry Pi: "
                         "run `edgewise bench` on the board")
    projected = {f.name: f.ms for f in figs}
    per = {r["variant"]: r["p50_ms"] / projected[r["variant"]] for r in bench["rows"]
           if r.get("threads") == 1 and r.get("variant") in projected and r.get("p50_ms")}
    if not per:
        raise ValueError(f"{bench_path}: no 1-thread row of a projected variant ({', '.join(projected)}); "
                         "run `edgewise bench BUNDLE --threads 1 --json PATH` on the board")
    return Calibration(target=target, factor=round(statistics.median(per.values()), 4),
                       per_variant={k: round(v, 4) for k, v in per.items()}, bench=str(bench_path.resolve()),
                       board_cpu=str(host.get("cpu") or ""), bundle=bundle)


def calibration_path(cache: Path, target: str) -> Path:
    return cache / "project" / f"calibration-{target}.json"


def store_calibration(cache: Path, cal: Calibration) -> Path:
    path = calibration_path(cache, cal.target)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asdict(cal), indent=2) + "\n")
    return path


def load_calibration(cache: Path, target: str) -> Calibration | None:
    """The stored calibration of ``target``, reused by every later projection (None: none yet)."""
    path = calibration_path(cache, target)
    if not path.exists():
        return None
    try:
        return Calibration(**json.loads(path.read_text()))
    except (OSError, json.JSONDecodeError, TypeError) as e:
        raise ValueError(f"{path}: unreadable calibration ({e}); remove it or calibrate again") from None
