"""The fleet playbook's steps are deploy's: same functions, same shell text, checked by running them."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest

from edgewise.edge.device.deploy import DeployConfig
from edgewise.edge.device.fleet import steps
from edgewise.edge.device.release import install_script, smoke_script, switch_script, verify_script
from edgewise.edge.device.systemd import health_script, render_unit

ROLE = Path(steps.__file__).parent / "playbook" / "roles" / "edgewise"
SETTINGS = {"app": "classify", "systemd": "user", "run_args": "--source /v.mp4", "no_deps": "false",
            "health_wait": "2", "keep": "3", "auto_rollback": True, "variant": "", "systemctl": None}


def test_every_step_the_role_names_is_rendered_by_deploys_functions():
    tasks = (ROLE / "tasks" / "main.yml").read_text()
    named = set(re.findall(r"edgewise_step\('([a-z_]+)'", tasks))
    assert {"facts", "unpack", "verify", "install", "smoke", "switch", "link", "unit_install", "restart",
            "health", "prune"} <= named
    cfg = steps.config(SETTINGS)
    base = "/home/pi/edge wise"
    q = shlex.quote(base)
    same = {
        "verify": verify_script(q, "R1"),
        "install": install_script(q, "releases/R1", cfg, "numpy==1.24.2"),
        "smoke": smoke_script(q, "releases/R1", None, False),
        "switch": switch_script(q, shlex.quote("releases/R1")),
        "health": health_script(cfg),
    }
    for name, text in same.items():
        kw = {"numpy": "1.24.2\n"} if name == "install" else {}
        release = "R1" if name == "verify" else "releases/R1"
        assert steps.step(SETTINGS, name, base=base, release=release, **kw) == "set -e\n" + text
    with pytest.raises(ValueError, match="unknown deploy step"):
        steps.step(SETTINGS, "format-disk")


def test_settings_are_checked_as_deploy_checks_them():
    assert steps.config(SETTINGS) == DeployConfig(app="classify", systemd="user", run_args="--source /v.mp4",
                                                  health_wait=2.0)
    with pytest.raises(ValueError, match="--extras"):
        steps.config({**SETTINGS, "extras": "pi; rm -rf /"})
    with pytest.raises(ValueError, match="edgewise_app"):
        steps.config({"systemd": "user"})


def _fake_systemctl(tmp_path: Path, state: str) -> str:
    sc = tmp_path / "systemctl"
    sc.write_text(f'#!/bin/sh\ncase "$1" in is-active) echo {state}; [ {state} = active ] ;; '
                  'status) echo "line one"; echo "edgewise: error: no such source"; echo ;; esac\n')
    sc.chmod(0o755)
    return str(sc)


def _sh(script: str) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=30)


def test_the_health_script_passes_an_active_unit_and_names_the_failure_of_a_dead_one(tmp_path: Path):
    ok = DeployConfig(app="classify", systemctl=_fake_systemctl(tmp_path, "active"), health_wait=1)
    r = _sh("set -e\n" + health_script(ok))
    assert r.returncode == 0 and r.stdout == "edgewise-classify.service active for 1s (2 checks)\n", r
    dead = DeployConfig(app="classify", systemctl=_fake_systemctl(tmp_path, "failed"), health_wait=5)
    r = _sh("set -e\n" + health_script(dead))
    assert r.returncode == 1
    assert r.stderr.strip() == "edgewise-classify.service is failed (edgewise: error: no such source)"


def test_facts_are_read_on_the_device_itself(tmp_path: Path):
    """The facts script run by a real shell here: folder made, paths absolute, disk and Python real."""
    base = tmp_path / "ew"
    cfg = {**SETTINGS, "remote_dir": str(base), "systemd": "off"}
    out = subprocess.run(["sh", "-c", steps.step(cfg, "facts")], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    f = steps.parse_facts(out.stdout)
    assert f["base"] == str(base) and (base / "releases").is_dir()
    assert f["python"].startswith("Python 3") and int(f["disk_free_mb"]) > 0
    assert f["current"] == "" and f["bundle_sha256"] == "" and f["unit"] == "off" and f["model"]
    (base / "releases" / "R1" / "bundle").mkdir(parents=True)
    (base / "releases" / "R1" / "bundle" / "bundle.json").write_text("{}")
    (base / "current").symlink_to("releases/R1")
    f = steps.parse_facts(subprocess.run(["sh", "-c", steps.step(cfg, "facts")], capture_output=True,
                                         text=True, timeout=30).stdout)
    assert f["current"] == "releases/R1"
    assert f["bundle_sha256"] == "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
    with pytest.raises(ValueError, match="unexpected reply"):
        steps.parse_facts("Permission denied\n")


def test_the_unit_plan_follows_deploy_on_trusted_keys():
    cfg = steps.config({**SETTINGS, "run_args": None})
    facts = {"base": "/home/pi/edgewise", "current_keys": "yes"}
    assert "requires signed bundles" in steps.plan(cfg, facts, False, "[Unit]\n")["error"]
    dropped = steps.plan(steps.config({**SETTINGS, "run_args": None, "drop_trusted_keys": True}), facts,
                         False, "[Unit]\n")
    assert dropped == {"rewrite": True, "keys_dir": "", "error": ""}
    keyed = steps.plan(cfg, {**facts, "current_keys": ""}, True, "[Unit]\n")
    assert keyed["rewrite"] and keyed["keys_dir"] == "/home/pi/edgewise/current/trusted-keys"
    assert not steps.plan(cfg, {**facts, "current_keys": ""}, False, "[Unit]\n")["rewrite"]  # unit kept
    unit = steps.unit_text(steps.config(SETTINGS), "/b", "pi", None)
    assert unit == render_unit("classify", "/b", ["--source", "/v.mp4"], user="pi", scope="user")


def test_a_failed_task_reads_like_a_deploy_error():
    assert steps.error_line({"name": "health check"}, {"stderr": "x\nunit is failed (boom)\n"}) == \
        "health check: unit is failed (boom)"
    assert steps.error_line({"name": "facts"}, {"unreachable": True, "msg": "ssh: connect refused"}) == \
        "facts: unreachable: ssh: connect refused"
