"""The recordings ``edgewise bench vibration`` scores: any files, each with its own rate and channel.

A recording is named by a spec, ``GLOB[:fs=HZ][:ch=NAME][:rpm=RPM][:part=PART]``, e.g.
``pump/*.wav``, ``rig/run3.npy:fs=25600``, ``cwru/12k_DE/OR*.mat:fs=12000:ch=DE``. The sampling
rate is never guessed: WAV carries it, every other format needs ``fs=`` (or ``--fs``). Each
recording is brought to the bundle's rate (integer decimation) or refused in one line.
``rpm`` is the shaft speed for the diagnosis (CWRU ``.mat`` files carry it); ``part`` the
known failing part, used only to count right and wrong diagnoses (CWRU names give it).

Without ``--files`` / ``--healthy`` the bundle's own CWRU recordings are read from ``--data``:
the held-out healthy test part and every fault file the bundle was evaluated on.

>>> parse_spec("rig/*.npy:fs=25600:ch=1")
RecordingSpec(pattern='rig/*.npy', fs=25600.0, channel='1', rpm=None, part=None)
"""

from __future__ import annotations

import glob
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgewise.edge.apps.vibration import frame_signal, split_in_time
from edgewise.edge.apps.vibration.diagnosis import PARTS
from edgewise.edge.bundle import Bundle
from edgewise.edge.sources.recordings import Recording, read_recording, to_rate

__all__ = ["RecordingSpec", "parse_spec", "read_spec", "BenchSet", "bench_set", "bundle_set"]

_KEYS = ("fs", "ch", "rpm", "part")


@dataclass(frozen=True)
class RecordingSpec:
    """One ``--files`` / ``--healthy`` value."""

    pattern: str
    fs: float | None = None
    channel: str | None = None
    rpm: float | None = None
    part: str | None = None


def parse_spec(text: str, fs: float | None = None, channel: str | None = None) -> RecordingSpec:
    """``GLOB[:fs=HZ][:ch=NAME][:rpm=RPM][:part=PART]``; ``fs``/``channel``: defaults (--fs, --channel)."""
    parts = text.split(":")
    i = len(parts)
    while i > 1 and "=" in parts[i - 1]:
        i -= 1
    pattern, opts = ":".join(parts[:i]), {}
    for kv in parts[i:]:
        k, _, v = kv.partition("=")
        if k not in _KEYS or not v:
            valid = ", ".join(k + "=" for k in _KEYS)
            raise ValueError(f"'{text}': unknown or empty setting '{kv}' (valid: {valid})")
        opts[k] = v
    try:
        spec = RecordingSpec(
            pattern,
            float(opts["fs"]) if "fs" in opts else fs,
            opts.get("ch", channel),
            float(opts["rpm"]) if "rpm" in opts else None,
            opts.get("part"),
        )
    except ValueError:
        raise ValueError(f"'{text}': fs= and rpm= take numbers") from None
    if spec.part is not None and spec.part not in PARTS:
        raise ValueError(f"'{text}': part must be one of {', '.join(PARTS)}")
    return spec


def _cwru_part(stem: str) -> str | None:
    from edgewise.train.data.cwru import fault_label

    p = fault_label(stem)
    return {"inner_race": "inner_race", "outer_race": "outer_race", "ball": "ball"}.get(p)


def read_spec(spec: RecordingSpec, target_fs: float) -> list[tuple[Recording, float | None, str | None]]:
    """Every file the spec's glob matches, at ``target_fs``, with its shaft speed (Hz) and part."""
    paths = sorted(Path(p) for p in glob.glob(spec.pattern)) or (
        [Path(spec.pattern)] if Path(spec.pattern).is_file() else [])
    if not paths:
        raise ValueError(f"'{spec.pattern}': no recording matches")
    out = []
    for path in paths:
        rpm = spec.rpm
        if path.suffix.lower() == ".mat":
            from edgewise.train.data.cwru import read_cwru_mat

            if spec.fs is None:
                raise ValueError(f"{path.name}: a .mat carries no sampling rate; add :fs=HZ (or --fs)")
            rec = read_cwru_mat(path, fs=spec.fs, channel=spec.channel or "DE")
            rpm = rpm if rpm is not None else rec.meta.get("rpm")
        else:
            rec = read_recording(path, fs=spec.fs, channel=spec.channel)
        rec = to_rate(rec, target_fs)
        part = spec.part or (_cwru_part(path.stem) if path.suffix.lower() == ".mat" else None)
        out.append((rec, None if rpm is None else float(rpm) / 60.0, part))
    return out


@dataclass
class BenchSet:
    """Healthy signals (FAR) and fault signals (recall, diagnosis) at the bundle's rate."""

    healthy: dict[str, np.ndarray] = field(default_factory=dict)
    faults: dict[str, np.ndarray] = field(default_factory=dict)
    shaft_hz: dict[str, float | None] = field(default_factory=dict)
    part: dict[str, str | None] = field(default_factory=dict)
    source: str = ""

    def healthy_windows(self, window: int, hop: int) -> np.ndarray:
        parts = [frame_signal(x, window, hop) for x in self.healthy.values()]
        return np.concatenate(parts) if parts else np.empty((0, window))


def _unique(name: str, taken: dict[str, Any]) -> str:
    n, i = name, 2
    while n in taken:
        n, i = f"{name}#{i}", i + 1
    return n


def bench_set(
    files: list[str], healthy: list[str], target_fs: float, fs: float | None, channel: str | None
) -> BenchSet:
    """The recordings named on the command line."""
    s = BenchSet(source="recordings given (--files / --healthy)")
    for text in healthy:
        for rec, _, _ in read_spec(parse_spec(text, fs, channel), target_fs):
            s.healthy[_unique(rec.name, s.healthy)] = rec.signal
    for text in files:
        for rec, shaft, part in read_spec(parse_spec(text, fs, channel), target_fs):
            name = _unique(rec.name, s.faults)
            s.faults[name], s.shaft_hz[name], s.part[name] = rec.signal, shaft, part
    return s


def bundle_set(bundle: Bundle, data: Path) -> BenchSet:
    """The bundle's own CWRU recordings: the held-out healthy test part and every fault file,
    read with the rates the bundle was trained with (config.dataset)."""
    from edgewise.train.data.cwru import cwru_dir, read_cwru_mat

    cfg = bundle.spec.config
    ds = cfg.get("dataset", {})
    if ds.get("synthetic"):
        raise ValueError("this bundle was trained on SYNTHETIC data; pass --files/--healthy or a CWRU bundle")
    root = cwru_dir(data)
    fs = float(cfg["fs"])
    ch = ds.get("channel", "DE")
    normal = read_cwru_mat(sorted((root / "Normal").glob("*.mat"))[0], fs=float(ds.get("normal_fs", 48000)),
                           channel=ch)
    sig = to_rate(normal, fs).signal
    a, b = split_in_time(len(sig), tuple(cfg["training"]["split"]))[2]
    s = BenchSet(source=f"the bundle's CWRU recordings ({root}): healthy test part, every fault file")
    s.healthy[f"{normal.name} (test part)"] = sig[a:b]
    for name in ds.get("faults", []):
        rec = read_cwru_mat(root / "12k_DE" / f"{name}.mat", fs=float(ds.get("fault_fs", 12000)), channel=ch)
        s.faults[name] = to_rate(rec, fs).signal
        s.shaft_hz[name] = float(rec.meta["rpm"]) / 60.0 if rec.meta.get("rpm") else None
        s.part[name] = _cwru_part(name)
    return s
