"""``edgewise image``: a Raspberry Pi OS image -> a card that boots into the edgewise service.

The base image is copied (``.img.xz`` decompressed) to a partial output, the boot partition
is found in the MBR and written with mtools (no mount, no root), the output is renamed into
place only when complete, and with ``--out card.img.xz`` compressed; ``OUT.sha256`` always
lies beside it. The Wi-Fi passphrase comes from a file and only its WPA hash reaches the card;
no line this command prints holds either.
"""

from __future__ import annotations

import hashlib
import lzma
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from .cloudinit import meta_data, network_config, user_data
from .config import APPS, ImageConfig, WifiConfig, read_ssh_keys
from .fat import FatError, FatImage, require_mtools
from .firstrun import cmdline_with_hook, firstrun_sh
from .flavor import Flavor, detect_flavor
from .mbr import read_partitions
from .payload import FOLDER, PayloadInfo, build_payload, folder_size

__all__ = ["ImageResult", "build_parser", "image_main", "sha256_line"]

# room the boot partition keeps beside the payload (Imager's files, a kernel update)
FAT_RESERVE = 16 * 1024 * 1024
_CHUNK = 4 * 1024 * 1024


@dataclass
class ImageResult:
    """What ``--json`` reports."""

    out: str
    sha256: str
    flavor: str
    detected_by: str
    init_files: list[str]
    payload: PayloadInfo
    payload_bytes: int
    boot_free_bytes: int
    seconds: float


EPILOG = """\
examples:
  edgewise image --base 2025-10-01-raspios-trixie-arm64-lite.img.xz --bundle inspect.bundle \\
      --app inspect --out card.img.xz --hostname line3-cam --ssh-key ~/.ssh/id_ed25519.pub \\
      --wifi-ssid plant --wifi-psk-file wifi.psk --wifi-country DE --mqtt broker.local
  # offline: dependencies from a wheelhouse made earlier with pip download (see docs/flash.md)
  edgewise image --base raspios.img --bundle vib.bundle --app vibration --out card.img \\
      --run-args "--source adxl345" --wheelhouse wheels/

Write the card with Raspberry Pi Imager ("Use custom"), rpi-imager --cli, or dd; do not add
Imager's own OS customisation: the card already carries it.
"""


def build_parser():  # noqa: ANN201 - cliargs.Parser
    from ...cliargs import Parser, add_json, add_quiet

    p = Parser(prog="edgewise image", epilog=EPILOG,
               description="Make a flashable Raspberry Pi OS card that installs the edgewise runtime, "
               "a bundle and its service at first boot, offline.")
    p.add_argument("--base", required=True, help="official Raspberry Pi OS image (.img or .img.xz), 64-bit")
    p.add_argument("--bundle", required=True, help="bundle directory or .zip")
    p.add_argument("--app", required=True, choices=APPS, help="application the service runs")
    p.add_argument("--out", required=True, help="output card.img, or card.img.xz to compress it")
    p.add_argument("--hostname", default="edgewise", help="the Pi's host name")
    p.add_argument("--user", default="pi", help="the login user the service runs as (password locked: "
                   "log in with --ssh-key)")
    p.add_argument("--ssh-key", action="append", default=[], metavar="PUB",
                   help="OpenSSH public key file allowed to log in (repeatable); enables SSH")
    p.add_argument("--wifi-ssid", help="Wi-Fi network name")
    p.add_argument("--wifi-psk-file", help="file whose first line is the Wi-Fi passphrase (never a flag)")
    p.add_argument("--wifi-country", help="two-letter Wi-Fi regulatory country (needed with --wifi-ssid)")
    p.add_argument("--mqtt", metavar="HOST[:PORT]", help="MQTT broker the service publishes events to")
    p.add_argument("--run-args", help="arguments of 'edgewise run APP' in the service "
                   "(default for camera apps: --source picamera2 --jsonl= --log-every 60)")
    p.add_argument("--wheel", help="the edgewise wheel (default: built from this checkout or installation)")
    p.add_argument("--wheelhouse", help="take the aarch64 dependency wheels from this folder instead of "
                   "pip download (it is still resolved offline for the image's Python)")
    p.add_argument("--no-deps", action="store_true",
                   help="carry only the edgewise wheel (the image already has every dependency)")
    p.add_argument("--extras", default="pi", help="wheel extras installed with the dependencies (default pi)")
    p.add_argument("--numpy", help="numpy version the wheels are pinned to (default: the image's Debian "
                   "numpy: Bookworm 1.24.2, Trixie 2.2.4); 'none' for no pin")
    p.add_argument("--trusted-key", action="append", default=[], metavar="PUB",
                   help="ed25519 public key the device requires bundles to be signed by (as deploy)")
    add_json(p, "the build result")
    add_quiet(p)
    return p


def sha256_line(path: Path) -> str:
    """``HASH  NAME`` as sha256sum prints it (``sha256sum -c NAME.sha256`` checks it)."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return f"{h.hexdigest()}  {path.name}\n"


def _copy_base(base: Path, dest: Path) -> None:
    """The base image into ``dest``, decompressing ``.xz`` on the way."""
    if base.suffix == ".xz":
        try:
            with lzma.open(base) as src, dest.open("wb") as dst:
                shutil.copyfileobj(src, dst, _CHUNK)
        except lzma.LZMAError as e:
            raise ValueError(f"--base {base}: not a valid .xz file ({e})") from None
    else:
        shutil.copyfile(base, dest)


def _compress(img: Path, out: Path) -> None:
    """``img`` -> ``out`` (.xz): the xz tool on all cores when present, else Python's lzma."""
    if shutil.which("xz"):
        with out.open("wb") as f:
            subprocess.run(["xz", "-c", "-T0", "-6", str(img)], stdout=f, check=True)
    else:
        with img.open("rb") as src, lzma.open(out, "wb", preset=6) as dst:
            shutil.copyfileobj(src, dst, _CHUNK)


def _say(msg: str, quiet: bool) -> None:
    if not quiet:
        print(f"edgewise image: {msg}", file=sys.stderr)


def _write_init(fat: FatImage, flavor: Flavor, cfg: ImageConfig, release: str) -> list[str]:
    """The image's own provisioning files, as Raspberry Pi Imager writes them."""
    script = f"{flavor.boot_mount}/{FOLDER}/firstboot.sh"
    if flavor.init == "cloud-init":
        files = {"user-data": user_data(cfg, script), "meta-data": meta_data(f"edgewise-{release}")}
        net = network_config(cfg)
        if net is not None:
            files["network-config"] = net
    else:
        cmdline = fat.read("cmdline.txt").decode()
        files = {"firstrun.sh": firstrun_sh(cfg, flavor.boot_mount, script),
                 "cmdline.txt": cmdline_with_hook(cmdline, flavor.boot_mount)}
    for name, text in files.items():
        fat.write(name, text.encode())
    return sorted(files)


def _config(a) -> ImageConfig:  # noqa: ANN001 - argparse namespace
    if bool(a.wifi_ssid) != bool(a.wifi_psk_file):
        raise ValueError("--wifi-ssid and --wifi-psk-file go together")
    wifi = WifiConfig.from_files(a.wifi_ssid, a.wifi_psk_file, a.wifi_country) if a.wifi_ssid else None
    cfg = ImageConfig(app=a.app, hostname=a.hostname, user=a.user,
                      run_args=ImageConfig.split_run_args(a.run_args, a.app, a.mqtt),
                      ssh_keys=read_ssh_keys(a.ssh_key), wifi=wifi)
    cfg.check()
    return cfg


def image_main(argv: list[str]) -> int:
    from ...cliargs import emit_json
    from ..venv import venv_recipe
    from ..wheel import WheelError, build_wheel

    a = build_parser().parse_args(argv)
    t0 = time.monotonic()
    base, out = Path(a.base), Path(a.out)
    if not base.is_file():
        raise ValueError(f"--base {base}: no such file")
    if not Path(a.bundle).exists():
        raise ValueError(f"--bundle {a.bundle}: no such bundle")
    if a.no_deps and a.wheelhouse:
        raise ValueError("--no-deps and --wheelhouse contradict each other")
    if a.wheelhouse and not Path(a.wheelhouse).is_dir():
        raise ValueError(f"--wheelhouse {a.wheelhouse}: no such folder")
    venv_recipe("v", "w", [], extras=a.extras)  # --extras: names separated by commas
    cfg = _config(a)
    if not cfg.ssh_keys:
        _say("no --ssh-key: the service runs, but nobody can log in over SSH", a.quiet)
    try:
        require_mtools()
    except FatError as e:
        raise ValueError(str(e)) from None
    compress = out.suffix == ".xz"
    img = out.with_suffix("") if compress else out
    if img.suffix != ".img":
        raise ValueError(f"--out {out}: name it .img or .img.xz")
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = img.with_name(img.name + ".partial")
    try:
        _say(f"copying {base.name} ...", a.quiet)
        _copy_base(base, partial)
        parts = read_partitions(partial)
        boot = next((p for p in parts if p.is_fat), None)
        if boot is None:
            raise ValueError(f"--base {base}: no FAT boot partition in its partition table")
        fat = FatImage(partial, boot)
        if fat.exists(FOLDER):  # its old wheels and release would stay beside the new ones
            raise ValueError(f"--base {base}: already carries an edgewise payload (/{FOLDER} on the boot "
                             "partition); start from the official image")
        flavor, why = detect_flavor(fat)
        _say(f"Raspberry Pi OS {flavor.name} ({why}); first boot by {flavor.init}, Python {flavor.python}",
             a.quiet)
        pin = None if (a.numpy or "").lower() == "none" else f"numpy=={a.numpy or flavor.numpy}"
        with tempfile.TemporaryDirectory(prefix="edgewise-image-") as tmp:
            try:
                wheel = Path(a.wheel) if a.wheel else build_wheel(Path(tmp) / "wheel")
            except WheelError as e:
                raise ValueError(str(e)) from None
            if not wheel.is_file():
                raise ValueError(f"--wheel {wheel}: no such file")
            payload = Path(tmp) / "payload" / FOLDER
            if not a.no_deps and not a.wheelhouse:
                _say(f"pip download: aarch64 wheels for CPython {flavor.python} ({pin or 'no numpy pin'})",
                     a.quiet)
            info = build_payload(payload, bundle=a.bundle, wheel=wheel, cfg=cfg, flavor=flavor, numpy_pin=pin,
                                 extras=a.extras, wheelhouse=Path(a.wheelhouse) if a.wheelhouse else None,
                                 no_deps=a.no_deps, trusted_keys=a.trusted_key)
            size, free = folder_size(payload), fat.free_bytes()
            if size + FAT_RESERVE > free:
                raise ValueError(f"the payload ({size / 1e6:.0f} MB) does not fit the boot partition "
                                 f"({free / 1e6:.0f} MB free, {FAT_RESERVE // 2**20} MiB kept free)")
            _say(f"payload {size / 1e6:.1f} MB ({len(info.wheels)} dependency wheels, release "
                 f"{info.release}) -> boot partition /{FOLDER} ({free / 1e6:.0f} MB free)", a.quiet)
            fat.put_tree(payload, FOLDER)
        files = _write_init(fat, flavor, cfg, info.release)
        _say(f"wrote {', '.join(files)}" + (" (Wi-Fi: the WPA key hash, not the passphrase)"
                                           if cfg.wifi else ""), a.quiet)
        partial.replace(img)
        final = img
        if compress:
            _say(f"compressing to {out.name} ...", a.quiet)
            _compress(img, out.with_name(out.name + ".partial"))
            out.with_name(out.name + ".partial").replace(out)
            img.unlink()
            final = out
        line = sha256_line(final)
        final.with_name(final.name + ".sha256").write_text(line)
    except (FatError, OSError, subprocess.CalledProcessError) as e:
        raise ValueError(str(e)) from None
    finally:
        partial.unlink(missing_ok=True)
    res = ImageResult(out=str(final), sha256=line.split()[0], flavor=flavor.name, detected_by=why,
                      init_files=files, payload=info, payload_bytes=size, boot_free_bytes=free,
                      seconds=round(time.monotonic() - t0, 1))
    if not emit_json(asdict(res), a.json):
        print(f"{final}  ({final.stat().st_size / 1e6:.1f} MB, sha256 {res.sha256[:16]}..., "
              f"{res.seconds:.0f}s): {flavor.name} card, {a.app} service from release {info.release}")
    return 0

