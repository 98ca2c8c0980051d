"""The systemd service that runs an application's edge loop on a device, and its health check.

The unit restarts the loop on failure and stops it with SIGTERM (the runner's graceful stop);
a deploy counts as healthy only when the unit stays ``active`` for ``--health-wait`` seconds.

Nothing a user typed reaches the unit file raw: ``ExecStart=`` is built word by word with
``exec_word`` and ``Environment=`` with ``environment_line``, following systemd's own rules
(systemd.syntax(7) "Quoting", systemd.service(5) "Command lines"), and a line break in any
value is refused, so no value can add a line (a directive) of its own.

>>> exec_line(["/opt/ew/bin/edgewise", "run", "classify", "--source", "/data/my video.mp4", "50%"])
'/opt/ew/bin/edgewise run classify --source "/data/my video.mp4" 50%%'
>>> environment_line("EDGEWISE_TRUSTED_KEYS", "/home/pi/edge wise/current/trusted-keys")
'Environment="EDGEWISE_TRUSTED_KEYS=/home/pi/edge wise/current/trusted-keys"'
"""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from .remote import Remote, base_expr, last_line

if TYPE_CHECKING:
    from .deploy import DeployConfig

__all__ = ["unit_name", "render_unit", "Service", "exec_word", "exec_line", "environment_line",
           "unit_value", "unit_path", "unit_install_script", "restart_script", "health_script"]

# A word systemd reads as itself, unquoted ('%' and '$' are escaped separately).
_PLAIN = re.compile(r"[A-Za-z0-9_@%+=:,./$-]+")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _refuse_control(value: str, what: str) -> None:
    """A line break (or another control character) would end the directive and start a new one."""
    bad = next((c for c in value if ord(c) < 32 or ord(c) == 127), None)
    if bad is not None:
        raise ValueError(f"{what} {value!r}: control character {bad!r} (e.g. a line break) cannot go "
                         "into a systemd unit")


def _quoted(value: str) -> str:
    """``value`` in double quotes with the C-style escapes systemd undoes (backslash, quote)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def exec_word(word: str, program: bool = False) -> str:
    """One argument of ``ExecStart=`` as systemd will hand it to the program, unchanged.

    ``%`` becomes ``%%`` (specifiers), ``$`` becomes ``$$`` in arguments (variable expansion;
    systemd does not expand the program path, so there ``$`` stays as it is), a word with
    whitespace, quotes or backslashes goes in double quotes with its backslashes and double
    quotes backslash-escaped, a lone ``;`` (the old command separator) is backslash-escaped,
    and line breaks are refused.
    """
    _refuse_control(word, "ExecStart argument")
    w = word.replace("%", "%%")
    if not program:
        w = w.replace("$", "$$")
    if w == ";":
        return "\\;"
    return w if _PLAIN.fullmatch(w) else _quoted(w)


def exec_line(argv: Sequence[str]) -> str:
    """The value of ``ExecStart=`` for ``argv`` (absolute program path first)."""
    if not argv or not argv[0].startswith("/"):
        raise ValueError(f"ExecStart needs an absolute program path, got {argv[:1]!r}")
    return " ".join([exec_word(argv[0], program=True), *(exec_word(w) for w in argv[1:])])


def environment_line(name: str, value: str) -> str:
    """``Environment="NAME=value"``: quoted as one assignment, ``%`` doubled, ``$`` left as it is
    (systemd does not expand variables in ``Environment=``), line breaks refused."""
    if not _ENV_NAME.fullmatch(name):
        raise ValueError(f"environment variable name {name!r}: letters, digits and '_' only")
    _refuse_control(value, f"Environment {name}")
    return "Environment=" + _quoted(f"{name}={value}".replace("%", "%%"))


def unit_value(value: str, what: str) -> str:
    """A path or name on a directive that takes the rest of the line as it is (``WorkingDirectory=``,
    ``User=``): specifiers escaped, line breaks refused."""
    _refuse_control(value, what)
    return value.replace("%", "%%")


def unit_name(app: str) -> str:
    return f"edgewise-{app}.service"


def render_unit(app: str, base: str, run_args: str | Sequence[str], *, user: str | None, scope: str,
                env: Mapping[str, str] | None = None) -> str:
    """The systemd unit: restarts on failure, stops with SIGTERM (the runner's graceful stop).

    ``run_args``: the arguments of ``edgewise run APP`` (a string is split as a shell would);
    ``env``: extra ``Environment=`` lines (the trusted keys a deploy installed).
    """
    if isinstance(run_args, str):
        try:
            run_args = shlex.split(run_args)
        except ValueError as e:
            raise ValueError(f"--run-args: {e}") from None
    exec_start = exec_line([f"{base}/venv/bin/edgewise", "run", app, "--bundle", f"{base}/current/bundle",
                            *run_args])
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
        lines.append(f"User={unit_value(user, 'User')}")
    lines += [
        f"WorkingDirectory={unit_value(base, 'WorkingDirectory')}",
        "Environment=PYTHONUNBUFFERED=1",
        *(environment_line(k, v) for k, v in (env or {}).items()),
        f"EnvironmentFile=-{unit_value(base, 'EnvironmentFile')}/edgewise.env",
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


def unit_path(cfg: DeployConfig) -> str:
    """Where the unit file goes on the device, as a shell word (``~`` expanded there)."""
    d = cfg.unit_dir or ("/etc/systemd/system" if cfg.systemd == "system" else "~/.config/systemd/user")
    return base_expr(d) + "/" + unit_name(cfg.app)


def unit_install_script(cfg: DeployConfig) -> str:
    """Put the unit text read from stdin in place (never through a shell), reload systemd, enable it."""
    path = unit_path(cfg)
    sudo = "sudo -n " if cfg.systemd == "system" and not cfg.unit_dir else ""
    sc = cfg.systemctl_cmd()
    return (f'{sudo}mkdir -p "$(dirname {path})"\n{sudo}tee {path} >/dev/null\n'
            f"{sc} daemon-reload\n{sc} enable {unit_name(cfg.app)}")


def restart_script(cfg: DeployConfig) -> str:
    return f"{cfg.systemctl_cmd()} restart {unit_name(cfg.app)}"


def health_script(cfg: DeployConfig) -> str:
    """The health check in one round trip: the unit must report ``active`` at every poll, one a
    second, for at least ``health_wait`` seconds (whole seconds, rounded up). Prints ``UNIT active
    for Ns (K checks)``; otherwise ``UNIT is STATE (last status line)`` on stderr and exit 1."""
    sc, unit = cfg.systemctl_cmd(), unit_name(cfg.app)
    wait = max(0.0, float(cfg.health_wait))
    return ("n=0\n"
            "while :; do\n"
            f"  state=$({sc} is-active {unit} || true); n=$((n+1))\n"
            '  if [ "$state" != active ]; then\n'
            f"    tail=$({sc} status --no-pager -n 3 {unit} 2>&1 | sed '/^[[:space:]]*$/d' | tail -n 1"
            " || true)\n"
            f'    echo "{unit} is ${{state:-unknown}} (${{tail:-(no output)}})" >&2; exit 1\n'
            "  fi\n"
            f'  [ "$n" -gt {math.ceil(wait)} ] && break\n'
            "  sleep 1\n"
            "done\n"
            f'echo "{unit} active for {wait:g}s ($n checks)"')


class Service:
    """The application's unit on one device: write, restart, health check."""

    def __init__(self, remote: Remote, cfg: DeployConfig, base: str, user: str) -> None:
        self.r, self.cfg, self.base, self.user = remote, cfg, base, user
        self.unit = unit_name(cfg.app)

    def unit_path(self) -> str:
        return unit_path(self.cfg)

    def exists(self) -> bool:
        return self.r.run("read unit", f"test -f {self.unit_path()} && echo yes || true").strip() == "yes"

    def read(self) -> str:
        """The unit file's text on the device ('' when there is none)."""
        return self.r.run("read unit", f"cat {self.unit_path()} 2>/dev/null || true")

    def write(self, keys_dir: str | None = None) -> None:
        """Write the unit (``keys_dir``: the trusted keys its loaders must check signatures
        against), reload systemd and enable it. The text goes through stdin, never a shell."""
        from ..signing import ENV_TRUSTED_KEYS

        c = self.cfg
        env = {ENV_TRUSTED_KEYS: keys_dir} if keys_dir else {}
        self.install(render_unit(c.app, self.base, c.run_argv(), user=self.user, scope=c.systemd, env=env))

    def install(self, text: str) -> None:
        """Put ``text`` in place as the unit, reload systemd and enable the unit."""
        self.r.run("write unit", unit_install_script(self.cfg), data=text.encode())

    def restart(self) -> None:
        self.r.run("restart service", restart_script(self.cfg))

    def health(self) -> str:
        """The unit must report ``active`` at every poll for ``health_wait`` seconds."""
        return last_line(self.r.run("health check", health_script(self.cfg)))

    def activate(self, rewrite: bool, keys_dir: str | None = None) -> str:
        """(Re)write the unit when asked, restart it, and wait out the health check."""
        if self.cfg.systemd == "off":
            return "no service (--no-systemd)"
        if rewrite:
            self.write(keys_dir)
        self.restart()
        return self.health()
