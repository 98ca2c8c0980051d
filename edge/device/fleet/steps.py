"""The steps of a deploy as shell text, for the fleet playbook's filter plugin.

Each function here only picks the arguments out of the playbook's settings and calls the
function ``edgewise deploy`` itself runs on a device (``release.py``, ``systemd.py``,
``venv.py``), so one definition of every step serves both. The playbook passes its settings as
a mapping (``settings``: the role's ``edgewise_*`` variables without the prefix); paths arrive
absolute, as the facts step learnt them on the device, and are quoted here.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from ..deploy import DeployConfig
from ..release import (
    TRUSTED_KEYS_DIR,
    install_script,
    link_script,
    probe_script,
    prune_names,
    prune_script,
    smoke_script,
    switch_script,
    unpack_script,
    verify_script,
)
from ..remote import last_line
from ..systemd import (
    environment_line,
    health_script,
    render_unit,
    restart_script,
    unit_install_script,
    unit_name,
    unit_path,
)
from ..venv import NUMPY_PROBE, numpy_constraint

__all__ = ["config", "step", "facts_script", "parse_facts", "Facts", "plan", "unit_text", "error_line",
           "FILTERS"]

_CONFIG_KEYS = ("app", "remote_dir", "python", "pip_args", "no_deps", "extras", "systemd", "systemctl",
                "unit_dir", "run_args", "variant", "health_wait", "keep", "auto_rollback",
                "drop_trusted_keys")
_BOOL = ("no_deps", "auto_rollback", "drop_trusted_keys")
_OPTIONAL = ("systemctl", "unit_dir", "run_args", "variant")


def _bool(v: Any) -> bool:
    if isinstance(v, str):
        return v.strip().lower() in ("1", "true", "yes", "on")
    return bool(v)


def config(settings: Mapping[str, Any]) -> DeployConfig:
    """The playbook's settings as deploy's ``DeployConfig``, checked as deploy checks them."""
    kw: dict[str, Any] = {}
    for k in _CONFIG_KEYS:
        if k not in settings:
            continue
        v = settings[k]
        if k in _OPTIONAL:
            v = None if v is None or str(v) == "" else str(v)
        elif k in _BOOL:
            v = _bool(v)
        elif k == "health_wait":
            v = float(v)
        elif k == "keep":
            v = int(v)
        else:
            v = str(v)
        kw[k] = v
    if "app" not in kw:
        raise ValueError("edgewise_app is not set (classify, face, inspect or vibration)")
    cfg = DeployConfig(**kw)
    cfg.check()
    return cfg


def facts_script(cfg: DeployConfig) -> str:
    """Deploy's probe (release folder, user, machine), then one ``key=value`` line per fact."""
    q, py = shlex.quote, shlex.quote(cfg.python)
    return probe_script(cfg.remote_dir) + "\n" + "\n".join([
        'fact() { printf "%s=%s\\n" "$1" "$(printf %s "$2" | tr "\\n" " ")"; }',
        "model=$(tr -d '\\000' < /proc/device-tree/model 2>/dev/null || true)",
        '[ -n "$model" ] || model=$(sed -n "s/^Model[[:space:]]*: //p" /proc/cpuinfo 2>/dev/null | head -n1)',
        'fact model "${model:-unknown}"',
        "fact os \"$(. /etc/os-release 2>/dev/null && echo \"${PRETTY_NAME:-$ID}\")\"",
        f'fact python "$({py} --version 2>&1 | tail -n 1 || true)"',
        f"fact numpy \"$({py} -c {q(NUMPY_PROBE)} 2>/dev/null | tail -n 1 || true)\"",
        "fact disk_free_mb \"$(df -Pk . | awk 'NR==2 {print int($4 / 1024)}')\"",
        'fact current "$(readlink current || true)"',
        'fact previous "$(readlink previous || true)"',
        'fact bundle_sha256 "$(sha256sum current/bundle/bundle.json 2>/dev/null | cut -c1-64 || true)"',
        f'fact current_keys "$(test -d current/{TRUSTED_KEYS_DIR} && echo yes || true)"',
        f'fact unit "$({cfg.systemctl_cmd()} is-active {unit_name(cfg.app)} 2>/dev/null || true)"'
        if cfg.systemd != "off" else "fact unit off",
    ])


@dataclass
class Facts:
    """What the facts step learnt about one device (the fleet table's columns)."""

    base: str = ""
    user: str = ""
    machine: str = ""
    model: str = ""
    os: str = ""
    python: str = ""
    numpy: str = ""
    disk_free_mb: str = ""
    current: str = ""
    previous: str = ""
    bundle_sha256: str = ""
    current_keys: str = ""
    unit: str = ""


def parse_facts(stdout: str) -> dict[str, str]:
    """The facts step's output as a mapping (three probe lines, then ``key=value`` lines)."""
    lines = stdout.strip().splitlines()
    f = Facts(*(lines + ["", "", ""])[:3])
    if not f.base.startswith("/"):
        raise ValueError(f"facts: unexpected reply {last_line(stdout)!r}")
    for ln in lines[3:]:
        k, sep, v = ln.partition("=")
        if sep and k in Facts.__dataclass_fields__:
            setattr(f, k, v.strip())
    return asdict(f)


def unit_text(cfg: DeployConfig, base: str, user: str, keys_dir: str | None) -> str:
    """The unit deploy writes (``render_unit``), with the trusted keys' variable when given."""
    from ...signing import ENV_TRUSTED_KEYS

    env = {ENV_TRUSTED_KEYS: keys_dir} if keys_dir else {}
    return render_unit(cfg.app, base, cfg.run_argv(), user=user, scope=cfg.systemd, env=env)


def plan(cfg: DeployConfig, facts: Mapping[str, str], release_keys: bool, old_unit: str) -> dict[str, Any]:
    """Whether the unit is (re)written and with which trusted keys, as deploy decides it: a new
    unit, new ``--run-args`` or a change of trusted keys rewrite it; a device that requires signed
    bundles keeps requiring them unless ``drop_trusted_keys``. ``error``: why not to deploy."""
    from ...signing import ENV_TRUSTED_KEYS

    keys_dir = f"{facts['base']}/current/{TRUSTED_KEYS_DIR}" if release_keys else None
    off = cfg.systemd == "off"
    trust_rewrite, error = False, ""
    if not release_keys and facts.get("current_keys") == "yes":
        if cfg.drop_trusted_keys:
            trust_rewrite = not off
        else:
            error = ("trusted keys: the device requires signed bundles (its current release has "
                     "trusted-keys/); give --trusted-key again, or --no-trusted-keys to drop that")
    elif keys_dir and not off:
        trust_rewrite = environment_line(ENV_TRUSTED_KEYS, keys_dir) not in old_unit
    rewrite = not off and (cfg.run_args is not None or trust_rewrite or not old_unit.strip())
    if rewrite and not error:
        cfg.run_argv()  # unbalanced quotes fail before anything is uploaded
    return {"rewrite": rewrite, "keys_dir": keys_dir or "", "error": error}


def step(settings: Mapping[str, Any], name: str, base: str = "", release: str = "", **kw: Any) -> str:
    """The shell text of step ``name`` (run under ``set -e``, as deploy's ``Remote.run`` runs it)."""
    cfg = config(settings)
    b = shlex.quote(base) if base else ""
    if name == "facts":
        text = facts_script(cfg)
    elif name == "read_unit":
        text = f"cat {unit_path(cfg)} 2>/dev/null || true"
    elif name == "unpack":
        text = unpack_script(b, release, shlex.quote(str(kw["tar"])))
    elif name == "verify":
        text = verify_script(b, release)
    elif name == "install":
        text = install_script(b, release, cfg, numpy_constraint(str(kw.get("numpy", ""))))
    elif name == "smoke":
        text = smoke_script(b, release, cfg.variant, _bool(kw.get("keys", False)))
    elif name == "switch":
        text = switch_script(b, shlex.quote(release))
    elif name == "link":
        text = link_script(b, str(kw["link"]), release or None)
    elif name == "unit_install":
        text = unit_install_script(cfg)
    elif name == "restart":
        text = restart_script(cfg)
    elif name == "health":
        text = health_script(cfg)
    elif name == "list_releases":
        text = f"ls -1 {b}/releases"
    elif name == "prune":
        names = prune_names(str(kw["listing"]), cfg.keep, {release, str(kw.get("protect", ""))})
        text = prune_script(b, names) if names else "true"
    else:
        raise ValueError(f"unknown deploy step {name!r}")
    return "set -e\n" + text


def error_line(task: Any, result: Any) -> str:
    """A failed task as deploy words it: ``STEP: last line of its error``."""
    name = (task or {}).get("name", "step") if isinstance(task, Mapping) else str(task or "step")
    r = result if isinstance(result, Mapping) else {}
    if r.get("unreachable"):
        return f"{name}: unreachable: {last_line(str(r.get('msg', '')))}"
    err = str(r.get("stderr") or "")
    text = err if err.strip() else str(r.get("stdout") or r.get("msg") or "")
    return f"{name}: {last_line(text)}"


FILTERS = {
    "edgewise_step": step,
    "edgewise_facts": parse_facts,
    "edgewise_plan": lambda s, facts, keys, unit: plan(config(s), facts, _bool(keys), str(unit or "")),
    "edgewise_unit": lambda s, base, user, keys_dir: unit_text(config(s), base, user, keys_dir or None),
    "edgewise_error": error_line,
}
