"""``edgewise image`` on small partitioned disk images made here with standard tools.

Each base image is what an official Raspberry Pi OS image is at the level the builder reads:
an MBR with a FAT boot partition (``sfdisk`` + ``mkfs.vfat``) holding ``issue.txt``,
``cmdline.txt`` and ``config.txt`` (plus cloud-init's files for Trixie) and an ext4 stand-in
root partition. The card is read back with mtools; the cloud-init files are checked by
cloud-init itself (Debian's package); and the first-boot script read back from the card runs
inside the emulated arm64 root of ``edgewise verify``, offline, up to a started service
(deploy's systemctl stand-in), twice. Nothing is downloaded: dependencies come from the
verify root's cached arm64 wheels, or the card carries only the edgewise wheel (``--no-deps``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from edgewise.edge.bundle import BundleWriter, Variant

TOOLS = ("sfdisk", "mkfs.vfat", "mkfs.ext4", "mcopy", "mdir", "mmd")
pytestmark = pytest.mark.skipif(
    any(shutil.which(t) is None for t in TOOLS),
    reason="needs sfdisk (fdisk), mkfs.vfat (dosfstools), mkfs.ext4 (e2fsprogs) and mtools (.ci/system-deps)",
)
MiB = 1024 * 1024
BOOKWORM_ISSUE = ("Raspberry Pi reference 2024-11-19\nGenerated using pi-gen, "
                  "https://github.com/RPi-Distro/pi-gen, 891df1e21ed2b6099a2e6a13e26c91dea44b34d4, stage2\n")
TRIXIE_ISSUE = ("Raspberry Pi reference 2025-10-01\nGenerated using pi-gen, "
                "https://github.com/RPi-Distro/pi-gen, 3e3d0ec8fb3b3e2a2c4b0d2ad3d9a4d1f0b1c2d3, stage2\n")
CMDLINE = ("console=serial0,115200 console=tty1 root=PARTUUID=1234abcd-02 rootfstype=ext4 fsck.repair=yes "
           "rootwait\n")
PSK = "correct horse battery staple"


def _mtools_env() -> dict[str, str]:
    return {**os.environ, "MTOOLS_SKIP_CHECK": "1"}


def make_base(path: Path, issue: str | None, *, cloud_init: bool = False, cmdline: bool = True,
              boot_mib: int = 64) -> Path:
    """A two-partition disk image: FAT boot (type 0x0c) at 1 MiB and an ext4 stand-in root."""
    root_mib = 8
    with path.open("wb") as f:
        f.truncate((1 + boot_mib + root_mib) * MiB)
    layout = (f"label: dos\nstart=2048, size={boot_mib * 2048}, type=c\n"
              f"start={2048 + boot_mib * 2048}, size={root_mib * 2048}, type=83\n")
    subprocess.run(["sfdisk", "-q", str(path)], input=layout.encode(), check=True)
    subprocess.run(["mkfs.vfat", "-F", "16", "-n", "BOOTFS", "--offset", "2048", str(path),
                    str(boot_mib * 1024)], check=True, capture_output=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "rootfs", "-E", f"offset={(1 + boot_mib) * MiB}",
                    str(path), f"{root_mib * 1024}k"], check=True, capture_output=True)
    files = {"config.txt": "arm_64bit=1\n", "start4.elf": "stand-in firmware\n"}
    if issue is not None:
        files["issue.txt"] = issue
    if cmdline:
        files["cmdline.txt"] = CMDLINE
    if cloud_init:
        files |= {"user-data": "#cloud-config\n", "meta-data": "instance-id: rpios-image\n",
                  "network-config": "network:\n  version: 2\n"}
    for name, text in files.items():
        subprocess.run(["mcopy", "-i", f"{path}@@{MiB}", "-", f"::/{name}"], input=text.encode(), check=True,
                       env=_mtools_env())
    return path


def boot_read(img: Path, name: str) -> bytes:
    return subprocess.run(["mcopy", "-n", "-i", f"{img}@@{MiB}", f"::/{name}", "-"], check=True,
                          capture_output=True, env=_mtools_env()).stdout


def boot_names(img: Path, folder: str = "") -> list[str]:
    out = subprocess.run(["mdir", "-b", "-i", f"{img}@@{MiB}", f"::/{folder}"], check=True,
                         capture_output=True, text=True, env=_mtools_env()).stdout
    return sorted(ln.rsplit("/", 1)[-1] if not ln.endswith("/") else ln.rstrip("/").rsplit("/", 1)[-1] + "/"
                  for ln in out.splitlines() if ln.startswith("::/"))


def image(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgewise.edge.cli", "image", *args], capture_output=True,
                          text=True, timeout=timeout)


def cached_wheelhouse() -> Path:
    """The verify root's arm64 CPython 3.11 wheels with every runtime package (no download)."""
    from edgewise.edge.device import rootfs

    cache = Path(os.environ.get("EDGEWISE_PI_ROOT", rootfs.DEFAULT_CACHE)) / "wheels"
    need = [n.replace("-", "_") for n in rootfs.WHEEL_PACKAGES]
    for d in sorted(cache.glob("*")):
        names = [w.name.lower() for w in d.glob("*.whl")]
        if (d / ".complete").exists() and all(any(n.startswith(p + "-") for n in names) for p in need):
            return d
    pytest.skip(f"no complete cached arm64 wheelhouse in {cache} (`make verify-pi` fetches it)")


@pytest.fixture(scope="module")
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic bundle (placeholder model bytes): enough for the layout tests, never run."""
    w = BundleWriter(tmp_path_factory.mktemp("b") / "tiny.bundle", name="tiny", task="classification",
                     app="generic")
    w.add_bytes("model_float32.tflite", b"\x00" * 64)
    w.meta["input"] = {"shape": [None, 4], "dtype": "float32", "normalization": {"scale": 1.0, "offset": 0.0}}
    w.meta["output"] = {"shape": [None, 2], "dtype": "float32"}
    w.meta["labels"] = ["ok", "bad"]
    w.add_variant(Variant("tflite_float32", "model_float32.tflite", "litert", "float32"))
    return w.finish()


@pytest.fixture()
def secrets(tmp_path: Path) -> tuple[Path, Path]:
    psk = tmp_path / "wifi.psk"
    psk.write_text(PSK + "\n")
    key = tmp_path / "id_ed25519.pub"
    key.write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ "
                   "test@ws\n")
    return psk, key


def test_a_bookworm_card_carries_firstrun_the_cmdline_hook_and_the_payload(tmp_path, wheel, tiny_bundle,
                                                                          secrets):
    psk, key = secrets
    base = make_base(tmp_path / "bookworm.img", BOOKWORM_ISSUE)
    out = tmp_path / "card.img"
    r = image("--base", str(base), "--bundle", str(tiny_bundle), "--app", "inspect", "--out", str(out),
              "--wheel", str(wheel), "--no-deps", "--hostname", "line3-cam", "--user", "op",
              "--ssh-key", str(key), "--wifi-ssid", "plant floor", "--wifi-psk-file", str(psk),
              "--wifi-country", "DE", "--mqtt", "broker.local", "--json", str(tmp_path / "r.json"))
    assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path / "r.json").read_text())
    assert res["flavor"] == "bookworm" and res["init_files"] == ["cmdline.txt", "firstrun.sh"]
    # the boot partition read back with mtools
    cmdline = boot_read(out, "cmdline.txt").decode()
    assert cmdline.splitlines() == [
        CMDLINE.strip() + " systemd.run=/boot/firmware/firstrun.sh systemd.run_success_action=reboot "
        "systemd.unit=kernel-command-line.target"]
    firstrun = boot_read(out, "firstrun.sh").decode()
    assert "imager_custom set_hostname line3-cam" in firstrun
    assert "/usr/lib/userconf-pi/userconf op '*'" in firstrun
    want_hash = hashlib.pbkdf2_hmac("sha1", PSK.encode(), b"plant floor", 4096, 32).hex()
    assert f"set_wlan 'plant floor' {want_hash} DE" in firstrun
    assert "systemctl enable edgewise-firstboot.service" in firstrun
    assert "ExecStart=/bin/sh /boot/firmware/edgewise/firstboot.sh" in firstrun
    subprocess.run(["bash", "-n"], input=firstrun.encode(), check=True)  # it parses
    assert boot_names(out, "edgewise") == ["edgewise-inspect.service", "firstboot.sh", "image.json",
                                           "release/", "wheels/"]
    rel = res["payload"]["release"]
    assert boot_names(out, "edgewise/release") == ["MANIFEST.sha256", "bundle/", "release.json", "wheel/"]
    unit = boot_read(out, "edgewise/edgewise-inspect.service").decode()
    assert "User=op" in unit and "WorkingDirectory=/home/op/edgewise" in unit
    assert ("ExecStart=/home/op/edgewise/venv/bin/edgewise run inspect --bundle "
            "/home/op/edgewise/current/bundle --source picamera2 --jsonl= --log-every 60 "
            "--mqtt broker.local") in unit
    script = boot_read(out, "edgewise/firstboot.sh").decode()
    assert f"RELEASE={rel}" in script
    subprocess.run(["sh", "-n"], input=script.encode(), check=True)
    # the manifest checks against the files as the card holds them
    pulled = tmp_path / "pulled"
    subprocess.run(["mcopy", "-s", "-n", "-i", f"{out}@@{MiB}", "::/edgewise", str(pulled)], check=True,
                   env=_mtools_env())
    subprocess.run(["sha256sum", "-c", "--quiet", "--strict", "MANIFEST.sha256"], cwd=pulled / "release",
                   check=True)
    # secrets: the passphrase is nowhere on the card or in the output; the sha256 file checks
    assert PSK.encode() not in out.read_bytes()
    assert PSK not in r.stdout + r.stderr and want_hash not in r.stdout + r.stderr
    assert "psk" not in json.dumps(res["payload"]).lower()
    subprocess.run(["sha256sum", "-c", "--quiet", "card.img.sha256"], cwd=tmp_path, check=True)
    # the base image is untouched, and a card is no base for another card
    assert boot_read(base, "cmdline.txt").decode() == CMDLINE
    again = image("--base", str(out), "--bundle", str(tiny_bundle), "--app", "inspect", "--out",
                  str(tmp_path / "card2.img"), "--wheel", str(wheel), "--no-deps", "-q")
    assert again.returncode == 2 and "already carries an edgewise payload" in again.stderr, again.stderr


def test_trixie_cloud_init_files_pass_cloud_init_s_own_checks(tmp_path, wheel, tiny_bundle, secrets):
    psk, key = secrets
    base = make_base(tmp_path / "trixie.img", TRIXIE_ISSUE, cloud_init=True)
    out = tmp_path / "card.img"
    r = image("--base", str(base), "--bundle", str(tiny_bundle), "--app", "vibration", "--out", str(out),
              "--wheel", str(wheel), "--no-deps", "--hostname", "press-7", "--ssh-key", str(key),
              "--wifi-ssid", 'Fritz "Box" 7590', "--wifi-psk-file", str(psk), "--wifi-country", "GB",
              "--run-args", "--source adxl345 --device-id 'press 7'")
    assert r.returncode == 0, r.stderr
    assert "trixie" in r.stderr and "cloud-init" in r.stderr
    ud, nc, md = (boot_read(out, n).decode() for n in ("user-data", "network-config", "meta-data"))
    assert ud.startswith("#cloud-config\n") and '"press-7"' in ud
    assert '["sh", "/boot/firmware/edgewise/firstboot.sh"]' in ud
    want_hash = hashlib.pbkdf2_hmac("sha1", PSK.encode(), b'Fritz "Box" 7590', 4096, 32).hex()
    assert PSK not in nc and want_hash in nc
    assert md.startswith('instance-id: "edgewise-')
    assert "firstrun.sh" not in boot_names(out) and boot_read(out, "cmdline.txt").decode() == CMDLINE
    if shutil.which("cloud-init") is None:
        pytest.skip("cloud-init is not installed (apt install cloud-init; .ci/system-deps): files written, "
                    "schema not checked")
    (tmp_path / "user-data").write_text(ud)
    v = subprocess.run(["cloud-init", "schema", "--config-file", str(tmp_path / "user-data")],
                       capture_output=True, text=True)
    assert v.returncode == 0 and "Valid cloud-config" in v.stdout, v.stdout + v.stderr
    # network-config: Debian's cloud-init 22.4 has no schema for it (its schema command checks
    # cloud-config only); cloud-init hands a v2 config to netplan as it is, so netplan's own
    # parser (Debian's netplan.io) reads it and renders the NetworkManager connection.
    if shutil.which("netplan") is None:
        pytest.skip("netplan is not installed (apt install netplan.io; .ci/system-deps): network-config "
                    "written, not parsed")
    (tmp_path / "np" / "etc" / "netplan").mkdir(parents=True)
    yml = tmp_path / "np" / "etc" / "netplan" / "50-cloud-init.yaml"
    yml.write_text(nc)
    yml.chmod(0o600)
    n = subprocess.run(["netplan", "generate", "--root-dir", str(tmp_path / "np")], capture_output=True,
                       text=True)
    assert n.returncode == 0, n.stderr
    conns = list((tmp_path / "np" / "run" / "NetworkManager" / "system-connections").glob("*wlan0*"))
    assert len(conns) == 1, conns
    conn = conns[0].read_text()
    assert 'ssid=Fritz "Box" 7590' in conn and "key-mgmt=wpa-psk" in conn
    assert f"psk={want_hash}" in conn and PSK not in conn
    assert (tmp_path / "np" / "run" / "systemd" / "system" / "netplan-regdom.service").exists()


def test_an_image_that_is_neither_trixie_nor_bookworm_is_refused_in_one_line(tmp_path, wheel, tiny_bundle):
    base = make_base(tmp_path / "other.img", "Ubuntu 24.04 LTS\n")
    r = image("--base", str(base), "--bundle", str(tiny_bundle), "--app", "inspect", "--out",
              str(tmp_path / "card.img"), "--wheel", str(wheel), "--no-deps", "-q")
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "edgewise image: error: not a Raspberry Pi OS image this builder knows (issue.txt is not a Raspberry "
        "Pi OS reference image; neither cloud-init files nor a firstrun.sh boot partition)"]
    assert not (tmp_path / "card.img").exists() and not list(tmp_path.glob("*.partial"))


def test_a_compressed_base_gives_a_compressed_card_with_its_sha256(tmp_path, wheel, tiny_bundle):
    base = make_base(tmp_path / "bookworm.img", BOOKWORM_ISSUE)
    subprocess.run(["xz", "-T1", "-0", str(base)], check=True)
    r = image("--base", str(base) + ".xz", "--bundle", str(tiny_bundle), "--app", "classify",
              "--out", str(tmp_path / "out" / "card.img.xz"), "--wheel", str(wheel), "--no-deps", "-q")
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["card.img.xz", "card.img.xz.sha256"]
    subprocess.run(["sha256sum", "-c", "--quiet", "card.img.xz.sha256"], cwd=tmp_path / "out", check=True)
    subprocess.run(["xz", "-d", str(tmp_path / "out" / "card.img.xz")], check=True)
    assert "firstrun.sh" in boot_names(tmp_path / "out" / "card.img")


def test_a_payload_larger_than_the_boot_partition_is_refused_before_writing(tmp_path, wheel, tiny_bundle):
    wheels = cached_wheelhouse()
    base = make_base(tmp_path / "small.img", BOOKWORM_ISSUE, boot_mib=20)
    r = image("--base", str(base), "--bundle", str(tiny_bundle), "--app", "classify", "--out",
              str(tmp_path / "card.img"), "--wheel", str(wheel), "--wheelhouse", str(wheels),
              "--numpy", "none", "--extras", "")
    assert r.returncode == 2, r.stderr
    assert "does not fit the boot partition" in r.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "card.img").exists()


SNAPSHOT = r"""
import hashlib, json, os, sys
out = {}
for top in sys.argv[1:]:
    for d, dirs, files in os.walk(top):
        dirs[:] = [x for x in dirs if x != "__pycache__"]  # the running service may compile modules
        for n in sorted(dirs + files):
            p = os.path.join(d, n)
            st = os.lstat(p)
            e = [oct(st.st_mode), st.st_uid]
            if os.path.islink(p):
                e.append(os.readlink(p))
            elif os.path.isfile(p):
                with open(p, "rb") as f:
                    e.append(hashlib.sha256(f.read()).hexdigest())
            out[p] = e
print(json.dumps(out, sort_keys=True))
"""


def test_first_boot_in_the_emulated_pi_starts_the_service_offline_and_a_second_run_changes_nothing(
        tmp_path, wheel, digits_bundle):
    """The card's own first-boot script, read back from the card, in the arm64 root of verify."""
    from test_deploy import SHIM, write_video
    from test_pi_venv import _root

    from edgewise.edge.device import emulator

    root = _root()
    wheels = cached_wheelhouse()
    base = make_base(tmp_path / "bookworm.img", BOOKWORM_ISSUE, boot_mib=256)
    out = tmp_path / "card.img"
    work = Path(tempfile.mkdtemp(prefix="edgewise-image-", dir=root))
    w = f"/{work.name}"
    home = root / "home" / "nobody"
    assert not home.exists(), f"{home} exists in the shared emulated root; refusing to touch it"
    try:
        write_video(work / "digits.mp4")
        run_args = f"--source {w}/digits.mp4 --realtime --loop --latest --threads 1 --jsonl {w}/events.jsonl"
        t0 = time.monotonic()
        # the verify root's cached wheels are resolved for numpy 2 (no pin); the root's Debian
        # numpy 1.24 stays in the system site-packages, the venv gets its own numpy
        r = image("--base", str(base), "--bundle", str(digits_bundle), "--app", "classify", "--out", str(out),
                  "--wheel", str(wheel), "--wheelhouse", str(wheels), "--numpy", "none", "--extras", "",
                  "--user", "nobody", "--run-args", run_args, "--json", str(tmp_path / "r.json"))
        build_s = time.monotonic() - t0
        assert r.returncode == 0, r.stderr
        res = json.loads((tmp_path / "r.json").read_text())
        rel = res["payload"]["release"]
        subprocess.run(["mcopy", "-s", "-n", "-i", f"{out}@@{MiB}", "::/edgewise", str(work / "boot")],
                       check=True, env=_mtools_env())
        (work / "home" / "bin").mkdir(parents=True)
        (work / "home" / "bin" / "systemctl").write_text(SHIM)
        (work / "home" / "bin" / "systemctl").chmod(0o755)
        unit = "edgewise-classify.service"
        sc = f"{w}/home/bin/systemctl"
        script = f"""set -e
export HOME={w}/home EDGEWISE_UNIT_DIR={w}/home/.config/systemd/user EDGEWISE_SYSTEMCTL={sc}
snap() {{ python3 -c '{SNAPSHOT}' /home/nobody/edgewise {w}/home/.config/systemd/user > {w}/snap$1.json; }}
t=$(date +%s); sh {w}/boot/firstboot.sh > {w}/run1.log 2>&1; echo $(( $(date +%s) - t )) > {w}/run1.s
snap 1
for i in $(seq 600); do [ "$(cat {w}/events.jsonl 2>/dev/null | wc -l)" -ge 3 ] && break; sleep 1; done
{sc} is-active {unit} > {w}/active1 || true
echo SECOND-RUN >> {w}/home/.systemctl-shim/calls.log
t=$(date +%s); sh {w}/boot/firstboot.sh > {w}/run2.log 2>&1; echo $(( $(date +%s) - t )) > {w}/run2.s
snap 2
{sc} is-active {unit} > {w}/active2 || true
{sc} stop {unit}
# a later deploy moved current on: the card's script must leave the device alone
cd /home/nobody/edgewise && ln -sfn releases/deployed-later .c && mv -T .c current
echo THIRD-RUN >> {w}/home/.systemctl-shim/calls.log
sh {w}/boot/firstboot.sh > {w}/run3.log 2>&1
readlink /home/nobody/edgewise/current > {w}/current3
"""
        try:
            emulator.chroot(root, emulator.TARGETS["pi4"], ["sh", "-c", script], what="first boot, twice",
                            timeout=3600)
        finally:
            logs = {n: (work / n).read_text() for n in ("run1.log", "run2.log") if (work / n).exists()}
            svc_log = work / "home" / ".systemctl-shim" / f"{unit}.log"
            print(f"\ncard build {build_s:.1f}s; payload {res['payload_bytes'] / 1e6:.1f} MB "
                  f"({len(res['payload']['wheels'])} wheels)")
            for n, text in logs.items():
                secs = (work / n.replace(".log", ".s")).read_text().strip() if (work / n.replace(".log", ".s")
                                                                                 ).exists() else "?"
                print(f"--- {n} ({secs}s emulated)\n{text}")
            if svc_log.exists():
                print(f"--- service log (tail)\n{''.join(svc_log.read_text().splitlines(True)[-5:])}")
        run1, run2 = logs["run1.log"], logs["run2.log"]
        for step in ("1/4 release copied", "2/4 venv ready", f"3/4 current -> releases/{rel}",
                     f"4/4 unit {unit} installed", f"{unit} started"):
            assert step in run1, run1
        for step in ("1/4 release already installed", "2/4 venv already holds", "3/4 current already points",
                     f"4/4 unit {unit} unchanged", f"{unit} already running"):
            assert step in run2, run2
        assert (work / "active1").read_text().strip() == "active"
        assert (work / "active2").read_text().strip() == "active"
        events = [json.loads(ln) for ln in (work / "events.jsonl").read_text().splitlines() if ln.strip()]
        assert len(events) >= 3 and all("label" in e for e in events), events[:3]
        snap1, snap2 = (json.loads((work / f"snap{i}.json").read_text()) for i in (1, 2))
        assert snap1 == snap2  # the second run changed nothing
        assert snap1["/home/nobody/edgewise/current"][2] == f"releases/{rel}"
        assert {e[1] for p, e in snap1.items() if p.startswith("/home/nobody/")} == {65534}  # nobody's
        text = (work / "home" / ".systemctl-shim" / "calls.log").read_text()
        calls = text.split("THIRD-RUN\n")[0].split("SECOND-RUN\n")
        assert f"start {unit}" in calls[0] and "enable" in calls[0]
        assert "start" not in calls[1].replace("is-active", "") and "daemon-reload" not in calls[1], calls[1]
        assert (work / "current3").read_text().strip() == "releases/deployed-later"
        assert "the device was updated since; nothing to do" in (work / "run3.log").read_text()
        assert text.split("THIRD-RUN\n")[1] == ""  # the third run called no systemctl at all
    finally:
        assert not emulator.mounts_below(root), "mounts left below the emulated root"
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(home, ignore_errors=True)
