"""The systemd service that runs an application's edge loop on a device, and its health check.

The unit restarts the loop on failure and stops it with SIGTERM (the runner's graceful stop);
a deploy counts as healthy only when the unit stays ``active`` for ``--health-wait`` seconds.
"""

from __future__ import annotations

import shlex
import time
from typing import TYPE_CHECKING

from .remote import DeployError, Remote, base_expr, last_line

if TYPE_CHECKING:
    from .deploy import DeployConfig

__all__ = ["unit_name", "render_unit", "Service"]


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


class Service:
    """The application's unit on one device: write, restart, health check."""

    def __init__(self, remote: Remote, cfg: DeployConfig, base: str, user: str) -> None:
        self.r, self.cfg, self.base, self.user = remote, cfg, base, user
        self.unit = unit_name(cfg.app)

    def unit_path(self) -> str:
        c = self.cfg
        d = c.unit_dir or ("/etc/systemd/system" if c.systemd == "system" else "~/.config/systemd/user")
        return base_expr(d) + "/" + self.unit

    def exists(self) -> bool:
        return self.r.run("read unit", f"test -f {self.unit_path()} && echo yes || true").strip() == "yes"

    def write(self) -> None:
        c = self.cfg
        text = render_unit(c.app, self.base, c.full_run_args(), user=self.user, scope=c.systemd)
        path = self.unit_path()
        sudo = "sudo -n " if c.systemd == "system" and not c.unit_dir else ""
        sc = c.systemctl_cmd()
        self.r.run("write unit", f"{sudo}mkdir -p $(dirname {path})\n{sudo}tee {path} >/dev/null\n"
                   f"{sc} daemon-reload\n{sc} enable {self.unit}", data=text.encode())

    def restart(self) -> None:
        self.r.run("restart service", f"{self.cfg.systemctl_cmd()} restart {self.unit}")

    def health(self) -> str:
        """The unit must report ``active`` at every poll for ``health_wait`` seconds."""
        sc, unit = self.cfg.systemctl_cmd(), self.unit
        deadline = time.monotonic() + self.cfg.health_wait
        polls = 0
        while True:
            state = self.r.run("health check", f"{sc} is-active {unit} || true").strip() or "unknown"
            polls += 1
            if state != "active":
                tail = self.r.run("health check", f"{sc} status {unit} --no-pager -n 3 2>&1 || true",
                                  check=False)
                raise DeployError(f"health check: {unit} is {state} ({last_line(tail)})")
            if time.monotonic() >= deadline:
                return f"{unit} active for {self.cfg.health_wait:g}s ({polls} checks)"
            time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))

    def activate(self, rewrite: bool) -> str:
        """(Re)write the unit when asked, restart it, and wait out the health check."""
        if self.cfg.systemd == "off":
            return "no service (--no-systemd)"
        if rewrite:
            self.write()
        self.restart()
        return self.health()
