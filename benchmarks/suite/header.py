"""What a suite result was measured on: CPU, cores, governor, throttling, library versions, projection.

A latency figure means nothing without the machine and its state: a Pi whose clock was capped
by heat, or a ``powersave`` governor, runs the same model slower. Everything is read where it
is readable and said to be unknown where it is not (a container has no cpufreq; only a Pi has
``vcgencmd``). The projected Pi figures of ``edgewise project --json`` are carried over as
they are, labelled as projections, beside the measured host figures.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from ..host import host_info

__all__ = ["suite_header", "governors", "throttling", "library_versions", "projection_summary"]

LIBRARIES = ("numpy", "opencv-contrib-python-headless", "ai-edge-litert", "onnxruntime", "tensorflow",
             "scikit-learn", "edgewise")
# vcgencmd get_throttled bits (Raspberry Pi firmware documentation)
THROTTLE_BITS = {0: "under-voltage now", 1: "frequency capped now", 2: "throttled now",
                 3: "soft temperature limit now", 16: "under-voltage occurred", 17: "frequency cap occurred",
                 18: "throttling occurred", 19: "soft temperature limit occurred"}


def governors(root: Path = Path("/sys/devices/system/cpu")) -> str:
    """The cpufreq governors in use (``performance``, ``ondemand``...), or why they are unknown."""
    found = sorted({p.read_text().strip() for p in root.glob("cpu[0-9]*/cpufreq/scaling_governor")
                    if p.is_file()})
    return ", ".join(found) if found else "not readable (no cpufreq in /sys)"


def throttling() -> str:
    """``vcgencmd get_throttled`` decoded on a Pi; elsewhere says it is not readable."""
    exe = shutil.which("vcgencmd")
    if exe is None:
        return "not readable (no vcgencmd: not a Raspberry Pi)"
    try:
        out = subprocess.run([exe, "get_throttled"], capture_output=True, text=True, timeout=5,
                             check=False).stdout.strip()
        value = int(out.split("=", 1)[1], 16)
    except (OSError, subprocess.SubprocessError, IndexError, ValueError):
        return "not readable (vcgencmd get_throttled failed)"
    flags = [text for bit, text in THROTTLE_BITS.items() if value >> bit & 1]
    return f"{value:#x}" + (f" ({', '.join(flags)})" if flags else " (never throttled since boot)")


def library_versions() -> dict[str, str]:
    """Installed versions from package metadata (nothing is imported: TensorFlow stays unloaded)."""
    out = {}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def projection_summary(path: str | Path) -> dict[str, Any]:
    """The per-variant and int8/float32 figures of one ``edgewise project --json`` file."""
    d = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(d, dict) or "variants" not in d or "target" not in d:
        raise ValueError(f"{path}: not an 'edgewise project --json' result (no target/variants)")
    return {
        "file": str(path),
        "target": d["target"],
        "source": d.get("source"),
        "label": d.get("label", "projected, compute-bound lower bound"),
        "band": d.get("band"),
        "variants": [{"name": v["name"], "ms": v["ms"], "ms_band": v.get("ms_band"),
                      "calibrated_ms": v.get("calibrated_ms"), "threads": v.get("threads", 1)}
                     for v in d["variants"]],
        "ratios": [{"backend": r["backend"], "ratio": r["ratio"], "band": r.get("band")}
                   for r in d.get("ratios", [])],
        "pipelines": [{"variant": p["variant"], "ms": p["ms"], "ms_band": p.get("ms_band")}
                      for p in d.get("pipelines", [])],
        "pipeline_ratios": [{"backend": r["backend"], "ratio": r["ratio"], "band": r.get("band")}
                            for r in d.get("pipeline_ratios", [])],
    }


def suite_header(projections: list[str] | None = None) -> dict[str, Any]:
    """Host, its state and the libraries, plus any projected Pi figures given."""
    h = host_info()
    return {
        **h,
        "governor": governors(),
        "throttling": throttling(),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "libraries": library_versions(),
        "projections": [projection_summary(p) for p in projections or []],
    }
