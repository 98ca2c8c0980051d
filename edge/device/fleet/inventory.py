"""Ansible inventories (INI or YAML) as deploy's hosts, so ``edgewise deploy --inventory`` and
``edgewise fleet`` read the same file.

With ansible-core installed, Ansible's own inventory loader reads it (groups, ranges, group and
host variables, ``host_vars/``); without it a small reader takes the hosts and their
``ansible_host``, ``ansible_port``, ``ansible_user`` and ``ansible_ssh_private_key_file`` from
an INI or YAML file.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..remote import Host, validate_host

__all__ = ["is_ansible_inventory", "read_ansible_inventory", "host_from_vars"]

_SUFFIXES = (".ini", ".yml", ".yaml", ".cfg")


def is_ansible_inventory(path: str | Path) -> bool:
    """An Ansible inventory rather than deploy's one-host-per-line list: a ``.ini``/``.yml``/
    ``.yaml`` file, a ``[group]`` header, or ``ansible_*`` host variables."""
    p = Path(path)
    if p.suffix.lower() in _SUFFIXES or p.is_dir():
        return True
    text = p.read_text(errors="replace")
    return any(ln.strip().startswith("[") or "ansible_" in ln or ln.strip().endswith(":")
               for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#"))


def host_from_vars(name: str, v: Mapping[str, Any], port: int | None = None,
                   identity: str | None = None) -> Host:
    """One inventory host as deploy's ``Host`` (validated as a ``--host`` is)."""
    p = v.get("ansible_port", v.get("ansible_ssh_port"))
    user = v.get("ansible_user", v.get("ansible_ssh_user"))
    key = v.get("ansible_ssh_private_key_file", identity)
    try:
        h = Host(str(v.get("ansible_host", v.get("ansible_ssh_host", name))), str(user) if user else None,
                 int(p) if p is not None else port, str(key) if key else None)
    except ValueError:
        raise ValueError(f"inventory host {name}: ansible_port {p!r} is not a number") from None
    validate_host(h)
    return h


def _with_ansible(path: str) -> list[Host] | None:
    try:
        from ansible.inventory.manager import InventoryManager
        from ansible.parsing.dataloader import DataLoader
        from ansible.vars.manager import VariableManager
    except ImportError:
        return None
    loader = DataLoader()
    inv = InventoryManager(loader=loader, sources=[path])
    vm = VariableManager(loader=loader, inventory=inv)
    return [host_from_vars(h.name, vm.get_vars(host=h)) for h in inv.get_hosts()]


def _ini(text: str, path: str) -> dict[str, dict[str, Any]]:
    hosts: dict[str, dict[str, Any]] = {}
    section = "all"
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        if ":" in section:  # [g:vars] and [g:children] carry no hosts
            continue
        try:
            name, *pairs = shlex.split(line)
        except ValueError as e:
            raise ValueError(f"{path}:{n}: {e}") from None
        v = hosts.setdefault(name, {})
        for pair in pairs:
            k, sep, val = pair.partition("=")
            if not sep:
                raise ValueError(f"{path}:{n}: expected key=value, got {pair!r}")
            v[k] = val
    return hosts


def _yaml(data: Any, out: dict[str, dict[str, Any]]) -> None:
    if not isinstance(data, Mapping):
        return
    for group in data.values():
        if not isinstance(group, Mapping):
            continue
        for name, v in (group.get("hosts") or {}).items():
            out.setdefault(str(name), {}).update(v or {})
        _yaml(group.get("children") or {}, out)


def read_ansible_inventory(path: str | Path, port: int | None = None,
                           identity: str | None = None) -> list[Host]:
    """The hosts of an Ansible inventory, each with its connection variables."""
    path = str(path)
    hosts = _with_ansible(path)
    if hosts is None:
        text = Path(path).read_text()
        if Path(path).suffix.lower() in (".yml", ".yaml"):
            try:
                import yaml
            except ImportError:
                raise ValueError(f"{path}: a YAML inventory needs ansible-core or PyYAML "
                                 "(pip install 'edgewise[ansible]')") from None
            found: dict[str, dict[str, Any]] = {}
            _yaml(yaml.safe_load(text), found)
        else:
            found = _ini(text, path)
        hosts = [host_from_vars(name, v, port, identity) for name, v in found.items()]
    else:
        hosts = [Host(h.host, h.user, h.port or port, h.identity or identity) for h in hosts]
    if not hosts:
        raise ValueError(f"{path}: no hosts in inventory")
    return hosts
