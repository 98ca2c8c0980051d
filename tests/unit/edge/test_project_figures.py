"""edgewise project without an emulator: the plugin's output format, int8/float32 ratios, the
calibration from a board's `edgewise bench` result (synthetic bench JSON), and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgewise.edge.device.project.cli import jobs_for, project_main
from edgewise.edge.device.project.figures import (
    VariantFigures,
    band,
    calibration_from_bench,
    load_calibration,
    pipeline_ratios,
    pipelines,
    ratios,
    store_calibration,
)
from edgewise.edge.device.project.mca import Block, read_counts


def _fig(name: str, backend: str, precision: str, cycles: float, ghz: float = 2.4) -> VariantFigures:
    ms = cycles / (ghz * 1e6)
    return VariantFigures(name=name, backend=backend, precision=precision, cycles=cycles, ms=ms,
                          ms_band=band(ms), instructions=0, hot_share=1.0, unpriced=0, dot_product=0,
                          fmla=0, top=[], delegate=None)


def test_read_counts_keeps_each_block_with_its_executions_and_instruction_words(tmp_path: Path):
    f = tmp_path / "counts.txt"
    f.write_text("# markers 2 blocks 7\n41f7a0 12 2 1f2003d5c0035fd6\n")
    markers, blocks = read_counts(f)
    assert markers == 2
    assert blocks == [Block(0x41F7A0, 12, bytes.fromhex("1f2003d5c0035fd6"))]
    assert blocks[0].words == [0xD503201F, 0xD65F03C0]  # nop; ret


def test_ratio_is_float32_time_over_int8_time_per_backend_with_its_band():
    figs = [_fig("tflite_float32", "litert", "float32", 300_000),
            _fig("tflite_int8", "litert", "int8", 200_000),
            _fig("onnx_float32", "onnxruntime", "float32", 100_000)]
    (r,) = ratios(figs)  # ONNX has no int8 variant here: no ratio for it
    assert (r.backend, r.ratio) == ("litert", 1.5)
    assert r.band == (pytest.approx(1.05), pytest.approx(1.95))


def _bench(tmp_path: Path, machine: str, rows: list[dict]) -> Path:
    p = tmp_path / "bench.json"
    p.write_text(json.dumps({"host": {"machine": machine, "cpu": "Cortex-A72", "emulated": False},
                             "rows": rows}))
    return p


def test_calibration_is_the_median_measured_over_projected_and_is_stored_for_reuse(tmp_path: Path):
    figs = [_fig("a", "litert", "float32", 2.4e6), _fig("b", "litert", "int8", 1.2e6),
            _fig("c", "litert", "float16", 2.4e6)]  # projected 1.0, 0.5 and 1.0 ms
    rows = [{"variant": "a", "threads": 1, "p50_ms": 3.0}, {"variant": "b", "threads": 1, "p50_ms": 2.0},
            {"variant": "c", "threads": 1, "p50_ms": 2.0}, {"variant": "a", "threads": 2, "p50_ms": 0.1}]
    cal = calibration_from_bench(_bench(tmp_path, "aarch64", rows), "pi4", figs, "digits")
    assert cal.per_variant == {"a": 3.0, "b": 4.0, "c": 2.0}  # the 2-thread row is not used
    assert cal.factor == 3.0
    store_calibration(tmp_path / "cache", cal)
    assert load_calibration(tmp_path / "cache", "pi4") == cal
    assert load_calibration(tmp_path / "cache", "pi5") is None


def test_calibration_refuses_a_bench_measured_on_this_x86_machine(tmp_path: Path):
    rows = [{"variant": "a", "threads": 1, "p50_ms": 3.0}]
    with pytest.raises(ValueError, match="not on a Raspberry Pi"):
        calibration_from_bench(_bench(tmp_path, "x86_64", rows), "pi4",
                               [_fig("a", "litert", "float32", 1e6)], "d")


def test_nothing_to_project_is_one_error_line_with_exit_2(capsys: pytest.CaptureFixture[str]):
    assert project_main(["--target", "pi5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["edgewise project: error: nothing to project: give a bundle, --model FILE or --yunet FILE"]


def test_a_model_that_is_not_tflite_or_onnx_is_refused(tmp_path: Path):
    f = tmp_path / "model.pt"
    f.write_bytes(b"x")
    with pytest.raises(ValueError, match="expected a .tflite or .onnx model"):
        jobs_for(None, None, [str(f)])


def test_a_missing_plugin_capable_qemu_is_one_line_naming_the_package(monkeypatch: pytest.MonkeyPatch,
                                                                     tmp_path: Path):
    from edgewise.edge.device.project import tools

    monkeypatch.setattr(tools, "QEMU", str(tmp_path / "qemu-aarch64"))
    with pytest.raises(tools.ProjectUnavailable, match="qemu-user") as e:
        tools.find_tools(tmp_path, "http://deb.debian.org/debian", quiet=True)
    assert "\n" not in str(e.value)


SDOT, FMLA, RET = 0x4E829420, 0x4E25CC83, 0xD65F03C0


def _llvm():
    from edgewise.edge.device.project import tools

    try:
        return tools._llvm()  # noqa: SLF001
    except tools.ProjectUnavailable as e:
        pytest.skip(str(e))


def test_llvm_mc_names_the_dot_product_and_fmla_words_the_plugin_reports():
    from edgewise.edge.device.project.mca import disassemble, instruction_mix

    mc, _, _ = _llvm()
    asm = disassemble({SDOT, FMLA, RET}, mc)
    assert asm[SDOT].split()[0] == "sdot" and asm[FMLA].split()[0] == "fmla"
    code = b"".join(w.to_bytes(4, "little") for w in (SDOT, SDOT, FMLA, RET))
    mix = instruction_mix([Block(0x1000, 10, code)], asm)
    assert (mix["sdot"], mix["fmla"], mix["ret"]) == (20, 10, 10)


def test_a_block_executed_twice_as_often_costs_twice_the_cycles():
    from edgewise.edge.device.project.mca import disassemble, price

    mc, mca, _ = _llvm()
    code = b"".join(w.to_bytes(4, "little") for w in (FMLA,) * 8)
    asm = disassemble({FMLA}, mc)
    once = price([Block(0x1000, 100, code)], asm, mca, "cortex-a72")
    twice = price([Block(0x1000, 200, code)], asm, mca, "cortex-a72")
    assert once.cycles > 0 and twice.cycles == pytest.approx(2 * once.cycles)
    assert once.hot_share == 1.0 and once.undecoded == 0 and once.dropped == 0


def _det(name: str, backend: str, precision: str, cycles: float) -> VariantFigures:
    f = _fig(name, backend, precision, cycles)
    f.role = "detector"
    return f


def test_each_pipeline_variant_runs_the_detector_of_its_own_precision():
    figs = [_fig("tflite_float32", "litert", "float32", 2_000_000),
            _fig("tflite_int8", "litert", "int8", 1_000_000),
            _det("yunet_onnx", "opencv", "float32", 70_000_000),
            _det("yunet_float32", "litert", "float32", 40_000_000),
            _det("yunet_int8", "litert", "int8", 20_000_000)]
    pipes = {p.variant: p for p in pipelines(figs, 2.4)}
    assert pipes["tflite_int8"].models == ["yunet_int8", "tflite_int8"]
    assert pipes["tflite_float32"].models == ["yunet_float32", "tflite_float32"]  # the faster float32 one
    (whole,) = pipeline_ratios(figs, list(pipes.values()))
    assert whole.ratio == pytest.approx(42 / 21, abs=1e-3)
    # the detector's own int8/float32 is reported apart from the bundle's model
    assert {r.backend: r.ratio for r in ratios(figs)} == {"litert": 2.0, "litert detector": 2.0}


def test_with_only_a_float32_detector_both_pipelines_share_it():
    figs = [_fig("tflite_float32", "litert", "float32", 2_000_000),
            _fig("tflite_int8", "litert", "int8", 1_000_000),
            _det("yunet_onnx", "opencv", "float32", 70_000_000)]
    pipes = pipelines(figs, 1.5)
    assert [p.models[0] for p in pipes] == ["yunet_onnx", "yunet_onnx"]
    (whole,) = pipeline_ratios(figs, pipes)
    assert whole.ratio == pytest.approx(72 / 71, abs=1e-3)
