"""The cloud-init files Raspberry Pi OS Trixie reads from its boot partition at first boot.

``user-data`` (hostname, the user with its SSH keys, SSH on, and the first-boot script in
``runcmd``), ``network-config`` (Wi-Fi, netplan v2 for NetworkManager, with the WPA key hash,
never the passphrase) and ``meta-data`` (the instance id: a new id is what makes cloud-init
provision again). Every scalar is written as a JSON string, which YAML reads as the same
double-quoted string, so no value can add a key of its own.
"""

from __future__ import annotations

import json

from .config import ImageConfig

__all__ = ["user_data", "network_config", "meta_data", "GROUPS"]

# The groups Raspberry Pi Imager gives the first user (camera, GPIO, I2C, serial ...).
GROUPS = "users,adm,dialout,audio,netdev,video,plugdev,input,gpio,spi,i2c,render,sudo"


def _q(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def user_data(cfg: ImageConfig, firstboot: str) -> str:
    """``#cloud-config`` for the card; ``firstboot`` is the first-boot script's path on the Pi."""
    lines = [
        "#cloud-config",
        "# written by edgewise image",
        f"hostname: {_q(cfg.hostname)}",
        "manage_etc_hosts: true",
        "users:",
        f"  - name: {_q(cfg.user)}",
        f"    groups: {_q(GROUPS)}",
        "    shell: /bin/bash",
        "    lock_passwd: true",
        '    sudo: "ALL=(ALL) NOPASSWD:ALL"',
    ]
    if cfg.ssh_keys:
        lines.append("    ssh_authorized_keys:")
        lines += [f"      - {_q(k)}" for k in cfg.ssh_keys]
    lines += ["ssh_pwauth: false", "runcmd:"]
    if cfg.ssh_keys:
        lines.append('  - ["systemctl", "enable", "--now", "ssh"]')
    lines.append(f'  - ["sh", {_q(firstboot)}]')
    return "\n".join(lines) + "\n"


def network_config(cfg: ImageConfig) -> str | None:
    """netplan v2 Wi-Fi for NetworkManager, or None without ``--wifi-ssid`` (the image's own
    network-config, DHCP on Ethernet, stays)."""
    w = cfg.wifi
    if w is None:
        return None
    return "\n".join([
        "# written by edgewise image",
        "network:",
        "  version: 2",
        "  renderer: NetworkManager",
        "  wifis:",
        "    wlan0:",
        "      dhcp4: true",
        "      optional: true",
        f"      regulatory-domain: {_q(w.country)}",
        "      access-points:",
        f"        {_q(w.ssid)}:",
        f"          password: {_q(w.psk_hash)}",
        "",
    ])


def meta_data(instance_id: str) -> str:
    return f"instance-id: {_q(instance_id)}\n"
