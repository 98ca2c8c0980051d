"""edgewise verify: Pi cpuinfo, quantized-step comparison, environment errors, and one real
emulated run on the digits bundle when the cached arm64 root exists on this machine."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgewise.edge.device import app_check, emulator, inside_root, kernels, rootfs
from edgewise.edge.device.compare import compare_outputs, judge, quantized_steps
from edgewise.edge.device.emulator import TARGETS, EnvironmentProblem, check_environment, cpuinfo_text
from edgewise.edge.evaluate import DeviceTolerance


def _field(text: str, name: str) -> list[str]:
    return [ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.split(":")[0].strip() == name]


def test_pi4_cpuinfo_is_four_cortex_a72_cores_with_the_pi4_features():
    text = cpuinfo_text(TARGETS["pi4"])
    assert _field(text, "processor") == ["0", "1", "2", "3"]
    assert set(_field(text, "CPU implementer")) == {"0x41"}  # Arm Ltd
    assert set(_field(text, "CPU part")) == {"0xd08"}  # Cortex-A72
    assert set(_field(text, "Features")) == {"fp asimd evtstrm crc32 cpuid"}
    assert _field(text, "Model") == ["Raspberry Pi 4 Model B Rev 1.4"]
    assert TARGETS["pi4"].qemu_cpu == "cortex-a72"


def test_pi5_cpuinfo_is_cortex_a76_with_dot_product():
    text = cpuinfo_text(TARGETS["pi5"])
    assert set(_field(text, "CPU part")) == {"0xd0b"}  # Cortex-A76
    assert "asimddp" in _field(text, "Features")[0].split()
    assert TARGETS["pi5"].qemu_cpu == "cortex-a76"


def test_quantized_steps_recovers_integer_step_differences_of_dequantized_int8():
    scale, zp = np.float32(0.0123457), -7
    rng = np.random.default_rng(0)
    q1 = rng.integers(-128, 128, size=1000)
    q2 = np.clip(q1 + rng.integers(-3, 4, size=1000), -128, 127)
    a = (q1.astype(np.float32) - zp) * scale
    b = (q2.astype(np.float32) - zp) * scale
    assert np.array_equal(quantized_steps(a, b, float(scale)), np.abs(q1 - q2))


def test_quantized_steps_rejects_a_missing_scale():
    with pytest.raises(ValueError, match="scale must be positive"):
        quantized_steps(np.zeros(2), np.zeros(2), 0.0)


def _probs(rows: list[list[float]]) -> np.ndarray:
    return np.asarray(rows, dtype=np.float32)


def test_compare_counts_steps_agreement_and_accuracy_delta():
    s = 1 / 256
    host = _probs([[200 * s, 56 * s], [100 * s, 156 * s], [129 * s, 127 * s]])
    arm = _probs([[200 * s, 56 * s], [101 * s, 155 * s], [127 * s, 129 * s]])  # last one flips
    y = np.array([0, 1, 0])
    row = compare_outputs(host, arm, x=np.zeros((3, 1)), y=y, output_scale=s)
    assert row["max_steps"] == 2
    assert row["values_off_by_steps"] == 4
    assert row["decision_agreement"] == pytest.approx(2 / 3)
    assert row["metric"] == "accuracy"
    assert row["metric_host"] == pytest.approx(1.0)
    assert row["metric_arm"] == pytest.approx(2 / 3)
    assert row["metric_delta"] == pytest.approx(-1 / 3)
    reasons = judge(row, "int8", DeviceTolerance(max_steps=1))
    assert any("2 quantization steps > 1" in r for r in reasons)
    assert any("decision agreement 0.6667" in r for r in reasons)
    assert any("accuracy drop 0.3333" in r for r in reasons)


def test_identical_outputs_pass_and_one_step_is_within_the_default_tolerance():
    s = 0.01
    host = _probs([[0.5, 0.3], [0.1, 0.9]])
    assert judge(compare_outputs(host, host, x=host, output_scale=s), "int8", DeviceTolerance()) == []
    row = compare_outputs(host, host + np.float32(s), x=host, output_scale=s)
    assert row["max_steps"] == 1 and judge(row, "int8", DeviceTolerance()) == []


def test_threshold_decisions_use_the_stored_threshold_and_auroc():
    host = _probs([[0.1], [0.4], [0.6], [0.9]])
    arm = _probs([[0.1], [0.55], [0.6], [0.9]])  # crosses the 0.5 threshold
    row = compare_outputs(host, arm, x=host, y=np.array([0, 0, 1, 1]), decision="threshold",
                          score="last", threshold=0.5)
    assert row["decision_agreement"] == pytest.approx(0.75)
    assert row["metric"] == "auroc" and row["metric_delta"] == pytest.approx(0.0)


def test_float_variants_are_judged_relative_to_the_output_range():
    host = _probs([[0.0, 1.0]])
    ok = compare_outputs(host, host + np.float32(5e-5), x=host)
    bad = compare_outputs(host, host + np.float32(5e-3), x=host)
    assert judge(ok, "float32", DeviceTolerance()) == []
    assert judge(bad, "float32", DeviceTolerance()) == ["max abs diff 0.005 > 0.0001 x output range"]


def test_int8_without_output_scale_is_judged_by_decisions_and_against_keras():
    host = _probs([[0.6, 0.4], [0.3, 0.7]])
    arm = _probs([[0.52, 0.48], [0.3, 0.7]])  # 0.08 off, same decisions: ONNX int8 passes
    row = compare_outputs(host, arm, x=host)
    assert "max_steps" not in row and judge(row, "int8", DeviceTolerance()) == []
    row["vs_keras"] = {"arm64_agreement": 0.5}
    assert judge(row, "int8", DeviceTolerance()) == ["arm64 vs Keras decision agreement 0.5000 < 0.95"]


def test_embeddings_are_compared_by_pair_decisions_and_pair_auroc():
    host = _probs([[1, 0], [0.99, 0.14], [0, 1], [0.14, 0.99]])  # two people, two photos each
    arm = host.copy()
    arm[1] = [0.8, 0.6]  # cosine with photo 0 drops to 0.8
    row = compare_outputs(host, arm, x=host, y=np.array([0, 0, 1, 1]), decision="pairs", threshold=0.9)
    assert row["decision_agreement"] == pytest.approx(5 / 6)  # 6 pairs, the (0, 1) match is lost
    assert row["metric"] == "pair_auroc" and row["metric_host"] == pytest.approx(1.0)
    assert row["min_cosine"] == pytest.approx(float(np.dot(host[1], arm[1]) / np.linalg.norm(host[1])))


def test_int8_embeddings_are_judged_by_direction_not_by_steps_in_single_components():
    rng = np.random.default_rng(0)
    host = rng.normal(size=(6, 64))
    host /= np.linalg.norm(host, axis=1, keepdims=True)
    scale = 1 / 128
    near = host.copy()
    near[:, 0] += 12 * scale  # 12 steps in one component: the direction barely moves
    row = compare_outputs(host, near, x=host, decision="pairs", threshold=0.5, output_scale=scale)
    assert row["max_steps"] == 12 and row["min_cosine"] > 0.99
    assert judge(row, "int8", DeviceTolerance(), "pairs") == []
    assert judge(row, "int8", DeviceTolerance(), "argmax") == ["max difference 12 quantization steps > 8"]
    far = host.copy()
    far[2] = host[3]  # one sample's embedding points elsewhere
    row = compare_outputs(host, far, x=host, decision="pairs", threshold=0.5, output_scale=scale)
    reasons = judge(row, "int8", DeviceTolerance(), "pairs")
    assert any(r.startswith("min cosine host vs arm64") for r in reasons)


def test_shape_mismatch_and_nan_outputs_fail():
    host = _probs([[0.5, 0.5]])
    row = compare_outputs(host, _probs([[0.5, 0.5, 0.0]]), x=host)
    assert judge(row, "float32", DeviceTolerance()) == ["output shape (1, 3) on arm64, (1, 2) on host"]
    nan = compare_outputs(host, _probs([[np.nan, 0.5]]), x=host)
    assert "non-finite outputs on arm64" in judge(nan, "float32", DeviceTolerance())


def _fake_tools(folder: Path, names: list[str]) -> str:
    folder.mkdir()
    for n in names:
        p = folder / n
        p.write_text("#!/bin/sh\nexit 0\n")
        p.chmod(0o755)
    return str(folder)


def test_missing_debootstrap_names_the_apt_packages(tmp_path, monkeypatch):
    tools = ["chroot", "unshare", "mount", "qemu-aarch64-static", "update-binfmts"]
    monkeypatch.setenv("PATH", _fake_tools(tmp_path / "bin", tools))
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    with pytest.raises(EnvironmentProblem) as e:
        check_environment(need_debootstrap=True)
    assert str(e.value) == (
        "debootstrap not found (needed once to build the arm64 root); "
        "install: apt-get install qemu-user-static binfmt-support debootstrap"
    )
    check_environment(need_debootstrap=False)  # a cached root does not need debootstrap


def test_missing_qemu_names_the_apt_packages(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", _fake_tools(tmp_path / "bin", ["chroot", "unshare", "mount"]))
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    with pytest.raises(EnvironmentProblem, match=r"qemu-aarch64-static not found .*apt-get install "
                       r"qemu-user-static binfmt-support debootstrap"):
        check_environment(need_debootstrap=False)


def test_not_root_is_refused_before_anything_is_touched(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(EnvironmentProblem, match="needs root .* sudo edgewise verify"):
        check_environment(need_debootstrap=True)


def test_command_exits_3_with_one_line_when_the_tools_are_missing(tmp_path):
    env = {**os.environ, "PATH": _fake_tools(tmp_path / "bin", ["chroot", "unshare", "mount"])}
    p = subprocess.run(
        [sys.executable, "-m", "edgewise.edge.cli", "verify", str(tmp_path / "none.bundle"),
         "--root", str(tmp_path / "cache")],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert p.returncode == 3, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("edgewise verify: error: cannot emulate a Raspberry Pi here:")
    assert ("needs root" in lines[0]) if os.geteuid() != 0 else ("qemu-aarch64-static not found" in lines[0])
    assert not (tmp_path / "cache").exists()


def test_eval_images_round_trip_to_the_bundle_inputs(digits_bundle, tmp_path):
    from edgewise.edge.apps.classify import prepare_image
    from edgewise.edge.bundle import load_bundle
    from edgewise.edge.sources.files import read_image

    b = load_bundle(digits_bundle)
    n = app_check.export_eval_images(b, tmp_path / "png", limit=20)
    x = np.load(b.file(b.meta["evaluation"]["x"]))[:20]
    assert n == 20
    back = np.concatenate([prepare_image(read_image(p, gray=True), b.input)
                           for p in sorted((tmp_path / "png").glob("*.png"))])
    np.testing.assert_allclose(back, x, atol=1e-6)


def test_a_variant_whose_runtime_is_missing_is_skipped_not_passed(digits_bundle, monkeypatch):
    from edgewise.edge import backends

    real = backends.load_model

    def no_onnxruntime(bundle, variant=None, **kw):
        if bundle.variant(variant).backend == "onnxruntime":
            raise ImportError("ONNX Runtime is not installed: pip install 'edgewise[onnx]'")
        return real(bundle, variant, **kw)

    monkeypatch.setattr(backends, "load_model", no_onnxruntime)
    res = inside_root.run_variants(digits_bundle, ["tflite_int8", "onnx_int8"], threads=1)
    assert res["tflite_int8"]["status"] == "ran" and res["tflite_int8"]["outputs"].shape[1] == 10
    assert res["onnx_int8"] == {
        "status": "skipped", "outputs": None,
        "reason": "ONNX Runtime is not installed: pip install 'edgewise[onnx]'",
    }


def test_app_args_naming_host_files_are_copied_where_the_root_sees_them(tmp_path):
    gallery = tmp_path / "people.db"
    gallery.write_bytes(b"sqlite")
    work = tmp_path / "root" / "tmp" / "w"
    work.mkdir(parents=True)
    arm, host = app_check.stage_app_args(f"--gallery {gallery} --fs 12000", work, "/tmp/w")
    assert arm == ["--gallery", "/tmp/w/app_files/1_people.db", "--fs", "12000"]
    assert host == ["--gallery", str(work / "app_files" / "1_people.db"), "--fs", "12000"]
    assert (work / "app_files" / "1_people.db").read_bytes() == b"sqlite"


def _cached_root() -> Path | None:
    cache = Path(os.environ.get("EDGEWISE_PI_ROOT", rootfs.DEFAULT_CACHE))
    root = cache / f"{rootfs.SUITE}-arm64-{rootfs.root_key()}"
    return root if root.is_dir() else None


def test_int8_digits_bundle_agrees_on_emulated_cortex_a72(digits_bundle):
    """The real thing: the int8 variant and the classify pipeline run inside the arm64 root."""
    if os.geteuid() != 0:
        pytest.skip("edgewise verify needs root (chroot, mounts)")
    if _cached_root() is None:
        pytest.skip("no cached emulated Pi root; build it with `make verify-pi` (about 10 minutes)")
    if shutil.which("qemu-aarch64-static") is None:
        pytest.skip("qemu-user-static is not installed")
    p = subprocess.run(
        [sys.executable, "-m", "edgewise.edge.cli", "verify", str(digits_bundle), "--target", "pi4",
         "--variants", "tflite_int8", "--app-frames", "12", "--json", "-", "--quiet"],
        capture_output=True, text=True, timeout=1800,
    )
    if p.returncode == 3:
        pytest.skip(f"emulation impossible here: {p.stderr.strip()}")
    assert p.returncode == 0, p.stderr + p.stdout
    rep = json.loads(p.stdout)
    assert rep["arm64"]["machine"] == "aarch64"
    assert rep["arm64"]["qemu_cpu"] == "cortex-a72"
    assert rep["arm64"]["tensorflow_imported"] is False
    assert rep["cpu"]["problems"] == [] and rep["cpu"]["sys_cpus_possible"]
    (row,) = rep["variants"]
    assert row["variant"] == "tflite_int8" and row["status"] == "pass"
    assert row["kernels"]["arm64"]["delegate"] == "XNNPACK"  # the kernels a Pi runs, not the reference ones
    assert row["kernels"]["arm64"]["delegated"] == row["kernels"]["host"]["delegated"] > 0
    assert not emulator.mounts_below(_cached_root()), "mounts left behind below the emulated root"
    assert 0 <= row["max_steps"] <= rep["tolerance"]["max_steps"]
    assert row["decision_agreement"] >= 0.95 and row["vs_keras"]["arm64_agreement"] >= 0.95
    app = rep["app"]
    assert app["status"] == "pass" and app["events"] == 12 and app["agree"] == 12
    assert app["tensorflow_imported"] is False and app["machine"] == "aarch64"


# -- which kernels ran, and on what CPU -------------------------------------------------------


def test_possible_cpu_lists_count_ranges_and_singles():
    assert emulator.possible_cpus("0-3\n") == 4
    assert emulator.possible_cpus("0\n") == 1
    assert emulator.possible_cpus("0,2-5") == 5
    with pytest.raises(ValueError):
        emulator.possible_cpus("\n")


def _auxv(hwcap: int, hwcap2: int = 0) -> bytes:
    pairs = [(6, 4096), (kernels.AT_HWCAP, hwcap), (kernels.AT_HWCAP2, hwcap2), (0, 0)]
    return np.array(pairs, dtype="<u8").tobytes()


def test_hwcap_names_the_dot_product_bit_of_an_arm64_auxiliary_vector():
    a76 = (1 << 0) | (1 << 1) | (1 << 9) | (1 << 10) | (1 << 20)  # fp asimd fphp asimdhp asimddp
    assert kernels.hwcap_features(_auxv(a76, 1 << 13)) == [
        "fp", "asimd", "fphp", "asimdhp", "asimddp", "i8mm"]
    assert "asimddp" not in kernels.hwcap_features(_auxv(0b11))


def test_cpu_check_fails_when_the_emulated_core_lacks_or_adds_the_dot_product():
    pi5, pi4 = emulator.TARGETS["pi5"], emulator.TARGETS["pi4"]
    a76 = ["fp", "asimd", "fphp", "asimdhp", "asimddp"]
    ok = kernels.cpu_check(pi5, {"hwcap": a76, "sys_cpus_possible": "0-1"})
    assert ok["problems"] == [] and ok["dotprod"] and ok["dotprod_expected"]
    (p,) = kernels.cpu_check(pi5, {"hwcap": ["fp", "asimd", "fphp", "asimdhp"], "sys_cpus_possible": "0-1"})[
        "problems"]
    assert p == "the emulated cortex-a76 lacks asimddp, which a Raspberry Pi 5 Model B Rev 1.0 has"
    assert "has asimddp" in kernels.cpu_check(pi4, {"hwcap": ["fp", "asimd", "asimddp"],
                                                   "sys_cpus_possible": "0-1"})["problems"][0]
    assert kernels.cpu_check(pi4, {"hwcap": ["fp", "asimd"], "sys_cpus_possible": "0-1"})["problems"] == []
    (p,) = kernels.cpu_check(pi4, {"hwcap": ["fp", "asimd"], "sys_cpus_possible": None})["problems"]
    assert p.startswith("no /sys in the root")


def _node(i: int, op: str, ins: list[int], outs: list[int]) -> dict:
    return {"index": i, "op_name": op, "inputs": np.array(ins), "outputs": np.array(outs)}


def test_delegation_counts_the_nodes_each_partition_replaced_and_names_the_rest():
    # conv(0)->pool(1)->softmax(2)->fc(3); XNNPACK took conv+pool and fc, softmax stayed built-in
    nodes = [_node(0, "CONV_2D", [0, 1, -1], [2]), _node(1, "MAX_POOL_2D", [2], [3]),
             _node(2, "SOFTMAX", [3], [4]), _node(3, "FULLY_CONNECTED", [4, 5], [6]),
             _node(4, "DELEGATE", [0, 1], [3]), _node(5, "DELEGATE", [4, 5], [6])]
    assert kernels.delegation(nodes) == {"delegate": "XNNPACK", "partitions": 2, "nodes": 4,
                                        "delegated": 3, "builtin_ops": ["SOFTMAX"]}
    assert kernels.delegation(nodes[:4]) == {"delegate": None, "partitions": 0, "nodes": 4,
                                            "delegated": 0,
                                            "builtin_ops": ["CONV_2D", "FULLY_CONNECTED", "MAX_POOL_2D",
                                                            "SOFTMAX"]}


def test_real_litert_graphs_report_xnnpack_or_its_absence(digits_bundle):
    """On this machine LiteRT applies XNNPACK; without default delegates nothing is delegated."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    path = str(digits_bundle / "model_int8.tflite")
    it = Interpreter(model_path=path, num_threads=1)
    it.allocate_tensors()
    d = kernels.delegation(it._get_ops_details())
    assert d["delegate"] == "XNNPACK" and d["partitions"] >= 1
    assert 0 < d["delegated"] <= d["nodes"] and d["delegated"] + len(d["builtin_ops"]) <= d["nodes"]
    it = Interpreter(model_path=path, num_threads=1,
                     experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    it.allocate_tensors()
    assert kernels.delegation(it._get_ops_details())["delegate"] is None
    res = inside_root.run_variants(digits_bundle, ["tflite_int8", "onnx_int8"], threads=1)
    assert res["tflite_int8"]["kernels"]["delegate"] == "XNNPACK"
    assert res["onnx_int8"]["kernels"]["providers"] == ["CPUExecutionProvider"]


def test_a_tflite_variant_without_xnnpack_fails_with_one_clear_reason():
    xnn = {"runtime": "litert", "delegate": "XNNPACK", "partitions": 1, "nodes": 6, "delegated": 5,
           "builtin_ops": ["SOFTMAX"]}
    ref = {"runtime": "litert", "delegate": None, "partitions": 0, "nodes": 6, "delegated": 0,
           "builtin_ops": ["CONV_2D"]}
    assert kernels.judge_kernels("litert", xnn, xnn) == []
    assert kernels.judge_kernels("litert", xnn, ref) == [
        "XNNPACK delegate not applied on arm64: LiteRT ran its built-in reference kernels, "
        "which a Pi does not run"]
    assert kernels.judge_kernels("litert", xnn, {**xnn, "delegated": 3}) == [
        "XNNPACK took 3/6 nodes on arm64 but 5/6 on this machine"]
    assert "cannot tell" in kernels.judge_kernels("litert", xnn, {"error": "AttributeError: x"})[0]
    assert kernels.judge_kernels("onnxruntime", None, None) == []
    assert kernels.kernels_text(xnn) == "XNNPACK 5/6 nodes (built-in: SOFTMAX)"
    assert kernels.kernels_text(ref) == "built-in reference kernels, 6 nodes (no XNNPACK)"


def test_the_root_sees_sys_and_as_many_pi_cores_as_this_machine_has(tmp_path, monkeypatch):
    """The chroot script mounts /proc, /sys and /dev in a private namespace (checked by reading
    the command it would run) and the Pi's cpuinfo lists this machine's CPU count."""
    seen = {}

    def fake_run(cmd, **kw):
        seen["cmd"] = cmd
        return ""

    monkeypatch.setattr(emulator, "run", fake_run)
    monkeypatch.setattr(emulator, "host_cpus", lambda: 3)
    (tmp_path / "root").mkdir()
    emulator.chroot(tmp_path / "root", emulator.TARGETS["pi5"], ["/bin/true"], what="t")
    script = seen["cmd"][6]
    assert seen["cmd"][:5] == ["unshare", "--mount", "--propagation", "private", "sh"]
    assert 'mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$r/sys"' in script
    assert 'mount -t proc proc "$r/proc"' in script and 'mount --rbind /dev "$r/dev"' in script
    text = (tmp_path / "cpuinfo-pi5.txt").read_text()
    assert _field(text, "processor") == ["0", "1", "2"]


def test_dot_product_instructions_are_counted_from_qemu_instruction_words():
    """Lines as QEMU's ``-d in_asm`` writes them; its disassembler prints SDOT as ``.byte``."""
    log = [
        "----------------", "IN: ",
        "0x5500e0d640:  4f80e090  .byte    0x90, 0xe0, 0x80, 0x4f",  # sdot v16.4s, v4.16b, v0.4b[0]
        "0x5500e0d644:  4e829420  .byte    0x20, 0x94, 0x82, 0x4e",  # sdot v0.4s, v1.16b, v2.16b
        "0x5500e0d648:  6e829420  .byte    0x20, 0x94, 0x82, 0x6e",  # udot v0.4s, v1.16b, v2.16b
        "0x5508f25c94:  0e268102  smlal    v2.8h, v8.8b, v6.8b",   # the non-dot int8 path
        "0x550283ce40:  d503201f  nop      ",
    ]
    assert kernels.dot_product_instructions(log) == {"sdot": 2, "udot": 1, "instructions": 5}
    assert kernels.dot_product_instructions(["garbage", ""]) == {"sdot": 0, "udot": 0, "instructions": 0}


def test_the_kernel_cell_shows_the_dot_product_count_of_an_int8_variant():
    xnn = {"runtime": "litert", "delegate": "XNNPACK", "partitions": 1, "nodes": 6, "delegated": 5,
           "builtin_ops": ["SOFTMAX"], "dot_product": {"sdot": 206, "udot": 0, "instructions": 9}}
    assert kernels.kernels_text(xnn) == ("XNNPACK 5/6 nodes (built-in: SOFTMAX); dot product in the code "
                                        "that ran: SDOT 206, UDOT 0")
    ort = {"runtime": "onnxruntime", "providers": ["CPUExecutionProvider"],
           "dot_product": {"error": "no log"}}
    assert kernels.kernels_text(ort) == "CPUExecutionProvider; dot product unknown (no log)"


# -- the application's answers, arm64 vs this machine ------------------------------------------


def _face(person: str | None, similarity: float) -> dict:
    from edgewise.edge.event import Event

    kind = "no_face" if person is None else ("unknown" if person == "unknown" else "person")
    return Event(app="face", kind=kind, answer=person, score=similarity,
                 extra={"box": [1.0, 2.0, 30.0, 30.0], "faces": []}).to_dict()


def test_face_events_that_differ_only_in_the_person_disagree():
    """Same kind, same box, near-equal similarity: only who was recognised differs."""
    from edgewise.edge.device.compare import compare_events

    host = [_face("alice", 0.81), _face("bob", 0.77)]
    arm = [_face("alice", 0.8102), _face("carol", 0.77)]
    cmp = compare_events(arm, host)
    assert (cmp["compared"], cmp["agree"]) == (2, 1)
    assert cmp["disagreements"] == [{"event": 1, "arm64": ["person", "carol"], "host": ["person", "bob"]}]
    assert compare_events(host, [dict(e) for e in host])["agree"] == 2


def test_vibration_windows_must_agree_on_the_window_verdict_not_only_the_alarm_state():
    from edgewise.edge.device.compare import compare_events
    from edgewise.edge.event import Event

    def window(anomalous: bool, score: float) -> dict:
        return Event(app="vibration", kind="window", answer=False, score=score,
                     extra={"threshold": 0.5, "anomalous": anomalous}).to_dict()

    cmp = compare_events([window(True, 0.61), window(False, 0.2)], [window(False, 0.49), window(False, 0.2)])
    assert (cmp["compared"], cmp["agree"]) == (2, 1)
    assert cmp["disagreements"][0]["arm64"] == ["window", False, True]


def test_classify_and_inspect_answers_are_read_under_their_own_keys():
    from edgewise.edge.device.compare import event_verdict

    label = {"app": "classify", "kind": "image", "label": "7", "probability": 0.9}
    part = {"app": "inspect", "kind": "part", "decision": "FAIL", "score": 0.93}
    assert event_verdict(label) == ("image", "7")
    assert event_verdict(part) == ("part", "FAIL")
    assert event_verdict({**part, "score": 0.95}) == event_verdict(part)  # scores differ by rounding


def test_the_text_report_names_the_events_arm64_and_this_machine_disagree_on():
    from edgewise.edge.device.compare import compare_events
    from edgewise.edge.device.report import report_text

    cmp = compare_events([_face("carol", 0.77)], [_face("bob", 0.77)])
    rep = {
        "bundle": "face", "target": {"qemu_cpu": "cortex-a72", "model": "Raspberry Pi 4 Model B Rev 1.4"},
        "arm64": {"python": "3.11.2", "versions": {}, "cpu_features": []}, "cpu": {"problems": []},
        "host": {"machine": "x86_64"}, "samples": 4, "decision": "pairs", "variants": [],
        "app": {"status": "FAIL", "app": "face", "inputs": 1, "rc": 0, "events": 1,
                "tensorflow_imported": False, **cmp},
        "result": "FAIL", "passed": 0, "failed": 1, "skipped": 0, "wall_seconds": 1.0,
    }
    text = report_text(rep)
    assert "answers agree with this machine 0/1" in text
    assert "event 0: arm64 ('person', 'carol') vs this machine ('person', 'bob')" in text


# -- commissioning (vibration) on both sides ------------------------------------------------------


def _commissioning_body(thr: float = 1.06, std: float = 0.5) -> dict:
    return {"report": {"windows": 150},
            "thresholds": {"per_variant": {"tflite_int8": thr}, "baseline": 26.1},
            "normalization": {"mean": [0.0, 2.0, -3.0], "std": [std, 1.0, 2.0]},
            "baseline": {"mean": [1.0, 2.0], "icov": [[1.0, 0.1], [0.1, 2.0]]},
            "levels": {"centre": [-1.0, -0.5], "spread": [0.1, 0.2]}}


def test_commissioned_figures_are_judged_relative_to_their_scale_and_by_window_count():
    from edgewise.edge.device.compare import compare_commissioning

    host = _commissioning_body()
    same = compare_commissioning(_commissioning_body(thr=1.06 * (1 + 1e-7)), host)
    assert same["reasons"] == [] and 0 < same["max_rel_diff"] < 1e-6
    assert {r["name"] for r in same["figures"]} == {
        "threshold tflite_int8", "threshold baseline", "normalization mean", "normalization std",
        "baseline mean", "baseline icov", "levels centre", "levels spread"}
    # the mean's 0.0 entry moving by 1e-6 is judged against the mean's scale (3.0), not divided by 0
    near_zero = _commissioning_body()
    near_zero["normalization"]["mean"][0] = 1e-6
    assert compare_commissioning(near_zero, host)["reasons"] == []
    off = compare_commissioning(_commissioning_body(thr=1.07, std=0.6), host)
    assert off["reasons"] == ["normalization std differs by 0.05 relative > 0.0001",
                              "threshold tflite_int8 differs by 0.00943 relative > 0.0001"]
    fewer = {**_commissioning_body(), "report": {"windows": 149}}
    assert compare_commissioning(fewer, host)["reasons"] == ["learned from 149 windows on arm64, 150 on this "
                                                             "machine"]


def test_a_run_counts_as_commissioned_only_when_every_event_used_its_variants_learned_threshold():
    learned = {"tflite_int8": 1.0596854578, "baseline": 26.13}
    ev = {"app": "vibration", "kind": "window", "variant": "tflite_int8", "threshold": 1.059685}
    assert app_check.thresholds_applied([ev, ev], learned)
    assert not app_check.thresholds_applied([ev, {**ev, "threshold": 1.021163}], learned)  # the bundle's
    assert not app_check.thresholds_applied([{**ev, "variant": "onnx_int8"}], learned)
    assert not app_check.thresholds_applied([], learned)


def _have_tensorflow() -> bool:
    import importlib.util

    return importlib.util.find_spec("tensorflow") is not None


@pytest.fixture(scope="module")
def synthetic_vib(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny vibration bundle trained on SYNTHETIC signals (3 epochs, int8 only), a synthetic
    healthy recording and a synthetic outer-race fault, both at 1.25x the training gain (another
    sensor): never real data."""
    if not _have_tensorflow():
        pytest.skip("TensorFlow is not installed: cannot train the synthetic vibration bundle")
    from edgewise.train.data.synthetic_vibration import synthesize

    d = tmp_path_factory.mktemp("vib")
    p = subprocess.run(
        [sys.executable, "-m", "edgewise.edge.cli", "train", "vibration", "--synthetic", "--out",
         str(d / "vib-synth.bundle"), "--epochs", "3", "--sweep", "", "--variants", "tflite_int8",
         "--threads", "1", "--quiet"], capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stderr[-2000:]
    np.save(d / "healthy.npy", 1.25 * synthesize("normal", seconds=6, seed=7).signal.astype(np.float32))
    np.save(d / "fault.npy", 1.25 * synthesize("outer_race", seconds=2, seed=8).signal.astype(np.float32))
    return {"bundle": d / "vib-synth.bundle", "healthy": d / "healthy.npy", "fault": d / "fault.npy"}


def test_a_commissioning_that_fails_inside_the_root_fails_the_pipeline_check_with_its_line(
        synthetic_vib, tmp_path, monkeypatch):
    """This machine commissions for real; the root's command fails (as chroot reports it): the
    pipeline check is FAIL with that one line, no run follows, and the text report shows it."""
    import argparse

    from edgewise.edge.bundle import load_bundle
    from edgewise.edge.device.report import report_text

    line = ("edgewise commission vibration inside the emulated root failed (exit 2): "
            "edgewise commission vibration: error: 0.0 % flat windows: dead or disconnected sensor?")
    calls = []

    def failing_chroot(root, target, cmd, **kw):
        calls.append(cmd)
        raise emulator.VerifyError(line)

    monkeypatch.setattr(app_check, "chroot", failing_chroot)
    work = tmp_path / "root" / "tmp" / "w"
    work.mkdir(parents=True)
    shutil.copytree(synthetic_vib["bundle"], work / "bundle")
    a = argparse.Namespace(app_source=str(synthetic_vib["fault"]), app_args="--fs 12000", app_frames=8,
                           threads=1, variants=None, commission_source=str(synthetic_vib["healthy"]),
                           commission_args="--fs 12000 --minutes 1", commission_rtol=1e-4)
    rep = app_check.run_app(load_bundle(synthetic_vib["bundle"]), a, {"root": tmp_path / "root",
                            "python": "python3"}, TARGETS["pi4"], work, "/tmp/w")
    assert len(calls) == 1 and "commission" in calls[0]  # the run never started
    assert (work / "host_commission" / "commissioning.json").is_file()  # this machine's succeeded
    assert rep["status"] == "FAIL" and rep["reason"] == f"commissioning: {line}"
    assert rep["commissioning"]["status"] == "FAIL"
    text = report_text({
        "bundle": "vib", "target": {"qemu_cpu": "cortex-a72", "model": "Raspberry Pi 4"},
        "arm64": {"python": "3.11.2", "versions": {}, "cpu_features": []}, "cpu": {"problems": []},
        "host": {"machine": "x86_64"}, "samples": 4, "decision": "threshold", "variants": [], "app": rep,
        "result": "FAIL", "passed": 0, "failed": 1, "skipped": 0, "wall_seconds": 1.0})
    assert f"  commissioning: {line}" in text.splitlines()


def test_vibration_commissioning_agrees_on_emulated_cortex_a72(request):
    """End to end under the emulated Pi 4: `edgewise commission vibration` on a SYNTHETIC healthy
    signal at another gain in the root and here, then `edgewise run vibration` on a SYNTHETIC
    fault applying each side's file; thresholds, normalisation and the answers agree."""
    if os.geteuid() != 0:
        pytest.skip("edgewise verify needs root (chroot, mounts)")
    if _cached_root() is None:
        pytest.skip("no cached emulated Pi root; build it with `make verify-pi` (about 10 minutes)")
    if shutil.which("qemu-aarch64-static") is None:
        pytest.skip("qemu-user-static is not installed")
    vib = request.getfixturevalue("synthetic_vib")
    p = subprocess.run(
        [sys.executable, "-m", "edgewise.edge.cli", "verify", str(vib["bundle"]), "--target", "pi4",
         "--app-source", str(vib["fault"]), "--app-args", "--fs 12000",
         "--commission-source", str(vib["healthy"]), "--commission-args", "--fs 12000 --minutes 1",
         "--json", "-", "--quiet"],
        capture_output=True, text=True, timeout=1800,
    )
    if p.returncode == 3:
        pytest.skip(f"emulation impossible here: {p.stderr.strip()}")
    assert p.returncode == 0, p.stderr + p.stdout
    rep = json.loads(p.stdout)
    app, c = rep["app"], rep["app"]["commissioning"]
    assert c["status"] == "pass" and c["reasons"] == []
    assert c["windows"]["arm64"] == c["windows"]["host"] >= 100
    assert c["tensorflow_imported"] is False and c["applied"] == {"arm64": True, "host": True}
    assert 0 <= c["max_rel_diff"] <= c["rtol"] == 1e-4
    for v in ("tflite_int8", "baseline"):
        assert c["thresholds"]["arm64"][v] == pytest.approx(c["thresholds"]["host"][v], rel=1e-4)
    # commissioning moved the threshold away from the bundle's, so "applied" says something
    trained = json.loads((vib["bundle"] / "bundle.json").read_text())["thresholds"]
    assert abs(c["thresholds"]["host"]["baseline"] - float(trained["baseline"])) > 1e-3
    assert app["status"] == "pass" and app["events"] == app["host_events"] == app["agree"] > 0
    assert app["tensorflow_imported"] is False and app["machine"] == "aarch64"
    assert not emulator.mounts_below(_cached_root()), "mounts left behind below the emulated root"


@pytest.mark.parametrize(("extra", "message"), [
    (["--commission-source", "/nonexistent/h.npy"], "/nonexistent/h.npy: --commission-source not found"),
    (["--commission-args", "--fs 12000 --out x.json"],
     "--commission-args must not set --out: verify sets them per side"),
    (["--app-args", "--commissioning c.json"],
     "--app-args must not set --commissioning: verify applies each side's own"),
    (["--no-app"], "--commission-source needs the pipeline run: give --app-source (and not --no-app)"),
])
def test_commissioning_flags_that_cannot_work_are_refused_in_one_line_before_emulating(
        request, extra, message):
    if os.geteuid() != 0 or shutil.which("qemu-aarch64-static") is None or _cached_root() is None:
        pytest.skip("the flags are checked after the emulation environment (root, qemu, cached root)")
    vib = request.getfixturevalue("synthetic_vib")
    args = ["--app-source", str(vib["fault"]), "--commission-source", str(vib["healthy"]), *extra]
    p = subprocess.run([sys.executable, "-m", "edgewise.edge.cli", "verify", str(vib["bundle"]), *args],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2
    assert p.stderr.strip().splitlines() == [f"edgewise verify: error: {message}"]
