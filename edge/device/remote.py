"""One SSH connection to a device: host specs, inventories, and shell scripts run over ssh.

Every remote step of a deploy is one shell script sent through a shared (ControlMaster)
connection, so a deploy of ten steps opens one TCP connection, and every failure comes back
as one ``DeployError`` line naming the step and the remote error.

>>> parse_host("pi@raspberrypi.local:2222").label
'pi@raspberrypi.local:2222'
"""

from __future__ import annotations

import logging
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DeployError", "Host", "parse_host", "read_inventory", "Remote", "last_line", "base_expr"]

log = logging.getLogger("edgewise.deploy")


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
        """``script`` under ``sh -c`` with ``set -e``; ``data`` on its stdin; its stdout."""
        cmd = [*self.base, self.host.target, "sh -c " + shlex.quote("set -e\n" + script)]
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
        subprocess.run([*self.base, "-O", "exit", self.host.target], capture_output=True, timeout=10)
