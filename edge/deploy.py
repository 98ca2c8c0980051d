"""``edgewise deploy``: a bundle and the edgewise runtime onto Raspberry Pis over SSH.

A deploy can never leave a device half-updated. On each host, in order:

1. upload the bundle and the locally built edgewise wheel into ``releases/.incoming-ID``
   (tar over the SSH connection; no rsync needed on either side),
2. verify every file's sha256 *there*, then rename the directory to ``releases/ID``,
3. create (once) a venv with ``--system-site-packages`` (so apt's picamera2, numpy, OpenCV are
   visible) and install the wheel into it under a pip constraint on the device's own numpy
   (``venv_recipe``), so pip never swaps the numpy apt's compiled packages were built against,
4. smoke-test the new release with that venv: load the bundle (checksums again) and run one
   inference; on failure the old wheel is reinstalled and ``current`` is untouched,
5. switch ``current`` atomically (``ln -s`` to a temporary name, then ``mv -T`` over it: a
   rename), keeping the old target as ``previous``,
6. write and enable a systemd unit (``Restart=on-failure``) and restart it,
7. health check: the unit must stay ``active`` for ``--health-wait`` seconds; if it does not,
   the host is rolled back to ``previous`` automatically and reported as failed.

``edgewise deploy --rollback`` swaps ``current`` and ``previous`` (and their wheels) and
restarts the unit. Several ``--host`` flags or an ``--inventory`` file deploy in parallel and
end with a per-host result table.

Remote layout (``--remote-dir``, default ``~/edgewise``)::

    releases/20261123T061500Z-3f2a9c1d/{bundle/, wheel/edgewise-*.whl, MANIFEST.sha256, release.json}
    current -> releases/...     previous -> releases/...     venv/     edgewise.env (optional)

>>> deploy_main(["vib.bundle", "--host", "pi@raspberrypi.local", "--app", "vibration",
...              "--run-args", "--source adxl345 --mqtt broker.local"])   # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import logging
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

__all__ = [
    "DeployError", "Host", "DeployConfig", "HostResult", "parse_host", "read_inventory", "build_wheel",
    "render_unit", "deploy_host", "rollback_host", "deploy_main", "smoke_main",
]

log = logging.getLogger("edgewise.deploy")
APPS = ("classify", "face", "inspect", "vibration")
DEFAULT_RUN_ARGS = {
    "classify": "--source picamera2 --jsonl= --log-every 60",
    "face": "--source picamera2 --jsonl= --log-every 60",
    "inspect": "--source picamera2 --jsonl= --log-every 60",
}


class DeployError(RuntimeError):
    """One step on one host failed; the message names the step and the remote error."""


# -- hosts -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Host:
    host: str
    user: str | None = None
    port: int | None = None
    identity: str | None = None

    @property
    def target(self) -> str:
        return f"{self.user}@{self.host}" if self.user else self.host

    @property
    def label(self) -> str:
        return self.target + (f":{self.port}" if self.port else "")


def parse_host(spec: str, port: int | None = None, identity: str | None = None) -> Host:
    """``user@host``, ``user@host:2222``, ``host``, ``user@[::1]:2222``."""
    spec = spec.strip()
    user, _, rest = spec.rpartition("@")
    p: str | None = None
    if rest.startswith("["):
        hostname, _, tail = rest[1:].partition("]")
        p = tail[1:] if tail.startswith(":") else None
    elif rest.count(":") == 1:
        hostname, p = rest.split(":")
    else:
        hostname = rest
    if not hostname:
        raise ValueError(f"host '{spec}': expected user@host[:port]")
    if p is not None and not p.isdigit():
        raise ValueError(f"host '{spec}': port '{p}' is not a number")
    return Host(hostname, user or None, int(p) if p else port, identity)


def read_inventory(path: str | Path, port: int | None = None, identity: str | None = None) -> list[Host]:
    """One host per line: ``user@host[:port] [identity=KEY]``; ``#`` starts a comment."""
    hosts = []
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        spec, *opts = line.split()
        kw: dict[str, str] = {}
        for o in opts:
            k, sep, v = o.partition("=")
            if not sep or k not in ("identity", "port"):
                raise ValueError(f"{path}:{n}: unknown option '{o}' (use identity=KEY or port=N)")
            kw[k] = v
        h = parse_host(spec, int(kw["port"]) if "port" in kw else port, kw.get("identity", identity))
        hosts.append(h)
    if not hosts:
        raise ValueError(f"{path}: no hosts in inventory")
    return hosts


# -- local artifacts -------------------------------------------------------------------------


def build_wheel(out_dir: Path) -> Path:
    """Build the edgewise wheel from the source tree this module runs from.

    The tree is copied first (packages, setup.cfg, pyproject.toml, README.md) so the build
    never writes ``build/`` into a working copy other people use, and never picks up stale
    files from an old ``build/lib``.
    """
    src = Path(__file__).resolve().parents[1]
    if not (src / "setup.cfg").exists() or not (src / "edge").is_dir():
        return wheel_from_installed(out_dir)  # pip-installed: no source tree, repack what is installed
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    with tempfile.TemporaryDirectory(prefix="edgewise-src-") as tmp:
        t = Path(tmp)
        for d in ("edge", "train", "converters", "benchmarks"):
            if (src / d).is_dir():
                shutil.copytree(src / d, t / d, ignore=ignore)
        for f in ("setup.cfg", "pyproject.toml", "README.md", "LICENSE"):
            if (src / f).exists():
                shutil.copy2(src / f, t / f)
        out_dir.mkdir(parents=True, exist_ok=True)
        r = subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
             "--disable-pip-version-check", "-w", str(out_dir), str(t)],
            capture_output=True, text=True,
        )
        if r.returncode != 0:
            raise DeployError(f"building the edgewise wheel failed: {_last_line(r.stderr)}")
    wheels = sorted(out_dir.glob("edgewise-*.whl"))
    if not wheels:
        raise DeployError(f"building the edgewise wheel produced nothing in {out_dir}")
    return wheels[-1]


# dist-info files that describe one installation, not the package: never part of a wheel
_INSTALL_ONLY = {"INSTALLER", "REQUESTED", "RECORD", "direct_url.json"}
WHEEL_HOWTO = ("python -m pip wheel --no-deps -w dist . (in an edgewise checkout), "
               "then --wheel dist/edgewise-*.whl")


def _installed_dist() -> Any:
    """The installed distribution this very module was loaded from (not any other copy on the path)."""
    from importlib import metadata

    here = Path(__file__).resolve()
    for dist in metadata.distributions(name="edgewise"):
        try:
            if Path(dist.locate_file("edgewise/edge/deploy.py")).resolve() == here:
                return dist
        except OSError:
            continue
    return None


def wheel_from_installed(out_dir: Path) -> Path:
    """Repack the installed edgewise (its files in site-packages and its dist-info) as a wheel.

    A pip-installed edgewise has no source tree to build from, but its installed files are the
    wheel it came from: the package files byte for byte, the metadata, a fresh RECORD. Files that
    were edited after installation (hash differs from the installed RECORD) are reported."""
    import zipfile

    dist = _installed_dist()
    if dist is None:
        raise DeployError(f"edgewise runs from neither a source tree nor an installed wheel: {WHEEL_HOWTO}")
    files = [f for f in dist.files or [] if f.parts[0] != ".." and "__pycache__" not in f.parts]
    info = next((f.parts[0] for f in files if f.parts[0].endswith(".dist-info")), None)
    if info is None or not any(f.parts[0] == "edgewise" for f in files):
        raise DeployError(f"the installed edgewise lists no package files to repack: {WHEEL_HOWTO}")
    wheel_meta = dist.read_text("WHEEL") or ""
    tag = next((ln.split(":", 1)[1].strip() for ln in wheel_meta.splitlines() if ln.startswith("Tag:")),
               "py3-none-any")
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"edgewise-{dist.version}-{tag}.whl"
    record: list[str] = []
    changed: list[str] = []
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for f in sorted(files, key=str):
            name = str(f.as_posix())
            if f.suffix == ".pyc" or (f.parts[0] == info and f.name in _INSTALL_ONLY):
                continue
            data = Path(dist.locate_file(f)).read_bytes()
            digest = hashlib.sha256(data).digest()
            if f.hash is not None and f.hash.mode == "sha256" and f.hash.value != _b64(digest):
                changed.append(name)
            z.writestr(name, data)
            record.append(f"{name},sha256={_b64(digest)},{len(data)}")
        record.append(f"{info}/RECORD,,")
        z.writestr(f"{info}/RECORD", "\n".join(record) + "\n")
    if changed:
        log.warning("installed edgewise files edited since installation, shipped as they are now: %s",
                    ", ".join(changed[:5]))
    return path


def _b64(digest: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@dataclass
class Release:
    """What goes to every host: the bundle directory, the wheel, a manifest, release.json."""

    id: str
    bundle_dir: Path
    wheel: Path
    manifest: str
    info: dict[str, Any]

    def tar_bytes(self) -> bytes:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            tar.add(self.bundle_dir, arcname="bundle")
            tar.add(self.wheel, arcname=f"wheel/{self.wheel.name}")
            for name, text in (("MANIFEST.sha256", self.manifest),
                               ("release.json", json.dumps(self.info, indent=2) + "\n")):
                data = text.encode()
                ti = tarfile.TarInfo(name)
                ti.size, ti.mtime, ti.mode = len(data), int(time.time()), 0o644
                tar.addfile(ti, io.BytesIO(data))
        return buf.getvalue()


def prepare_release(bundle: str | Path, wheel: Path, app: str) -> Release:
    """Verify the bundle locally (a broken bundle never leaves the workstation) and pin files."""
    from .bundle import load_bundle, sha256_file

    b = load_bundle(bundle)  # checks every file's size + sha256, extracts a .zip
    lines = []
    for p in sorted(q for q in b.path.rglob("*") if q.is_file() and "__pycache__" not in q.parts):
        lines.append(f"{sha256_file(p)}  bundle/{p.relative_to(b.path).as_posix()}")
    lines.append(f"{sha256_file(wheel)}  wheel/{wheel.name}")
    digest = hashlib.sha256("\n".join(lines).encode()).hexdigest()
    rid = f"{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}-{digest[:8]}"
    info = {
        "release": rid, "app": app, "bundle": b.name, "bundle_created": b.meta.get("created"),
        "wheel": wheel.name, "deployed_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "deployed_from": socket.gethostname(),
    }
    return Release(rid, b.path, wheel, "\n".join(lines) + "\n", info)


# -- systemd ---------------------------------------------------------------------------------


def unit_name(app: str) -> str:
    return f"edgewise-{app}.service"


def render_unit(app: str, base: str, run_args: str, *, user: str | None, scope: str) -> str:
    """The systemd unit: restarts on failure, stops with SIGTERM (the runner's graceful stop)."""
    exe, bundle = shlex.quote(f"{base}/venv/bin/edgewise"), shlex.quote(f"{base}/current/bundle")
    exec_start = f"{exe} run {app} --bundle {bundle}"
    if run_args:
        exec_start += " " + run_args
    exec_start = exec_start.replace("%", "%%")  # '%' starts a systemd specifier
    lines = [
        "[Unit]",
        f"Description=edgewise {app} edge loop (written by edgewise deploy)",
        "After=network-online.target",
        "Wants=network-online.target",
        "StartLimitIntervalSec=0",
        "",
        "[Service]",
        "Type=simple",
    ]
    if scope == "system" and user:
        lines.append(f"User={user}")
    lines += [
        f"WorkingDirectory={base}",
        "Environment=PYTHONUNBUFFERED=1",
        f"EnvironmentFile=-{base}/edgewise.env",
        f"ExecStart={exec_start}",
        "Restart=on-failure",
        "RestartSec=5",
        "KillSignal=SIGTERM",
        "TimeoutStopSec=20",
        "",
        "[Install]",
        "WantedBy=" + ("multi-user.target" if scope == "system" else "default.target"),
        "",
    ]
    return "\n".join(lines)


# -- one SSH connection ----------------------------------------------------------------------


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in (text or "").strip().splitlines() if ln.strip()]
    return lines[-1] if lines else "(no output)"


class Remote:
    """Runs shell scripts on one host through a shared (ControlMaster) SSH connection."""

    def __init__(self, host: Host, ssh_options: list[str], control_dir: Path, timeout: float = 600) -> None:
        self.host = host
        self.timeout = timeout
        base = ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-o", "ServerAliveInterval=15",
                "-o", "StrictHostKeyChecking=accept-new",
                "-o", "ControlMaster=auto", "-o", f"ControlPath={control_dir}/%C", "-o", "ControlPersist=60"]
        if host.port:
            base += ["-p", str(host.port)]
        if host.identity:
            base += ["-i", host.identity, "-o", "IdentitiesOnly=yes"]
        for o in ssh_options:
            base += ["-o", o]
        self.base = base

    def run(self, step: str, script: str, data: bytes | None = None, check: bool = True) -> str:
        cmd = [*self.base, self.host.target, "sh -c " + shlex.quote("set -e\n" + script)]
        log.debug("%s %s: %s", self.host.label, step, script)
        try:
            r = subprocess.run(cmd, input=data if data is not None else b"", capture_output=True,
                               timeout=self.timeout)
        except subprocess.TimeoutExpired:
            raise DeployError(f"{step}: timed out after {self.timeout:.0f}s") from None
        out, err = r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")
        if r.returncode == 255:
            raise DeployError(f"{step}: ssh to {self.host.label} failed: {_last_line(err)}")
        if check and r.returncode != 0:
            raise DeployError(f"{step}: {_last_line(err) if err.strip() else _last_line(out)}")
        return out

    def close(self) -> None:
        subprocess.run([*self.base, "-O", "exit", self.host.target], capture_output=True, timeout=10)


# -- the deploy itself -----------------------------------------------------------------------


@dataclass
class DeployConfig:
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

    def systemctl_cmd(self) -> str:
        if self.systemctl:
            return self.systemctl
        return "sudo -n systemctl" if self.systemd == "system" else "systemctl --user"

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


def _base_expr(remote_dir: str) -> str:
    if remote_dir == "~":
        return '"$HOME"'
    if remote_dir.startswith("~/"):
        return '"$HOME"/' + shlex.quote(remote_dir[2:])
    return shlex.quote(remote_dir)


# The device's own numpy, asked of the interpreter that creates the venv: apt's compiled Python
# packages (python3-picamera2, simplejpeg) are built against it, and a numpy of another ABI
# inside a --system-site-packages venv breaks them ("numpy.dtype size changed").
NUMPY_PROBE = "import numpy; print(numpy.__version__)"
CONSTRAINTS_FILE = "edgewise-constraints.txt"
_VERSION = re.compile(r"\d+(\.\d+)+([.+-]?[A-Za-z0-9.+]*)?")


def numpy_constraint(probe_output: str) -> str | None:
    """The pip constraint ``numpy==X`` for the system numpy the probe printed; None when the
    system Python has no numpy (then pip may choose one: nothing apt-installed depends on it)."""
    lines = probe_output.strip().splitlines()
    version = lines[-1].strip() if lines else ""
    return f"numpy=={version}" if _VERSION.fullmatch(version) else None


def venv_recipe(venv: str, wheel: str, constraints: list[str], *, python: str = "python3",
                pip_args: str = "", extras: str = "pi", no_deps: bool = False) -> str:
    """The shell script that installs an edgewise wheel on a device (deploy and image builders).

    It creates the venv once with ``--system-site-packages`` (apt's picamera2 stays visible),
    writes ``constraints`` to ``VENV/edgewise-constraints.txt`` and installs with ``-c`` on it,
    so pip never replaces the system numpy those apt packages were compiled against; the
    dependency ranges of setup.cfg admit OpenCV and LiteRT releases that work with it.
    ``venv`` and ``wheel`` are shell words (already quoted; ``wheel`` may be a glob).
    """
    cfile = f"{venv}/{CONSTRAINTS_FILE}"
    pip = f"{venv}/bin/python -m pip install --disable-pip-version-check -q {pip_args}".rstrip()
    text = "".join(f"{c}\n" for c in constraints)
    make = f"{shlex.quote(python)} -m venv --system-site-packages {venv}"
    script = (f"set -e\n"
              f"if [ ! -x {venv}/bin/python ]; then {make}; fi\n"
              f"printf %s {shlex.quote(text)} > {cfile}\n"
              f"set -- {wheel}\n")
    if not no_deps:
        target = f'"$1[{extras}]"' if extras else '"$1"'
        script += f"{pip} -c {cfile} {target}\n"
    script += f'{pip} -c {cfile} --no-deps --force-reinstall "$1"\n'
    return script


class _HostDeploy:
    """The steps on one host; every method is one remote round trip (or a few)."""

    def __init__(self, remote: Remote, cfg: DeployConfig) -> None:
        self.r, self.cfg = remote, cfg
        self.base = ""
        self.user = ""

    def probe(self) -> None:
        out = self.r.run("connect", f'BASE={_base_expr(self.cfg.remote_dir)}\nmkdir -p "$BASE/releases"\n'
                                    'cd "$BASE" && pwd -P && id -un && uname -m')
        self.base, self.user, self.machine = (out.strip().splitlines() + ["", "", ""])[:3]
        if not self.base.startswith("/"):
            raise DeployError(f"connect: unexpected reply {out.strip()!r}")
        self.q = shlex.quote(self.base)

    def link(self, name: str) -> str:
        out = self.r.run(f"read {name}", f"readlink {self.q}/{name} || true")
        return out.strip()

    def upload(self, rel: Release) -> None:
        inc = f"{self.q}/releases/.incoming-{rel.id}"
        self.r.run("upload", f"rm -rf {inc} && mkdir -p {inc} && tar -xf - -C {inc}", data=rel.tar_bytes())
        self.r.run("verify checksums",
                   f"cd {inc} && sha256sum -c --quiet --strict MANIFEST.sha256\n"
                   f"mv -T {inc} {self.q}/releases/{rel.id}")

    def install(self, release: str) -> None:
        """Create the venv once, then install the release's wheel into it, pinned to the
        device's own numpy (``venv_recipe``)."""
        c = self.cfg
        probe = self.r.run("probe numpy", f"{shlex.quote(c.python)} -c {shlex.quote(NUMPY_PROBE)} "
                                          "2>/dev/null || true")
        pin = numpy_constraint(probe)
        log.info("%s: %s", self.r.host.label, f"pip constraint {pin} (the device's numpy)" if pin
                 else "no system numpy on the device: no numpy constraint")
        self.r.run("install wheel", venv_recipe(
            f"{self.q}/venv", f"{self.q}/{release}/wheel/*.whl", [pin] if pin else [], python=c.python,
            pip_args=c.pip_args, extras=c.extras, no_deps=c.no_deps))

    def smoke(self, release: str) -> dict[str, Any]:
        v = f" --variant {shlex.quote(self.cfg.variant)}" if self.cfg.variant else ""
        out = self.r.run("smoke test",
                         f"{self.q}/venv/bin/python -m edgewise.edge.deploy {self.q}/{release}/bundle{v}")
        try:
            return json.loads(out.strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise DeployError(f"smoke test: unexpected output {_last_line(out)!r}") from None

    def switch(self, release: str) -> str:
        """Point ``current`` at ``release`` with one rename; the old target becomes ``previous``."""
        rq = shlex.quote(release)
        out = self.r.run("switch current", f"cd {self.q}\nold=$(readlink current || true)\n"
                         f"ln -sfn {rq} .current.new && mv -T .current.new current\n"
                         f'if [ -n "$old" ] && [ "$old" != {rq} ]; then '
                         'ln -sfn "$old" .previous.new && mv -T .previous.new previous; fi\necho "$old"')
        return out.strip()

    def set_link(self, name: str, target: str) -> None:
        self.r.run(f"set {name}", f"cd {self.q} && ln -sfn {shlex.quote(target)} .{name}.new && "
                   f"mv -T .{name}.new {name}")

    def unit_path(self) -> str:
        c = self.cfg
        d = c.unit_dir or ("/etc/systemd/system" if c.systemd == "system" else "~/.config/systemd/user")
        return _base_expr(d) + "/" + unit_name(c.app)

    def unit_exists(self) -> bool:
        return self.r.run("read unit", f"test -f {self.unit_path()} && echo yes || true").strip() == "yes"

    def write_unit(self) -> None:
        c = self.cfg
        text = render_unit(c.app, self.base, c.full_run_args(), user=self.user, scope=c.systemd)
        path = self.unit_path()
        sudo = "sudo -n " if c.systemd == "system" and not c.unit_dir else ""
        sc = c.systemctl_cmd()
        unit = unit_name(c.app)
        self.r.run("write unit", f"{sudo}mkdir -p $(dirname {path})\n{sudo}tee {path} >/dev/null\n"
                   f"{sc} daemon-reload\n{sc} enable {unit}", data=text.encode())

    def restart(self) -> None:
        self.r.run("restart service", f"{self.cfg.systemctl_cmd()} restart {unit_name(self.cfg.app)}")

    def health(self) -> str:
        """The unit must report ``active`` at every poll for ``health_wait`` seconds."""
        sc, unit = self.cfg.systemctl_cmd(), unit_name(self.cfg.app)
        deadline = time.monotonic() + self.cfg.health_wait
        polls = 0
        while True:
            state = self.r.run("health check", f"{sc} is-active {unit} || true").strip() or "unknown"
            polls += 1
            if state != "active":
                tail = self.r.run("health check", f"{sc} status {unit} --no-pager -n 3 2>&1 || true",
                                  check=False)
                raise DeployError(f"health check: {unit} is {state} ({_last_line(tail)})")
            if time.monotonic() >= deadline:
                return f"{unit} active for {self.cfg.health_wait:g}s ({polls} checks)"
            time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))

    def prune(self, keep: int, protect: set[str]) -> None:
        out = self.r.run("list releases", f"ls -1 {self.q}/releases")
        names = sorted(n for n in out.split() if not n.startswith("."))
        old = [n for n in names[:-keep] if f"releases/{n}" not in protect] if keep > 0 else []
        if old:
            self.r.run("prune", " ".join(["cd", f"{self.q}/releases", "&&", "rm", "-rf", "--",
                                          *map(shlex.quote, old)]))


def _activate(h: _HostDeploy, cfg: DeployConfig, rewrite: bool) -> str:
    if cfg.systemd == "off":
        return "no service (--no-systemd)"
    if rewrite:
        h.write_unit()
    h.restart()
    return h.health()


def deploy_host(host: Host, rel: Release, cfg: DeployConfig, control_dir: Path) -> HostResult:
    t0 = time.monotonic()
    res = HostResult(host.label, False, "deploy")
    r = Remote(host, cfg.ssh_options, control_dir)
    h = _HostDeploy(r, cfg)
    step_done = "nothing"
    try:
        h.probe()
        # Without --run-args an existing unit keeps its ExecStart; a new one needs the app's default.
        rewrite = cfg.systemd != "off" and (cfg.run_args is not None or not h.unit_exists())
        if rewrite:
            cfg.full_run_args()  # fails before anything is uploaded
        old_current, old_previous = h.link("current"), h.link("previous")
        res.previous = old_current.rsplit("/", 1)[-1] or "-"
        h.upload(rel)
        new = f"releases/{rel.id}"
        step_done = "uploaded"
        try:
            h.install(new)
            smoke = h.smoke(new)
        except DeployError:
            if old_current:  # put the running release's runtime back before giving up
                try:
                    h.install(old_current)
                except DeployError as e2:
                    log.error("%s: restoring the previous wheel failed too: %s", host.label, e2)
            raise
        h.switch(new)
        step_done = "switched"
        try:
            health = _activate(h, cfg, rewrite)
        except DeployError as e:
            if cfg.auto_rollback and old_current:
                h.set_link("current", old_current)  # as it was: the failed release is not 'previous'
                if old_previous:
                    h.set_link("previous", old_previous)
                else:
                    h.r.run("reset previous", f"rm -f {h.q}/previous")
                h.install(old_current)
                if cfg.systemd != "off":
                    h.restart()
                raise DeployError(f"{e}; rolled back to {old_current.rsplit('/', 1)[-1]}") from None
            raise
        h.prune(cfg.keep, {new, old_current})
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
    h = _HostDeploy(r, cfg)
    try:
        h.probe()
        cur, prev = h.link("current"), h.link("previous")
        if not prev:
            raise DeployError(f"rollback: no previous release under {h.base}")
        h.install(prev)
        h.set_link("current", prev)
        if cur:
            h.set_link("previous", cur)
        health = _activate(h, cfg, rewrite=cfg.run_args is not None)  # else: the unit as deployed
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


# -- command line ----------------------------------------------------------------------------

EPILOG = """\
examples:
  edgewise deploy inspect.bundle --host pi@raspberrypi.local --app inspect \\
      --run-args "--source picamera2 --mqtt broker.local --jsonl= --log-every 60"
  edgewise deploy vib.bundle --inventory pis.txt --app vibration --run-args "--source adxl345"
  edgewise deploy --rollback --host pi@raspberrypi.local --app inspect
  # offline Pi whose venv already has the dependencies: install only edgewise itself
  edgewise deploy digits.bundle --host pi@10.0.0.7:2222 --app classify --no-deps

inventory file: one 'user@host[:port] [identity=KEY]' per line, '#' comments.
"""


def build_parser() -> argparse.ArgumentParser:
    from .cliargs import Parser, add_json, add_quiet

    p = Parser(
        prog="edgewise deploy", description="Deploy a bundle and the edgewise runtime to Raspberry Pis "
        "over SSH: verified upload, atomic switch, venv, systemd service, health check, rollback.",
        epilog=EPILOG,
    )
    p.add_argument("bundle", nargs="?", help="bundle directory or .zip (not needed with --rollback)")
    p.add_argument("--host", action="append", default=[], help="user@host[:port]; repeat for several")
    p.add_argument("--inventory", help="file with one host per line")
    p.add_argument("--app", required=True, choices=APPS, help="application the service runs")
    p.add_argument("--identity", "-i", help="SSH private key")
    p.add_argument("--port", "-p", type=int, help="SSH port (when a host does not name one)")
    p.add_argument("--ssh-option", "-o", action="append", default=[], help="extra ssh -o option")
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
    p.add_argument("--keep", type=int, default=3, help="releases to keep per device (default 3)")
    p.add_argument("--jobs", type=int, default=8, help="hosts deployed in parallel (default 8)")
    add_json(p, "the per-host results")
    add_quiet(p)
    return p


def deploy_main(argv: list[str]) -> int:
    from .cliargs import emit_json

    a = build_parser().parse_args(argv)
    if a.keep < 1 or a.jobs < 1 or a.health_wait < 0:
        raise ValueError("--keep and --jobs must be at least 1, --health-wait at least 0")
    if a.bundle and not a.rollback and not Path(a.bundle).exists():
        raise FileNotFoundError(f"{a.bundle}: no such bundle")
    hosts = [parse_host(h, a.port, a.identity) for h in a.host]
    if a.inventory:
        hosts += read_inventory(a.inventory, a.port, a.identity)
    if not hosts:
        raise ValueError("no target: give --host user@host or --inventory FILE")
    if not a.rollback and not a.bundle:
        raise ValueError("no bundle to deploy (or use --rollback)")
    cfg = DeployConfig(
        app=a.app, remote_dir=a.remote_dir, python=a.python, pip_args=a.pip_args, no_deps=a.no_deps,
        extras=a.extras, systemd=a.systemd, systemctl=a.systemctl, unit_dir=a.unit_dir,
        run_args=a.run_args, variant=a.variant, health_wait=a.health_wait, keep=a.keep,
        auto_rollback=a.auto_rollback, ssh_options=a.ssh_option,
    )
    with tempfile.TemporaryDirectory(prefix="edgewise-deploy-") as tmp:
        tmpd = Path(tmp)
        ctl = Path(tempfile.mkdtemp(prefix="ew-ssh-", dir="/tmp"))  # short: socket paths max ~100 chars
        try:
            if a.rollback:
                def job(h: Host) -> HostResult:
                    return rollback_host(h, cfg, ctl)
            else:
                try:
                    wheel = Path(a.wheel) if a.wheel else build_wheel(tmpd / "wheel")
                except DeployError as e:  # one line from the CLI, not a traceback
                    raise ValueError(str(e)) from None
                if not wheel.is_file():
                    raise ValueError(f"--wheel {wheel}: no such file")
                rel = prepare_release(a.bundle, wheel, a.app)
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


# -- runs on the device ----------------------------------------------------------------------


def smoke_main(argv: list[str]) -> int:
    """On the device, with the new venv: load the bundle, run one inference, print JSON."""
    import numpy as np

    from .backends import load_model
    from .bundle import load_bundle

    p = argparse.ArgumentParser(prog="python -m edgewise.edge.deploy",
                                description="deploy smoke test: load a bundle and run one inference")
    p.add_argument("bundle")
    p.add_argument("--variant")
    a = p.parse_args(argv)
    b = load_bundle(a.bundle)
    v = b.variant(a.variant)
    model = load_model(b, v.name, threads=1)
    shape = [d if isinstance(d, int) and d > 0 else 1 for d in b.input["shape"]]
    x = np.zeros(shape, np.float32)
    t0 = time.perf_counter()
    y = np.asarray(model.predict(x))
    ms = (time.perf_counter() - t0) * 1e3
    if not np.all(np.isfinite(y)):
        print(f"smoke test: {v.name} produced non-finite output", file=sys.stderr)
        return 1
    print(json.dumps({"ok": True, "bundle": b.name, "variant": v.name, "ms": round(ms, 2),
                      "edgewise": _version(), "python": sys.version.split()[0]}))
    return 0


def _version() -> str:
    from . import __version__

    return __version__


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    try:
        sys.exit(smoke_main(sys.argv[1:]))
    except (ValueError, RuntimeError, OSError) as e:
        print(f"smoke test: {e}", file=sys.stderr)
        sys.exit(1)
