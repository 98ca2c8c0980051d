"""``edgewise fleet``: print, write or run the Ansible rollout of a bundle, and the fleet table.

``--print`` shows the playbook and the role's steps; ``--write DIR`` writes a project
ansible-playbook runs as it is (the playbook, the role, ``group_vars/all.yml`` with the
settings, and the release when a bundle is given); otherwise it runs ansible-playbook on
``--inventory`` and ends with one row per device: result, release, Pi model, OS, Python,
free disk and the installed bundle's hash. Ansible is imported only here, when it runs.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ..deploy import APPS, DeployConfig
from ..release import prepare_release
from ..wheel import WheelError, build_wheel

__all__ = ["fleet_main", "build_parser", "FleetRow", "fleet_table", "write_project", "PLAYBOOK"]

PLAYBOOK = "site.yml"
NEEDS_ANSIBLE = "edgewise fleet runs ansible-playbook: pip install 'edgewise[ansible]' (ansible-core)"
_RECAP = re.compile(r"^(\S+)\s*:\s*ok=(\d+)\s+changed=\d+\s+unreachable=(\d+)\s+failed=(\d+)")


@dataclass
class FleetRow:
    """One device's line of the fleet table (``--json``: one object per device)."""

    host: str
    result: str  # ok | FAILED | unreachable | not run
    action: str = "-"
    release: str = "-"
    previous: str = "-"
    detail: str = ""
    facts: dict[str, str] = field(default_factory=dict)


def _short(sha: str) -> str:
    return sha[:12] if sha else "-"


def fleet_table(rows: list[FleetRow]) -> str:
    head = ("HOST", "RESULT", "ACTION", "RELEASE", "PREVIOUS", "MODEL", "OS", "PYTHON", "FREE",
            "BUNDLE", "DETAIL")
    table = [head]
    for r in rows:
        f = r.facts
        table.append((r.host, r.result, r.action, r.release, r.previous, f.get("model") or "-",
                      f.get("os") or "-", (f.get("python") or "-").replace("Python ", ""),
                      f"{f['disk_free_mb']} MB" if f.get("disk_free_mb") else "-",
                      _short(f.get("bundle_sha256", "")), r.detail))
    widths = [max(len(t[i]) for t in table) for i in range(len(head) - 1)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(t[:-1], widths, strict=True)) + "  " + t[-1]
                     for t in table)


def _playbook_root() -> Path:
    return Path(str(resources.files(__package__) / "playbook"))


def write_project(out: Path, settings: dict[str, Any]) -> Path:
    """Copy the shipped playbook and role to ``out`` and write the settings as
    ``group_vars/all.yml`` (below inventory host variables, so one device can differ)."""
    shutil.copytree(_playbook_root(), out, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__"))
    (out / "group_vars").mkdir(exist_ok=True)
    lines = ["# edgewise fleet settings for every device (a device's inventory variables win)"]
    lines += [f"edgewise_{k}: {json.dumps(v)}" for k, v in settings.items()]  # JSON is YAML
    (out / "group_vars" / "all.yml").write_text("\n".join(lines) + "\n")
    return out / PLAYBOOK


def _print_playbook() -> None:
    root = _playbook_root()
    for rel in (PLAYBOOK, "roles/edgewise/defaults/main.yml", "roles/edgewise/tasks/main.yml"):
        print(f"# ---- {rel}\n{(root / rel).read_text()}")


def _settings(a: argparse.Namespace) -> dict[str, Any]:
    cfg = DeployConfig(
        app=a.app, remote_dir=a.remote_dir, python=a.python, pip_args=a.pip_args, no_deps=a.no_deps,
        extras=a.extras, systemd=a.systemd, systemctl=a.systemctl, unit_dir=a.unit_dir,
        run_args=a.run_args, variant=a.variant, health_wait=a.health_wait, keep=a.keep,
        auto_rollback=a.auto_rollback, trusted_keys=a.trusted_key, drop_trusted_keys=a.drop_trusted_keys,
    )
    cfg.check()
    keys = ("app", "remote_dir", "python", "pip_args", "no_deps", "extras", "systemd", "systemctl",
            "unit_dir", "run_args", "variant", "health_wait", "keep", "auto_rollback", "drop_trusted_keys")
    return {k: getattr(cfg, k) for k in keys}


def _release(a: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Build (or take) the wheel, check the bundle here, and pack the release tar once."""
    if not Path(a.bundle).exists():
        raise FileNotFoundError(f"{a.bundle}: no such bundle")
    try:
        wheel = Path(a.wheel) if a.wheel else build_wheel(workdir / "wheel")
    except WheelError as e:
        raise ValueError(str(e)) from None
    if not wheel.is_file():
        raise ValueError(f"--wheel {wheel}: no such file")
    rel = prepare_release(a.bundle, wheel, a.app, a.trusted_key)
    tar = workdir / f"release-{rel.id}.tar"
    tar.write_bytes(rel.tar_bytes())
    print(f"release {rel.id}: bundle {rel.info['bundle']}, {wheel.name}", file=sys.stderr)
    return {"release_id": rel.id, "release_tar": str(tar.resolve()), "release_keys": bool(rel.keys)}


def _ansible_argv(a: argparse.Namespace, playbook: Path, results: Path | None) -> list[str]:
    argv = [sys.executable, "-m", "ansible", "playbook", "-i", str(Path(a.inventory).resolve()),
            str(playbook), "-e", f"edgewise_serial={a.serial}",
            "-e", f"edgewise_max_fail_percentage={a.max_fail_percentage}"]
    if results is not None:
        argv += ["-e", f"edgewise_results_dir={results}"]
    if a.limit:
        argv += ["--limit", a.limit]
    return argv + list(a.ansible_arg)


def _inventory_hosts(inventory: str) -> list[str]:
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader

    return [h.name for h in InventoryManager(loader=DataLoader(), sources=[inventory]).get_hosts()]


def _rows(hosts: list[str], results: Path, recap: dict[str, tuple[int, int, int]]) -> list[FleetRow]:
    rows = []
    for h in hosts:
        f = results / f"{h}.json"
        if f.is_file():
            d = json.loads(f.read_text())
            rows.append(FleetRow(h, "ok" if d.get("ok") else "FAILED", d.get("action", "-"),
                                 d.get("release") or "-", d.get("previous") or "-",
                                 " ".join(str(d.get("detail", "")).split()), d.get("facts") or {}))
        elif h in recap and recap[h][1]:
            rows.append(FleetRow(h, "unreachable", detail="ssh: unreachable (see the ansible output)"))
        elif h in recap:
            rows.append(FleetRow(h, "FAILED", detail="failed before its result was written (see above)"))
        else:
            rows.append(FleetRow(h, "not run", detail="rollout halted before this device "
                                 "(max_fail_percentage)"))
    return rows


EPILOG = """\
examples:
  edgewise fleet --print                                    # the playbook and the role's steps
  edgewise fleet inspect.bundle --inventory pis.ini --app inspect \\
      --run-args "--source picamera2 --mqtt broker.plant --jsonl= --log-every 60"
  edgewise fleet vib.bundle --inventory pis.yml --app vibration --run-args "--source adxl345" \\
      --serial 25% --max-fail-percentage 10                 # 4 batches, tolerate one failure in ten
  edgewise fleet --facts --inventory pis.ini --app inspect  # the fleet table only
  edgewise fleet inspect.bundle --app inspect --write rollout/  # ansible-playbook -i pis.ini rollout/site.yml

A device's own settings go in the inventory (e.g. edgewise_run_args=... on its line).
"""


def build_parser() -> argparse.ArgumentParser:
    from ...cliargs import Parser, add_json, add_quiet

    p = Parser(prog="edgewise fleet", epilog=EPILOG,
               description="Roll a bundle and the edgewise runtime out to an Ansible inventory of "
               "Raspberry Pis: deploy's steps per device, rolling batches, a halt on failure, a fleet table.")
    p.add_argument("bundle", nargs="?", help="bundle directory or .zip (not needed with --facts/--print)")
    p.add_argument("--inventory", "-i", help="Ansible inventory (INI or YAML)")
    p.add_argument("--app", choices=APPS, help="application the service runs")
    p.add_argument("--print", dest="show", action="store_true", help="print the playbook and the role")
    p.add_argument("--write", metavar="DIR", help="write the runnable playbook project to DIR and stop")
    p.add_argument("--facts", action="store_true", help="collect the devices' facts only (no deploy)")
    p.add_argument("--serial", default="1", help="devices updated at a time: N or N%% (default 1)")
    p.add_argument("--max-fail-percentage", type=int, default=0,
                   help="halt when more than this %% of a batch failed (default 0: the first failure)")
    p.add_argument("--limit", help="Ansible host pattern: only these devices")
    p.add_argument("--ansible-arg", action="append", default=[], metavar="ARG",
                   help="extra ansible-playbook argument (repeatable), e.g. --ansible-arg=-vv")
    p.add_argument("--remote-dir", default="~/edgewise", help="where releases live on the device")
    p.add_argument("--run-args", help="arguments of 'edgewise run APP' in the service")
    p.add_argument("--variant", help="model variant the service and the smoke test use")
    p.add_argument("--wheel", help="use this edgewise wheel (default: built here)")
    p.add_argument("--python", default="python3", help="device interpreter that creates the venv")
    p.add_argument("--no-deps", action="store_true", help="install only edgewise into the venv")
    p.add_argument("--extras", default="pi", help="wheel extras to install with dependencies (default pi)")
    p.add_argument("--pip-args", default="", help="extra pip install arguments")
    p.add_argument("--systemd", choices=("system", "user", "off"), default="system",
                   help="system unit via sudo (default), user unit, or none")
    p.add_argument("--systemctl", help="systemctl command to use on the devices")
    p.add_argument("--unit-dir", help="where the unit file goes (default per --systemd scope)")
    p.add_argument("--health-wait", type=float, default=10.0,
                   help="seconds the service must stay active after the restart (default 10)")
    p.add_argument("--no-auto-rollback", dest="auto_rollback", action="store_false",
                   help="leave a release that fails its health check in place (the rollout still halts)")
    p.add_argument("--trusted-key", action="append", default=[], metavar="PUB",
                   help="ed25519 public key the devices require bundles to be signed by (repeatable)")
    p.add_argument("--no-trusted-keys", dest="drop_trusted_keys", action="store_true",
                   help="deploy without keys to devices that require signed bundles, dropping that")
    p.add_argument("--keep", type=int, default=3, help="releases to keep per device (default 3)")
    add_json(p, "the fleet table")
    add_quiet(p)
    return p


def fleet_main(argv: list[str]) -> int:
    from ...cliargs import emit_json

    a = build_parser().parse_args(argv)
    if a.show:
        _print_playbook()
        return 0
    if not re.fullmatch(r"[1-9][0-9]*%?", a.serial) or not 0 <= a.max_fail_percentage <= 100:
        raise ValueError("--serial must be N or N% (N >= 1), --max-fail-percentage 0-100")
    if a.keep < 1 or a.health_wait < 0:
        raise ValueError("--keep must be at least 1, --health-wait at least 0")
    if a.app is None:
        raise ValueError("--app is required (classify, face, inspect or vibration)")
    if a.facts and a.bundle:
        raise ValueError("give a bundle to roll out, or --facts (not both)")
    if not a.facts and not a.bundle and a.write is None:
        raise ValueError("no bundle to roll out (or --facts for the fleet table only)")
    if a.write is None and not a.inventory:
        raise ValueError("--inventory FILE is required (or --write DIR / --print)")
    if a.inventory and not Path(a.inventory).exists():
        raise FileNotFoundError(f"--inventory {a.inventory}: no such file")
    settings = _settings(a)
    if a.write is not None:
        out = Path(a.write)
        if a.bundle:
            (out / "release").mkdir(parents=True, exist_ok=True)
            settings.update(_release(a, out / "release"))
        book = write_project(out, settings)
        inv = a.inventory or "INVENTORY"
        print(f"wrote {book}\nrun: ansible-playbook -i {inv} {book} -e edgewise_serial={a.serial} "
              f"-e edgewise_max_fail_percentage={a.max_fail_percentage}")
        return 0
    if importlib.util.find_spec("ansible") is None:
        raise ValueError(NEEDS_ANSIBLE)
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="edgewise-fleet-") as tmp:
        work = Path(tmp)
        if a.bundle:
            settings.update(_release(a, work))
        book = write_project(work / "playbook", settings)
        results = work / "results"
        results.mkdir()
        env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_RETRY_FILES_ENABLED": "0"}
        proc = subprocess.Popen(_ansible_argv(a, book, results), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, env=env)
        recap: dict[str, tuple[int, int, int]] = {}
        assert proc.stdout is not None
        for line in proc.stdout:
            if not a.quiet:
                sys.stderr.write(line)
            m = _RECAP.match(line.strip())
            if m:
                recap[m.group(1)] = (int(m.group(2)), int(m.group(3)), int(m.group(4)))
        rc = proc.wait()
        rows = _rows(_inventory_hosts(a.inventory), results, recap)
    if not emit_json([r.__dict__ for r in rows], a.json):
        print(fleet_table(rows))
    counts = {k: sum(r.result == k for r in rows) for k in ("ok", "FAILED", "unreachable", "not run")}
    print(f"fleet: {len(rows)} device(s): " + ", ".join(f"{n} {k}" for k, n in counts.items() if n)
          + f" in {time.monotonic() - t0:.0f} s (serial {a.serial}, max_fail_percentage "
          f"{a.max_fail_percentage})", file=sys.stderr)
    if rc not in (0, 2, 4):  # 2: a host failed, 4: a host unreachable; anything else is ansible's own
        print(f"edgewise fleet: ansible-playbook exited {rc}", file=sys.stderr)
    return 0 if rc == 0 and all(r.result == "ok" for r in rows) else 1
