"""Vibration anomaly detection on the edge: windowing, features, scoring, alarm, the run loop.

This module is the ONE implementation of the signal features. Training
(``edgewise.train.vibration``) computes its inputs with ``FeatureExtractor`` from here, and
the device runs the very same code per window, so the model sees on the Pi what it was
evaluated on. numpy only: no TensorFlow, no scipy.

Per window of ``window`` samples at ``fs`` Hz:

- log power spectral density in linear frequency bands up to ``spec_fmax`` (the spectrum),
- log envelope spectrum: the signal band-passed around the structural resonance
  (``env_lo``..``env_hi``), demodulated (analytic-signal magnitude), and its spectrum in bands
  up to ``env_fmax`` -- bearing-fault impulse trains show up here at BPFO/BPFI/BSF,
- classical indicators: RMS, peak, crest factor, kurtosis, skewness.

Band levels are PSD averages over bands fixed in Hz, so the feature vector has the same length
and meaning whatever the window length. The autoencoder reads all of them, standardized with
the training mean/std stored in the bundle; the classical baseline is a Mahalanobis distance on
the five indicators (mean and inverse covariance in the bundle), computed here too.

>>> fx = FeatureExtractor(fs=12000, window=2048)
>>> feats, ind = fx.transform(np.random.default_rng(0).normal(size=(2, 2048)))
>>> feats.shape, ind.shape
((2, 94), (2, 5))
>>> # edgewise run vibration --bundle vib.bundle --source IR007_0.npy --fs 12000 --realtime
"""

from __future__ import annotations

import json
import math
import time
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..pipeline import Frame

__all__ = [
    "INDICATORS",
    "FeatureConfig",
    "FeatureExtractor",
    "frame_signal",
    "split_in_time",
    "standardize",
    "reconstruction_error",
    "check_window",
    "Mahalanobis",
    "AlarmState",
    "VibrationApp",
    "run_main",
]

INDICATORS = ("rms", "peak", "crest", "kurtosis", "skewness")
_EPS = 1e-12


@dataclass(frozen=True)
class FeatureConfig:
    """Feature settings; stored in ``bundle.json`` (config.features) and read back on the device."""

    spec_bands: int = 64
    spec_fmax: float = 5000.0  # below the anti-alias roll-off of a 48 -> 12 kHz decimation
    env_lo: float = 1500.0
    env_hi: float = 5000.0
    env_bands: int = 25
    env_fmax: float = 500.0  # BPFI of a 6205 at 1797 rpm is 162 Hz; 3x harmonics fit

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> FeatureConfig:
        d = dict(d or {})
        valid = set(cls.__dataclass_fields__)
        unknown = sorted(set(d) - valid)
        if unknown:
            raise ValueError(f"unknown feature settings {unknown}; valid: {', '.join(sorted(valid))}")
        return cls(**d)

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
        if c.spec_fmax > nyq or c.env_hi > nyq:
            raise ValueError(
                f"feature bands reach {max(c.spec_fmax, c.env_hi):g} Hz, above Nyquist {nyq:g} Hz "
                f"of fs={self.fs:g}"
            )
        n = self.window
        self._hann = np.hanning(n)
        # one-sided PSD scaling (density, per Hz) so band levels do not depend on window length
        self._psd_scale = 1.0 / (self.fs * (self._hann**2).sum())
        freqs = np.fft.rfftfreq(n, 1.0 / self.fs)
        df = self.fs / n
        self._spec_w = _band_matrix(freqs, df, np.linspace(0.0, c.spec_fmax, c.spec_bands + 1))
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
        self.dim = c.spec_bands + c.env_bands + len(INDICATORS)

    @property
    def names(self) -> list[str]:
        c = self.cfg
        return (
            [f"spec_{i}" for i in range(c.spec_bands)]
            + [f"env_{i}" for i in range(c.env_bands)]
            + ["log_rms", "log_peak", "crest", "log_kurtosis", "skewness"]
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
            m2 = max(float(v2.sum()) / n, _EPS)
            rms = math.sqrt(m2)
            peak = float(np.abs(vc).max())
            kurt = float(v2 @ v2) / (n * m2 * m2)
            skew = float(v2 @ vc) / (n * m2 * rms)
            return np.array([[rms, peak, peak / rms, kurt, skew]])
        xc = x - x.sum(axis=-1, keepdims=True) / n
        x2 = xc * xc
        m2 = np.maximum(x2.sum(axis=-1) / n, _EPS)
        out = np.empty((x.shape[0], len(INDICATORS)))
        out[:, 0] = np.sqrt(m2)
        out[:, 1] = np.abs(xc).max(axis=-1)
        out[:, 2] = out[:, 1] / out[:, 0]
        x2r = x2[:, None, :]  # row-wise dot products through BLAS: fewer passes than einsum
        out[:, 3] = np.matmul(x2r, x2[:, :, None]).ravel() / (n * m2 * m2)
        out[:, 4] = np.matmul(x2r, xc[:, :, None]).ravel() / (n * m2 * out[:, 0])
        return out

    def transform(self, windows: np.ndarray, *, checked: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(n, window) samples -> features (n, dim) float32 and indicators (n, 5) float64.

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
        X = cv2.dft(x.astype(np.float32) * self._hann32, flags=cv2.DFT_ROWS | cv2.DFT_COMPLEX_OUTPUT)
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
        out[:, :j] += _EPS
        np.log10(out[:, :j], out=out[:, :j])
        out[:, j:] = self.indicator_features(ind)
        return out, ind

    @staticmethod
    def indicator_features(ind: np.ndarray) -> np.ndarray:
        """Indicators as features: log10 of RMS, peak and kurtosis (they span decades), crest
        and skewness as they are."""
        if ind.shape[0] == 1:  # one window: five Python floats beat seven numpy calls
            rms, peak, crest, kurt, skew = ind[0].tolist()
            lg = math.log10
            return np.array([[lg(rms + _EPS), lg(peak + _EPS), crest, lg(kurt + _EPS), skew]])
        li = ind.copy()
        li[:, :2] += _EPS
        li[:, 3] += _EPS
        np.log10(li[:, :2], out=li[:, :2])
        np.log10(li[:, 3], out=li[:, 3])
        return li


class Mahalanobis:
    """Squared Mahalanobis distance to the normal indicators: the classical baseline (numpy).

    ``fit`` on normal windows only; a small ridge keeps the covariance invertible.
    """

    def __init__(self, ridge: float = 1e-6) -> None:
        self.ridge = ridge

    def fit(self, ind: np.ndarray) -> Mahalanobis:
        ind = np.asarray(ind, dtype=np.float64)
        if ind.ndim != 2 or len(ind) < ind.shape[1] + 1:
            raise ValueError(f"Mahalanobis needs more windows than indicators, got {ind.shape}")
        self.mean_ = ind.mean(axis=0)
        cov = np.cov(ind, rowvar=False)
        cov += np.eye(len(cov)) * self.ridge * max(np.trace(cov) / len(cov), _EPS)
        self.icov_ = np.linalg.inv(cov)
        return self

    def score(self, ind: np.ndarray) -> np.ndarray:
        d = np.atleast_2d(np.asarray(ind, dtype=np.float64)) - self.mean_
        return np.einsum("ij,jk,ik->i", d, self.icov_, d)

    def to_dict(self) -> dict[str, Any]:
        return {"indicators": list(INDICATORS), "mean": self.mean_.tolist(), "icov": self.icov_.tolist()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Mahalanobis:
        m = cls()
        m.mean_ = np.asarray(d["mean"], dtype=np.float64)
        m.icov_ = np.asarray(d["icov"], dtype=np.float64)
        return m


def standardize(feats: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    return ((np.asarray(feats, np.float32) - mean) / std).astype(np.float32)


def reconstruction_error(x: np.ndarray, recon: np.ndarray) -> np.ndarray:
    """Mean squared error per row: the autoencoder's anomaly score (``mse`` in edge.scoring)."""
    d = np.asarray(x, np.float64).reshape(len(x), -1) - np.asarray(recon, np.float64).reshape(len(x), -1)
    return (d * d).mean(axis=1)


class AlarmState:
    """N-of-M debounce with hysteresis.

    The alarm is raised when at least ``n`` of the last ``m`` window scores exceed
    ``threshold``; once raised it clears only when at least ``n`` of the last ``m`` scores are
    below ``clear_threshold`` (<= ``threshold``). Scores between the two keep the current
    state, so a score hovering at the threshold does not make the alarm flicker.
    """

    def __init__(self, threshold: float, *, n: int = 3, m: int = 5, clear_threshold: float | None = None):
        if not 1 <= n <= m:
            raise ValueError(f"debounce needs 1 <= n <= m, got n={n} m={m}")
        clear = threshold if clear_threshold is None else clear_threshold
        if clear > threshold:
            raise ValueError(f"clear threshold {clear} must not exceed the alarm threshold {threshold}")
        self.threshold, self.clear_threshold, self.n, self.m = float(threshold), float(clear), n, m
        self.active = False
        self._hist: deque[float] = deque(maxlen=m)

    def update(self, score: float) -> str | None:
        """Feed one score; returns "raised", "cleared" or None (no change)."""
        self._hist.append(float(score))
        if not self.active and sum(s > self.threshold for s in self._hist) >= self.n:
            self.active = True
            self._hist.clear()
            return "raised"
        if self.active and sum(s < self.clear_threshold for s in self._hist) >= self.n:
            self.active = False
            self._hist.clear()
            return "cleared"
        return None


class VibrationApp:
    """The vibration application on the shared pipeline Runner.

    ``preprocess``: check the window, features, standardize; ``infer``: the autoencoder in
    LiteRT / ONNX Runtime; ``postprocess``: reconstruction error, baseline distance, alarm.
    Emits one event per window (``kind`` "window", or "alarm_raised"/"alarm_cleared" on a
    change), or only the changes with ``changes_only``.
    """

    name = "vibration"

    def __init__(
        self,
        bundle: Any,
        variant: str | None = None,
        threads: int | None = None,
        *,
        alarm_n: int | None = None,
        alarm_m: int | None = None,
        changes_only: bool = False,
    ) -> None:
        from ..backends import load_model

        cfg = bundle.config
        for key in ("fs", "window", "features"):
            if key not in cfg:
                raise ValueError(f"{bundle.path}: bundle.json config lacks '{key}' (not a vibration bundle?)")
        self.bundle = bundle
        self.fs = float(cfg["fs"])
        self.window = int(cfg["window"])
        self.fx = FeatureExtractor(self.fs, self.window, cfg["features"])
        norm = bundle.input.get("normalization") or {}
        if "mean" not in norm or "std" not in norm or "decision" not in bundle.thresholds:
            raise ValueError(
                f"{bundle.path}: bundle.json lacks input.normalization mean/std or thresholds.decision "
                "(not a vibration bundle?)"
            )
        self.mean = np.asarray(norm["mean"], np.float32)
        self.std = np.asarray(norm["std"], np.float32)
        self.variant = bundle.variant(variant).name
        self.model = load_model(bundle, self.variant, threads=threads)
        th = bundle.thresholds
        self.threshold = float(th.get("per_variant", {}).get(self.variant, th["decision"]))
        self.baseline = Mahalanobis.from_dict(cfg["baseline"]) if "baseline" in cfg else None
        self.baseline_threshold = th.get("baseline")
        a = cfg.get("alarm", {})
        hyst = float(a.get("clear_ratio", 0.8))
        self.alarm = AlarmState(
            self.threshold,
            n=alarm_n or int(a.get("n", 3)),
            m=alarm_m or int(a.get("m", 5)),
            clear_threshold=self.threshold * hyst,
        )
        self.changes_only = changes_only

    def check_rate(self, fs: float) -> None:
        if fs != self.fs and abs(float(fs) - self.fs) > 1e-6 * self.fs:
            raise ValueError(
                f"source sampled at {fs:g} Hz but the bundle was trained at {self.fs:g} Hz: "
                "resample the source (an integer ratio is resampled automatically) or retrain"
            )

    def preprocess(self, frame: Frame) -> tuple[np.ndarray, np.ndarray]:
        fs = frame.meta.get("fs")
        if fs is not None:
            self.check_rate(fs)
        w = check_window(frame.data, self.window)
        feats, ind = self.fx.transform(w, checked=True)
        return ((feats - self.mean) / self.std).astype(np.float32, copy=False), ind

    def infer(self, x: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        z, ind = x
        return z, self.model.predict(z), ind

    def score(self, z: np.ndarray, recon: np.ndarray) -> float:
        """``reconstruction_error`` for one window without its batch overhead, in float32 (94
        values: within 1e-6 relative of the float64 training score)."""
        d = z.ravel() - recon.ravel()
        return float(d @ d) / d.size

    def postprocess(
        self, frame: Frame, y: tuple[np.ndarray, np.ndarray, np.ndarray]
    ) -> dict[str, Any] | None:
        z, recon, ind = y
        score = self.score(z, recon)
        change = self.alarm.update(score)
        if self.changes_only and change is None:
            return None
        ev: dict[str, Any] = {
            "ts": time.time(),
            "app": self.name,
            "kind": f"alarm_{change}" if change else "window",
            "source": frame.meta.get("source"),
            "t_signal_s": frame.meta.get("t_signal"),
            "score": round(score, 6),
            "threshold": round(self.threshold, 6),
            "anomalous": bool(score > self.threshold),
            "alarm": self.alarm.active,
            "variant": self.variant,
        }
        if self.baseline is not None:
            dv = ind[0] - self.baseline.mean_
            b = float(dv @ self.baseline.icov_ @ dv)
            ev["baseline_score"] = round(b, 4)
            if self.baseline_threshold is not None:
                ev["baseline_anomalous"] = bool(b > float(self.baseline_threshold))
        ev["indicators"] = {k: round(v, 6) for k, v in zip(INDICATORS, ind[0].tolist(), strict=True)}
        return ev


def run_main(argv: list[str]) -> int:
    """``edgewise run vibration``: stream windows from a recording, stdin or an ADXL345."""
    from ..bundle import load_bundle
    from ..cliargs import Parser, add_quiet, fail
    from ..pipeline import LatestFrame, Runner
    from ..sources.sensors import open_vibration_source
    from .common import add_sink_args, make_sinks, print_stats, start_status

    p = Parser(
        prog="edgewise run vibration",
        description="Score vibration windows with a vibration bundle; alarm with N-of-M debounce "
        "and hysteresis; events as JSON lines and in SQLite.",
        epilog="examples:\n"
        "  edgewise run vibration --bundle vib.bundle --source IR007_0.mat --fs 12000 --jsonl ev.jsonl\n"
        "  edgewise run vibration --bundle vib.bundle --source rec.wav --realtime --sqlite ev.db\n"
        "  cat samples.txt | edgewise run vibration --bundle vib.bundle --source - --fs 12000\n"
        "  edgewise run vibration --bundle vib3k2.bundle --source adxl345:1:0x53",
    )
    add_quiet(p)
    p.add_argument("--bundle", required=True, help="vibration bundle directory or .zip")
    p.add_argument(
        "--source", required=True, help="recording (.wav .npy .csv .mat) | '-' (stdin) | adxl345[:BUS[:ADDR]]"
    )
    p.add_argument(
        "--fs",
        type=float,
        help="sampling rate (Hz) of the source; required for .npy/.csv/.mat/stdin "
        "(WAV carries its own). CWRU 12k_DE files: 12000; healthy 97.mat: see docs",
    )
    p.add_argument(
        "--channel",
        default=None,
        help="channel: CWRU key part (DE, FE, BA), CSV column name/index, WAV/npy index",
    )
    p.add_argument("--hop", type=int, help="samples between window starts (default: the window)")
    p.add_argument("--variant", help="model variant (default: int8 if present)")
    p.add_argument("--threads", type=int, default=1, help="inference threads (default 1)")
    p.add_argument("--jsonl", default="-", help="JSON lines events file ('-' = stdout, '' = off)")
    p.add_argument("--sqlite", help="SQLite event log path")
    p.add_argument("--max-frames", type=int, help="stop after this many windows")
    p.add_argument(
        "--realtime",
        action="store_true",
        help="replay a recording at its real pace (else as fast as possible)",
    )
    p.add_argument("--latest", action="store_true", help="capture in a thread, keep the newest window")
    p.add_argument("--alarm-n", type=int, help="windows above threshold needed (default: bundle)")
    p.add_argument("--alarm-m", type=int, help="... out of this many recent windows (default: bundle)")
    p.add_argument("--changes-only", action="store_true", help="emit only alarm raised/cleared events")
    p.add_argument(
        "--stdin-format",
        choices=("text", "f32le"),
        default="text",
        help="stdin: one number per line (text) or raw little-endian float32",
    )
    p.add_argument("--stats", help="write run statistics (per-stage latency) as JSON here")
    add_sink_args(p)
    a = p.parse_args(argv)
    try:
        bundle = load_bundle(a.bundle)
        app = VibrationApp(
            bundle, a.variant, a.threads, alarm_n=a.alarm_n, alarm_m=a.alarm_m, changes_only=a.changes_only
        )
        src = open_vibration_source(
            a.source,
            window=app.window,
            hop=a.hop or app.window,
            fs=a.fs,
            channel=a.channel,
            realtime=a.realtime,
            target_fs=app.fs,
            stdin_format=a.stdin_format,
        )
        app.check_rate(src.fs)
    except (ValueError, OSError, ImportError) as e:
        return fail("edgewise run vibration", e)
    if a.latest:
        src = LatestFrame(src)
    runner = Runner(app, make_sinks(a, "vibration"))
    status = start_status(runner, a)
    try:
        stats = runner.run(src, max_frames=a.max_frames)
    finally:
        if status is not None:
            status.stop()
    summary = stats.summary()
    summary["alarm_active_at_end"] = app.alarm.active
    if a.stats:
        with open(a.stats, "w", encoding="utf-8") as f:
            json.dump(summary, f, indent=2)
    print_stats(summary)
    return 0
