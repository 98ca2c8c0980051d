"""A real Prometheus (Debian's package) scrapes a running ``edgewise run classify`` on loopback."""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

PROMETHEUS = shutil.which("prometheus") or next(
    (p for p in ("/usr/bin/prometheus",) if Path(p).exists()), None
)
pytestmark = pytest.mark.skipif(
    PROMETHEUS is None, reason="prometheus not installed (apt install prometheus; see .ci/system-deps)"
)
pytest.importorskip("prometheus_client", reason="pip install 'edgewise[metrics]' (prometheus_client)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str, timeout: float = 2.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read()


def wait_http(url: str, proc: subprocess.Popen, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{what} exited with {proc.returncode}")
        try:
            get(url)
            return
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    raise AssertionError(f"{what} did not answer on {url}")


def query(api: str, promql: str) -> list[dict]:
    """The instant vector Prometheus's HTTP API returns for ``promql``."""
    body = json.loads(get(f"{api}/api/v1/query?" + urllib.parse.urlencode({"query": promql})))
    assert body["status"] == "success", body
    return body["data"]["result"]


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_prometheus_scrapes_the_frame_counter_of_a_running_classify_loop(digits_bundle: Path, tmp_path: Path):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "edge"))  # also when run alone
    from test_pipeline_loop import write_digit_video

    video = write_digit_video(tmp_path / "digits.mp4", frames=30)
    status_port, prom_port = free_port(), free_port()
    stats_file = tmp_path / "stats.json"
    # --realtime paces the looping video at its own frame rate, like a camera: a light, endless loop.
    run = subprocess.Popen(
        [sys.executable, "-m", "edgewise.edge.cli", "run", "classify", "--bundle", str(digits_bundle),
         "--source", str(video), "--loop", "--realtime", "--threads", "1", "--jsonl", "",
         "--status-port", str(status_port), "--stats", str(stats_file)],
        stdout=subprocess.DEVNULL, stderr=(tmp_path / "run.log").open("w"),
    )
    (tmp_path / "prometheus.yml").write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: edgewise\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{status_port}']\n"
    )
    prom = subprocess.Popen(
        [PROMETHEUS, f"--config.file={tmp_path / 'prometheus.yml'}",
         f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{prom_port}"],
        stdout=subprocess.DEVNULL, stderr=(tmp_path / "prometheus.log").open("w"),
    )
    api = f"http://127.0.0.1:{prom_port}"
    try:
        wait_http(f"http://127.0.0.1:{status_port}/stats.json", run, "edgewise run")
        wait_http(f"{api}/-/ready", prom, "prometheus")
        scraped = 0.0
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            result = query(api, 'edgewise_frames_total{job="edgewise"}')
            if result and float(result[0]["value"][1]) > 0:
                scraped = float(result[0]["value"][1])
                break
            time.sleep(0.5)
        live = json.loads(get(f"http://127.0.0.1:{status_port}/stats.json"))
        assert scraped > 0, (tmp_path / "prometheus.log").read_text()[-2000:]
        assert scraped <= live["frames"]  # the counter Prometheus saw, never ahead of the loop

        # one scrape is one consistent exposition: the histogram is collected before the frame
        # counters, and a frame counts as ok before its timings are observed
        hist = query(api, 'edgewise_stage_latency_seconds_count{stage="inference"}')
        ok = query(api, "edgewise_frames_ok_total")
        n_hist, n_ok = float(hist[0]["value"][1]), float(ok[0]["value"][1])
        assert 0 < n_hist <= n_ok <= n_hist + 30

        info = query(api, "edgewise_model_info")
        labels = info[0]["metric"]
        want_sha = hashlib.sha256((digits_bundle / "bundle.json").read_bytes()).hexdigest()
        assert labels["bundle_sha256"] == want_sha
        assert labels["app"] == "classify" and labels["variant"]
        errors = query(api, "sum(edgewise_errors_total)")
        assert float(errors[0]["value"][1]) == 0
        events = query(api, 'edgewise_events_total{kind!="drift"}')
        assert events and float(events[0]["value"][1]) > 0
    finally:
        stop(run)
        stop(prom)
    assert run.returncode == 0, (tmp_path / "run.log").read_text()[-2000:]
    final = json.loads(stats_file.read_text())
    assert 0 < scraped <= final["frames"]
