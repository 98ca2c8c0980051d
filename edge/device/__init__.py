"""The Raspberry Pi as a target: ``edgewise deploy`` (over SSH) and ``edgewise verify`` (emulated).

deploy: ``remote`` (ssh), ``wheel`` (the one edgewise wheel builder), ``venv`` (the install
recipe pinned to the device's numpy), ``release`` (upload, checksums, the ``current`` switch),
``systemd`` (the service and its health check), ``smoke`` (runs on the device), ``deploy`` (CLI).

verify: ``emulator`` (QEMU, binfmt, chroot, mounts), ``rootfs`` (the cached arm64 root),
``inside_root`` (runs in it), ``kernels`` (XNNPACK, SDOT, HWCAP), ``compare`` (arm64 vs this
machine), ``app_check`` (the pipeline end to end), ``report``, ``verify`` (CLI).

Submodules are imported on use: ``edgewise run`` on a Pi never loads them.
"""
