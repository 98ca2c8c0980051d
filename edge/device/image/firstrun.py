"""Bookworm's first boot as Raspberry Pi Imager does it: ``firstrun.sh`` on the boot partition,
started once by ``systemd.run=`` on ``cmdline.txt``, which it removes before the reboot.

It sets the hostname, the user (password locked: log in with the SSH key), SSH keys and Wi-Fi
(the WPA key hash, never the passphrase) with Raspberry Pi OS's own ``imager_custom`` and
``userconf`` tools, and enables ``edgewise-firstboot.service``: after the reboot, once the
system is up, it runs the first-boot script and disables itself when that succeeded.
"""

from __future__ import annotations

import shlex

from .config import ImageConfig

__all__ = ["firstrun_sh", "cmdline_with_hook", "firstboot_unit", "FIRSTBOOT_UNIT", "hook"]

FIRSTBOOT_UNIT = "edgewise-firstboot.service"
IMAGER = "/usr/lib/raspberrypi-sys-mods/imager_custom"
USERCONF = "/usr/lib/userconf-pi/userconf"


def hook(boot: str) -> str:
    """The kernel command line words that run firstrun.sh once and reboot."""
    return (f"systemd.run={boot}/firstrun.sh systemd.run_success_action=reboot "
            "systemd.unit=kernel-command-line.target")


def cmdline_with_hook(cmdline: str, boot: str) -> str:
    """``cmdline.txt`` (one line) with the firstrun hook at its end, an older hook replaced."""
    words = [w for w in cmdline.split() if not w.startswith(("systemd.run", "systemd.unit="))]
    return " ".join([*words, hook(boot)]) + "\n"


def firstboot_unit(script: str) -> str:
    """The one-shot unit that runs the first-boot script once the system is up."""
    return "\n".join([
        "[Unit]",
        "Description=edgewise first boot: install the runtime and the service from the card",
        "After=local-fs.target",
        f"ConditionPathExists={script}",
        "",
        "[Service]",
        "Type=oneshot",
        f"ExecStart=/bin/sh {script}",
        f"ExecStartPost=/bin/systemctl disable {FIRSTBOOT_UNIT}",
        "StandardOutput=journal",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
        "",
    ])


def firstrun_sh(cfg: ImageConfig, boot: str, script: str) -> str:
    """The ``firstrun.sh`` text; every value goes through ``shlex.quote``."""
    q = shlex.quote
    host, user = q(cfg.hostname), q(cfg.user)
    out = [
        "#!/bin/bash",
        "# written by edgewise image (Raspberry Pi Imager's firstrun.sh mechanism)",
        "set +e",
        f"if [ -f {IMAGER} ]; then",
        f"   {IMAGER} set_hostname {host}",
        "else",
        '   CURRENT_HOSTNAME=$(tr -d " \\t\\n\\r" </etc/hostname)',
        f"   echo {host} >/etc/hostname",
        f'   sed -i "s/127.0.1.1.*$CURRENT_HOSTNAME/127.0.1.1\\t"{host}"/g" /etc/hosts',
        "fi",
        # the first user (uid 1000) becomes --user, keeping its groups and password-less sudo;
        # '*' = no password: log in with the SSH key
        f"if [ -f {USERCONF} ]; then",
        f"   {USERCONF} {user} '*'",
        "fi",
    ]
    if cfg.ssh_keys:
        keys = q("\n".join(cfg.ssh_keys))
        out += [
            f"if [ -f {IMAGER} ]; then",
            f"   {IMAGER} enable_ssh -k {keys}",
            "else",
            f"   HOMEDIR=$(getent passwd {user} | cut -d: -f6)",
            '   install -o 1000 -m 700 -d "$HOMEDIR/.ssh"',
            f'   printf "%s\\n" {keys} >"$HOMEDIR/.ssh/authorized_keys"',
            '   chown 1000: "$HOMEDIR/.ssh/authorized_keys"; chmod 600 "$HOMEDIR/.ssh/authorized_keys"',
            "   systemctl enable ssh",
            "fi",
        ]
    if cfg.wifi is not None:
        w = cfg.wifi
        out += [f"{IMAGER} set_wlan {q(w.ssid)} {q(w.psk_hash)} {q(w.country)}"]
    out += [
        f"cat >/etc/systemd/system/{FIRSTBOOT_UNIT} <<'EDGEWISE_UNIT_EOF'",
        firstboot_unit(script).rstrip("\n"),
        "EDGEWISE_UNIT_EOF",
        f"systemctl enable {FIRSTBOOT_UNIT}",
        f"rm -f {boot}/firstrun.sh",
        f"sed -i 's| systemd.run.*||g' {boot}/cmdline.txt",
        "exit 0",
        "",
    ]
    return "\n".join(out)
