"""Commissioning: learn THIS machine's healthy state on the device, without TensorFlow.

(The learning only; the command around it is ``commission_cli``. Kept whole because the
checks, the held-out thresholds and the file they produce are one procedure that must match
training's rules.)

A bundle is trained on one rig's sensor. Where it is installed, the sensor's gain, its
mounting and the machine's own healthy spectrum differ, and a model judged against the
training rig's statistics raises alarms on a healthy machine. So after installation the
device listens to the healthy machine for a few minutes and re-learns what the bundle keeps
as plain arrays (``edgewise commission vibration``):

- the feature normalisation (median and robust spread per feature, ``robust_moments``);
- the classical baseline's Mahalanobis model (mean, inverse covariance of the indicators);
- the alarm thresholds for the target false-alarm rate, per model variant and for the
  baseline, from scores of windows held out of the statistics they are scored with (blocks in
  time, as training's out-of-fold scores): a log-normal tail fit, never below the empirical
  quantile (``normal_threshold``);
- the level channel (log10 RMS and peak; ``--no-levels`` keeps the bundle's) and the input
  drift reference (``edge.drift``), so ``edgewise run`` compares with this machine.

The autoencoder itself is not retrained: its weights stay the bundle's.

Before learning, the signal is checked (``checks``), one line each: too few windows, a dead
sensor (flat windows), clipping (samples stuck at the extremes), and the sampling rate
against the spectrum (the healthy spectrum matching the training one only when shifted in
frequency means the declared rate is wrong). A failed check writes nothing.

The result is a JSON file beside the bundle (``vib.bundle.commissioning.json``), tied to the
bundle by the sha256 of its ``bundle.json`` and checksummed (sha256 of its own canonical
JSON); ``edgewise run vibration`` applies it automatically (or ``--commissioning F``) and
refuses, in one line, one made for another bundle or edited since. The checksum catches
edits and damage, not a forger: sign the bundle for that (``edgewise sign``).

>>> c = commission(load_bundle("vib.bundle"), windows, fs=12000)   # doctest: +SKIP
>>> c.save(commissioning_path(bundle))                              # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ...bundle import BUNDLE_JSON, Bundle
from ...drift import DriftReference, rate_mismatch, spectrum_scale
from ...evaluate import threshold_for_false_alarm
from ...spec import BundleError, BundleSpec, Normalization, Thresholds
from .baseline import Mahalanobis
from .features import LEVELS, FeatureConfig, FeatureExtractor, levels, robust_moments, robust_z

__all__ = [
    "FORMAT", "CommissionSettings", "Check", "Commissioning", "WindowStats", "commission",
    "commissioning_path", "find_commissioning", "load_commissioning", "normal_threshold", "bundle_hash",
]

FORMAT = "edgewise-commissioning"
VERSION = 1
SUFFIX = ".commissioning.json"


def normal_threshold(scores: np.ndarray, target_far: float, rule: str = "lognormal") -> float:
    """The alarm threshold from held-out normal scores for a target false-alarm rate.

    "empirical": the (1 - far) quantile. "lognormal" (default): the (1 - far) quantile of a
    normal distribution fitted to the log scores, which extrapolates the tail from every score
    (a few hundred overlapping windows say little about a 1 % tail on their own); never below
    the empirical one.
    """
    from statistics import NormalDist

    emp = threshold_for_false_alarm(scores, target_far)
    if rule == "empirical":
        return emp
    if rule != "lognormal":
        raise ValueError(f"threshold rule must be 'lognormal' or 'empirical', got '{rule}'")
    ls = np.log(np.maximum(np.asarray(scores, np.float64), 1e-12))
    z = NormalDist().inv_cdf(1.0 - target_far)
    return float(max(emp, np.exp(ls.mean() + z * ls.std(ddof=1))))


def bundle_hash(bundle: Bundle) -> str:
    """sha256 of the bundle's ``bundle.json``: it pins every model file through their checksums."""
    return hashlib.sha256(bundle.file(BUNDLE_JSON).read_bytes()).hexdigest()


def commissioning_path(bundle: Bundle | str | Path) -> Path:
    """Where the commissioning file of a bundle lives: beside it, ``<bundle>.commissioning.json``
    (for a zipped bundle, beside the .zip)."""
    if isinstance(bundle, Bundle):
        bundle = bundle.source or bundle.path
    p = Path(bundle)
    return p.with_name(p.name.rstrip("/") + SUFFIX)


@dataclass(frozen=True)
class CommissionSettings:
    """How long to listen and what to aim for.

    ``target_far``: None takes the bundle's (``thresholds.target_far``). ``min_windows``: fewer
    healthy windows than this give no threshold worth the name (a 1 % tail needs ~100 scores).
    ``folds``: blocks in time for the held-out scores. ``learn_levels``: re-learn the level
    channel (False keeps the bundle's).
    """

    target_far: float | None = None
    min_windows: int = 100
    folds: int = 4
    rule: str = "lognormal"
    learn_levels: bool = True
    dead_fraction: float = 0.05  # flat windows tolerated
    clip_fraction: float = 5e-4  # samples at the extremes tolerated
    spectrum_min: float = 0.8  # correlation a shifted spectrum must reach to call the rate wrong


@dataclass(frozen=True)
class Check:
    """One plausibility check: its name, whether it passed, one line for people."""

    name: str
    ok: bool
    text: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "text": self.text}


@dataclass
class WindowStats:
    """What commissioning keeps per window while it listens: features, indicators, the drift
    statistics and the signal's extremes (never the windows themselves: minutes of signal at
    kHz rates would not fit a Pi's memory)."""

    fx: FeatureExtractor
    feats: list[np.ndarray] = field(default_factory=list)
    ind: list[np.ndarray] = field(default_factory=list)
    drift: list[np.ndarray] = field(default_factory=list)
    t: list[float] = field(default_factory=list)
    dead: int = 0
    lo: float = math.inf
    hi: float = -math.inf
    at_lo: int = 0
    at_hi: int = 0
    samples: int = 0
    drift_every: int = 4  # drift statistics of one window in this many (they are medians)
    _drift_rows: list[tuple[dict[str, float], np.ndarray]] = field(default_factory=list)

    def add(self, w: np.ndarray, t: float | None = None) -> None:
        w = np.asarray(w, np.float64).ravel()
        f, i = self.fx.transform(w[None])
        self.feats.append(f[0])
        self.ind.append(i[0])
        self.t.append(float(len(self.t) if t is None else t))
        if len(self.feats) % self.drift_every == 1 or self.drift_every == 1:
            self.drift.append(w)  # kept briefly: turned into statistics by ``drift_reference``
            if len(self.drift) >= 64:
                self._fold_drift()
        if np.unique(w).size < 4:  # a constant, or a stuck converter toggling one step
            self.dead += 1
        # clipping: samples sitting exactly at the running extremes of the whole signal
        lo, hi = float(w.min()), float(w.max())
        if lo < self.lo:
            self.lo, self.at_lo = lo, 0
        if hi > self.hi:
            self.hi, self.at_hi = hi, 0
        self.at_lo += int((w == self.lo).sum())
        self.at_hi += int((w == self.hi).sum())
        self.samples += w.size

    def _fold_drift(self) -> None:
        from ...drift import vibration_stats

        self._drift_rows.extend(vibration_stats(w, self.fx.fs) for w in self.drift)
        self.drift.clear()

    def drift_reference(self) -> DriftReference | None:
        """This machine's drift reference (None with fewer than 8 windows sampled)."""
        from ...drift import vibration_stats

        rows = self._drift_rows + [vibration_stats(w, self.fx.fs) for w in self.drift]
        if len(rows) < 8:
            return None
        names = list(rows[0][0])
        stats = {}
        for k in names:
            v = np.array([r[0][k] for r in rows])
            med = float(np.median(v))
            stats[k] = (med, float(1.4826 * np.median(np.abs(v - med))))
        prof = np.mean([r[1] for r in rows], axis=0)
        return DriftReference("vibration", len(rows), stats, tuple(float(x) for x in prof), fs=self.fx.fs)

    @property
    def n(self) -> int:
        return len(self.feats)


def _folds(t: np.ndarray, win_s: float, k: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(held-out, fit) masks over windows starting at ``t`` seconds, ``k`` blocks in time; no fit
    window shares a sample with a held-out one."""
    edges = np.linspace(t.min(), t.max(), k + 1)
    edges[-1] = np.inf
    out = []
    for i in range(k):
        held = (t >= edges[i]) & (t < edges[i + 1])
        if held.any():
            lo, hi = t[held].min(), t[held].max() + win_s
            out.append((held, (t + win_s <= lo) | (t >= hi)))
    return out


@dataclass
class Commissioning:
    """A commissioning: what was learned, for which bundle, from what signal, with its checks."""

    bundle_sha256: str
    bundle_name: str
    created: str
    edgewise_version: str
    source: dict[str, Any]
    target_far: float
    normalization: dict[str, list[float]]
    baseline: dict[str, Any]
    thresholds: dict[str, Any]
    levels: dict[str, Any] | None
    drift: dict[str, Any] | None
    checks: list[dict[str, Any]]
    report: dict[str, Any]

    KEYS = ("format", "version", "bundle_sha256", "bundle_name", "created", "edgewise_version", "source",
            "target_far", "normalization", "baseline", "thresholds", "levels", "drift", "checks", "report")

    def body(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.KEYS if k not in ("format", "version")}
        return {"format": FORMAT, "version": VERSION, **d}

    @staticmethod
    def checksum(body: dict[str, Any]) -> str:
        text = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def to_json(self) -> str:
        body = self.body()
        return json.dumps({**body, "sha256": self.checksum(body)}, indent=1) + "\n"

    def save(self, path: str | Path) -> Path:
        """Write atomically (a half-written file would be refused by its checksum anyway)."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(self.to_json(), encoding="utf-8")
        tmp.replace(path)
        return path

    @classmethod
    def from_json(cls, text: str, where: str) -> Commissioning:
        """Parse and verify the checksum; every failure is one ``BundleError`` line."""
        try:
            d = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise BundleError(f"{where}: not a commissioning file (malformed JSON: {e})") from None
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise BundleError(f"{where}: not a commissioning file (format is not '{FORMAT}')")
        if d.get("version") != VERSION:
            raise BundleError(f"{where}: commissioning version {d.get('version')!r}; "
                              f"this edgewise reads {VERSION}")
        stored = d.pop("sha256", None)
        if stored != cls.checksum(d):
            raise BundleError(f"{where}: checksum mismatch: the file was edited or damaged; commission again")
        missing = [k for k in cls.KEYS if k not in d]
        unknown = sorted(set(d) - set(cls.KEYS))
        if missing or unknown:
            what = f"lacks {', '.join(missing)}" if missing else f"unknown keys {unknown}"
            raise BundleError(f"{where}: {what}")
        return cls(**{k: d[k] for k in cls.KEYS if k not in ("format", "version")})

    def apply(self, spec: BundleSpec, where: str = "commissioning") -> BundleSpec:
        """The bundle's spec with this machine's normalisation, thresholds, baseline, level
        channel and drift reference in place of the training ones (the model is the bundle's)."""
        try:
            norm = Normalization.from_json({**self.normalization, "of": "commissioned features"}, where)
            thr_d = {**spec.thresholds.model_dump(exclude_none=True), **spec.thresholds.values}
            thr_d["per_variant"] = {**spec.thresholds.per_variant, **self.thresholds["per_variant"]}
            thr_d["baseline"] = self.thresholds["baseline"]
            thr_d["target_far"] = self.target_far
            if spec.thresholds.decision is not None:
                thr_d["decision"] = self.thresholds["decision"]
            thr = Thresholds.from_json(thr_d, where)
        except (KeyError, TypeError) as e:
            raise BundleError(f"{where}: malformed thresholds or normalisation ({e})") from None
        dim = spec.input.shape[-1]
        if dim is not None and len(self.normalization["mean"]) != dim:
            raise BundleError(f"{where}: {len(self.normalization['mean'])} features, the model reads {dim}")
        config = dict(spec.config)
        config["baseline"] = self.baseline
        if self.levels is not None:
            config["levels"] = self.levels
        if self.drift is not None:
            config["drift"] = self.drift
        config["commissioned"] = {"created": self.created, "source": self.source.get("name")}
        return spec.model_copy(update={
            "input": spec.input.model_copy(update={"normalization": norm}),
            "thresholds": thr, "config": config,
        })


def load_commissioning(path: str | Path, bundle: Bundle) -> Commissioning:
    """Read a commissioning file and check it belongs to ``bundle``; one ``BundleError`` line if not."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise BundleError(f"{path}: cannot read ({e.strerror or e})") from None
    c = Commissioning.from_json(text, str(path))
    h = bundle_hash(bundle)
    if c.bundle_sha256 != h:
        raise BundleError(
            f"{path}: made for another bundle ('{c.bundle_name}', bundle.json sha256 "
            f"{c.bundle_sha256[:12]}..., this one {h[:12]}...): commission this bundle again")
    return c


def find_commissioning(bundle: Bundle,
                       explicit: str | Path | None = None) -> tuple[Commissioning, Path] | None:
    """``explicit``, else the file beside the bundle when there is one, else None."""
    path = Path(explicit) if explicit else commissioning_path(bundle)
    if not explicit and not path.is_file():
        return None
    return load_commissioning(path, bundle), path


# --- learning ------------------------------------------------------------------------------------


def _checks(st: WindowStats, spec: BundleSpec, s: CommissionSettings) -> list[Check]:
    """Plausibility of the signal, one line each."""
    out: list[Check] = []
    n, fs = st.n, st.fx.fs
    out.append(Check("windows", n >= s.min_windows,
                     f"{n} windows" + ("" if n >= s.min_windows else
                                      f": too few, at least {s.min_windows} needed (listen longer: "
                                      "--minutes, or overlap more: --hop)")))
    if n == 0:
        return out
    dead = st.dead / n
    out.append(Check("sensor", dead <= s.dead_fraction,
                     f"{100 * dead:.1f} % flat windows" + ("" if dead <= s.dead_fraction else
                                                          ": dead or disconnected sensor?")))
    clip = (st.at_lo + st.at_hi) / max(st.samples, 1)
    if dead > s.dead_fraction:  # a flat signal sits at its own extremes: not clipping
        out.append(Check("clipping", True, "not checked (flat signal)"))
        return out
    ok = clip <= s.clip_fraction
    out.append(Check("clipping", ok, f"{100 * clip:.3f} % of samples at the extremes ({st.lo:.4g}, "
                                     f"{st.hi:.4g})" + ("" if ok else ": the signal is clipped (lower the "
                                                                   "gain or raise the sensor's range)")))
    # the sampling rate against the spectrum: the healthy spectrum should match the training one
    # as declared, not only when shifted in frequency
    drift = spec.config.get("drift")
    cfg = st.fx.cfg
    if isinstance(drift, dict) and drift.get("kind") == "vibration":
        ref = DriftReference.from_dict(drift, "bundle.json config.drift")
        mine = st.drift_reference()
        r, c, c0 = (1.0, 1.0, 1.0) if mine is None else spectrum_scale(np.asarray(mine.profile),
                                                                       np.asarray(ref.profile))
        need, fair = s.spectrum_min, True
    else:  # older bundles: the training median of the spectral-shape features
        sb = cfg.spec_bands
        med = np.median(np.asarray(st.feats), axis=0)[:sb]
        centre = np.asarray(spec.input.normalization.mean, np.float64)[:sb]
        r, c, c0 = spectrum_scale(med, centre, ratio=(cfg.spec_fmax / cfg.spec_fmin) ** (1 / max(sb - 1, 1)),
                                  max_shift=sb // 3)
        need, fair = max(s.spectrum_min, 0.9), False  # the floored shape features say less: ask more
    wrong = rate_mismatch(r, c, c0, least=need, fair=fair)
    out.append(Check(
        "sampling_rate", not wrong,
        f"spectrum matches the training one as declared (correlation {c0:.2f})" if not wrong else
        f"the spectrum matches the training one only with frequencies x{1 / r:.2f} (correlation {c:.2f} vs "
        f"{c0:.2f} as declared): is the sampling rate right? declared {fs:g} Hz, the spectrum suggests "
        f"about {fs * r:.0f} Hz"))
    return out


def _variant_models(bundle: Bundle, threads: int | None) -> dict[str, Any]:
    from ...backends import load_model

    return {v: load_model(bundle, v, threads=threads) for v in bundle.variants}


def _mse(model: Any, z: np.ndarray) -> np.ndarray:
    r = model.predict(z)
    return ((z - r) ** 2).mean(axis=1)


def commission(bundle: Bundle, st: WindowStats, settings: CommissionSettings | None = None, *,
               source: dict[str, Any] | None = None, threads: int | None = 1,
               models: dict[str, Any] | None = None,
               force: bool = False) -> tuple[Commissioning | None, list[Check]]:
    """Learn this machine's healthy state from the windows in ``st``; (None, checks) when a
    plausibility check failed (unless ``force``: the failed checks are then recorded in the file).
    ``models``: already open variants (tests), else every variant."""
    from ... import __version__

    s = settings or CommissionSettings()
    spec = bundle.spec
    checks = _checks(st, spec, s)
    if not all(c.ok for c in checks) and not (force and checks[0].ok):  # never without enough windows
        return None, checks
    target = s.target_far if s.target_far is not None else float(spec.thresholds.get("target_far", 0.01))
    if not 0 < target < 1:
        raise ValueError(f"target false-alarm rate must be between 0 and 1, got {target:g}")
    cfg = st.fx.cfg
    feats, ind = np.asarray(st.feats), np.asarray(st.ind)
    t = np.asarray(st.t)
    own = models is None
    models = models if models is not None else _variant_models(bundle, threads)
    try:
        # held-out scores: statistics fitted on the other blocks in time score each block
        held_scores: dict[str, list[np.ndarray]] = {v: [] for v in models}
        held_scores["baseline"] = []
        win_s = st.fx.window / st.fx.fs
        for held, fit in _folds(t, win_s, s.folds):
            if fit.sum() < max(ind.shape[1] + 2, len(t) / 3):
                continue
            c_, s_ = robust_moments(feats[fit], cfg.scale_floor)
            z = robust_z(feats[held], c_, s_, cfg.z_cap)
            for v, m in models.items():
                held_scores[v].append(_mse(m, z))
            held_scores["baseline"].append(Mahalanobis().fit(ind[fit]).score(ind[held]))
        if not held_scores["baseline"]:
            raise ValueError(f"{len(t)} windows leave no block in time to score ({s.folds} folds): "
                             "listen longer")
        oof = {k: np.concatenate(v) for k, v in held_scores.items()}
        centre, spread = robust_moments(feats, cfg.scale_floor)
        base = Mahalanobis().fit(ind)
        per_variant = {v: normal_threshold(oof[v], target, s.rule) for v in models}
        thr_base = normal_threshold(oof["baseline"], target, s.rule)
        # what the bundle's own (training) state makes of this healthy signal, for the report
        before = _before(bundle, spec, feats, ind, models)
    finally:
        if own:
            for m in models.values():
                m.close()
    preferred = bundle.variant(None).name
    lv = None
    if s.learn_levels:
        lc, ls = robust_moments(levels(ind), 0.0)
        lv = {"names": list(LEVELS), "centre": lc.tolist(), "spread": ls.tolist()}
    drift = st.drift_reference()
    train_lv = spec.config.get("levels") or {}
    report: dict[str, Any] = {
        "windows": st.n, "held_out_scores": int(len(oof["baseline"])),
        "thresholds_training": {**{v: spec.thresholds.for_variant(v) for v in models},
                                "baseline": spec.thresholds.get("baseline")},
        "false_alarms_at_training_state": before,
        "false_alarms_held_out": {**{v: float((oof[v] > per_variant[v]).mean()) for v in models},
                                  "baseline": float((oof["baseline"] > thr_base).mean())},
    }
    if lv is not None and train_lv.get("centre"):
        report["level_db_vs_training"] = round(20.0 * (lv["centre"][0] - float(train_lv["centre"][0])), 2)
    c = Commissioning(
        bundle_sha256=bundle_hash(bundle), bundle_name=spec.name,
        created=time.strftime("%Y-%m-%dT%H:%M:%S%z"), edgewise_version=__version__,
        source={**(source or {}), "fs": st.fx.fs, "window": st.fx.window, "windows": st.n},
        target_far=target,
        normalization={"mean": centre.tolist(), "std": spread.tolist()},
        baseline=base.to_dict(),
        thresholds={"per_variant": per_variant, "decision": per_variant[preferred], "baseline": thr_base,
                    "rule": s.rule},
        levels=lv, drift=None if drift is None else drift.to_dict(),
        checks=[ch.to_dict() for ch in checks], report=report,
    )
    return c, checks


def _before(bundle: Bundle, spec: BundleSpec, feats: np.ndarray, ind: np.ndarray,
            models: dict[str, Any]) -> dict[str, float]:
    """False-alarm rate of the bundle's training state on the commissioning windows."""
    norm = spec.input.normalization
    cap = FeatureConfig.from_bundle(spec.config["features"]).z_cap
    z = np.clip(norm.apply(feats), -cap, cap)
    out = {v: float((_mse(m, z) > spec.thresholds.for_variant(v)).mean()) for v, m in models.items()}
    if "baseline" in spec.config and spec.thresholds.get("baseline") is not None:
        b = Mahalanobis.from_dict(spec.config["baseline"]).score(ind)
        out["baseline"] = float((b > float(spec.thresholds.get("baseline"))).mean())
    return out
