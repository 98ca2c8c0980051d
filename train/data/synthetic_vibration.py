"""SYNTHETIC bearing vibration, for tests and the offline demo. Never real data.

A simple physical caricature of an accelerometer on a motor with a rolling-element bearing:

- shaft rotation: harmonics 1x..4x of the shaft frequency ``rpm / 60`` with random phases;
- a bearing fault: a train of impacts at the fault frequency (BPFO, BPFI or 2 x BSF, as
  multiples of the shaft frequency for an SKF 6205, the CWRU drive-end bearing), each impact
  ringing a structural resonance (a decaying sinusoid at ``resonance_hz``), with a small
  random jitter of the impact times (slip); inner-race and ball impacts are amplitude-
  modulated by the shaft (or cage) rotation because the defect moves through the load zone;
- broadband Gaussian noise.

Every recording it returns has ``label`` prefixed ``synthetic_`` and ``meta["synthetic"] =
True`` so synthetic figures can never pass for measurements.

>>> rec = synthesize("outer_race", seconds=1.0, seed=0)
>>> rec.label, rec.meta["synthetic"], rec.fs
('synthetic_outer_race', True, 12000.0)
"""

from __future__ import annotations

import numpy as np

from edgewise.edge.sources.recordings import Recording

__all__ = ["FAULT_ORDERS", "KINDS", "DATASET", "synthesize", "synthetic_dataset"]

# fault frequencies as multiples of the shaft frequency (SKF 6205-2RS, CWRU drive end)
FAULT_ORDERS = {"outer_race": 3.5848, "inner_race": 5.4152, "ball": 2 * 2.3570}
FTF_ORDER = 0.39828
KINDS = ("normal", *FAULT_ORDERS)
# how a training report and config.dataset name this data
DATASET = {"name": "SYNTHETIC (edgewise.train.data.synthetic_vibration)", "channel": "-"}


def synthesize(
    kind: str = "normal",
    *,
    seconds: float = 10.0,
    fs: float = 12000.0,
    rpm: float = 1797.0,
    severity: float = 1.0,
    resonance_hz: float = 3200.0,
    damping: float = 800.0,
    noise: float = 0.05,
    seed: int = 0,
) -> Recording:
    """One synthetic recording of ``kind`` ('normal', 'outer_race', 'inner_race', 'ball')."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got '{kind}'")
    rng = np.random.default_rng(seed)
    n = int(seconds * fs)
    t = np.arange(n) / fs
    fr = rpm / 60.0
    x = np.zeros(n)
    for h, amp in enumerate((0.05, 0.02, 0.01, 0.005), start=1):
        x += amp * np.sin(2 * np.pi * h * fr * t + rng.uniform(0, 2 * np.pi))
    x += noise * rng.normal(size=n)
    if kind != "normal":
        f_fault = FAULT_ORDERS[kind] * fr
        period = 1.0 / f_fault
        times = np.arange(rng.uniform(0, period), seconds, period)
        times += rng.normal(0, 0.01 * period, size=times.size)  # slip
        ring_n = int(6 / damping * fs)
        tr = np.arange(ring_n) / fs
        ring = np.exp(-damping * tr) * np.sin(2 * np.pi * resonance_hz * tr)
        mod_f = fr if kind == "inner_race" else (FTF_ORDER * fr if kind == "ball" else 0.0)
        impulses = np.zeros(n)
        idx = (times * fs).astype(int)
        idx = idx[(idx >= 0) & (idx < n)]
        amp = 0.5 * severity * (1.0 + 0.5 * np.cos(2 * np.pi * mod_f * idx / fs)) if mod_f else 0.5 * severity
        np.add.at(impulses, idx, amp)
        x += np.convolve(impulses, ring)[:n]
    return Recording(
        name=f"synthetic_{kind}_{seed}",
        signal=x,
        fs=float(fs),
        label=f"synthetic_{kind}",
        meta={"synthetic": True, "kind": kind, "rpm": rpm, "severity": severity, "seed": seed},
    )


def synthetic_dataset(seconds: float = 10.0, fs: float = 12000.0, seed: int = 0) -> list[Recording]:
    """A CWRU-shaped SYNTHETIC set: one healthy recording, then faults of each kind at two severities."""
    recs = [synthesize("normal", seconds=seconds, fs=fs, seed=seed)]
    for i, kind in enumerate(FAULT_ORDERS):
        for j, sev in enumerate((0.3, 1.0)):
            r = synthesize(kind, seconds=seconds / 2, fs=fs, severity=sev, seed=seed + 10 * i + j + 1)
            r.name = f"synthetic_{kind}_sev{sev:g}"
            recs.append(r)
    return recs
