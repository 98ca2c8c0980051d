"""Input drift: does what the device sees still look like what the model was trained on?

(One module on purpose: the statistics the trainers store and the ones the device computes
must be the same code, and the monitor compares exactly those; its three sections are marked.)

A model answers whatever it is given. A wrong ``--fs``, a camera whose exposure changed, a
different sensor or a swapped lens all feed it inputs unlike its training data, and its
answers quietly lose their meaning. So the trainers store cheap statistics of their training
inputs in the bundle (``config.drift``, a ``DriftReference``), and ``edgewise run`` compares
the incoming inputs with them once at the start and then periodically (``DriftMonitor``):
each check that finds a difference logs ONE warning line and emits an ``Event`` of kind
``drift`` into the same event stream as the application's own. A bundle without a reference
skips the check (one info line).

What is compared (``image_stats``, ``vibration_stats``: the one implementation, used by the
trainers and the device):

- images: mean and standard deviation per channel (exposure, gain, white balance), the log
  sharpness (variance of the Laplacian: focus, a swapped lens), and the mean 16-bin histogram
  per channel (total-variation distance);
- vibration windows: the level (dB RMS: a different sensor or mounting), the spectral
  centroid (octaves) and the spectrum's shape on log-spaced bands, whose best shift against
  the training spectrum estimates the ratio of the true sampling rate to the declared one.

Each scalar is judged on the median of the recent samples against the training median: it
must move by more than ``Z_LIMIT`` standard errors (the training spread, 1.4826 x MAD, over
the square root of at most ``N_EFF`` samples: recent samples are correlated) and by more than
a stated physical amount (``FLOORS``), so a steady signal's tiny spread cannot turn a
harmless change into a warning. numpy and OpenCV only.

>>> ref = DriftReference.fit("vibration", windows, fs=12000)          # doctest: +SKIP
>>> mon = DriftMonitor(ref); [mon.observe_sample(w) for w in windows]  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .event import Event

__all__ = [
    "KINDS", "FLOORS", "DriftReference", "DriftMonitor", "Finding", "image_stats", "vibration_stats",
    "spectrum_scale", "rate_mismatch", "drift_monitors", "image_reference",
]

log = logging.getLogger("edgewise.drift")

KINDS = ("image", "vibration")
HIST_BINS = 16
IMAGE_SIDE = 128  # images are compared at this size: the statistics do not depend on resolution
SPEC_BANDS = 64  # vibration: log-spaced bands from fs/400 to 0.45 fs
MAX_SHIFT = 24  # bands searched either way (a band is ~8.6 %: 24 bands is a factor 7)
# The smallest change worth a warning, in each statistic's own units, whatever the spread.
FLOORS: dict[str, float] = {
    "mean": 10.0,  # grey levels of 255
    "std": 8.0,  # grey levels
    "log_sharpness": 0.3,  # log10: a factor 2 in Laplacian variance
    "level_db": 3.0,  # dB RMS
    "centroid_oct": 0.25,  # octaves
}
Z_LIMIT = 5.0  # standard errors of the recent median from the training median
N_EFF = 4  # independent samples the recent ones are worth at most
HIST_FLOOR = 0.10  # total-variation distance of the recent mean histogram (0..1)
SPECTRUM_GAIN = 0.15  # correlation a shifted spectrum must gain over the unshifted one
SPECTRUM_MIN = 0.8  # correlation the shifted spectrum must reach


def _floor_of(name: str) -> float:
    return FLOORS[name.split("_c")[0] if name.startswith(("mean_c", "std_c")) else name]


# --- the statistics: one implementation for trainers and the device ------------------------------


def _as_image(img: np.ndarray, channels: int | None = None) -> np.ndarray:
    """uint8-range float32 (IMAGE_SIDE, IMAGE_SIDE, c); ``channels`` converts BGR <-> grey."""
    import cv2

    a = np.asarray(img)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3):
        raise ValueError(f"drift: an image has shape {a.shape}, expected (h, w) or (h, w, c)")
    if a.ndim == 3 and a.shape[-1] > 3:
        a = a[..., :3]
    if a.dtype not in (np.uint8, np.float32):
        a = a.astype(np.float32)
    # shrink first (the full frame is touched once, by OpenCV), then colour and scale
    a = cv2.resize(a, (IMAGE_SIDE, IMAGE_SIDE), interpolation=cv2.INTER_AREA).astype(np.float32)
    if a.size and float(np.nanmax(a)) <= 1.0 and np.asarray(img).dtype.kind == "f":
        a = a * 255.0  # images in 0..1
    a = np.clip(np.nan_to_num(a), 0, 255)
    if channels == 1 and a.ndim == 3:
        a = cv2.cvtColor(a, cv2.COLOR_BGR2GRAY)
    elif channels == 3 and a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=-1)
    return a if a.ndim == 3 else a[..., None]


def image_stats(img: np.ndarray, channels: int | None = None) -> tuple[dict[str, float], np.ndarray]:
    """(named statistics, histogram (channels * 16, fractions)) of one image.

    Statistics: ``mean_c{i}``, ``std_c{i}`` (grey levels) per channel and ``log_sharpness``
    (log10 variance of the Laplacian of the grey image at 128 x 128).
    """
    import cv2

    a = _as_image(img, channels)
    c = a.shape[-1]
    flat = a.reshape(-1, c)
    stats: dict[str, float] = {}
    for i in range(c):
        stats[f"mean_c{i}"] = float(flat[:, i].mean())
        stats[f"std_c{i}"] = float(flat[:, i].std())
    grey = a[..., 0] if c == 1 else cv2.cvtColor(a[..., :3], cv2.COLOR_BGR2GRAY)
    stats["log_sharpness"] = math.log10(float(cv2.Laplacian(grey, cv2.CV_32F).var()) + 1e-3)
    bins = np.minimum((flat * (HIST_BINS / 256.0)).astype(np.int64), HIST_BINS - 1)
    hist = np.concatenate([np.bincount(bins[:, i], minlength=HIST_BINS) for i in range(c)])
    return stats, hist / float(len(flat))


def _spectrum_bands(fs: float, n: int) -> np.ndarray:
    """Weights (bins, SPEC_BANDS) averaging a power spectrum over log-spaced bands."""
    freqs = np.fft.rfftfreq(n, 1.0 / fs)
    edges = np.geomspace(fs / 400.0, 0.45 * fs, SPEC_BANDS + 1)
    lo = np.maximum(freqs - fs / n / 2, 0)
    hi = freqs + fs / n / 2
    overlap = np.clip(np.minimum(hi[:, None], edges[None, 1:]) - np.maximum(lo[:, None], edges[None, :-1]),
                      0, None)
    return overlap / (edges[1:] - edges[:-1])[None, :]


_BANDS_CACHE: dict[tuple[float, int], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}


def vibration_stats(window: np.ndarray, fs: float) -> tuple[dict[str, float], np.ndarray]:
    """(named statistics, log10 band spectrum (SPEC_BANDS,) shape) of one window at ``fs``.

    ``level_db``: 20 log10 RMS of the centred window; ``centroid_oct``: log2 of the spectral
    centroid in Hz; the spectrum is returned minus its mean (shape only, gain-free).
    """
    x = np.asarray(window, np.float64).ravel()
    x = x - x.mean()
    key = (float(fs), x.size)
    if key not in _BANDS_CACHE:
        if len(_BANDS_CACHE) > 8:
            _BANDS_CACHE.clear()
        _BANDS_CACHE[key] = (_spectrum_bands(fs, x.size), np.fft.rfftfreq(x.size, 1.0 / fs),
                             np.hanning(x.size))
    w, freqs, hann = _BANDS_CACHE[key]
    X = np.fft.rfft(x * hann)
    p = X.real**2 + X.imag**2
    rms = math.sqrt(float(x @ x) / max(x.size, 1))
    total = float(p.sum())
    centroid = float(p @ freqs) / total if total > 0 else 0.0
    spec = np.log10(p @ w + 1e-30)
    stats = {"level_db": 20.0 * math.log10(rms + 1e-12), "centroid_oct": math.log2(centroid + 1e-3)}
    return stats, spec - spec.mean()


def spectrum_scale(recent: np.ndarray, reference: np.ndarray, *, ratio: float | None = None,
                   max_shift: int = MAX_SHIFT) -> tuple[float, float, float]:
    """(rate ratio, correlation at that shift, correlation unshifted) of two log band spectra.

    A signal sampled at ``r`` times the declared rate shows every frequency ``r`` times too low:
    its spectrum on log bands is the training one shifted by log(r) / log(band ratio) bands.
    The shift with the best correlation (over at least half the bands) estimates ``r``.
    ``ratio``: the frequency ratio of neighbouring bands (default: ``vibration_stats``' bands).
    """
    ratio = ratio or (0.45 * 400.0) ** (1.0 / SPEC_BANDS)
    best, best_c, c0 = 0, -2.0, -2.0
    n = len(reference)
    for s in range(-max_shift, max_shift + 1):
        a = recent[max(0, -s): n - max(0, s)]  # recent band i + ... sits at reference band i + s
        b = reference[max(0, s): n - max(0, -s)]
        if len(a) < n // 2 or a.std() == 0 or b.std() == 0:
            continue
        with np.errstate(invalid="ignore", divide="ignore"):
            c = float(np.corrcoef(a, b)[0, 1])
        if not math.isfinite(c):
            continue
        if s == 0:
            c0 = c
        if c > best_c:
            best, best_c = s, c
    return float(ratio**best), best_c, c0


def rate_mismatch(r: float, c: float, c0: float, *, least: float = SPECTRUM_MIN, fair: bool = True) -> bool:
    """Whether ``spectrum_scale``'s answer says the declared rate is wrong: the best shift is
    more than ~15 % away, the shifted spectrum matches well (``least``; or, with ``fair``,
    fairly: 0.1 less when it gains 0.3) and clearly better than the unshifted one."""
    if abs(math.log(r)) <= 0.15:
        return False
    gain = c - c0
    return (c >= least and gain >= SPECTRUM_GAIN) or (fair and c >= least - 0.1 and gain >= 2 * SPECTRUM_GAIN)


# --- the reference stored in the bundle ----------------------------------------------------------


def _robust(values: np.ndarray) -> tuple[float, float]:
    v = np.asarray(values, np.float64)
    med = float(np.median(v))
    return med, float(1.4826 * np.median(np.abs(v - med)))


@dataclass(frozen=True)
class DriftReference:
    """Training-input statistics (``config.drift`` of bundle.json, or a commissioning file).

    ``stats``: name -> (median, robust spread) over single training samples; ``profile``: the
    mean histogram (images) or mean log band spectrum (vibration); ``profile_limit``: images,
    the total-variation distance beyond which the recent histogram has drifted.
    """

    kind: str
    samples: int
    stats: dict[str, tuple[float, float]]
    profile: tuple[float, ...]
    profile_limit: float = HIST_FLOOR
    fs: float | None = None  # vibration: the rate the statistics were taken at
    channels: int | None = None  # images: 1 (grey) or 3 (BGR)

    @classmethod
    def fit(cls, kind: str, samples: Iterable[np.ndarray], *, fs: float | None = None,
            channels: int | None = None) -> DriftReference:
        """The reference of training samples (images or signal windows), at most a few hundred
        needed: the statistics are medians."""
        if kind not in KINDS:
            raise ValueError(f"drift kind must be one of {', '.join(KINDS)}, got {kind!r}")
        if kind == "vibration" and not fs:
            raise ValueError("a vibration drift reference needs the sampling rate")
        rows: list[dict[str, float]] = []
        profiles: list[np.ndarray] = []
        for s in samples:
            if kind == "image" and channels is None:
                a = np.asarray(s)
                channels = 3 if a.ndim == 3 and a.shape[-1] >= 3 else 1
            st, prof = image_stats(s, channels) if kind == "image" else vibration_stats(s, float(fs or 0))
            rows.append(st)
            profiles.append(prof)
        if len(rows) < 8:
            raise ValueError(f"a drift reference needs at least 8 samples, got {len(rows)}")
        names = list(rows[0])
        stats = {k: _robust(np.array([r[k] for r in rows])) for k in names}
        prof = np.mean(profiles, axis=0)
        limit = HIST_FLOOR
        if kind == "image":  # what 16 random training images' mean histogram moves by, with a floor
            rng = np.random.default_rng(0)
            p = np.asarray(profiles)
            dists = [0.5 * np.abs(p[rng.choice(len(p), min(16, len(p)), replace=False)].mean(0) - prof).sum()
                     / (prof.size / HIST_BINS) for _ in range(64)]
            limit = max(HIST_FLOOR, 2.0 * float(np.quantile(dists, 0.99)))
        return cls(kind, len(rows), stats, tuple(float(v) for v in prof), round(limit, 4),
                   None if fs is None else float(fs), channels)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "samples": self.samples,
            "stats": {k: [round(c, 6), round(s, 6)] for k, (c, s) in self.stats.items()},
            "profile": [round(v, 6) for v in self.profile], "profile_limit": self.profile_limit,
            **({"fs": self.fs} if self.fs is not None else {}),
            **({"channels": self.channels} if self.channels is not None else {}),
        }

    @classmethod
    def from_dict(cls, d: Any, where: str = "config.drift") -> DriftReference:
        """The stored reference; anything malformed is one ``ValueError`` line naming ``where``."""
        if not isinstance(d, dict):
            raise ValueError(f"{where}: must be an object")
        known = {"kind", "samples", "stats", "profile", "profile_limit", "fs", "channels"}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"{where}: unknown keys {unknown}")
        try:
            kind = str(d["kind"])
            stats = {str(k): (float(v[0]), float(v[1])) for k, v in dict(d["stats"]).items()}
            ref = cls(kind, int(d["samples"]), stats, tuple(float(v) for v in d["profile"]),
                      float(d.get("profile_limit", HIST_FLOOR)),
                      None if d.get("fs") is None else float(d["fs"]),
                      None if d.get("channels") is None else int(d["channels"]))
        except (KeyError, TypeError, ValueError, IndexError) as e:
            raise ValueError(f"{where}: malformed ({type(e).__name__}: {e})") from None
        if kind not in KINDS:
            raise ValueError(f"{where}: kind must be one of {', '.join(KINDS)}, got {kind!r}")
        if kind == "vibration" and (not ref.fs or ref.fs <= 0 or len(ref.profile) != SPEC_BANDS):
            raise ValueError(f"{where}: a vibration reference needs fs and {SPEC_BANDS} spectrum bands")
        bad = [k for k in stats if not k.startswith(("mean_c", "std_c")) and k not in FLOORS]
        if bad:
            raise ValueError(f"{where}: unknown statistics {bad}")
        return ref


def image_reference(images: Iterable[Any], *, channels: int | None = None, limit: int = 200) -> dict | None:
    """A trainer's one call: the ``config.drift`` dict of up to ``limit`` training images (arrays
    or files, read as the device's folder source reads them), or None when fewer than 8 could
    be read (the device then skips the check)."""
    import cv2

    arrays = []
    for im in images:
        if len(arrays) >= limit:
            break
        a = cv2.imread(str(im), cv2.IMREAD_UNCHANGED) if isinstance(im, (str, bytes)) or hasattr(
            im, "__fspath__") else np.asarray(im)
        if a is not None and a.size:
            arrays.append(a)
    if len(arrays) < 8:
        return None
    return DriftReference.fit("image", arrays, channels=channels).to_dict()


# --- the check on the device ---------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    """One statistic that moved: its name, the training and recent values, and one phrase."""

    name: str
    reference: float
    recent: float
    spreads: float | None
    text: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "reference": round(self.reference, 4), "recent": round(self.recent, 4),
                "spreads": None if self.spreads is None else round(self.spreads, 1), "text": self.text}


def _phrase(name: str, ref: float, now: float) -> str:
    if name == "level_db":
        return (f"level {now - ref:+.1f} dB vs training "
                "(another sensor, gain or mounting, or the machine changed)")
    if name == "centroid_oct":
        return (f"spectral centroid x{2 ** (now - ref):.2f} vs training "
                f"({2 ** now:.0f} Hz, was {2 ** ref:.0f} Hz)")
    if name == "log_sharpness":
        return (f"sharpness x{10 ** (now - ref):.2f} vs training "
                "(focus, a swapped lens, motion blur?)")
    ch = name.rsplit("_c", 1)[-1]
    what = "brightness" if name.startswith("mean") else "contrast"
    return f"{what} (channel {ch}) {now:.0f} vs {ref:.0f} in training (exposure, lighting, gain?)"


@dataclass
class DriftMonitor:
    """Compares recent inputs with a ``DriftReference``: at the start (after ``first`` samples)
    and then every ``every`` samples, on the last ``recent`` ones. ``stride``: observe one
    frame in this many (the statistics cost a little; drift is slow)."""

    reference: DriftReference
    first: int = 16
    every: int = 500
    recent: int = 64
    stride: int = 1
    app: str = "app"
    fs: float | None = None  # vibration: the rate the app declares (the reference's by default)
    seen: int = 0
    checks: int = 0
    drifted: bool = False
    _frames: int = 0
    _rows: deque = field(default_factory=deque)
    _profiles: deque = field(default_factory=deque)

    def __post_init__(self) -> None:
        self._rows = deque(maxlen=self.recent)
        self._profiles = deque(maxlen=self.recent)
        if self.fs is None:
            self.fs = self.reference.fs

    def observe_sample(self, sample: np.ndarray) -> Event | None:
        """Add one image or window; returns a ``drift`` event when a check finds a change (or
        finds it gone after a warning), else None."""
        ref = self.reference
        if ref.kind == "image":
            st, prof = image_stats(sample, ref.channels)
        else:
            st, prof = vibration_stats(sample, float(self.fs or 0))
        self._rows.append(st)
        self._profiles.append(prof)
        self.seen += 1
        if self.seen == self.first or (self.seen > self.first and (self.seen - self.first) % self.every == 0):
            return self.check()
        return None

    def observe(self, frame: Any, x: Any = None, app: Any = None) -> Event | None:
        """The ``Runner`` hook: the frame after the application (``x``: its preprocessed input).
        An application may say what to compare (``drift_samples(frame, x)``: e.g. face crops);
        by default the frame itself (an image, a signal window)."""
        self._frames += 1
        if (self._frames - 1) % self.stride:
            return None
        pick = getattr(app, "drift_samples", None)
        samples: Sequence[np.ndarray] = pick(frame, x) if callable(pick) else [frame.data]
        out = None
        for s in samples:
            out = self.observe_sample(s) or out
        return out

    def findings(self) -> list[Finding]:
        """What moved, on the recent samples (empty: nothing)."""
        ref, out = self.reference, []
        rows = list(self._rows)
        for name, (centre, spread) in ref.stats.items():
            vals = [r[name] for r in rows if name in r]
            if not vals:
                continue
            now = float(np.median(vals))
            delta = abs(now - centre)
            z = delta / spread if spread > 0 else math.inf
            # the recent median's own uncertainty: recent samples are correlated (overlapping
            # windows, frames of one scene), so they count as at most N_EFF independent ones
            if delta > max(_floor_of(name), Z_LIMIT * spread / math.sqrt(min(len(vals), N_EFF))):
                out.append(Finding(name, centre, now, None if math.isinf(z) else z,
                                   _phrase(name, centre, now)))
        prof = np.mean(list(self._profiles), axis=0)
        refp = np.asarray(ref.profile)
        if ref.kind == "image" and prof.shape == refp.shape:
            tv = 0.5 * float(np.abs(prof - refp).sum()) / (refp.size / HIST_BINS)
            if tv > ref.profile_limit:
                out.append(Finding("histogram", 0.0, tv, None,
                                   f"histogram moved by {tv:.2f} (total variation; limit "
                                   f"{ref.profile_limit:.2f})"))
        elif ref.kind == "vibration" and prof.shape == refp.shape:
            r, c, c0 = spectrum_scale(prof, refp)
            if rate_mismatch(r, c, c0):
                fs = float(self.fs or 0)
                out.append(Finding(
                    "sampling_rate", 1.0, r, None,
                    f"the spectrum matches the training one with frequencies x{1 / r:.2f}: is the "
                    f"sampling rate right? declared {fs:g} Hz, the spectrum suggests about {fs * r:.0f} Hz "
                    f"(correlation {c:.2f} vs {c0:.2f} as declared)"))
        return out

    def check(self) -> Event | None:
        """Compare now; a drift gives one warning line and an event, and so does its end."""
        self.checks += 1
        found = self.findings()
        if not found and not self.drifted:
            return None
        was, self.drifted = self.drifted, bool(found)
        if found:
            log.warning("input drift (%d recent %s): %s", len(self._rows),
                        "images" if self.reference.kind == "image" else "windows",
                        "; ".join(f.text for f in found))
        elif was:
            log.info("input drift: gone (the recent inputs match the training statistics again)")
        return Event(app=self.app, kind="drift", answer=None, extra={
            "drift": bool(found), "findings": [f.to_dict() for f in found],
            "samples_compared": len(self._rows), "samples_seen": self.seen,
            "reference_samples": self.reference.samples})


def drift_monitors(app: Any, *, config_key: str = "drift") -> list[DriftMonitor]:
    """The monitors ``edgewise run`` attaches to ``app``: one when its bundle (or commissioning)
    carries a reference in ``config.drift``, else none (one info line says the check is off)."""
    spec = getattr(app, "spec", None)
    d = None if spec is None else spec.config.get(config_key)
    name = getattr(app, "name", "app")
    if d is None:
        log.info("input drift: not checked (the bundle carries no training statistics)")
        return []
    ref = DriftReference.from_dict(d, f"bundle.json config.{config_key}")
    if ref.kind == "vibration":
        # the rate the app declares: a wrong --fs shows as a shifted spectrum; 1 window in 4
        fs = getattr(app, "fs", None) or ref.fs
        return [DriftMonitor(ref, first=16, every=250, recent=64, stride=4, app=name, fs=fs)]
    return [DriftMonitor(ref, first=16, every=500, recent=64, stride=1, app=name)]
