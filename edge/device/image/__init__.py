"""``edgewise image``: a Raspberry Pi OS image turned into a card that boots into the service.

Nothing is mounted and nothing needs root: the MBR partition table is read in Python
(``mbr.py``), the FAT boot partition is read and written with mtools at its byte offset
(``fat.py``). The boot partition tells which first-boot mechanism the image uses
(``flavor.py``): cloud-init files for Trixie (``cloudinit.py``), ``firstrun.sh`` and a
``cmdline.txt`` hook for Bookworm (``firstrun.py``). Both start the same first-boot script
(``firstboot.py``), which installs the payload (``payload.py``: the edgewise wheel, every
dependency as aarch64 wheels, the bundle as a deploy release, the systemd unit) offline.
``build.py`` is the command.
"""
