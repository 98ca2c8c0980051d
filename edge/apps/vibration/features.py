"""What the model reads: windows of a signal, their spectral features and classical indicators.

The ONE implementation of the signal features. Training (``edgewise.train.vibration``)
computes its inputs with ``FeatureExtractor`` from here and the device runs the very same
code per window, so the model sees on the Pi what it was evaluated on. numpy and OpenCV's
DFT only: no TensorFlow, no scipy.

Per window of ``window`` samples at ``fs`` Hz (its mean removed first, so a DC offset or
gravity changes nothing):

- spectral SHAPE: power in ``spec_bands`` overlapping triangular bands spaced evenly in
  log-frequency from ``spec_fmin`` to ``spec_fmax`` (constant relative bandwidth, about 10 %:
  a 2 % change of shaft speed moves a line by a fifth of a band, not into another band),
  divided by the mean band power, plus ``shape_floor``, in log10;
- envelope spectrum SHAPE: the signal band-passed around the structural resonance
  (``env_lo``..``env_hi``), demodulated (analytic-signal magnitude), its spectrum in linear
  bands up to ``env_fmax`` (bearing-fault impulse trains show up at BPFO/BPFI/BSF), divided by
  the mean band power, plus ``shape_floor``, in log10;
- the scale-free indicators: crest factor, log10 kurtosis, skewness.

All of these are ratios, so a sensor's gain (mounting, cable, ADC range) cannot move them: a
window scaled by any factor gives the same features. ``shape_floor`` (relative to the mean band)
keeps bands far below the rest from reading additive noise as a change of shape: white noise at
20 dB SNR spreads 1 % of the power over every band, well under a floor of 0.1.
The LEVEL (RMS, peak) is the one thing gain does change; it is kept out of the model and
travels in its own channel (``levels``), to be judged against this machine's own level.

The raw indicators (RMS, peak, crest factor, kurtosis, skewness) are returned beside the
features for the classical baseline (``baseline``) and the level channel. The model reads the
features through ``robust_z``: centred on the training median, divided by a robust spread that
is never below ``scale_floor`` (a band that barely moved in training cannot turn a tiny change
into a huge z), and clipped at +-``z_cap`` so no single band can carry a decision. Centre and
spread are plain arrays in the bundle (``input.normalization``), so they can be re-learned on
the device from healthy windows without TensorFlow.

Band levels are averages over bands fixed in Hz, so the feature vector has the same length
and meaning whatever the window length.

>>> fx = FeatureExtractor(fs=12000, window=2048)
>>> feats, ind = fx.transform(np.random.default_rng(0).normal(size=(2, 2048)))
>>> feats.shape, ind.shape
((2, 76), (2, 5))
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

__all__ = [
    "INDICATORS",
    "EPS",
    "FeatureConfig",
    "FeatureExtractor",
    "frame_signal",
    "split_in_time",
    "check_window",
    "standardize",
    "robust_z",
    "robust_moments",
    "levels",
    "LEVELS",
]

INDICATORS = ("rms", "peak", "crest", "kurtosis", "skewness")
LEVELS = ("log_rms", "log_peak")  # the level channel: what a sensor's gain changes
EPS = 1e-12  # keeps logs and divisions finite on a silent window


@dataclass(frozen=True)
class FeatureConfig:
    """Feature settings; stored in ``bundle.json`` (config.features) and read back on the device.

    The defaults are the training recipe's; the device reads a bundle's settings with
    ``from_bundle``, which takes none of them.
    """

    spec_bands: int = 48
    spec_fmin: float = 50.0  # first band centre: below it, shaft harmonics and cable motion
    spec_fmax: float = 5000.0  # below the anti-alias roll-off of a 48 -> 12 kHz decimation
    env_lo: float = 1500.0
    env_hi: float = 5000.0
    env_bands: int = 25
    env_fmax: float = 500.0  # BPFI of a 6205 at 1797 rpm is 162 Hz; 3x harmonics fit
    shape_floor: float = 0.1  # relative to the mean band: bands far below it read as the floor
    scale_floor: float = 0.15  # log10 units: the smallest spread a feature is divided by
    z_cap: float = 6.0  # |z| cap per feature: one band contributes at most z_cap^2 / dim

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> FeatureConfig:
        """Settings from a dict; unknown keys are refused, missing ones take the recipe's defaults."""
        d = dict(d or {})
        valid = set(cls.__dataclass_fields__)
        unknown = sorted(set(d) - valid)
        if unknown:
            raise ValueError(f"unknown feature settings {unknown}; valid: {', '.join(sorted(valid))}")
        return cls(**d)

    @classmethod
    def from_bundle(cls, d: dict[str, Any] | None) -> FeatureConfig:
        """Read ``config.features`` of a bundle: every setting is required, so a bundle missing
        one is refused rather than run with a default the model was not trained with."""
        missing = sorted(set(cls.__dataclass_fields__) - set(d or {}))
        if missing:
            raise ValueError(f"bundle.json config.features lacks {', '.join(missing)}")
        return cls.from_dict(d)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def frame_signal(x: np.ndarray, window: int, hop: int) -> np.ndarray:
    """Overlapping windows (n, window) of a 1-D signal; the tail shorter than a window is dropped."""
    x = np.asarray(x, dtype=np.float64).ravel()
    if window < 1 or hop < 1:
        raise ValueError(f"window and hop must be >= 1 sample, got window={window} hop={hop}")
    if x.size < window:
        return np.empty((0, window))
    n = 1 + (x.size - window) // hop
    idx = np.arange(window)[None, :] + hop * np.arange(n)[:, None]
    return x[idx]


def split_in_time(n_samples: int, fractions: tuple[float, ...]) -> list[tuple[int, int]]:
    """Contiguous, disjoint (start, end) sample ranges in time order, e.g. train/val/test.

    Windows are cut inside each range, so no window of one split shares a sample with
    another: the healthy recording is never tested on what was trained on.
    """
    f = np.asarray(fractions, dtype=np.float64)
    if (f <= 0).any() or not np.isclose(f.sum(), 1.0):
        raise ValueError(f"split fractions must be positive and sum to 1, got {list(fractions)}")
    edges = np.r_[0, np.round(np.cumsum(f) * n_samples).astype(int)]
    edges[-1] = n_samples
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True)]


def check_window(w: np.ndarray, window: int) -> np.ndarray:
    """A window as float64 of the expected length, or a one-line ValueError saying what is wrong."""
    w = np.asarray(w, dtype=np.float64).ravel()
    if w.size != window:
        raise ValueError(f"window has {w.size} samples, the bundle expects {window}")
    if not np.isfinite(w.sum()):  # one pass; NaN/inf propagate into the sum
        bad = int((~np.isfinite(w)).sum())
        raise ValueError(f"window has {bad} NaN/infinite samples of {window}")
    return w


def _log_band_matrix(freqs: np.ndarray, df: float, fmin: float, fmax: float, bands: int) -> np.ndarray:
    """Weights (bins, bands): triangles evenly spaced in log-frequency, centres ``fmin``..``fmax``,
    each reaching to its neighbours' centres; every column sums to 1 (a weighted PSD average).

    Each bin is an interval f +- df/2, sampled at 16 points, so a band narrower than a bin
    still gets its share and any window length gives the same band meaning, only noisier.
    """
    ratio = (fmax / fmin) ** (1.0 / max(bands - 1, 1))
    centres = fmin * ratio ** np.arange(-1, bands + 1)
    sub = freqs[:, None] + df * ((np.arange(16) + 0.5) / 16 - 0.5)[None, :]
    lf = np.log(np.maximum(sub, 1e-9))[:, :, None]
    lc = np.log(centres)
    lo, mid, hi = lc[:-2], lc[1:-1], lc[2:]
    tri = np.clip(np.minimum((lf - lo) / (mid - lo), (hi - lf) / (hi - mid)), 0, None).mean(axis=1)
    if (tri.sum(axis=0) <= 0).any():
        raise ValueError(f"spectral band {fmin:g}-{fmax:g} Hz holds no FFT bin at resolution {df:g} Hz")
    return tri / tri.sum(axis=0, keepdims=True)


def _band_matrix(freqs: np.ndarray, df: float, edges: np.ndarray) -> np.ndarray:
    """Weights (bins, bands) averaging a PSD over each band, bins as intervals f +- df/2.

    Works for any frequency resolution (a band narrower than a bin still gets its share), so
    short windows give the same band meaning as long ones, only noisier.
    """
    lo_bin = freqs - df / 2
    hi_bin = freqs + df / 2
    lo, hi = edges[:-1], edges[1:]
    overlap = np.clip(
        np.minimum(hi_bin[:, None], hi[None, :]) - np.maximum(lo_bin[:, None], lo[None, :]), 0, None
    )
    return overlap / (hi - lo)[None, :]


class FeatureExtractor:
    """Window -> (features for the autoencoder, raw indicators for the baseline). Vectorized."""

    def __init__(self, fs: float, window: int, config: FeatureConfig | dict | None = None) -> None:
        if not fs or fs <= 0:
            raise ValueError(f"sampling rate must be a positive number of Hz, got {fs!r}")
        self.fs = float(fs)
        self.window = int(window)
        self.cfg = config if isinstance(config, FeatureConfig) else FeatureConfig.from_dict(config)
        c = self.cfg
        nyq = self.fs / 2
        if not 0 < c.spec_fmin < c.spec_fmax:
            raise ValueError(f"spec_fmin must be in (0, spec_fmax), got {c.spec_fmin:g}")
        top = c.spec_fmax * (c.spec_fmax / c.spec_fmin) ** (1.0 / max(c.spec_bands - 1, 1))  # last slope
        if top > nyq or c.env_hi > nyq:
            raise ValueError(
                f"feature bands reach above Nyquist {nyq:g} Hz (spec_fmax {c.spec_fmax:g}, env_hi "
                f"{c.env_hi:g}) "
                f"of fs={self.fs:g}"
            )
        n = self.window
        self._hann = np.hanning(n)
        # one-sided PSD scaling (density, per Hz) so band levels do not depend on window length
        self._psd_scale = 1.0 / (self.fs * (self._hann**2).sum())
        freqs = np.fft.rfftfreq(n, 1.0 / self.fs)
        df = self.fs / n
        self._spec_w = _log_band_matrix(freqs, df, c.spec_fmin, c.spec_fmax, c.spec_bands)
        band = (freqs >= c.env_lo) & (freqs <= c.env_hi)
        self._env_idx = np.nonzero(band)[0]
        if self._env_idx.size == 0:
            raise ValueError(f"envelope band {c.env_lo}-{c.env_hi} Hz holds no FFT bin at n={n}")
        self._env_slice = slice(int(self._env_idx[0]), int(self._env_idx[-1]) + 1)
        # The envelope is the magnitude of the band's analytic signal, which does not change
        # when the band is shifted down to 0 Hz; so the band's bins go into a shorter inverse
        # FFT of m points (complex demodulation), giving the envelope at fs * m / n.
        # m is the smallest size OpenCV's DFT handles fast (2^a 3^b 5^c) that holds the band's
        # bins and samples the envelope at >= 4x env_fmax
        import cv2

        m = max(16, self._env_idx.size, int(np.ceil(4 * c.env_fmax * n / self.fs)))
        self._env_m = min(cv2.getOptimalDFTSize(m), n)
        self._env_fs = self.fs * self._env_m / n
        # the envelope inherits the signal's Hann taper, resampled to m points
        self._env_taper = np.interp(np.arange(self._env_m) * n / self._env_m, np.arange(n), self._hann)
        self._env_scale = 2.0 / (self._env_fs * (self._env_taper**2).sum())
        self._env_taper_unit = self._env_taper / self._env_taper.sum()
        efreqs = np.fft.rfftfreq(self._env_m, 1.0 / self._env_fs)
        self._env_w = _band_matrix(
            efreqs, self._env_fs / self._env_m, np.linspace(0.0, c.env_fmax, c.env_bands + 1)
        )
        # only the rows (bins) a band touches take part in the products
        self._spec_rows = int(np.nonzero(self._spec_w.any(axis=1))[0].max()) + 1
        self._env_rows = int(np.nonzero(self._env_w.any(axis=1))[0].max()) + 1
        self._hann32 = self._hann.astype(np.float32)
        # OpenCV's DFT gives (re, im) pairs; squaring them and multiplying by a band matrix
        # whose rows are repeated for re and im sums |X|^2 per band in two array operations.
        # The PSD scales are folded into those weights.
        spec_w = self._spec_w[: self._spec_rows] * (2.0 * self._psd_scale)
        self._spec_w2 = np.repeat(spec_w, 2, axis=0).astype(np.float32)
        env_w = self._env_w[: self._env_rows] * self._env_scale
        self._env_w2 = np.repeat(env_w, 2, axis=0).astype(np.float32)
        self._env_taper_unit32 = self._env_taper_unit.astype(np.float32)
        self._cv2 = cv2
        self.dim = c.spec_bands + c.env_bands + 3

    @property
    def spec_centres(self) -> np.ndarray:
        """Centre frequency (Hz) of each spectral-shape band."""
        c = self.cfg
        steps = np.arange(c.spec_bands) / max(c.spec_bands - 1, 1)
        return c.spec_fmin * (c.spec_fmax / c.spec_fmin) ** steps

    @property
    def names(self) -> list[str]:
        c = self.cfg
        width = c.env_fmax / c.env_bands
        return (
            [f"spec_shape_{f:.0f}Hz" for f in self.spec_centres]
            + [f"env_shape_{(i + 0.5) * width:.0f}Hz" for i in range(c.env_bands)]
            + ["crest", "log_kurtosis", "skewness"]
        )

    def indicators(self, x: np.ndarray) -> np.ndarray:
        """RMS, peak, crest factor, kurtosis (not excess), skewness per row, of the centred signal."""
        n = x.shape[-1]
        if x.shape[0] == 1:
            # the streaming case: one window. Numpy's per-call cost dominates at 2048 samples,
            # so the scalar arithmetic runs on Python floats (same formulas, same float64);
            # tests hold it equal to the batch path below.
            v = x[0]
            vc = v - float(v.sum()) / n
            v2 = vc * vc
            m2 = max(float(v2.sum()) / n, EPS)
            rms = math.sqrt(m2)
            peak = float(np.abs(vc).max())
            kurt = float(v2 @ v2) / (n * m2 * m2)
            skew = float(v2 @ vc) / (n * m2 * rms)
            return np.array([[rms, peak, peak / rms, kurt, skew]])
        xc = x - x.sum(axis=-1, keepdims=True) / n
        x2 = xc * xc
        m2 = np.maximum(x2.sum(axis=-1) / n, EPS)
        out = np.empty((x.shape[0], len(INDICATORS)))
        out[:, 0] = np.sqrt(m2)
        out[:, 1] = np.abs(xc).max(axis=-1)
        out[:, 2] = out[:, 1] / out[:, 0]
        x2r = x2[:, None, :]  # row-wise dot products through BLAS: fewer passes than einsum
        out[:, 3] = np.matmul(x2r, x2[:, :, None]).ravel() / (n * m2 * m2)
        out[:, 4] = np.matmul(x2r, xc[:, :, None]).ravel() / (n * m2 * out[:, 0])
        return out

    def transform(self, windows: np.ndarray, *, checked: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(n, window) samples -> scale-free features (n, dim) float32 and raw indicators (n, 5) float64.

        ``checked``: the caller already verified length and finiteness (``check_window``).
        """
        if checked:
            x = windows.reshape(-1, self.window)
        else:
            x = np.atleast_2d(np.asarray(windows, dtype=np.float64))
            if x.shape[-1] != self.window:
                raise ValueError(f"windows have {x.shape[-1]} samples, the extractor expects {self.window}")
            if not np.isfinite(x).all():
                raise ValueError("windows contain NaN or infinite samples")
        c = self.cfg
        rows = x.shape[0]
        ind = self.indicators(x)
        out = np.empty((rows, self.dim), dtype=np.float32)
        if rows == 0:
            return out, ind
        # One FFT of the Hann-windowed signal serves the spectrum and the envelope. The spectral
        # path runs in float32 (levels are logged anyway), the indicators in float64. OpenCV's
        # DFT (a runtime dependency anyway) costs a third of numpy's on a 2048-sample row; at
        # this size a window's cost is mostly per-call overhead, hence few, fused operations.
        cv2 = self._cv2
        xc = (x - x.sum(axis=-1, keepdims=True) / self.window).astype(np.float32)
        X = cv2.dft(xc * self._hann32, flags=cv2.DFT_ROWS | cv2.DFT_COMPLEX_OUTPUT)
        X = X.reshape(rows, -1)  # interleaved re, im
        sb, j = c.spec_bands, c.spec_bands + c.env_bands
        Xk = X[:, : 2 * self._spec_rows]
        np.matmul(Xk * Xk, self._spec_w2, out=out[:, :sb])
        # envelope: the band's bins shifted to 0 Hz (complex demodulation, the inverse FFT
        # zero-pads them to m points), analytic magnitude; it carries the Hann taper, so the
        # envelope's Hann-shaped mean is removed, and it is not windowed a second time
        Z = np.zeros((rows, 2 * self._env_m), np.float32)
        Z[:, : 2 * self._env_idx.size] = X[:, 2 * self._env_slice.start : 2 * self._env_slice.stop]
        inverse = cv2.DFT_ROWS | cv2.DFT_COMPLEX_OUTPUT | cv2.DFT_SCALE
        Z = cv2.idft(Z.reshape(rows, self._env_m, 2), flags=inverse)
        env = np.abs(Z.reshape(rows, 2 * self._env_m).view(np.complex64))
        env -= env.sum(axis=-1, keepdims=True) * self._env_taper_unit32
        E = cv2.dft(env, flags=cv2.DFT_ROWS | cv2.DFT_COMPLEX_OUTPUT).reshape(rows, -1)
        Ek = E[:, : 2 * self._env_rows]
        np.matmul(Ek * Ek, self._env_w2, out=out[:, sb:j])
        out[:, :j] += EPS
        # shapes: each band over the mean band of its own spectrum, floored, in log10
        fl = c.shape_floor
        out[:, :sb] *= 1.0 / out[:, :sb].mean(axis=-1, keepdims=True)
        out[:, sb:j] *= 1.0 / out[:, sb:j].mean(axis=-1, keepdims=True)
        out[:, :j] += fl
        np.log10(out[:, :j], out=out[:, :j])
        out[:, j:] = self.indicator_features(ind)
        return out, ind

    @staticmethod
    def indicator_features(ind: np.ndarray) -> np.ndarray:
        """The scale-free indicators as features: crest, log10 kurtosis (it spans decades),
        skewness. RMS and peak are levels (``levels``), not model inputs."""
        if ind.shape[0] == 1:  # one window: Python floats beat numpy calls
            _, _, crest, kurt, skew = ind[0].tolist()
            return np.array([[crest, math.log10(kurt + EPS), skew]])
        li = ind[:, 2:].copy()
        li[:, 1] = np.log10(li[:, 1] + EPS)
        return li


def levels(ind: np.ndarray) -> np.ndarray:
    """The level channel (n, 2): log10 RMS and log10 peak of the raw indicators. What a sensor's
    gain moves, so it is judged against this machine's own level, apart from the model."""
    ind = np.atleast_2d(np.asarray(ind, np.float64))
    return np.log10(ind[:, :2] + EPS)


def standardize(feats: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Features in the units the autoencoder was trained on (the bundle's mean/std), float32."""
    return ((np.asarray(feats, np.float32) - mean) / std).astype(np.float32)


def robust_moments(feats: np.ndarray, scale_floor: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature centre (median) and spread (1.4826 x MAD, never below ``scale_floor``).

    Robust to the odd transient among healthy windows; the floor stops a feature that barely
    moved in training (a steady spectral line) from turning a harmless change into a huge z.
    Plain arrays, so commissioning can re-learn them on the device from healthy windows.
    """
    f = np.asarray(feats, np.float64)
    med = np.median(f, axis=0)
    mad = 1.4826 * np.median(np.abs(f - med), axis=0)
    return med.astype(np.float32), np.maximum(mad, scale_floor).astype(np.float32)


def robust_z(feats: np.ndarray, centre: np.ndarray, spread: np.ndarray, cap: float) -> np.ndarray:
    """Features in model units: ``(x - centre) / spread`` clipped to +-``cap`` (float32); the cap
    bounds what any one feature can add to a reconstruction error."""
    z = standardize(feats, centre, spread)
    return np.clip(z, -cap, cap, out=z)
