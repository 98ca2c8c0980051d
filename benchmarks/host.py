"""Which machine a figure was measured on: every benchmark result carries this."""

from __future__ import annotations

import os
import platform
from typing import Any

__all__ = ["host_info", "host_line"]


def host_info() -> dict[str, Any]:
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "machine": platform.machine(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "emulated": bool(os.environ.get("QEMU_CPU")),
    }


def host_line(host: dict[str, Any], threads: Any) -> str:
    """The one-line host header of a bench table (machine, CPU, cores, threads, emulated or not)."""
    return (f"Host: {host['machine']}, {host['cpu']}, {host['cores']} cores; threads {threads}"
            + (" (EMULATED)" if host.get("emulated") else ""))
