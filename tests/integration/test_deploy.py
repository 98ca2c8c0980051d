"""edgewise deploy against a real OpenSSH server the test starts on loopback.

The "Pi" is this machine seen through sshd on a non-default port with a throwaway key and a
temporary directory as its home. Two stand-ins, both visible in the fixture:
- systemctl is a shim script that records every call and runs the unit's ExecStart in the
  background (``is-active`` = that process is alive), so the health check is real;
  (with the unit's ``Environment=`` lines: plain values only, which is all these tests write);
- the Pi's apt-installed numpy/OpenCV/LiteRT are this workstation's packages, exposed to the
  SSH session through PYTHONPATH (sshd ``SetEnv``), so ``--system-site-packages`` venvs made
  on the "Pi" find them and the test installs only the edgewise wheel (``--no-deps``), offline.
"""

from __future__ import annotations

import getpass
import json
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest

from edgewise.edge.device.remote import parse_host, read_inventory
from edgewise.edge.device.systemd import render_unit

SSHD = shutil.which("sshd") or next((p for p in ("/usr/sbin/sshd",) if Path(p).exists()), None)
pytestmark = pytest.mark.skipif(
    SSHD is None or shutil.which("ssh") is None or shutil.which("ssh-keygen") is None,
    reason="OpenSSH server/client not installed (apt install openssh-server openssh-client; .ci/system-deps)",
)

SHIM = r"""#!/bin/bash
# systemctl stand-in for tests: records calls, runs ExecStart of a unit in the background.
STATE="$HOME/.systemctl-shim"; mkdir -p "$STATE"
echo "$*" >> "$STATE/calls.log"
[ "$1" = "--user" ] && shift
cmd="$1"; shift
unit="${@: -1}"
UNITS="$HOME/.config/systemd/user"
alive() { [ -f "$STATE/$unit.pid" ] && kill -0 "$(cat "$STATE/$unit.pid")" 2>/dev/null; }
stop() {
  if alive; then pid=$(cat "$STATE/$unit.pid"); kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid"
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done; fi
  rm -f "$STATE/$unit.pid"
}
case "$cmd" in
  daemon-reload) exit 0 ;;
  enable) cp "$UNITS/$unit" "$STATE/enabled-$unit"; exit 0 ;;
  restart|start)
    stop
    exec_start=$(sed -n 's/^ExecStart=//p' "$UNITS/$unit")
    mapfile -t envs < <(sed -n 's/^Environment="\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "$UNITS/$unit")
    setsid env "${envs[@]}" bash -c "exec $exec_start" >>"$STATE/$unit.log" 2>&1 </dev/null &
    echo $! > "$STATE/$unit.pid"; exit 0 ;;
  stop) stop; exit 0 ;;
  is-active) if alive; then echo active; exit 0; else echo failed; exit 3; fi ;;
  status) tail -n 3 "$STATE/$unit.log" 2>/dev/null; alive ;;
  *) echo "shim: unsupported $cmd" >&2; exit 1 ;;
esac
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def system_site_stand_in(dst: Path) -> Path:
    """This venv's packages minus edgewise and packaging tools: the Pi's 'apt' site-packages."""
    site = Path(sysconfig.get_paths()["purelib"])
    dst.mkdir()
    skip = ("edgewise", "__editable__", "_distutils_hack", "pip", "setuptools", "wheel", "pkg_resources")
    for p in site.iterdir():
        if p.name.endswith(".pth") or p.name == "__pycache__" or p.name.startswith(skip):
            continue
        (dst / p.name).symlink_to(p)
    return dst


class FakePi:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.home = root / "pihome"
        (self.home / "bin").mkdir(parents=True)
        self.port = free_port()
        self.user = getpass.getuser()
        for key in ("hostkey", "key"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(root / key)], check=True)
        shutil.copy(root / "key.pub", root / "authorized_keys")
        site = system_site_stand_in(root / "pi-system-site")
        shim = self.home / "bin" / "systemctl"
        shim.write_text(SHIM)
        shim.chmod(0o755)
        self.shim = shim
        (root / "sshd_config").write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {root / 'hostkey'}\n"
            f"PidFile {root / 'sshd.pid'}\nAuthorizedKeysFile {root / 'authorized_keys'}\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n"
            "PermitRootLogin prohibit-password\nUsePAM no\nStrictModes no\n"
            f"SetEnv HOME={self.home} PYTHONPATH={site}\n"
        )
        if os.geteuid() == 0:
            Path("/run/sshd").mkdir(exist_ok=True)  # privilege-separation dir the package expects
        self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(root / "sshd_config")],
                                     stdout=subprocess.DEVNULL, stderr=open(root / "sshd.log", "w"))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                break
            except OSError:
                if self.proc.poll() is not None:
                    pytest.skip(f"sshd could not start: {(root / 'sshd.log').read_text()[-300:]}")
                time.sleep(0.05)

    @property
    def host(self) -> str:
        return f"{self.user}@127.0.0.1:{self.port}"

    def ssh_args(self) -> list[str]:
        return ["--identity", str(self.root / "key"), "-o", f"UserKnownHostsFile={self.root / 'known_hosts'}"]

    def stop(self) -> None:
        subprocess.run([str(self.shim), "--user", "stop", "edgewise-classify.service"],
                       env={**os.environ, "HOME": str(self.home)}, capture_output=True)
        self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def pi(tmp_path_factory: pytest.TempPathFactory):
    p = FakePi(tmp_path_factory.mktemp("pi"))
    yield p
    p.stop()


def write_video(path: Path) -> Path:
    edge_tests = str(Path(__file__).resolve().parents[1] / "unit" / "edge")
    if edge_tests not in sys.path:  # on the path when the whole suite runs; not when this file runs alone
        sys.path.append(edge_tests)
    from test_pipeline_loop import write_digit_video

    return write_digit_video(path, frames=30)


def deploy(pi: FakePi, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "edgewise.edge.cli", "deploy", *args, "--host", pi.host, *pi.ssh_args(),
           "--app", "classify", "--systemd", "user", "--systemctl", f"{pi.home}/bin/systemctl",
           "--no-deps", "--health-wait", "3", "--python", BASE_PYTHON]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


# The "Pi" creates its venv with the interpreter this venv was made from, so the binary packages
# exposed through PYTHONPATH match its ABI whatever python3 is first on the PATH.
BASE_PYTHON = getattr(sys, "_base_executable", None) or sys.executable


def remote_link(pi: FakePi, name: str) -> str:
    return os.readlink(pi.home / "edgewise" / name)


def test_host_specs_and_inventory_parse(tmp_path: Path):
    h = parse_host("pi@raspberrypi.local:2222")
    assert (h.user, h.host, h.port) == ("pi", "raspberrypi.local", 2222)
    assert parse_host("pi@[::1]:22").host == "::1"
    assert parse_host("10.0.0.5", port=2200).port == 2200
    with pytest.raises(ValueError, match="port 'x' is not a number"):
        parse_host("pi@host:x")
    inv = tmp_path / "pis.txt"
    inv.write_text("# line 3\npi@10.0.0.5\npi@10.0.0.6:2222 identity=/k  # spare\n")
    hosts = read_inventory(inv, port=22)
    assert [(h.host, h.port, h.identity) for h in hosts] == [("10.0.0.5", 22, None), ("10.0.0.6", 2222, "/k")]
    inv.write_text("pi@x colour=red\n")
    with pytest.raises(ValueError, match="unknown option 'colour=red'"):
        read_inventory(inv)


def test_unit_restarts_on_failure_and_runs_the_current_bundle():
    unit = render_unit("inspect", "/home/pi/edgewise", "--source picamera2", user="pi", scope="system")
    assert "--source 50%%" in render_unit("inspect", "/b", "--source 50%", user="pi", scope="system")
    from edgewise.edge.device.deploy import DeployConfig

    assert DeployConfig(app="inspect").full_run_args().startswith("--source picamera2 --jsonl= ")
    with pytest.raises(ValueError, match="--app vibration: give its source with --run-args"):
        DeployConfig(app="vibration").full_run_args()
    assert "Restart=on-failure" in unit and "User=pi" in unit and "WantedBy=multi-user.target" in unit
    assert ("ExecStart=/home/pi/edgewise/venv/bin/edgewise run inspect --bundle "
            "/home/pi/edgewise/current/bundle --source picamera2") in unit


def test_deploy_redeploy_and_rollback_on_a_loopback_pi(pi: FakePi, wheel: Path, two_bundles, tmp_path: Path):
    b1, b2 = two_bundles
    video = write_video(pi.home / "line")
    events = pi.home / "events.jsonl"
    run_args = f"--source {video} --realtime --loop --latest --threads 1 --jsonl {events}"

    r = deploy(pi, str(b1), "--wheel", str(wheel), "--run-args", run_args)
    assert r.returncode == 0, r.stdout + r.stderr
    assert " ok " in r.stdout.splitlines()[1]
    rel1 = remote_link(pi, "current")
    base = pi.home / "edgewise"
    assert (base / rel1 / "bundle" / "bundle.json").exists()
    assert not (base / "previous").exists()
    # the venv on the "Pi" runs the deployed wheel, not this checkout
    where = subprocess.run([str(base / "venv" / "bin" / "python"), "-c",
                            "import importlib.util as u; print(u.find_spec('edgewise.edge').origin)"],
                           capture_output=True, text=True, env={**os.environ, "PYTHONPATH": ""})
    assert str(base / "venv") in where.stdout, where
    unit = (pi.home / ".config/systemd/user/edgewise-classify.service").read_text()
    assert "Restart=on-failure" in unit and f"--bundle {base}/current/bundle" in unit
    calls = (pi.home / ".systemctl-shim" / "calls.log").read_text().split("\n")
    assert "enable edgewise-classify.service" in calls
    time.sleep(1.0)
    lines = events.read_text().splitlines()
    assert lines and json.loads(lines[-1])["app"] == "classify"  # the service classifies frames

    r = deploy(pi, str(b2), "--wheel", str(wheel), "--run-args", run_args)
    assert r.returncode == 0, r.stdout + r.stderr
    rel2 = remote_link(pi, "current")
    assert rel2 != rel1 and remote_link(pi, "previous") == rel1
    assert (base / rel2 / "bundle" / "notes" / "v2.txt").exists()

    unit_before = (pi.home / ".config/systemd/user/edgewise-classify.service").read_text()
    r = deploy(pi, "--rollback")  # no --run-args: the unit stays as deployed
    assert r.returncode == 0, r.stdout + r.stderr
    assert remote_link(pi, "current") == rel1 and remote_link(pi, "previous") == rel2
    assert not (base / "current" / "bundle" / "notes").exists()
    assert "rollback" in r.stdout
    assert (pi.home / ".config/systemd/user/edgewise-classify.service").read_text() == unit_before
    restarts = [c for c in (pi.home / ".systemctl-shim" / "calls.log").read_text().splitlines()
                if c.startswith("restart")]
    assert len(restarts) == 3


def test_unhealthy_release_is_rolled_back_automatically(pi: FakePi, wheel: Path, two_bundles):
    b1, b2 = two_bundles
    before, before_prev = remote_link(pi, "current"), remote_link(pi, "previous")
    r = deploy(pi, str(b2), "--wheel", str(wheel), "--run-args", "--source /nonexistent/video.mp4")
    assert r.returncode == 1
    assert "FAILED" in r.stdout and "health check" in r.stdout and "rolled back" in r.stdout
    assert remote_link(pi, "current") == before and remote_link(pi, "previous") == before_prev


def test_tampered_upload_is_refused_before_the_switch(
    pi: FakePi, wheel: Path, two_bundles, monkeypatch, capsys
):
    """A file corrupted on the way fails the on-device sha256 check; current stays."""
    from edgewise.edge.device import deploy as dep

    b1, _ = two_bundles
    before = remote_link(pi, "current")
    real = dep.Release.tar_bytes

    def corrupt(self):
        self.manifest = self.manifest.replace(self.manifest[:8], "00000000", 1)
        return real(self)

    monkeypatch.setattr(dep.Release, "tar_bytes", corrupt)
    argv = [str(b1), "--wheel", str(wheel), "--host", pi.host, *pi.ssh_args(), "--app", "classify",
            "--systemd", "user", "--systemctl", f"{pi.home}/bin/systemctl", "--no-deps",
            "--run-args", "--source x"]
    assert dep.deploy_main(argv) == 1
    out = capsys.readouterr().out
    assert "verify checksums" in out and "did NOT match" in out, out
    assert remote_link(pi, "current") == before
    assert list((pi.home / "edgewise" / "releases").glob(".incoming-*")), "the bad upload stays quarantined"


def test_several_hosts_in_parallel_with_a_per_host_table(pi: FakePi, wheel: Path, digits_bundle: Path,
                                                          tmp_path: Path, capsys):
    """One reachable Pi and one dead address from an inventory: one ok row, one FAILED row."""
    from edgewise.edge.device.deploy import deploy_main

    dead = f"pi@127.0.0.1:{free_port()}"
    inv = tmp_path / "pis.txt"
    inv.write_text(f"{pi.host}\n{dead}  # switched off\n")
    argv = [str(digits_bundle), "--wheel", str(wheel), "--inventory", str(inv), *pi.ssh_args(),
            "--app", "classify", "--no-systemd", "--no-deps", "-o", "ConnectTimeout=3"]
    assert deploy_main(argv) == 1
    rows = capsys.readouterr().out.splitlines()
    assert rows[0].split()[:2] == ["HOST", "RESULT"] and len(rows) == 3
    ok_row = next(r for r in rows if r.startswith(pi.host))
    dead_row = next(r for r in rows if r.startswith(dead))
    assert ok_row.split()[1] == "ok" and "no service" in ok_row
    assert dead_row.split()[1] == "FAILED" and "ssh to" in dead_row and "current unchanged" in dead_row


def test_a_users_strict_host_key_checking_beats_the_accept_new_default(pi: FakePi, wheel: Path,
                                                                        digits_bundle: Path, tmp_path: Path):
    """ssh keeps an option's first value: with the user's option first, an unknown host key is refused
    (with deploy's accept-new first, the same deploy would have trusted it silently)."""
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    before = remote_link(pi, "current")
    cmd = [sys.executable, "-m", "edgewise.edge.cli", "deploy", str(digits_bundle), "--wheel", str(wheel),
           "--host", pi.host, "--identity", str(pi.root / "key"), "-o", f"UserKnownHostsFile={empty}",
           "-o", "StrictHostKeyChecking=yes", "--app", "classify", "--no-systemd", "--no-deps"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "FAILED" in r.stdout and "Host key verification failed" in r.stdout, r.stdout
    assert empty.read_text() == "", "the host key was not learnt"
    assert remote_link(pi, "current") == before


def _wait_state(pi: FakePi, want: str, seconds: float = 20) -> str:
    shim = [str(pi.shim), "--user", "is-active", "edgewise-classify.service"]
    env = {**os.environ, "HOME": str(pi.home)}
    deadline = time.monotonic() + seconds
    state = ""
    while time.monotonic() < deadline:
        state = subprocess.run(shim, capture_output=True, text=True, env=env).stdout.strip()
        if state == want:
            break
        time.sleep(0.3)
    return state


def test_trusted_key_makes_the_device_refuse_unsigned_and_foreign_bundles(pi: FakePi, wheel: Path,
                                                                           two_bundles, tmp_path: Path):
    """--trusted-key: the key ships in the release, the unit sets EDGEWISE_TRUSTED_KEYS, the running
    service refuses a bundle signed by another key, and a later unsigned deploy is refused."""
    from edgewise.edge.signing import generate_keypair, sign_bundle

    b1, _ = two_bundles
    signed = tmp_path / "signed.bundle"
    shutil.copytree(b1, signed)
    _, pub, _ = generate_keypair(tmp_path / "release")
    _, other_pub, _ = generate_keypair(tmp_path / "other")
    video = write_video(pi.home / "line-signed")
    run_args = f"--source {video} --realtime --loop --latest --threads 1 --jsonl {pi.home / 'signed.jsonl'}"

    r = deploy(pi, str(signed), "--wheel", str(wheel), "--run-args", run_args, "--trusted-key", str(pub))
    assert r.returncode == 2 and "signed" in r.stderr.lower(), r.stdout + r.stderr  # unsigned: not uploaded
    sign_bundle(signed, tmp_path / "release")
    r = deploy(pi, str(signed), "--wheel", str(wheel), "--run-args", run_args, "--trusted-key", str(pub))
    assert r.returncode == 0, r.stdout + r.stderr
    base = pi.home / "edgewise"
    assert (base / "current" / "trusted-keys" / "release.pub").read_bytes() == pub.read_bytes()
    unit = (pi.home / ".config/systemd/user/edgewise-classify.service").read_text()
    assert f'Environment="EDGEWISE_TRUSTED_KEYS={base}/current/trusted-keys"' in unit.splitlines()
    assert _wait_state(pi, "active", 3) == "active"

    # the same bundle re-signed on the device by a key it does not trust: the service refuses it
    sign_bundle(base / "current" / "bundle", tmp_path / "other")
    subprocess.run([str(pi.shim), "--user", "restart", "edgewise-classify.service"],
                   env={**os.environ, "HOME": str(pi.home)}, check=True)
    assert _wait_state(pi, "failed") == "failed"
    log = (pi.home / ".systemctl-shim" / "edgewise-classify.service.log").read_text()
    assert "edgewise run classify: error:" in log and "trusted" in log.lower(), log[-2000:]
    sign_bundle(base / "current" / "bundle", tmp_path / "release")

    # a deploy without the key is refused while the device requires signed bundles ...
    signed_release = remote_link(pi, "current")
    r = deploy(pi, str(b1), "--wheel", str(wheel), "--run-args", run_args)
    assert r.returncode == 1 and "requires signed bundles" in r.stdout, r.stdout
    assert remote_link(pi, "current") == signed_release
    # ... and a key that did not sign the bundle is refused on the workstation
    r = deploy(pi, str(signed), "--wheel", str(wheel), "--run-args", run_args,
               "--trusted-key", str(other_pub))
    assert r.returncode == 2 and "edgewise deploy: error:" in r.stderr, r.stdout + r.stderr
    # --no-trusted-keys drops the requirement on purpose: the unit loses the variable
    r = deploy(pi, str(b1), "--wheel", str(wheel), "--run-args", run_args, "--no-trusted-keys")
    assert r.returncode == 0, r.stdout + r.stderr
    unit = (pi.home / ".config/systemd/user/edgewise-classify.service").read_text()
    assert "EDGEWISE_TRUSTED_KEYS" not in unit and not (base / "current" / "trusted-keys").exists()
