"""edgewise fleet's command, project writer, table and inventories, without any device."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from edgewise.edge.device.fleet import cli
from edgewise.edge.device.fleet.inventory import is_ansible_inventory, read_ansible_inventory

INI = """\
[line1]
pi-a ansible_host=10.0.3.21 ansible_user=pi
pi-b ansible_host=10.0.3.22 ansible_port=2222 ansible_ssh_private_key_file=/keys/pi edgewise_run_args='-s x'

[line1:vars]
ansible_python_interpreter=/usr/bin/python3
"""


def test_print_shows_the_playbook_with_its_rolling_policy(capsys):
    assert cli.fleet_main(["--print"]) == 0
    out = capsys.readouterr().out
    assert "serial:" in out and "max_fail_percentage:" in out and "name: health check" in out


def test_write_makes_a_project_ansible_accepts(tmp_path: Path):
    out = tmp_path / "rollout"
    assert cli.fleet_main(["--write", str(out), "--app", "inspect", "--run-args",
                           "--source picamera2 -x 'a b'", "--health-wait", "7"]) == 0
    gv = (out / "group_vars" / "all.yml").read_text()
    assert 'edgewise_app: "inspect"' in gv and "edgewise_health_wait: 7.0" in gv
    assert 'edgewise_run_args: "--source picamera2 -x \'a b\'"' in gv
    assert (out / "roles" / "edgewise" / "filter_plugins" / "edgewise_steps.py").is_file()
    if importlib.util.find_spec("ansible") is None:
        pytest.skip("ansible-core not installed: the syntax check needs it")
    inv = tmp_path / "pis.ini"
    inv.write_text(INI)
    r = subprocess.run([sys.executable, "-m", "ansible", "playbook", "--syntax-check", "-i", str(inv),
                        str(out / "site.yml")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


def test_bad_fleet_flags_fail_in_one_line(tmp_path: Path, capsys):
    from edgewise.edge.cli import main

    inv = tmp_path / "pis.ini"
    inv.write_text(INI)
    for argv, what in ((["fleet", "--facts", "--inventory", str(inv), "--app", "classify", "--serial", "0"],
                        "--serial"),
                       (["fleet", "b.bundle", "--app", "classify"], "--inventory"),
                       (["fleet", "--facts", "b.bundle", "--inventory", str(inv), "--app", "classify"],
                        "not both"),
                       (["fleet", "--facts", "--inventory", str(inv), "--app", "classify", "--extras", "a b"],
                        "--extras")):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("edgewise fleet: error:") and what in err[0], err


def test_without_ansible_the_run_names_the_extra(tmp_path: Path, monkeypatch, capsys):
    from edgewise.edge.cli import main

    inv = tmp_path / "pis.ini"
    inv.write_text(INI)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "ansible" else real(n, *a))
    assert main(["fleet", "--facts", "--inventory", str(inv), "--app", "classify"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "edgewise fleet: error: " + cli.NEEDS_ANSIBLE


def test_the_table_has_a_row_per_device_and_says_which_never_ran(tmp_path: Path):
    (tmp_path / "pi1.json").write_text(json.dumps({
        "ok": True, "action": "deploy", "release": "R2", "previous": "R1",
        "detail": "float32 smoke 0.2 ms;\n ok",
        "facts": {"model": "Raspberry Pi 5 Model B Rev 1.0", "os": "Debian GNU/Linux 12 (bookworm)",
                  "python": "Python 3.11.2", "disk_free_mb": "20480", "bundle_sha256": "ab" * 32}}))
    failed = {"ok": False, "action": "deploy", "detail": "health check: x"}
    (tmp_path / "pi2.json").write_text(json.dumps(failed))
    rows = cli._rows(["pi1", "pi2", "pi3", "pi4"], tmp_path, {"pi1": (9, 0, 0), "pi2": (5, 0, 1),
                                                              "pi4": (0, 1, 0)})
    assert [r.result for r in rows] == ["ok", "FAILED", "not run", "unreachable"]
    text = cli.fleet_table(rows).splitlines()
    assert text[0].split()[:5] == ["HOST", "RESULT", "ACTION", "RELEASE", "PREVIOUS"]
    assert "Raspberry Pi 5 Model B Rev 1.0" in text[1] and "3.11.2" in text[1] and "20480 MB" in text[1]
    assert "abababababab" in text[1] and text[1].endswith("float32 smoke 0.2 ms; ok")
    assert "max_fail_percentage" in text[3]


def test_ini_inventories_read_the_same_with_and_without_ansible(tmp_path: Path, monkeypatch):
    inv = tmp_path / "pis.ini"
    inv.write_text(INI)
    assert is_ansible_inventory(inv)
    want = [("10.0.3.21", "pi", 22, None), ("10.0.3.22", None, 2222, "/keys/pi")]
    if importlib.util.find_spec("ansible") is not None:
        got = [(h.host, h.user, h.port, h.identity) for h in read_ansible_inventory(inv, port=22)]
        assert got == want
    from edgewise.edge.device.fleet import inventory

    monkeypatch.setattr(inventory, "_with_ansible", lambda path: None)
    assert [(h.host, h.user, h.port, h.identity) for h in read_ansible_inventory(inv, port=22)] == want


def test_yaml_inventory_and_deploys_own_list_are_told_apart(tmp_path: Path, monkeypatch):
    y = tmp_path / "pis.yml"
    y.write_text("all:\n  children:\n    line2:\n      hosts:\n        pi-c:\n"
                 "          ansible_host: 10.0.4.1\n          ansible_user: pi\n")
    hosts = read_ansible_inventory(y)
    assert [(h.host, h.user) for h in hosts] == [("10.0.4.1", "pi")]
    plain = tmp_path / "pis.txt"
    plain.write_text("# one per line\npi@10.0.0.5\npi@10.0.0.6:2222 identity=/k\n")
    assert not is_ansible_inventory(plain)
    bad = tmp_path / "bad.ini"
    bad.write_text("[x]\npi-d ansible_host=-oProxyCommand=sh\n")
    from edgewise.edge.device.fleet import inventory

    monkeypatch.setattr(inventory, "_with_ansible", lambda path: None)
    with pytest.raises(ValueError, match="is not a host name"):
        read_ansible_inventory(bad)


def test_every_playbook_file_is_package_data():
    """setup.cfg's globs ship every file of the playbook in the wheel (nothing left behind)."""
    import configparser

    pkg = Path(cli.__file__).parent
    cfg = configparser.ConfigParser()
    cfg.read(pkg.parents[2] / "setup.cfg")
    globs = [g.strip() for g in cfg["options.package_data"]["edgewise.edge.device.fleet"].split(",")]
    shipped = {p for g in globs for p in pkg.glob(g)}
    files = {p for p in (pkg / "playbook").rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    assert files and files <= shipped, sorted(map(str, files - shipped))
