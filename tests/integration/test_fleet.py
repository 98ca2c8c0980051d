"""edgewise fleet: ansible-playbook rolls a bundle out to three loopback sshd "Pis".

The devices are deploy's test fixture (``test_deploy.FakePi``) three times: three sshd on three
ports, each with its own home, key and systemctl stand-in (which runs the unit's ExecStart, so
the health check is real). One device gets broken ``edgewise_run_args`` in the inventory: its
service dies at start, the role rolls it back, and the rollout halts or goes on per
``--serial``/``--max-fail-percentage``. The same INI inventory then drives ``edgewise deploy --inventory``.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_deploy import BASE_PYTHON, FakePi, write_video  # noqa: E402  (deploy's fixture, reused)

pytest.importorskip("ansible", reason="ansible-core not installed (pip install 'edgewise[ansible]')")

NAMES = ("pi1", "pi2", "pi3")
BROKEN = "pi2"


@pytest.fixture(scope="module")
def pis(tmp_path_factory: pytest.TempPathFactory):
    fleet = {n: FakePi(tmp_path_factory.mktemp(n)) for n in NAMES}
    yield fleet
    for p in fleet.values():
        p.stop()


def inventory(pis: dict[str, FakePi], path: Path, broken: str | None) -> Path:
    """An ordinary Ansible INI inventory: connection variables and each device's run args."""
    lines = ["[pis]"]
    for name, p in pis.items():
        video = write_video(p.home / "line")
        run = ("--source /nonexistent/video.mp4" if name == broken else
               f"--source {video} --realtime --loop --latest --threads 1 --jsonl {p.home / 'events.jsonl'}")
        lines.append(f"{name} ansible_host=127.0.0.1 ansible_port={p.port} ansible_user={p.user} "
                     f"ansible_ssh_private_key_file={p.root / 'key'} edgewise_systemctl={p.shim} "
                     f"edgewise_run_args='{run}'")
    known = path.parent / "known_hosts"
    lines += ["", "[pis:vars]", f"ansible_python_interpreter={BASE_PYTHON}",
              f"ansible_ssh_common_args='-o UserKnownHostsFile={known} -o StrictHostKeyChecking=accept-new'"]
    path.write_text("\n".join(lines) + "\n")
    return path


def fleet(inv: Path, *args: str) -> tuple[subprocess.CompletedProcess, list[dict]]:
    out = inv.parent / f"table-{len(list(inv.parent.glob('table-*')))}.json"
    cmd = [sys.executable, "-m", "edgewise.edge.cli", "fleet", *args, "--inventory", str(inv),
           "--app", "classify", "--systemd", "user", "--no-deps", "--python", BASE_PYTHON,
           "--health-wait", "4", "--json", str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    rows = json.loads(out.read_text()) if out.exists() else []
    return r, rows


def current(p: FakePi) -> str:
    link = p.home / "edgewise" / "current"
    return os.readlink(link) if link.is_symlink() else ""


def by_host(rows: list[dict]) -> dict[str, dict]:
    return {r["host"]: r for r in rows}


def test_rollout_to_three_pis_then_a_failed_health_check_halts_and_rolls_back(
        pis: dict[str, FakePi], wheel: Path, two_bundles, tmp_path: Path):
    b1, b2 = two_bundles
    good = inventory(pis, tmp_path / "good.ini", broken=None)
    r, rows = fleet(good, str(b1), "--wheel", str(wheel))
    assert r.returncode == 0, r.stdout + r.stderr[-4000:]
    rows1 = by_host(rows)
    assert [rows1[n]["result"] for n in NAMES] == ["ok", "ok", "ok"], rows
    rel1 = {n: current(p) for n, p in pis.items()}
    assert len(set(rel1.values())) == 1 and all(rel1.values())
    want = hashlib.sha256((pis["pi1"].home / "edgewise" / "current" / "bundle" / "bundle.json")
                          .read_bytes()).hexdigest()
    for n in NAMES:  # the facts the table carries, read on each device after its update
        f = rows1[n]["facts"]
        assert f["bundle_sha256"] == want and f["python"].startswith("Python 3")
        assert int(f["disk_free_mb"]) > 0 and f["os"] and f["model"] and f["unit"] == "active"
    assert "pi1" in r.stdout and r.stdout.splitlines()[0].split()[:3] == ["HOST", "RESULT", "ACTION"]

    # second release; pi2's service cannot start: serial 1, max_fail_percentage 0 -> halt
    bad = inventory(pis, tmp_path / "bad.ini", broken=BROKEN)
    r, rows = fleet(bad, str(b2), "--wheel", str(wheel), "--serial", "1", "--max-fail-percentage", "0")
    assert r.returncode == 1, r.stdout + r.stderr[-4000:]
    t = by_host(rows)
    assert t["pi1"]["result"] == "ok" and current(pis["pi1"]) != rel1["pi1"]
    assert (pis["pi1"].home / "edgewise" / "current" / "bundle" / "notes" / "v2.txt").exists()
    assert t["pi2"]["result"] == "FAILED" and "health check" in t["pi2"]["detail"], t["pi2"]
    assert "no such file" in t["pi2"]["detail"], "the service's own last words"
    assert "rolled back to" in t["pi2"]["detail"] and current(pis["pi2"]) == rel1["pi2"]
    assert t["pi2"]["facts"]["unit"] == "active", "the rolled-back service runs again"
    assert t["pi3"]["result"] == "not run" and current(pis["pi3"]) == rel1["pi3"]
    print(r.stdout, r.stderr.strip().splitlines()[-1])  # the fleet table and its summary (pytest -s)


def test_a_tolerant_policy_goes_on_past_the_failed_device(pis: dict[str, FakePi], wheel: Path, two_bundles,
                                                          tmp_path: Path):
    b1, b2 = two_bundles
    if not all(current(p) for p in pis.values()):  # run alone: every device first gets a release
        r, _ = fleet(inventory(pis, tmp_path / "good.ini", broken=None), str(b1), "--wheel", str(wheel))
        assert r.returncode == 0, r.stdout + r.stderr[-4000:]
    before = {n: current(p) for n, p in pis.items()}
    bad = inventory(pis, tmp_path / "bad.ini", broken=BROKEN)
    # batches [pi1, pi2] and [pi3]: one failure in two is not more than 50%, so the rollout goes on
    # (Ansible ends a play whose whole batch failed, so with --serial 1 any failure halts)
    r, rows = fleet(bad, str(b2), "--wheel", str(wheel), "--serial", "2", "--max-fail-percentage", "50")
    assert r.returncode == 1, r.stdout + r.stderr[-4000:]
    t = by_host(rows)
    assert [t[n]["result"] for n in NAMES] == ["ok", "FAILED", "ok"], rows
    assert current(pis["pi2"]) == before["pi2"] and current(pis["pi3"]) != before["pi3"]
    assert t["pi3"]["facts"]["bundle_sha256"] == t["pi1"]["facts"]["bundle_sha256"]


def test_facts_only_and_deploy_reads_the_same_inventory(pis: dict[str, FakePi], wheel: Path, two_bundles,
                                                        tmp_path: Path, capsys):
    good = inventory(pis, tmp_path / "good.ini", broken=None)
    r, rows = fleet(good, "--facts")
    assert r.returncode == 0, r.stdout + r.stderr[-4000:]
    assert {x["host"]: x["action"] for x in rows} == {n: "facts" for n in NAMES}
    assert all(x["facts"]["current"] == current(pis[x["host"]]) for x in rows)

    from edgewise.edge.device.deploy import deploy_main

    b1, _ = two_bundles
    argv = [str(b1), "--wheel", str(wheel), "--inventory", str(good), "--app", "classify", "--no-systemd",
            "--no-deps", "--python", BASE_PYTHON, "-o", f"UserKnownHostsFile={tmp_path / 'known'}"]
    assert deploy_main(argv) == 0
    out = capsys.readouterr().out
    for p in pis.values():
        assert f"{p.user}@127.0.0.1:{p.port}" in out
    assert len({current(p) for p in pis.values()}) == 1
