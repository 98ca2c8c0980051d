"""The pieces of ``edgewise image`` that need no disk image: MBR parsing, flavor detection, the
Wi-Fi key, the provisioning files' text and the command line's checks."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from edgewise.edge.device.image.cloudinit import meta_data, network_config, user_data
from edgewise.edge.device.image.config import ImageConfig, WifiConfig, read_ssh_keys, wpa_psk
from edgewise.edge.device.image.firstrun import cmdline_with_hook, firstrun_sh
from edgewise.edge.device.image.flavor import detect_flavor
from edgewise.edge.device.image.mbr import read_partitions

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ me@ws"


def _mbr(path: Path, entries: list[tuple[int, int, int]], size: int) -> Path:
    mbr = bytearray(512)
    for i, (ptype, start, sectors) in enumerate(entries):
        struct.pack_into("<B3xB3xII", mbr, 446 + 16 * i, 0, ptype, start, sectors)
    mbr[510:512] = b"\x55\xaa"
    with path.open("wb") as f:
        f.write(mbr)
        f.truncate(size)
    return path


def test_partitions_come_from_the_mbr_with_byte_offsets(tmp_path):
    img = _mbr(tmp_path / "a.img", [(0x0C, 8192, 1048576), (0x83, 1056768, 4096)], 1060864 * 512)
    boot, root = read_partitions(img)
    assert (boot.number, boot.is_fat, boot.offset, boot.size) == (1, True, 8192 * 512, 1048576 * 512)
    assert (root.number, root.is_fat, root.offset) == (2, False, 1056768 * 512)


def test_gpt_a_missing_table_and_a_truncated_image_are_refused_in_one_line(tmp_path):
    with pytest.raises(ValueError, match="GPT disk image"):
        read_partitions(_mbr(tmp_path / "g.img", [(0xEE, 1, 100)], 512 * 200))
    (tmp_path / "z.img").write_bytes(b"\0" * 4096)
    with pytest.raises(ValueError, match="no MBR partition table"):
        read_partitions(tmp_path / "z.img")
    with pytest.raises(ValueError, match="past the end of the file"):
        read_partitions(_mbr(tmp_path / "t.img", [(0x0C, 2048, 100000)], 512 * 4096))


class FakeFat:
    def __init__(self, files: dict[str, str]) -> None:
        self.files = files

    def names(self, folder: str = "") -> list[str]:
        return list(self.files)

    def read(self, name: str) -> bytes:
        return self.files[name].encode()


def test_the_flavor_follows_the_boot_partition_and_anything_else_is_refused():
    ref = "Raspberry Pi reference {}\nGenerated using pi-gen\n"
    trixie, why = detect_flavor(FakeFat({"issue.txt": ref.format("2025-10-01"), "cmdline.txt": ""}))
    assert (trixie.name, trixie.init, trixie.python) == ("trixie", "cloud-init", "3.13")
    assert "2025-10-01" in why
    ci, why = detect_flavor(FakeFat({"user-data": "", "meta-data": "", "cmdline.txt": ""}))
    assert ci.init == "cloud-init" and "user-data" in why
    bw, _ = detect_flavor(FakeFat({"issue.txt": ref.format("2024-11-19"), "cmdline.txt": ""}))
    assert (bw.name, bw.init, bw.python, bw.numpy) == ("bookworm", "firstrun", "3.11", "1.24.2")
    with pytest.raises(ValueError, match="no issue.txt"):
        detect_flavor(FakeFat({"cmdline.txt": ""}))
    with pytest.raises(ValueError, match="no cmdline.txt"):
        detect_flavor(FakeFat({"issue.txt": ref.format("2024-11-19")}))


def test_the_wifi_key_is_the_wpa_hash_of_the_passphrase():
    # IEEE 802.11i-2004 annex H.4 test vector
    assert wpa_psk("IEEE", "password") == "f42c6fc52df0ebef9ebb4b90b38a5f902e83fe1b135a70e23aed762e9710a12e"
    assert wpa_psk("x", "AB" * 32) == "ab" * 32  # already a key
    with pytest.raises(ValueError, match="8 to 63"):
        wpa_psk("x", "short")


def test_the_passphrase_file_is_read_and_never_shown(tmp_path):
    (tmp_path / "psk").write_text("password\n")
    w = WifiConfig.from_files("IEEE", tmp_path / "psk", "DE")
    assert w.psk_hash.startswith("f42c6fc5") and "f42c6fc5" not in repr(w) and "password" not in repr(w)
    with pytest.raises(ValueError, match="--wifi-country"):
        WifiConfig.from_files("IEEE", tmp_path / "psk", None)
    with pytest.raises(ValueError, match="--wifi-psk-file .*missing"):
        WifiConfig.from_files("IEEE", tmp_path / "missing", "DE")


def test_ssh_keys_must_be_public_keys(tmp_path):
    (tmp_path / "k.pub").write_text(KEY + "\n")
    (tmp_path / "k").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    (tmp_path / "x").write_text("hello\n")
    assert read_ssh_keys([str(tmp_path / "k.pub")]) == [KEY]
    with pytest.raises(ValueError, match="private key"):
        read_ssh_keys([str(tmp_path / "k")])
    with pytest.raises(ValueError, match="not an OpenSSH public key"):
        read_ssh_keys([str(tmp_path / "x")])


def test_hostname_user_and_run_args_are_checked():
    for bad in ("-x", "a b", "a;reboot", "x" * 64):
        with pytest.raises(ValueError, match="--hostname"):
            ImageConfig(app="inspect", hostname=bad).check()
    with pytest.raises(ValueError, match="--user"):
        ImageConfig(app="inspect", user="Root;x").check()
    assert ImageConfig.split_run_args(None, "inspect", "b.local")[-2:] == ["--mqtt", "b.local"]
    assert ImageConfig.split_run_args("--source adxl345 --device-id 'press 7'", "vibration", None) == [
        "--source", "adxl345", "--device-id", "press 7"]
    with pytest.raises(ValueError, match="give its source"):
        ImageConfig.split_run_args(None, "vibration", None)
    with pytest.raises(ValueError, match="twice"):
        ImageConfig.split_run_args("--source x --mqtt a", "vibration", "b")


def test_cloud_init_values_cannot_add_keys_of_their_own():
    yaml = pytest.importorskip("yaml")
    ssid = 'evil"\n  injected: true\n#'
    cfg = ImageConfig(app="inspect", hostname="cam-1", user="op", ssh_keys=[KEY + ' "quoted"'],
                      wifi=WifiConfig(ssid, "ab" * 32, "DE"))
    ud = yaml.safe_load(user_data(cfg, "/boot/firmware/edgewise/firstboot.sh"))
    assert set(ud) == {"hostname", "manage_etc_hosts", "users", "ssh_pwauth", "runcmd"}
    assert ud["users"][0]["ssh_authorized_keys"] == [KEY + ' "quoted"']
    assert ud["runcmd"][-1] == ["sh", "/boot/firmware/edgewise/firstboot.sh"]
    net = yaml.safe_load(network_config(cfg))["network"]
    assert list(net["wifis"]["wlan0"]["access-points"]) == [ssid]
    assert "injected" not in net["wifis"]["wlan0"]
    assert yaml.safe_load(meta_data("edgewise-x")) == {"instance-id": "edgewise-x"}
    assert network_config(ImageConfig(app="inspect")) is None  # the image's own (Ethernet DHCP) stays


def test_the_cmdline_hook_is_added_once_and_firstrun_quotes_every_value():
    line = "console=tty1 root=PARTUUID=1-02 rootwait\n"
    once = cmdline_with_hook(line, "/boot/firmware")
    assert cmdline_with_hook(once, "/boot/firmware") == once
    assert once.count("systemd.run=") == 1 and once.endswith("kernel-command-line.target\n")
    cfg = ImageConfig(app="inspect", hostname="cam-1", user="op", ssh_keys=[KEY],
                      wifi=WifiConfig("it's $(reboot)", "ab" * 32, "DE"))
    text = firstrun_sh(cfg, "/boot/firmware", "/boot/firmware/edgewise/firstboot.sh")
    assert "set_wlan 'it'\"'\"'s $(reboot)' " + "ab" * 32 + " DE" in text
    assert text.rstrip().endswith("exit 0") and "rm -f /boot/firmware/firstrun.sh" in text
