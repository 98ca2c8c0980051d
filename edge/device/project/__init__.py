"""Projected Raspberry Pi 4 / Pi 5 time per inference, before owning a board (``edgewise project``).

``tools`` builds the QEMU block-count plugin (``blockcount.c``) and finds llvm-mc / llvm-mca;
``inside`` runs a model between two markers in the emulated root; ``mca`` prices the counted
blocks on the board's core model; ``figures`` holds the typed results and the calibration;
``run`` ties them together and ``cli`` is the command.
"""
