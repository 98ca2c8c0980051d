"""A source that yields nothing (every file corrupt with --loop, a silent stdin) still stops on
SIGTERM/SIGINT within one second, and its errors do not flood the log. Real processes, real signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

STDIN_RUN = """
import sys
from edgewise.edge.apps.run import run_app
from edgewise.edge.apps.settings import RunSettings, SinkSettings, SourceSettings
from edgewise.edge.sources.windows import StdinSource

class Mean:
    name = "mean"
    def preprocess(self, frame): return frame.data
    def infer(self, x): return float(x.mean())
    def postprocess(self, frame, y): return {"app": self.name, "score": y}

latest = sys.argv[1:] == ["--latest"]  # read in a capture thread, newest window kept
settings = RunSettings(source=SourceSettings("-", latest=latest), sinks=SinkSettings(jsonl=None))
print("ready", flush=True)
sys.exit(run_app(Mean(), settings, source=StdinSource(fs=1000.0, window=8)))
"""


def _stop_latency(proc: subprocess.Popen, sig: int, timeout: float = 10.0) -> float:
    t0 = time.monotonic()
    proc.send_signal(sig)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail(f"still running {timeout} s after signal {sig}")
    return time.monotonic() - t0


@pytest.mark.parametrize(("sig", "flags"), [(signal.SIGTERM, []), (signal.SIGINT, []),
                                            (signal.SIGTERM, ["--latest"])])
def test_a_blocked_stdin_source_stops_within_one_second(sig: int, flags: list[str]):
    proc = subprocess.Popen([sys.executable, "-c", STDIN_RUN, *flags], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(1.0)  # now blocked reading stdin, which never sends anything
        assert proc.poll() is None
        latency = _stop_latency(proc, sig)
    finally:
        if proc.poll() is None:
            proc.kill()
    err = proc.stderr.read()
    assert latency < 1.0, f"stopped {latency:.2f} s after {signal.Signals(sig).name}"
    assert proc.returncode == 0, err
    assert "frames=0 events=0 errors=0" in err and "Traceback" not in err


def _corrupt_folder(tmp_path: Path, n: int = 3) -> Path:
    folder = tmp_path / "corrupt"
    folder.mkdir()
    for i in range(n):
        (folder / f"{i}.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(64))
    return folder


def test_an_all_corrupt_folder_with_loop_stops_on_sigterm_and_logs_a_few_lines(tmp_path: Path,
                                                                               digits_bundle: Path):
    """Before: ~100,000 log lines in 30 s and SIGTERM ignored. Now: each bad file named once, then
    one 'repeated' summary per 10 s; the runner leaves the source's wait on the signal."""
    folder = _corrupt_folder(tmp_path)
    log = tmp_path / "stderr.log"
    with open(log, "w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "edgewise.edge.cli", "run", "classify", "--bundle", str(digits_bundle),
             "--source", str(folder), "--loop", "--give-up-after", "0", "--jsonl", "", "--threads", "1"],
            stdout=subprocess.DEVNULL, stderr=err)
        try:
            deadline = time.monotonic() + 60
            while "decode error" not in log.read_text() and time.monotonic() < deadline:
                assert proc.poll() is None, log.read_text()
                time.sleep(0.1)
            time.sleep(12)  # past one 10 s summary interval
            assert proc.poll() is None
            latency = _stop_latency(proc, signal.SIGTERM)
        finally:
            if proc.poll() is None:
                proc.kill()
    lines = log.read_text().splitlines()
    assert latency < 1.0, f"stopped {latency:.2f} s after SIGTERM"
    repeated = [ln for ln in lines if "errors repeated" in ln]
    decode = [ln for ln in lines if "decode error:" in ln and ln not in repeated]
    assert len(decode) == 3 and all("corrupt" in ln for ln in decode)  # each file named once
    assert 1 <= len(repeated) <= 3, lines
    assert len(lines) <= 12, lines
    # nothing was ever delivered: the run failed as a whole, in one line
    assert proc.returncode == 1
    assert lines[-1].startswith("edgewise run classify: error: the source delivered no frame (errors: decode")


def test_an_all_corrupt_folder_exits_1_with_one_line(tmp_path: Path, digits_bundle: Path):
    folder = _corrupt_folder(tmp_path)
    r = subprocess.run(
        [sys.executable, "-m", "edgewise.edge.cli", "run", "classify", "--bundle", str(digits_bundle),
         "--source", str(folder), "--jsonl", "", "--threads", "1"],
        capture_output=True, text=True, timeout=120)
    assert r.returncode == 1, r.stderr
    assert r.stderr.strip().splitlines()[-1] == (
        "edgewise run classify: error: the source delivered no frame (errors: decode 3)")
    assert "Traceback" not in r.stderr


def test_samples_piped_into_stdin_are_read_from_its_descriptor_to_the_end():
    data = "".join(f"{i % 7 / 10}\n" for i in range(8 * 50)) + "not a number\n" + "0.5\n" * 7
    r = subprocess.run([sys.executable, "-c", STDIN_RUN], input=data, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert "frames=51 events=51 errors=0" in r.stderr  # the NaN window is scored too: Mean has no check
