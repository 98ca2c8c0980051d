"""CWRU bearing data as published (``.mat``), with the sampling rate carried per recording.

Layout read (the renamed 0 HP subset; any folder with the same names works)::

    vibration/cwru/Normal/Normal_0.mat        healthy bearing (CWRU 97.mat)
    vibration/cwru/12k_DE/{IR,B,OR}*_0.mat    drive-end faults, sampled at 12 kHz

The rate of the healthy recording is disputed: the CWRU index lists it with the 12 kHz data,
several analyses (and this loader's check, ``rate_evidence``) find 48 kHz. It is therefore an
explicit argument, ``normal_fs``, with the documented default ``DEFAULT_NORMAL_FS = 48000``:
with it, the rig's fixed spectral lines (e.g. 147.7, 161.7, 191.6 Hz) sit at the same
frequencies in the healthy and in the fault recordings; at 12 kHz they would sit 4x lower.
The healthy recording is then decimated to the fault files' 12 kHz so both feed one model.

>>> recs = load_cwru(data_root() / "vibration/cwru", channel="DE")   # doctest: +SKIP
>>> [(r.name, r.fs, r.label) for r in recs][:2]                       # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgewise.edge.progress import log
from edgewise.edge.sources.recordings import Recording, to_rate

__all__ = [
    "FAULT_FS",
    "DEFAULT_NORMAL_FS",
    "BEARING_6205",
    "read_cwru_mat",
    "cwru_dir",
    "load_cwru",
    "fault_label",
    "rate_evidence",
    "load_cwru_dataset",
]

FAULT_FS = 12000.0  # the 12k_DE files, per the CWRU index
DEFAULT_NORMAL_FS = 48000.0  # healthy 97.mat: disputed, see the module docstring
CHANNELS = ("DE", "FE", "BA")
# the drive-end bearing, SKF 6205-2RS: fault frequencies as multiples of shaft speed (CWRU)
BEARING_6205 = {"bpfo": 3.5848, "bpfi": 5.4152, "bsf": 2.3570, "ftf": 0.39828}


def read_cwru_mat(path: str | Path, *, fs: float, channel: str = "DE", label: str | None = None) -> Recording:
    """One CWRU ``.mat`` file: the ``XNNN_<channel>_time`` vector, at the rate given (required)."""
    from scipy.io import loadmat

    path = Path(path)
    channel = channel.upper()
    if channel not in CHANNELS:
        raise ValueError(f"channel must be one of {', '.join(CHANNELS)}, got '{channel}'")
    if not fs or fs <= 0:
        raise ValueError(f"{path.name}: a sampling rate in Hz is required, got {fs!r}")
    if not path.is_file():
        raise ValueError(f"{path}: no such CWRU file")
    try:
        d = loadmat(str(path))
    except Exception as e:  # scipy raises several types for a corrupt file
        raise ValueError(f"{path.name}: not a readable .mat file ({e})") from None
    keys = sorted(k for k in d if k.endswith(f"_{channel}_time"))
    if not keys:
        have = ", ".join(sorted(k for k in d if not k.startswith("__")))
        raise ValueError(f"{path.name}: no {channel} channel (keys: {have})")
    sig = np.asarray(d[keys[0]], dtype=np.float64).ravel()
    rpm = next((float(np.ravel(d[k])[0]) for k in d if k.endswith("RPM")), None)
    return Recording(
        name=path.stem,
        signal=sig,
        fs=float(fs),
        label=label or fault_label(path.stem),
        meta={"path": str(path), "key": keys[0], "channel": channel, "rpm": rpm, "source_fs": float(fs)},
    )


def fault_label(stem: str) -> str:
    """'IR007_0' -> 'inner_race', 'B014_0' -> 'ball', 'OR021@6_0' -> 'outer_race', 'Normal_0' -> 'normal'."""
    s = stem.upper()
    if s.startswith("NORMAL"):
        return "normal"
    if s.startswith("IR"):
        return "inner_race"
    if s.startswith("OR"):
        return "outer_race"
    if s.startswith("B"):
        return "ball"
    return "unknown"


def cwru_dir(root: str | Path) -> Path:
    """Accept the datasets root, ``vibration/`` or the ``cwru`` folder itself."""
    root = Path(root)
    for cand in (root, root / "cwru", root / "vibration" / "cwru"):
        if (cand / "Normal").is_dir() and (cand / "12k_DE").is_dir():
            return cand
    raise ValueError(f"{root}: no CWRU folder (expected Normal/ and 12k_DE/ under vibration/cwru)")


def load_cwru(
    root: str | Path,
    *,
    channel: str = "DE",
    normal_fs: float = DEFAULT_NORMAL_FS,
    target_fs: float = FAULT_FS,
    faults: list[str] | None = None,
) -> list[Recording]:
    """The healthy recording first, then every fault file, all at ``target_fs``.

    ``normal_fs`` is the rate the healthy file is read at (see the module docstring); fault
    files lacking ``channel`` (the ``*028`` files hold only DE) are skipped with a note in
    ``meta``. ``faults`` limits the fault files by stem.
    """
    d = cwru_dir(root)
    normal_files = sorted((d / "Normal").glob("*.mat"))
    if not normal_files:
        raise ValueError(f"{d / 'Normal'}: no healthy .mat recording")
    recs = [to_rate(read_cwru_mat(normal_files[0], fs=normal_fs, channel=channel, label="normal"), target_fs)]
    for f in sorted((d / "12k_DE").glob("*.mat")):
        if faults and f.stem not in faults:
            continue
        try:
            rec = read_cwru_mat(f, fs=FAULT_FS, channel=channel)
        except ValueError as e:
            if f"no {channel.upper()} channel" in str(e):
                continue
            raise
        recs.append(to_rate(rec, target_fs))
    return recs


def rate_evidence(root: str | Path, candidates: tuple[float, ...] = (12000.0, 48000.0)) -> dict[str, float]:
    """How well the healthy spectrum lines up with the fault files' for each candidate rate.

    Correlation of log spectra (20-1000 Hz, 1 Hz grid) between the healthy DE signal read at
    each candidate rate and the mean fault spectrum. The rig's fixed lines make the right rate
    stand out; the figure is reported so the choice is visible, not assumed.
    """
    d = cwru_dir(root)
    grid = np.arange(20.0, 1000.0, 1.0)

    def spec(x: np.ndarray, fs: float) -> np.ndarray:
        n = 1 << int(np.log2(min(len(x), int(fs * 4))))
        segs = x[: len(x) // n * n].reshape(-1, n) * np.hanning(n)
        p = (np.abs(np.fft.rfft(segs, axis=-1)) ** 2).mean(axis=0)
        f = np.fft.rfftfreq(n, 1 / fs)
        return np.log10(np.interp(grid, f, p) + 1e-12)

    faults = [read_cwru_mat(f, fs=FAULT_FS, channel="DE") for f in sorted((d / "12k_DE").glob("*.mat"))]
    ref = np.mean([spec(r.signal, r.fs) for r in faults], axis=0)
    normal = read_cwru_mat(sorted((d / "Normal").glob("*.mat"))[0], fs=1.0, channel="DE").signal
    return {f"{int(c)}": float(np.corrcoef(spec(normal, c), ref)[0, 1]) for c in candidates}


def load_cwru_dataset(
    data: str | Path, channel: str = "DE", normal_fs: float = DEFAULT_NORMAL_FS, quiet: bool = False
) -> tuple[list[Recording], dict[str, Any]]:
    """Every recording (``load_cwru``) and the dataset description a training report carries:
    the rates used and the evidence for the healthy file's rate, logged so the choice is seen."""
    root = cwru_dir(data)
    recs = load_cwru(root, channel=channel, normal_fs=normal_fs)
    ev = rate_evidence(root)
    log(
        f"CWRU: healthy recording read at {normal_fs:g} Hz (--normal-fs); spectral-line correlation "
        f"with the fault files per candidate rate: {ev}",
        quiet=quiet,
    )
    ds = {
        "name": "CWRU bearing data, drive end, 0 HP",
        "root": str(root),
        "channel": channel,
        "normal_fs": normal_fs,
        "fault_fs": FAULT_FS,
        "rate_evidence": ev,
        # drive-end SKF 6205-2RS: fault frequencies as multiples of shaft speed (CWRU)
        "bearing": dict(BEARING_6205),
    }
    return recs, ds
