"""Which bearing part is failing: envelope-spectrum peaks at the fault frequencies. numpy only.

An alarm says "this does not sound healthy"; a maintenance technician needs "the outer race".
A local defect on a race or a rolling element is struck at a rate fixed by the bearing's
geometry and the shaft speed, and each strike rings the structure. Demodulating the band the
strikes ring in and looking at the spectrum of that envelope shows the strike rate:

- outer race: BPFO and its harmonics;
- inner race: BPFI and its harmonics, with sidebands at +-1x shaft speed (the defect turns
  through the load zone once per revolution);
- rolling element: 2 x BSF (a ball strikes both races per spin) with BSF and 4 x BSF, and
  sidebands at +-FTF (the ball turns with the cage);
- cage: FTF and its harmonics.

The recipe is the standard one of Smith & Randall's CWRU benchmark study (MSSP 2015): the
spectrum is pre-whitened (cepstral pre-whitening: every Fourier coefficient divided by its
magnitude, which removes the shaft and gear lines that would otherwise dominate), the band
with the most impulsive content (highest kurtosis among a few candidate bands) is
demodulated, and the squared envelope's spectrum is averaged over segments (Welch).
Each part's evidence is the mean log prominence of its peaks (the largest value within 1 %
of the expected frequency over the median of +-25 Hz around it). Nothing is fitted to labels:
the fault frequencies come from the geometry (``BearingGeometry``, multiples of shaft speed)
and the speed from an operator flag or from the spectrum (``estimate_shaft_hz``).

The part named is the one with the most evidence (``"none"`` when no part's peaks rise above
their surroundings at all). The confidence is the softmax of the parts' evidence: how clearly
one part's pattern stands out from the others', not a calibrated probability. ``clear`` says
whether the winning evidence exceeds ``healthy_evidence``, the largest any part reached on the
healthy training signal (a plain number in the bundle, re-learnable on the device): below it,
the named part is the best guess from peaks no stronger than a healthy machine's.

>>> d = diagnose(signal, 12000, DiagnosisConfig(BearingGeometry.skf6205()), shaft_hz=29.95)  # doctest: +SKIP
>>> d.part, round(d.confidence, 2)                                                          # doctest: +SKIP
('outer_race', 0.93)
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "PARTS",
    "BearingGeometry",
    "DiagnosisConfig",
    "Diagnosis",
    "SignalBuffer",
    "envelope_spectrum",
    "impulsive_band",
    "estimate_shaft_hz",
    "part_evidence",
    "diagnose",
    "healthy_evidence",
]

PARTS = ("outer_race", "inner_race", "ball", "cage")
_ORDER_KEYS = {"outer_race": "bpfo", "inner_race": "bpfi", "ball": "bsf", "cage": "ftf"}


@dataclass(frozen=True)
class BearingGeometry:
    """Fault frequencies as multiples of the shaft speed (orders): BPFO, BPFI, BSF, FTF."""

    bpfo: float
    bpfi: float
    bsf: float
    ftf: float

    @classmethod
    def skf6205(cls) -> BearingGeometry:
        """SKF 6205-2RS, the CWRU drive-end bearing (values from the CWRU Bearing Data Center)."""
        return cls(bpfo=3.5848, bpfi=5.4152, bsf=2.3570, ftf=0.39828)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BearingGeometry:
        keys = ("bpfo", "bpfi", "bsf", "ftf")
        missing = [k for k in keys if k not in d]
        if missing:
            raise ValueError(f"bearing geometry lacks {', '.join(missing)} (orders of shaft speed)")
        g = cls(**{k: float(d[k]) for k in keys})
        if min(g.bpfo, g.bpfi, g.bsf, g.ftf) <= 0:
            raise ValueError("bearing fault orders must be positive multiples of shaft speed")
        return g

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    def frequencies(self, shaft_hz: float) -> dict[str, float]:
        """Hz of each part's fundamental: BPFO, BPFI, BSF (the ball's spin), FTF."""
        return {p: getattr(self, _ORDER_KEYS[p]) * shaft_hz for p in PARTS}


@dataclass(frozen=True)
class DiagnosisConfig:
    """How much signal a diagnosis reads and how it looks; ``config.diagnosis`` of a bundle.

    ``shaft_hz``: the nominal shaft speed the bundle was trained at, the centre of the
    speed search (+-``speed_search``) when no speed is given; ``bands``: candidate
    demodulation bands (Hz), the most impulsive one is used.
    """

    geometry: BearingGeometry
    shaft_hz: float | None = None
    seconds: float = 2.0
    segment: int = 4096
    harmonics: int = 3
    tolerance: float = 0.01
    speed_search: float = 0.1
    healthy_evidence: float | None = None
    bands: tuple[tuple[float, float], ...] = field(
        default=((500.0, 2000.0), (1000.0, 2500.0), (2000.0, 3500.0), (3000.0, 4500.0), (3500.0, 5000.0))
    )

    @classmethod
    def from_bundle(cls, d: dict[str, Any]) -> DiagnosisConfig:
        d = dict(d)
        geo = BearingGeometry.from_dict(d.pop("geometry", {}))
        valid = set(cls.__dataclass_fields__) - {"geometry"}
        unknown = sorted(set(d) - valid)
        if unknown:
            raise ValueError(f"unknown diagnosis settings {unknown}; valid: {', '.join(sorted(valid))}")
        if "bands" in d:
            d["bands"] = tuple((float(a), float(b)) for a, b in d["bands"])
        return cls(geometry=geo, **d)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["bands"] = [list(b) for b in self.bands]
        return d


@dataclass(frozen=True)
class Diagnosis:
    """The likely failing part, how clearly, and what it was read from."""

    part: str  # one of PARTS, or "none"
    confidence: float
    shaft_hz: float
    shaft_source: str  # "given" or "estimated"
    band_hz: tuple[float, float]
    evidence: dict[str, float]  # per part: mean log prominence of its peaks
    seconds: float
    clear: bool | None = None  # evidence above the healthy level (None: the bundle has no level)

    def to_dict(self) -> dict[str, Any]:
        return {
            "part": self.part,
            "confidence": round(self.confidence, 3),
            "shaft_hz": round(self.shaft_hz, 3),
            "shaft_source": self.shaft_source,
            "band_hz": [round(b) for b in self.band_hz],
            "evidence": {k: round(v, 3) for k, v in self.evidence.items()},
            "seconds": round(self.seconds, 3),
            "clear": self.clear,
        }


class SignalBuffer:
    """The last ``seconds`` of signal, rebuilt from windows that may overlap (``t_signal``).

    Windows carry their start time in the signal; only samples not seen before are appended,
    so overlapping windows give a contiguous signal. A gap or a jump back starts afresh.
    """

    def __init__(self, fs: float, seconds: float) -> None:
        self.fs = float(fs)
        self.limit = max(1, int(round(seconds * fs)))
        self._parts: deque[np.ndarray] = deque()
        self._n = 0
        self._end: float | None = None  # signal time (s) just after the last sample kept

    def add(self, window: np.ndarray, t_start: float | None) -> None:
        """Append a window that starts ``t_start`` seconds into the signal (None: back to back)."""
        w = np.asarray(window, np.float64).ravel()
        n = len(w)
        if t_start is not None and self._end is not None:
            held = int(round((self._end - t_start) * self.fs))  # samples of w already kept
            if 0 <= held < n:
                w = w[held:]
            else:  # a gap or a jump back: start a fresh contiguous stretch
                self._parts.clear()
                self._n = 0
        self._parts.append(w)
        self._n += len(w)
        while self._parts and self._n - len(self._parts[0]) >= self.limit:
            self._n -= len(self._parts.popleft())
        if t_start is not None:
            self._end = t_start + n / self.fs

    @property
    def seconds(self) -> float:
        return min(self._n, self.limit) / self.fs

    def signal(self) -> np.ndarray:
        x = np.concatenate(list(self._parts)) if self._parts else np.empty(0)
        return x[-self.limit :]


def _bandpass_fft(x: np.ndarray, fs: float, lo: float, hi: float, whiten: bool) -> np.ndarray:
    """The analytic signal of ``x`` restricted to lo..hi Hz (optionally pre-whitened)."""
    n = len(x)
    X = np.fft.fft(x - x.mean())
    if whiten:
        X = X / np.maximum(np.abs(X), 1e-300)
    f = np.abs(np.fft.fftfreq(n, 1.0 / fs))
    X[(f < lo) | (f > hi)] = 0
    X[n // 2 + 1 :] = 0  # analytic: negative frequencies out, positive ones doubled
    X[1 : (n + 1) // 2] *= 2
    return np.fft.ifft(X)


def impulsive_band(x: np.ndarray, fs: float, bands: tuple[tuple[float, float], ...]) -> tuple[float, float]:
    """The candidate band whose band-passed signal has the highest kurtosis (most impulsive):
    where a defect's strikes ring, rather than where the machine is merely loud."""
    best, best_k = bands[0], -math.inf
    for lo, hi in bands:
        if hi > fs / 2:
            continue
        y = _bandpass_fft(x, fs, lo, hi, whiten=False).real
        m2 = float(np.mean(y * y))
        k = float(np.mean(y**4)) / (m2 * m2) if m2 > 0 else 0.0
        if k > best_k:
            best, best_k = (lo, hi), k
    return best


def envelope_spectrum(
    x: np.ndarray, fs: float, band: tuple[float, float], segment: int
) -> tuple[np.ndarray, np.ndarray]:
    """Frequencies and amplitude of the squared-envelope spectrum of the pre-whitened band,
    Welch-averaged over half-overlapping segments of ``segment`` samples."""
    x = np.asarray(x, np.float64).ravel()
    seg = min(segment, len(x))
    if seg < 256:
        raise ValueError(f"diagnosis needs at least 256 samples, got {len(x)}")
    hann = np.hanning(seg)
    acc = np.zeros(seg // 2 + 1)
    count = 0
    for i in range(0, len(x) - seg + 1, seg // 2):
        e = np.abs(_bandpass_fft(x[i : i + seg], fs, band[0], band[1], whiten=True)) ** 2
        e -= e.mean()
        acc += np.abs(np.fft.rfft(e * hann)) ** 2
        count += 1
    return np.fft.rfftfreq(seg, 1.0 / fs), np.sqrt(acc / count)


def _prominence(freqs: np.ndarray, amp: np.ndarray, f0: float, tol: float) -> float:
    """Largest amplitude within ``tol`` (relative, plus half a bin) of ``f0`` over the median
    of +-25 Hz around it."""
    half_bin = (freqs[1] - freqs[0]) / 2
    near = (freqs >= f0 * (1 - tol) - half_bin) & (freqs <= f0 * (1 + tol) + half_bin)
    around = (freqs > f0 - 25.0) & (freqs < f0 + 25.0)
    if not near.any() or not around.any():
        return 1.0
    bg = float(np.median(amp[around]))
    return float(amp[near].max()) / bg if bg > 0 else 1.0


def part_evidence(
    freqs: np.ndarray, amp: np.ndarray, shaft_hz: float, geometry: BearingGeometry,
    harmonics: int = 3, tolerance: float = 0.01,
) -> dict[str, float]:
    """Per part, the mean natural-log prominence of its harmonics and sidebands."""
    f = geometry.frequencies(shaft_hz)
    top = freqs[-1] - 25.0

    def lp(f0: float) -> float | None:
        return math.log(_prominence(freqs, amp, f0, tolerance)) if 0 < f0 < top else None

    peaks: dict[str, list[float | None]] = {
        "outer_race": [lp(k * f["outer_race"]) for k in range(1, harmonics + 1)],
        "inner_race": [lp(k * f["inner_race"]) for k in range(1, harmonics + 1)]
        + [lp(f["inner_race"] - shaft_hz), lp(f["inner_race"] + shaft_hz)],
        "ball": [lp(m * f["ball"]) for m in (2, 1, 4)[:harmonics]]
        + [lp(2 * f["ball"] - f["cage"]), lp(2 * f["ball"] + f["cage"])],
        "cage": [lp(k * f["cage"]) for k in range(1, harmonics + 1)],
    }
    return {p: float(np.mean([v for v in vs if v is not None] or [0.0])) for p, vs in peaks.items()}


def estimate_shaft_hz(x: np.ndarray, fs: float, around: float, search: float = 0.1) -> float:
    """The shaft speed (Hz) within +-``search`` of ``around`` whose first five harmonics carry
    the most log spectral amplitude: a harmonic comb search on a Welch spectrum of segments up to
    4 s, zero-padded 4x so the comb reads the peaks' tops rather than the nearest bins (without
    the padding the estimate sat 0.08 Hz high on the CWRU files)."""
    x = np.asarray(x, np.float64).ravel()
    seg = min(len(x), 1 << int(math.log2(max(256, min(len(x), int(4 * fs))))))
    hann = np.hanning(seg)
    acc = np.zeros(2 * seg + 1)
    steps = range(0, len(x) - seg + 1, seg // 2)
    for i in steps:
        s = x[i : i + seg]
        acc += np.abs(np.fft.rfft((s - s.mean()) * hann, 4 * seg)) ** 2
    freqs = np.fft.rfftfreq(4 * seg, 1.0 / fs)
    logp = np.log(acc / max(len(steps), 1) + 1e-30)
    grid = np.arange(around * (1 - search), around * (1 + search), 0.02)
    k = np.arange(1, 6)
    comb = np.interp(grid[:, None] * k[None, :], freqs, logp).sum(axis=1)
    return float(grid[int(np.argmax(comb))])


def diagnose(
    x: np.ndarray, fs: float, cfg: DiagnosisConfig, shaft_hz: float | None = None
) -> Diagnosis:
    """The likely failing part from ``x`` (the last ``cfg.seconds`` are used).

    ``shaft_hz``: the speed if known (an operator's ``--rpm``); otherwise it is estimated from
    the spectrum near the bundle's nominal speed. ValueError when neither is available.
    """
    x = np.asarray(x, np.float64).ravel()[-max(256, int(cfg.seconds * fs)) :]
    source = "given"
    if shaft_hz is None:
        if cfg.shaft_hz is None:
            raise ValueError("diagnosis needs the shaft speed: pass --rpm (the bundle has no nominal speed)")
        shaft_hz = estimate_shaft_hz(x, fs, cfg.shaft_hz, cfg.speed_search)
        source = "estimated"
    band = impulsive_band(x, fs, cfg.bands)
    freqs, amp = envelope_spectrum(x, fs, band, cfg.segment)
    ev = part_evidence(freqs, amp, shaft_hz, cfg.geometry, cfg.harmonics, cfg.tolerance)
    vals = np.array([ev[p] for p in PARTS])
    soft = np.exp(vals - vals.max())
    soft /= soft.sum()
    i = int(np.argmax(vals))
    part = PARTS[i] if vals[i] > 0 else "none"
    clear = None if cfg.healthy_evidence is None else bool(vals[i] > cfg.healthy_evidence)
    return Diagnosis(part, float(soft[i]), float(shaft_hz), source, band, ev, len(x) / fs, clear)


def healthy_evidence(x: np.ndarray, fs: float, cfg: DiagnosisConfig, shaft_hz: float | None = None) -> float:
    """The largest evidence any part reaches on healthy signal ``x``, over consecutive stretches
    of ``cfg.seconds``: the level a diagnosis must beat to be called clear."""
    n = int(cfg.seconds * fs)
    x = np.asarray(x, np.float64).ravel()
    if len(x) < n:
        raise ValueError(f"healthy signal of {len(x) / fs:.2f} s is shorter than {cfg.seconds} s")
    best = -math.inf
    for i in range(0, len(x) - n + 1, max(1, n // 2)):
        d = diagnose(x[i : i + n], fs, cfg, shaft_hz)
        best = max(best, max(d.evidence.values()))
    return float(best)
