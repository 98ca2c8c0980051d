"""``edgewise deploy``: a bundle and the edgewise runtime onto Raspberry Pis over SSH.

A deploy can never leave a device half-updated. On each host, in order:

1. upload the bundle and the locally built edgewise wheel into ``releases/.incoming-ID``
   (tar over the SSH connection; no rsync needed on either side),
2. verify every file's sha256 *there*, then rename the directory to ``releases/ID``,
3. create (once) a venv with ``--system-site-packages`` (so apt's picamera2, numpy, OpenCV are
   visible) and install the wheel into it under a pip constraint on the device's own numpy
   (``venv.venv_recipe``), so pip never swaps the numpy apt's compiled packages were built against,
4. smoke-test the new release with that venv: load the bundle (checksums again) and run one
   inference; on failure the old wheel is reinstalled and ``current`` is untouched,
5. switch ``current`` atomically, keeping the old target as ``previous`` (``release.py``),
6. write and enable a systemd unit (``Restart=on-failure``) and restart it,
   (with ``--trusted-key``: the public keys go into the release and the unit sets
   ``EDGEWISE_TRUSTED_KEYS`` to ``current/trusted-keys``, so the device refuses unsigned or
   foreign bundles; the smoke test already checks the signature against them),
7. health check: the unit must stay ``active`` for ``--health-wait`` seconds; if it does not,
   the host is rolled back to ``previous`` automatically and reported as failed.

``edgewise deploy --rollback`` swaps ``current`` and ``previous`` (and their wheels) and
restarts the unit. Several ``--host`` flags or an ``--inventory`` file deploy in parallel and
end with a per-host result table.

What deploy trusts: the user's ssh options come first (ssh keeps the first value, so
``-o StrictHostKeyChecking=yes`` holds), hosts are validated and passed after ``--``, every
value that reaches the device's shell is ``shlex.quote``d, and every value in the unit file
is quoted by systemd's rules (``systemd.exec_line``).

>>> deploy_main(["vib.bundle", "--host", "pi@raspberrypi.local", "--app", "vibration",
...              "--run-args", "--source adxl345 --mqtt broker.local"])   # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import logging
import shlex
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from .release import Release, ReleaseDir, prepare_release
from .remote import DeployError, Host, Remote, parse_host, read_inventory, ssh_argv
from .systemd import Service
from .wheel import WheelError, build_wheel

__all__ = ["DeployConfig", "HostResult", "Release", "deploy_host", "rollback_host", "results_table",
           "build_parser", "deploy_main"]

log = logging.getLogger("edgewise.deploy")
APPS = ("classify", "face", "inspect", "vibration")
DEFAULT_RUN_ARGS = {
    "classify": "--source picamera2 --jsonl= --log-every 60",
    "face": "--source picamera2 --jsonl= --log-every 60",
    "inspect": "--source picamera2 --jsonl= --log-every 60",
}


@dataclass
class DeployConfig:
    """Everything a deploy does the same on every host (parsed once from the command line)."""

    app: str
    remote_dir: str = "~/edgewise"
    python: str = "python3"
    pip_args: str = ""
    no_deps: bool = False
    extras: str = "pi"
    systemd: str = "system"  # system | user | off
    systemctl: str | None = None
    unit_dir: str | None = None
    run_args: str | None = None
    variant: str | None = None
    health_wait: float = 10.0
    keep: int = 3
    auto_rollback: bool = True
    ssh_options: list[str] = field(default_factory=list)
    trusted_keys: list[str] = field(default_factory=list)
    drop_trusted_keys: bool = False

    def check(self) -> None:
        """Every value that will reach the device, checked before anything connects (one line)."""
        from .venv import shell_words, venv_recipe

        venv_recipe("v", "w", [], pip_args=self.pip_args, extras=self.extras)  # --extras, --pip-args
        ssh_argv(Host("device"), self.ssh_options, Path("/"))  # -o values
        shell_words(self.systemctl or "", "--systemctl")
        if self.run_args is not None:
            self.run_argv()
        if self.trusted_keys and self.drop_trusted_keys:
            raise ValueError("--trusted-key and --no-trusted-keys contradict each other")

    def systemctl_cmd(self) -> str:
        """The systemctl command as shell words: a ``--systemctl`` value is split and each word
        quoted, so it names a program and its arguments and nothing else."""
        from .venv import shell_words

        if self.systemctl:
            return shell_words(self.systemctl, "--systemctl")
        return "sudo -n systemctl" if self.systemd == "system" else "systemctl --user"

    def run_argv(self) -> list[str]:
        """``full_run_args`` as the argument list the unit's ExecStart passes (split like a shell)."""
        args = self.full_run_args()
        try:
            return shlex.split(args)
        except ValueError as e:  # unbalanced quotes
            raise ValueError(f"--run-args {args!r}: {e}") from None

    def full_run_args(self) -> str:
        if self.run_args is not None:
            args = self.run_args
        elif self.app in DEFAULT_RUN_ARGS:
            args = DEFAULT_RUN_ARGS[self.app]
        else:
            raise ValueError(f"--app {self.app}: give its source with --run-args (e.g. '--source adxl345')")
        if self.variant and "--variant" not in args:
            args += f" --variant {shlex.quote(self.variant)}"
        return args


@dataclass
class HostResult:
    host: str
    ok: bool
    action: str
    release: str = "-"
    previous: str = "-"
    seconds: float = 0.0
    detail: str = ""


def _restore(d: ReleaseDir, svc: Service, cfg: DeployConfig, old_current: str, old_previous: str,
             old_unit: str) -> None:
    """Put ``current``/``previous``, the running wheel and the unit back as they were before the
    switch (the failed release does not become ``previous``)."""
    d.set_link("current", old_current)
    if old_previous:
        d.set_link("previous", old_previous)
    else:
        d.clear_link("previous")
    d.install(old_current)
    if cfg.systemd != "off":
        if old_unit.strip():
            svc.install(old_unit)
        svc.restart()


def _trust(d: ReleaseDir, svc: Service, rel: Release, cfg: DeployConfig, old_current: str
           ) -> tuple[str | None, bool]:
    """The unit's trusted-keys folder for this release (None: no keys) and whether the unit must
    be rewritten for it. A device that requires signed bundles keeps requiring them: a release
    without keys is refused unless ``--no-trusted-keys`` drops the requirement on purpose."""
    from ..signing import ENV_TRUSTED_KEYS
    from .systemd import environment_line

    keys_dir = d.keys_dir() if rel.keys else None
    if not rel.keys and d.has_keys(old_current):
        if not cfg.drop_trusted_keys:
            raise DeployError("trusted keys: the device requires signed bundles (its current release has "
                              "trusted-keys/); give --trusted-key again, or --no-trusted-keys to drop that")
        return None, cfg.systemd != "off"  # rewrite the unit without the keys
    if keys_dir is None or cfg.systemd == "off":
        return keys_dir, False
    return keys_dir, environment_line(ENV_TRUSTED_KEYS, keys_dir) not in svc.read()


def deploy_host(host: Host, rel: Release, cfg: DeployConfig, control_dir: Path) -> HostResult:
    t0 = time.monotonic()
    res = HostResult(host.label, False, "deploy")
    r = Remote(host, cfg.ssh_options, control_dir)
    d = ReleaseDir(r, cfg)
    step_done = "nothing"
    try:
        d.probe()
        svc = Service(r, cfg, d.base, d.user)
        old_current, old_previous = d.link("current"), d.link("previous")
        keys_dir, trust_rewrite = _trust(d, svc, rel, cfg, old_current)
        # Without --run-args an existing unit keeps its ExecStart; a new one needs the app's default.
        rewrite = cfg.systemd != "off" and (cfg.run_args is not None or trust_rewrite or not svc.exists())
        if rewrite:
            cfg.run_argv()  # fails before anything is uploaded
        old_unit = svc.read() if rewrite else ""
        res.previous = old_current.rsplit("/", 1)[-1] or "-"
        d.upload(rel)
        new = f"releases/{rel.id}"
        step_done = "uploaded"
        try:
            d.install(new)
            smoke = d.smoke(new, keys=bool(rel.keys))
        except DeployError:
            if old_current:  # put the running release's runtime back before giving up
                try:
                    d.install(old_current)
                except DeployError as e2:
                    log.error("%s: restoring the previous wheel failed too: %s", host.label, e2)
            raise
        d.switch(new)
        step_done = "switched"
        try:
            health = svc.activate(rewrite, keys_dir)
        except DeployError as e:
            if cfg.auto_rollback and old_current:
                _restore(d, svc, cfg, old_current, old_previous, old_unit)
                raise DeployError(f"{e}; rolled back to {old_current.rsplit('/', 1)[-1]}") from None
            raise
        d.prune(cfg.keep, {new, old_current})
        res.ok, res.release = True, rel.id
        res.detail = f"{smoke.get('variant')} smoke {smoke.get('ms')} ms; {health}"
    except (DeployError, ValueError, OSError) as e:
        res.detail = f"{e} (after: {step_done}; current unchanged)" if step_done != "switched" else str(e)
    finally:
        r.close()
        res.seconds = round(time.monotonic() - t0, 1)
    return res


def rollback_host(host: Host, cfg: DeployConfig, control_dir: Path) -> HostResult:
    t0 = time.monotonic()
    res = HostResult(host.label, False, "rollback")
    r = Remote(host, cfg.ssh_options, control_dir)
    d = ReleaseDir(r, cfg)
    try:
        d.probe()
        cur, prev = d.link("current"), d.link("previous")
        if not prev:
            raise DeployError(f"rollback: no previous release under {d.base}")
        d.install(prev)
        d.set_link("current", prev)
        if cur:
            d.set_link("previous", cur)
        svc = Service(r, cfg, d.base, d.user)
        # else: the unit as deployed (its trusted keys are current/trusted-keys: the old release's)
        rewrite = cfg.run_args is not None
        health = svc.activate(rewrite, d.keys_dir() if rewrite and d.has_keys(prev) else None)
        res.ok, res.release, res.previous = True, prev.rsplit("/", 1)[-1], cur.rsplit("/", 1)[-1] or "-"
        res.detail = health
    except (DeployError, ValueError, OSError) as e:
        res.detail = str(e)
    finally:
        r.close()
        res.seconds = round(time.monotonic() - t0, 1)
    return res


def results_table(results: list[HostResult]) -> str:
    rows = [("HOST", "RESULT", "ACTION", "RELEASE", "PREVIOUS", "TIME", "DETAIL")]
    for x in results:
        rows.append((x.host, "ok" if x.ok else "FAILED", x.action, x.release, x.previous,
                     f"{x.seconds:.1f}s", x.detail))
    widths = [max(len(r[i]) for r in rows) for i in range(6)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r[:6], widths, strict=True)) + "  " + r[6]
                     for r in rows)


EPILOG = """\
examples:
  edgewise deploy inspect.bundle --host pi@raspberrypi.local --app inspect \\
      --run-args "--source picamera2 --mqtt broker.local --jsonl= --log-every 60"
  edgewise deploy vib.bundle --inventory pis.txt --app vibration --run-args "--source adxl345"
  edgewise deploy --rollback --host pi@raspberrypi.local --app inspect
  # offline Pi whose venv already has the dependencies: install only edgewise itself
  edgewise deploy digits.bundle --host pi@10.0.0.7:2222 --app classify --no-deps

  # the device refuses bundles not signed by this key (edgewise keygen / edgewise sign)
  edgewise deploy signed.bundle --host pi@raspberrypi.local --app inspect --trusted-key release.pub

inventory file: one 'user@host[:port] [identity=KEY]' per line, '#' comments.
ssh options given with -o come before deploy's defaults (ssh keeps the first value of an option).
"""


def build_parser() -> argparse.ArgumentParser:
    from ..cliargs import Parser, add_json, add_quiet

    p = Parser(
        prog="edgewise deploy", description="Deploy a bundle and the edgewise runtime to Raspberry Pis "
        "over SSH: verified upload, atomic switch, venv, systemd service, health check, rollback.",
        epilog=EPILOG,
    )
    p.add_argument("bundle", nargs="?", help="bundle directory or .zip (not needed with --rollback)")
    p.add_argument("--host", action="append", default=[], help="user@host[:port]; repeat for several")
    p.add_argument("--inventory", help="Ansible inventory (INI/YAML: ansible_host, ansible_port, "
                   "ansible_user, ansible_ssh_private_key_file), or one user@host[:port] per line")
    p.add_argument("--app", required=True, choices=APPS, help="application the service runs")
    p.add_argument("--identity", "-i", help="SSH private key")
    p.add_argument("--port", "-p", type=int, help="SSH port (when a host does not name one)")
    p.add_argument("--ssh-option", "-o", action="append", default=[],
                   help="ssh -o option, placed before deploy's defaults so it wins "
                   "(e.g. StrictHostKeyChecking=yes)")
    p.add_argument("--rollback", action="store_true", help="switch back to the previous release")
    p.add_argument("--remote-dir", default="~/edgewise", help="where releases live on the device")
    p.add_argument("--run-args", help="arguments of 'edgewise run APP' in the service "
                   "(default for camera apps: --source picamera2 --jsonl= --log-every 60)")
    p.add_argument("--variant", help="model variant the service and the smoke test use")
    p.add_argument("--wheel", help="use this edgewise wheel (default: built from the source tree, or "
                   "repacked from the installed edgewise when pip-installed)")
    p.add_argument("--python", default="python3", help="device interpreter that creates the venv")
    p.add_argument("--no-deps", action="store_true",
                   help="install only edgewise into the venv (dependencies already there, offline)")
    p.add_argument("--extras", default="pi", help="wheel extras to install with dependencies (default pi)")
    p.add_argument("--pip-args", default="", help="extra pip install arguments, e.g. '--no-index "
                   "--find-links /home/pi/wheels'")
    p.add_argument("--systemd", choices=("system", "user", "off"), default="system",
                   help="system unit via sudo (default), user unit (systemctl --user), or none")
    p.add_argument("--no-systemd", dest="systemd", action="store_const", const="off",
                   help="same as --systemd off: upload, install and switch only")
    p.add_argument("--systemctl", help="systemctl command to use (default: 'sudo -n systemctl' or "
                   "'systemctl --user'); tests point this at a recording shim")
    p.add_argument("--unit-dir", help="where the unit file goes (default per --systemd scope)")
    p.add_argument("--health-wait", type=float, default=10.0,
                   help="seconds the service must stay active after (re)start (default 10)")
    p.add_argument("--no-auto-rollback", dest="auto_rollback", action="store_false",
                   help="leave a release that fails its health check in place")
    p.add_argument("--trusted-key", action="append", default=[], metavar="PUB",
                   help="ed25519 public key the device requires bundles to be signed by (repeatable): "
                   "shipped in the release, EDGEWISE_TRUSTED_KEYS set in the unit")
    p.add_argument("--no-trusted-keys", dest="drop_trusted_keys", action="store_true",
                   help="deploy without keys to a device that requires signed bundles, dropping that")
    p.add_argument("--keep", type=int, default=3, help="releases to keep per device (default 3)")
    p.add_argument("--jobs", type=int, default=8, help="hosts deployed in parallel (default 8)")
    add_json(p, "the per-host results")
    add_quiet(p)
    return p


def _hosts(a: argparse.Namespace) -> list[Host]:
    hosts = [parse_host(h, a.port, a.identity) for h in a.host]
    if a.inventory:
        from .fleet.inventory import is_ansible_inventory, read_ansible_inventory

        read = read_ansible_inventory if is_ansible_inventory(a.inventory) else read_inventory
        hosts += read(a.inventory, a.port, a.identity)
    if not hosts:
        raise ValueError("no target: give --host user@host or --inventory FILE")
    return hosts


def deploy_main(argv: list[str]) -> int:
    from ..cliargs import emit_json

    a = build_parser().parse_args(argv)
    if a.keep < 1 or a.jobs < 1 or a.health_wait < 0:
        raise ValueError("--keep and --jobs must be at least 1, --health-wait at least 0")
    if a.bundle and not a.rollback and not Path(a.bundle).exists():
        raise FileNotFoundError(f"{a.bundle}: no such bundle")
    hosts = _hosts(a)
    if not a.rollback and not a.bundle:
        raise ValueError("no bundle to deploy (or use --rollback)")
    cfg = DeployConfig(
        app=a.app, remote_dir=a.remote_dir, python=a.python, pip_args=a.pip_args, no_deps=a.no_deps,
        extras=a.extras, systemd=a.systemd, systemctl=a.systemctl, unit_dir=a.unit_dir,
        run_args=a.run_args, variant=a.variant, health_wait=a.health_wait, keep=a.keep,
        auto_rollback=a.auto_rollback, ssh_options=a.ssh_option, trusted_keys=a.trusted_key,
        drop_trusted_keys=a.drop_trusted_keys,
    )
    cfg.check()
    if a.rollback and a.trusted_key:
        raise ValueError("--trusted-key needs a bundle to deploy; a rollback keeps the keys of its release")
    with tempfile.TemporaryDirectory(prefix="edgewise-deploy-") as tmp:
        ctl = Path(tempfile.mkdtemp(prefix="ew-ssh-", dir="/tmp"))  # short: socket paths max ~100 chars
        try:
            if a.rollback:
                def job(h: Host) -> HostResult:
                    return rollback_host(h, cfg, ctl)
            else:
                try:
                    wheel = Path(a.wheel) if a.wheel else build_wheel(Path(tmp) / "wheel")
                except WheelError as e:  # one line from the CLI, not a traceback
                    raise ValueError(str(e)) from None
                if not wheel.is_file():
                    raise ValueError(f"--wheel {wheel}: no such file")
                rel = prepare_release(a.bundle, wheel, a.app, cfg.trusted_keys)
                print(f"release {rel.id}: bundle {rel.info['bundle']}, {wheel.name} -> {len(hosts)} host(s)",
                      file=sys.stderr)

                def job(h: Host) -> HostResult:
                    return deploy_host(h, rel, cfg, ctl)

            with ThreadPoolExecutor(max_workers=max(1, min(a.jobs, len(hosts)))) as ex:
                results = list(ex.map(job, hosts))
        finally:
            shutil.rmtree(ctl, ignore_errors=True)
    if not emit_json([r.__dict__ for r in results], a.json):
        print(results_table(results))
    return 0 if all(r.ok for r in results) else 1
