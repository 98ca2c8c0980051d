"""``edgewise project BUNDLE --target pi4|pi5``: projected Pi time per inference, per variant.

Answers "how fast will this run on a Pi 4 / Pi 5, int8 against float32?" before owning one:
the counted instructions of each variant on the emulated Pi CPU, priced on the board's core
model (see ``run`` and ``mca``). Figures are compute-bound lower bounds with a ±30 % band;
``--calibrate`` scales them by an ``edgewise bench`` result measured on the board.

>>> project_main(["digits.bundle", "--target", "pi5"])   # doctest: +SKIP
0
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

from ...progress import log
from ..emulator import EnvironmentProblem, VerifyError
from ..rootfs import DEFAULT_CACHE, DEFAULT_MIRROR
from .figures import (
    BAND,
    BOARDS,
    LABEL,
    MEASURED_NOTE,
    Projection,
    calibration_from_bench,
    load_calibration,
    pipeline_ratios,
    pipelines,
    ratios,
    store_calibration,
)
from .run import ModelJob, prepare, project_models
from .tools import APT_PACKAGES, cache_home

__all__ = ["project_main", "build_parser", "jobs_for", "report_text"]

PROG = "edgewise project"
EXIT_OK, EXIT_ERROR, EXIT_UNAVAILABLE = 0, 2, 3


def build_parser() -> argparse.ArgumentParser:
    from ...cliargs import Parser, add_json, add_quiet

    p = Parser(
        prog=PROG,
        description="Project each variant's time per inference on a Raspberry Pi 4 or 5 (1 thread): the "
        "instructions it executes on the emulated Pi CPU (QEMU with a block-count plugin), priced in "
        "cycles on the board's core model (llvm-mca). Figures are projected, compute-bound lower bounds "
        f"with a ±{BAND:.0%} band; measured figures come from `edgewise bench` on the board. Needs root "
        f"(the emulated root, as verify) and {', '.join(APT_PACKAGES)}. Exit 0: projected; 2: error; "
        "3: this machine cannot project (tools missing).",
        epilog="examples:\n"
        "  sudo edgewise project digits.bundle --target pi5\n"
        "  sudo edgewise project face.bundle --target pi4 --model yunet.onnx --json face-pi4.json\n"
        "  sudo edgewise project digits.bundle --target pi4 --calibrate bench-on-pi4.json",
    )
    p.add_argument("bundle", nargs="?", help="bundle directory or .zip (or only --model files)")
    p.add_argument("--target", choices=sorted(BOARDS), required=True, help="pi4 (Cortex-A72, 1.5 GHz) or "
                   "pi5 (Cortex-A76, 2.4 GHz)")
    p.add_argument("--variants", nargs="+", metavar="NAME", help="only these variants (default: all)")
    p.add_argument("--model", action="append", default=[], metavar="FILE",
                   help="also project this .tflite/.onnx model, e.g. the detector a pipeline runs beside "
                   "the bundle's model (repeatable)")
    p.add_argument("--yunet", metavar="FILE", action="append", default=[],
                   help="the face pipeline's YuNet detector, run as the pipeline runs it on a 320x320 "
                   "frame: .onnx through cv2.FaceDetectorYN, or .tflite from `edgewise convert --task "
                   "face-detector` through LiteRT (repeatable: give the float32 and int8 files, and each "
                   "pipeline variant is paired with the detector of its precision); for a face bundle "
                   "the default is $EDGEWISE_DATA/models/face_detection/yunet_n_320_320.onnx when present"),
    p.add_argument("--runs", type=int, default=10, help="inferences counted per variant")
    p.add_argument("--calibrate", metavar="BENCH.json", help="`edgewise bench BUNDLE --threads 1 --json` "
                   "measured on the board: scales the projected times; stored and reused for this target")
    p.add_argument("--prepare", action="store_true", help="only build the QEMU plugin and the emulated root "
                   "(setup; later projections reuse both)")
    p.add_argument("--root", default=os.environ.get("EDGEWISE_PI_ROOT", DEFAULT_CACHE),
                   help="cache of the emulated root (shared with verify; $EDGEWISE_PI_ROOT)")
    p.add_argument("--mirror", default=os.environ.get("EDGEWISE_DEBIAN_MIRROR", DEFAULT_MIRROR),
                   help="Debian mirror for the root and QEMU's source ($EDGEWISE_DEBIAN_MIRROR)")
    add_json(p, "the projection")
    add_quiet(p)
    return p


def _model_precision(path: Path) -> str:
    """int8 when the model's input is 8-bit quantized, or (LiteRT) its ops compute in int8
    behind a float input, as a converted detector does; else float32 (for the ratio)."""
    from ...backends import open_model

    with open_model(path, threads=1) as m:
        if m.input_dtype.itemsize == 1:
            return "int8"
        if m.backend != "litert":
            return "float32"
        inner = [o for o in m.op_types(graph=True) if o["op"] not in ("QUANTIZE", "DEQUANTIZE")]
        # int8 activations: a dynamic-range file has int8 weights but computes in float
        return "int8" if any("int8" in o["out_dtypes"] for o in inner) else "float32"


def _default_yunet(quiet: bool) -> Path | None:
    """A face bundle's pipeline runs YuNet first: its public model file, when it is here."""
    from ...apps.face.detect import detector_model_path

    try:
        return detector_model_path("yunet")
    except ValueError as e:
        log(f"{PROG}: the face pipeline's YuNet detector is not projected: {e}", quiet=quiet)
        return None


def jobs_for(bundle_path: str | None, variants: list[str] | None, models: list[str],
             yunet: list[str] | str | None = None, quiet: bool = True) -> tuple[list[ModelJob], str]:
    """What to project: the bundle's variants (all, or the named), the face pipeline's detectors
    (``--yunet``, or by default for a face bundle) and any extra model files."""
    from ...bundle import load_bundle

    jobs: list[ModelJob] = []
    source = ""
    yunets = [Path(y) for y in ([yunet] if isinstance(yunet, str) else yunet or [])]
    if bundle_path:
        bundle = load_bundle(bundle_path)
        source = bundle.name
        for name in variants or list(bundle.variants):
            v = bundle.variant(name)  # unknown names fail here, with the valid ones
            jobs.append(ModelJob(v.name, v.backend, v.precision, bundle=Path(bundle.path), variant=v.name))
        if not yunets and bundle.spec.app == "face":
            yunets = [p for p in [_default_yunet(quiet)] if p is not None]
    elif variants:
        raise ValueError("--variants needs a bundle")
    for y in yunets:
        if not y.is_file():
            raise ValueError(f"{y}: YuNet model file not found")
        if y.suffix == ".tflite":
            jobs.append(ModelJob(y.stem, "litert", _model_precision(y), yunet=y))
        elif y.suffix == ".onnx":
            jobs.append(ModelJob(y.stem, "opencv", "float32", yunet=y))
        else:
            raise ValueError(f"{y}: expected YuNet as .onnx (OpenCV) or .tflite (edgewise convert --task "
                             "face-detector)")
        source = source or y.name
    for m in models:
        path = Path(m)
        if not path.is_file():
            raise ValueError(f"{m}: no such model file")
        if path.suffix not in (".tflite", ".onnx"):
            raise ValueError(f"{m}: expected a .tflite or .onnx model")
        backend = "litert" if path.suffix == ".tflite" else "onnxruntime"
        jobs.append(ModelJob(path.stem, backend, _model_precision(path), model=path))
        source = source or path.name
    if not jobs:
        raise ValueError("nothing to project: give a bundle, --model FILE or --yunet FILE")
    if len({j.name for j in jobs}) != len(jobs):
        raise ValueError("two models with the same name: rename one file")
    return jobs, source


def _ms(v: float) -> str:
    return f"{v:.3f}" if v >= 0.1 else f"{v:.4f}"


def report_text(p: Projection) -> str:
    """The human table: every figure with its label and band, the ratios, the measured note."""
    b = p.board
    lines = [
        f"{PROG} {p.source} --target {p.target}: Raspberry Pi {p.target[-1]} ({b.core} @ {b.ghz} GHz), "
        f"1 thread, {p.runs} inferences counted per variant",
        f"core model: {b.model_note}",
        f"all figures: {LABEL}; band ±{p.band:.0%}",
        "",
        "| variant | backend | precision | cycles / inference | ms / inference | band ms | "
        + ("calibrated ms | " if p.calibration else "") + "SDOT+UDOT | FMLA | kernels |",
        "| --- | --- | --- | ---: | ---: | --- | " + ("---: | " if p.calibration else "")
        + "---: | ---: | --- |",
    ]
    for f in p.variants:
        cal = f"{_ms(f.calibrated_ms)} | " if f.calibrated_ms is not None else ""
        lines.append(f"| {f.name} | {f.backend} | {f.precision} | {f.cycles:,.0f} | {_ms(f.ms)} | "
                     f"{_ms(f.ms_band[0])}-{_ms(f.ms_band[1])} | {cal}{f.dot_product:,.0f} | {f.fmla:,.0f} | "
                     f"{f.delegate or '-'} |")
    if p.ratios:
        lines.append("")
        for r in p.ratios:
            lines.append(f"int8/float32 ({r.backend}: {r.float32} time / {r.int8} time): {r.ratio:.2f}x "
                         f"(band {r.band[0]:.2f}-{r.band[1]:.2f}x; {r.label})")
    if p.pipelines:
        lines += ["", "per frame, the pipeline's models (one face):"]
        for pl in p.pipelines:
            lines.append(f"  {' + '.join(pl.models)}: {pl.cycles:,.0f} cycles, {_ms(pl.ms)} ms "
                         f"(band {_ms(pl.ms_band[0])}-{_ms(pl.ms_band[1])} ms; {pl.label})")
        for r in p.pipeline_ratios:
            lines.append(f"  int8/float32, whole pipeline ({r.backend}): {r.ratio:.2f}x "
                         f"(band {r.band[0]:.2f}-{r.band[1]:.2f}x)")
    if p.calibration:
        c = p.calibration
        lines.append(f"\ncalibrated: times x{c.factor} (median measured/projected over "
                     f"{', '.join(c.per_variant)}; {c.bench}, {c.board_cpu or 'board'}, {c.created})")
    lines += ["", MEASURED_NOTE]
    return "\n".join(lines)


def _project(a: argparse.Namespace) -> int:
    from ...cliargs import emit_json

    t0 = time.monotonic()
    if a.prepare:
        tools = prepare(a.target, cache=Path(a.root).resolve(), tool_cache=cache_home(), mirror=a.mirror,
                        quiet=a.quiet)
        print(f"{PROG}: ready: plugin {tools.plugin}, {tools.llvm_mca}, {tools.qemu} ({tools.qemu_version})")
        return EXIT_OK
    jobs, source = jobs_for(a.bundle, a.variants, a.model, a.yunet, a.quiet)
    tool_cache = cache_home()
    figs, tools = project_models(jobs, a.target, cache=Path(a.root).resolve(), tool_cache=tool_cache,
                                 mirror=a.mirror, runs=a.runs, quiet=a.quiet)
    cal = None
    if a.calibrate:
        cal = calibration_from_bench(Path(a.calibrate), a.target, figs, source)
        path = store_calibration(tool_cache, cal)
        if not a.quiet:
            print(f"{PROG}: calibration for {a.target} stored in {path} (x{cal.factor})")
    else:
        cal = load_calibration(tool_cache, a.target)
    if cal:
        for f in figs:
            f.calibrated_ms = round(f.ms * cal.factor, 4)
    pipes = pipelines(figs, BOARDS[a.target].ghz)
    proj = Projection(
        target=a.target, board=BOARDS[a.target], source=source, runs=a.runs, variants=figs,
        ratios=ratios(figs), pipelines=pipes, pipeline_ratios=pipeline_ratios(figs, pipes), calibration=cal,
        tools={"qemu": str(tools.qemu), "qemu_version": tools.qemu_version, "plugin": str(tools.plugin),
               "llvm_mca": str(tools.llvm_mca), "llvm_version": tools.llvm_version},
        host={"machine": platform.machine(), "cpu": _host_cpu(), "cores": os.cpu_count()},
        wall_seconds=round(time.monotonic() - t0, 1),
    )
    if not emit_json(proj.to_dict(), a.json):
        print(report_text(proj))
    return EXIT_OK


def _host_cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def project_main(argv: list[str]) -> int:
    from ...bundle import BundleError
    from ...cliargs import fail

    a = build_parser().parse_args(argv)
    if a.runs < 1:
        return fail(PROG, "--runs must be at least 1", EXIT_ERROR)
    try:
        return _project(a)
    except EnvironmentProblem as e:
        return fail(PROG, f"cannot project here: {e}", EXIT_UNAVAILABLE)
    except (VerifyError, BundleError, ValueError, RuntimeError) as e:
        return fail(PROG, e, EXIT_ERROR)

