"""One SSH connection to a device: host specs, inventories, and shell scripts run over ssh.

Every remote step of a deploy is one shell script sent through a shared (ControlMaster)
connection, so a deploy of ten steps opens one TCP connection, and every failure comes back
as one ``DeployError`` line naming the step and the remote error.

>>> parse_host("pi@raspberrypi.local:2222").label
'pi@raspberrypi.local:2222'

A host is validated before it reaches ssh (``validate_host``) and is passed after ``--``, so
it can never be read as an option; the user's ``-o`` options come before deploy's own defaults,
because ssh keeps the FIRST value it is given for an option.
"""

from __future__ import annotations

import logging
import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DeployError", "Host", "parse_host", "validate_host", "read_inventory", "Remote", "last_line",
           "base_expr", "DEFAULT_SSH_OPTIONS", "ssh_argv"]

log = logging.getLogger("edgewise.deploy")

# Deploy's own defaults, placed AFTER the user's -o options: ssh keeps the first value of an option.
DEFAULT_SSH_OPTIONS = ("BatchMode=yes", "ConnectTimeout=10", "ServerAliveInterval=15",
                       "StrictHostKeyChecking=accept-new", "ControlMaster=auto", "ControlPersist=60")
_USER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")
_HOSTNAME = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9._-]*[A-Za-z0-9_])?")
_IPV6 = re.compile(r"[0-9A-Fa-f]*:[0-9A-Fa-f:.]*(%[A-Za-z0-9_.-]+)?")


class DeployError(RuntimeError):
    """One step on one host failed; the message names the step and the remote error."""


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
    if not hostname or (not user and "@" in spec):
        raise ValueError(f"host '{spec}': expected user@host[:port]")
    if p is not None and not p.isdigit():
        raise ValueError(f"host '{spec}': port '{p}' is not a number")
    h = Host(hostname, user or None, int(p) if p else port, identity)
    validate_host(h, spec)
    return h


def validate_host(h: Host, spec: str | None = None) -> None:
    """Refuse, in one line, a host that ssh could read as an option or a shell could read as code:
    a user or host name must be letters, digits, ``.``, ``_``, ``-`` (not first), or an IPv6
    address; the port 1-65535."""
    what = f"host {spec!r}" if spec is not None else f"host {h.label!r}"
    if spec is not None and (spec.startswith("-") or any(c.isspace() for c in spec)):
        raise ValueError(f"{what}: must not start with '-' or contain whitespace")
    if h.user is not None and not _USER.fullmatch(h.user):
        raise ValueError(f"{what}: user {h.user!r} may hold only letters, digits, '.', '_', '-' (not first)")
    if not (_HOSTNAME.fullmatch(h.host) or _IPV6.fullmatch(h.host)):
        raise ValueError(f"{what}: {h.host!r} is not a host name or IP address "
                         "(letters, digits, '.', '-', '_'; IPv6 in [brackets])")
    if h.port is not None and not 1 <= h.port <= 65535:
        raise ValueError(f"{what}: port {h.port} is outside 1-65535")


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
        p = int(kw["port"]) if "port" in kw else port
        hosts.append(parse_host(spec, p, kw.get("identity", identity)))
    if not hosts:
        raise ValueError(f"{path}: no hosts in inventory")
    return hosts


def last_line(text: str) -> str:
    """The last non-empty line of a command's output: what a one-line error quotes."""
    lines = [ln.strip() for ln in (text or "").strip().splitlines() if ln.strip()]
    return lines[-1] if lines else "(no output)"


def base_expr(remote_dir: str) -> str:
    """A remote directory as a shell word, ``~`` expanded on the device (``"$HOME"``)."""
    if remote_dir == "~":
        return '"$HOME"'
    if remote_dir.startswith("~/"):
        return '"$HOME"/' + shlex.quote(remote_dir[2:])
    return shlex.quote(remote_dir)


class Remote:
    """Runs shell scripts on one host through a shared (ControlMaster) SSH connection."""

    def __init__(self, host: Host, ssh_options: list[str], control_dir: Path, timeout: float = 600) -> None:
        self.host = host
        self.timeout = timeout
        self.base = ssh_argv(host, ssh_options, control_dir)

    def run(self, step: str, script: str, data: bytes | None = None, check: bool = True) -> str:
        """``script`` under ``sh -c`` with ``set -e``; ``data`` on its stdin; its stdout."""
        cmd = [*self.base, "--", self.host.target, "sh -c " + shlex.quote("set -e\n" + script)]
        log.debug("%s %s: %s", self.host.label, step, script)
        try:
            r = subprocess.run(cmd, input=data if data is not None else b"", capture_output=True,
                               timeout=self.timeout)
        except subprocess.TimeoutExpired:
            raise DeployError(f"{step}: timed out after {self.timeout:.0f}s") from None
        out, err = r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")
        if r.returncode == 255:
            raise DeployError(f"{step}: ssh to {self.host.label} failed: {last_line(err)}")
        if check and r.returncode != 0:
            raise DeployError(f"{step}: {last_line(err) if err.strip() else last_line(out)}")
        return out

    def close(self) -> None:
        subprocess.run([*self.base, "-O", "exit", "--", self.host.target], capture_output=True, timeout=10)


def ssh_argv(host: Host, ssh_options: list[str], control_dir: Path) -> list[str]:
    """``ssh`` and its options, without the target: the user's ``-o`` options first (ssh keeps the
    first value, so ``-o StrictHostKeyChecking=yes`` beats the ``accept-new`` default), then the
    host's port and identity, then deploy's defaults. The caller appends ``--`` and the target."""
    validate_host(host)
    argv = ["ssh"]
    for o in ssh_options:
        if not o or o.startswith("-") or "\n" in o:
            raise ValueError(f"--ssh-option {o!r}: expected KEY=VALUE")
        argv += ["-o", o]
    if host.port:
        argv += ["-p", str(host.port)]
    if host.identity:
        argv += ["-i", host.identity, "-o", "IdentitiesOnly=yes"]
    for o in DEFAULT_SSH_OPTIONS:
        argv += ["-o", o]
    return [*argv, "-o", f"ControlPath={control_dir}/%C"]
