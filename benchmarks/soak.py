"""``edgewise soak``: every application's edge loop for tens of thousands of frames, watching memory.

(One benchmark, one module: sampling, the growth arithmetic and the per-application loops are
read together when a figure is questioned.)

A device runs one loop for months, so a leak of a few hundred bytes per frame ends it. The soak
drives each application's own loop (the shared ``Runner``, with its JSON-lines and SQLite sinks
writing into a temporary folder, so the sinks are soaked too) over real data, cycling through
the images or recordings until ``--frames`` frames or windows have gone through:

- ``classify``: the scikit-learn digits test images (real, bundled with scikit-learn),
- ``face``: the ORL faces under ``$EDGEWISE_DATA`` (6 people enrolled first, the rest strangers),
- ``inspect``: the magnetic-tile images under ``$EDGEWISE_DATA``,
- ``vibration``: the CWRU 12 kHz drive-end recordings under ``$EDGEWISE_DATA``.

Each application runs in a fresh interpreter of its own (so memory another one freed cannot
hide its growth), and that process's resident memory (``VmRSS``) and open file descriptors are
read from ``/proc/self`` every ``--sample-every`` frames. Growth is measured from the first sample after
the warm-up (``--warmup`` frames: caches, allocator pools and the stats window filling) to the
last one, and judged against ``--target-mb``. The samples go to ``soak.json`` and a plot to
``soak.png`` (matplotlib, imported only to draw it).

It needs one bundle per application (``--bundle APP=PATH``; ``edgewise demo --apps APP`` makes
quick ones). It prints figures; it is not a timed test.

>>> growth([Sample(0, 0.0, 100.0, 9), Sample(500, 1.0, 104.0, 9), Sample(1000, 2.0, 105.0, 9)], 500)
... # doctest: +ELLIPSIS
Growth(warmup_frames=500, baseline_frames=500, ..., growth_mb=1.0, ...)
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Sample", "Growth", "AppSoak", "read_rss_mb", "count_fds", "growth", "SampledSource",
           "CycleSource", "soak_loop", "soak_main", "SOAK_APPS"]

SOAK_APPS = ("classify", "face", "inspect", "vibration")
# CWRU drive-end fault recordings at 12 kHz (the healthy one's rate is disputed: left out here)
CWRU_12K = "vibration/cwru/12k_DE"


@dataclass(frozen=True)
class Sample:
    """The process at one moment of the loop: frames done, seconds since start, RSS, open fds."""

    frames: int
    seconds: float
    rss_mb: float
    fds: int


@dataclass(frozen=True)
class Growth:
    """What the samples say after warm-up: growth from the first sample at or after the warm-up
    to the last, the peak, the least-squares slope, and whether the growth stays under target."""

    warmup_frames: int
    baseline_frames: int
    baseline_rss_mb: float
    end_rss_mb: float
    peak_rss_mb: float
    growth_mb: float
    peak_growth_mb: float
    slope_mb_per_10k: float
    fds_baseline: int
    fds_end: int
    fds_growth: int
    target_mb: float
    ok: bool


def read_rss_mb(status: str | Path = "/proc/self/status") -> float:
    """Resident set size in MiB from ``VmRSS`` (Linux reports kB)."""
    for line in Path(status).read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    raise ValueError(f"{status}: no VmRSS line (not Linux?)")


def count_fds(fd_dir: str | Path = "/proc/self/fd") -> int:
    """Open file descriptors of this process (the listing's own descriptor not counted)."""
    return max(0, len(os.listdir(fd_dir)) - 1)


def take_sample(frames: int, t0: float) -> Sample:
    return Sample(frames, round(time.monotonic() - t0, 3), round(read_rss_mb(), 3), count_fds())


def growth(samples: list[Sample], warmup_frames: int, target_mb: float = 10.0) -> Growth:
    """Growth after warm-up. Needs at least one sample at or after ``warmup_frames`` (the
    baseline) and one after it; the slope is fitted over the samples from the baseline on."""
    after = [s for s in samples if s.frames >= warmup_frames]
    if len(after) < 2:
        raise ValueError(f"need two samples at or after the warm-up ({warmup_frames} frames), "
                         f"got {len(after)}: run more frames or sample more often")
    base, end = after[0], after[-1]
    peak = max(s.rss_mb for s in after)
    x = np.array([s.frames for s in after], float)
    y = np.array([s.rss_mb for s in after], float)
    slope = float(np.polyfit(x, y, 1)[0]) * 10_000 if np.ptp(x) > 0 else 0.0
    g = end.rss_mb - base.rss_mb
    return Growth(
        warmup_frames=warmup_frames, baseline_frames=base.frames, baseline_rss_mb=base.rss_mb,
        end_rss_mb=end.rss_mb, peak_rss_mb=peak, growth_mb=round(g, 3),
        peak_growth_mb=round(peak - base.rss_mb, 3), slope_mb_per_10k=round(slope, 3),
        fds_baseline=base.fds, fds_end=end.fds, fds_growth=end.fds - base.fds, target_mb=target_mb,
        ok=g < target_mb and end.fds <= base.fds,
    )


class SampledSource:
    """Wraps a frame source; samples the process every ``every`` frames it hands out, and at
    frame ``total`` - 1 (the last one the runner asks for, taken while its sinks are still open)."""

    def __init__(self, source: Any, every: int, t0: float | None = None, total: int | None = None) -> None:
        self.source = source
        self.every = max(1, int(every))
        self.total = total
        self.name = getattr(source, "name", "source")
        self.samples: list[Sample] = []
        self.n = 0
        self.t0 = time.monotonic() if t0 is None else t0

    @property
    def dropped(self) -> int:
        return int(getattr(self.source, "dropped", 0))

    def __enter__(self) -> SampledSource:
        self.source.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.source.__exit__(*exc)

    def __iter__(self) -> Iterator[Any]:
        for frame in self.source:
            if self.n % self.every == 0 or (self.total is not None and self.n == self.total - 1):
                self.samples.append(take_sample(self.n, self.t0))
            self.n += 1
            yield frame

    def finish(self) -> None:
        """A last sample when the source ended before ``total`` (taken after the sinks closed)."""
        if not self.samples or self.samples[-1].frames < self.n - 1:
            self.samples.append(take_sample(self.n, self.t0))


class CycleSource:
    """Cycles through several re-iterable sources forever (a recording set replayed on a loop),
    numbering frames continuously."""

    def __init__(self, sources: list[Any], name: str) -> None:
        if not sources:
            raise ValueError(f"{name}: nothing to cycle through")
        self.sources, self.name, self.dropped = sources, name, 0

    def __enter__(self) -> CycleSource:
        for s in self.sources:
            s.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        for s in self.sources:
            s.__exit__(*exc)

    def __iter__(self) -> Iterator[Any]:
        i = 0
        while True:
            for s in self.sources:
                for frame in s:
                    frame.index = i
                    i += 1
                    yield frame


@dataclass
class AppSoak:
    """One application's soak: what ran, the runner's summary, the samples and their growth."""

    app: str
    bundle: str
    variant: str
    data: str
    frames: int
    threads: int
    stats_window: int
    seconds: float
    summary: dict[str, Any]
    growth: Growth
    samples: list[Sample] = field(default_factory=list)


def soak_loop(app: Any, source: Any, sinks: list[Any], *, frames: int, every: int, window: int,
              warmup: int, target_mb: float) -> tuple[dict[str, Any], list[Sample], Growth, float]:
    """Run ``app`` on the shared Runner for ``frames`` frames, sampling every ``every`` frames."""
    from edgewise.edge.pipeline import Runner

    t0 = time.monotonic()
    sampled = SampledSource(source, every, t0, total=frames)
    stats = Runner(app, sinks, window=window).run(sampled, max_frames=frames)
    sampled.finish()
    summary = stats.summary()
    return summary, sampled.samples, growth(sampled.samples, warmup, target_mb), time.monotonic() - t0


# -- the applications on real data -------------------------------------------------------------


def _image_links(files: list[Path], folder: Path) -> Path:
    """A folder of symlinks to ``files`` (the dataset stays where it is, read in place)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(files):
        (folder / f"{i:05d}_{f.parent.parent.name}{f.suffix.lower()}").symlink_to(f.resolve())
    return folder


def _classify(bundle: Any, data: Path | None, tmp: Path, variant: str | None, threads: int
              ) -> tuple[Any, Any, str]:
    from edgewise.edge.apps.classify import ClassifyApp
    from edgewise.edge.sources import ImageFolderSource
    from edgewise.train.classify import export_images, load_digits_split

    x = load_digits_split()["x_test"]
    folder = export_images(x, tmp / "digits", limit=len(x))
    app = ClassifyApp(bundle, variant, threads)
    return app, ImageFolderSource(folder, loop=True, gray=True), f"{len(x)} scikit-learn digits test images"


def _face(bundle: Any, data: Path | None, tmp: Path, variant: str | None, threads: int
          ) -> tuple[Any, Any, str]:
    from edgewise.edge.apps.face import FaceApp, enroll_main
    from edgewise.edge.apps.face.detect import detector_model_path, make_detector
    from edgewise.edge.apps.face.gallery import Gallery
    from edgewise.edge.sources import ImageFolderSource

    orl = _need(data, "faces/orl")
    yunet = detector_model_path("yunet", data=data)
    gallery = tmp / "people.db"
    for k in range(1, 7):  # enroll 6 people from 5 photos each; the other 34 are strangers
        shots = _image_links(sorted((orl / f"s{k}").glob("[1-5].pgm")), tmp / "enroll" / f"s{k}")
        if enroll_main(["--gallery", str(gallery), "--bundle", str(bundle.path), "--name", f"s{k}",
                        "--images", str(shots), "--detector-model", str(yunet), "-q"]) != 0:
            raise ValueError(f"enrolling s{k} for the face soak failed")
    images = sorted(orl.glob("s*/*.pgm"))
    folder = _image_links(images, tmp / "orl")
    detector = make_detector("yunet", yunet, threads=threads)
    with Gallery(gallery, create=False) as g:
        app = FaceApp(bundle, g, detector, variant, threads)
    return app, ImageFolderSource(folder, loop=True), f"{len(images)} ORL faces, 6 people enrolled"


def _inspect(bundle: Any, data: Path | None, tmp: Path, variant: str | None, threads: int
             ) -> tuple[Any, Any, str]:
    from edgewise.edge.apps.inspect import InspectApp
    from edgewise.edge.sources import ImageFolderSource
    from edgewise.train.data.magnetic_tile import find_magnetic_tile

    root = find_magnetic_tile(data) if data is not None else None
    if root is None:
        raise ValueError(f"no magnetic-tile images under {data} (inspection/magnetic_tile)")
    images = sorted(Path(root).glob("MT_*/Imgs/*.jpg"))  # the masks (.png) beside them are not parts
    folder = _image_links(images, tmp / "tiles")
    app = InspectApp(bundle, variant, threads)
    return app, ImageFolderSource(folder, loop=True, gray=True), f"{len(images)} magnetic-tile images"


def _vibration(bundle: Any, data: Path | None, tmp: Path, variant: str | None, threads: int
               ) -> tuple[Any, Any, str]:
    from edgewise.edge.apps.vibration import VibrationApp
    from edgewise.edge.sources.recordings import read_recording, to_rate
    from edgewise.edge.sources.windows import RecordingSource

    folder = _need(data, CWRU_12K)
    app = VibrationApp(bundle, variant, threads)
    sources = []
    for f in sorted(folder.glob("*.mat")):
        rec = to_rate(read_recording(f, fs=12000.0, channel="DE"), app.fs)
        app.check_rate(rec.fs)
        sources.append(RecordingSource(rec.signal, fs=rec.fs, window=app.window, name=rec.name))
    return app, CycleSource(sources, f"cwru:{len(sources)}"), f"{len(sources)} CWRU 12 kHz DE recordings"


def _need(data: Path | None, sub: str) -> Path:
    if data is None:
        raise ValueError(f"no datasets folder (--data or EDGEWISE_DATA) for {sub}")
    p = data / sub
    if not p.is_dir():
        raise ValueError(f"{p}: not found (see the datasets README)")
    return p


OPENERS: dict[str, Callable[..., tuple[Any, Any, str]]] = {
    "classify": _classify, "face": _face, "inspect": _inspect, "vibration": _vibration,
}


def soak_app(name: str, bundle_path: str, data: Path | None, a: argparse.Namespace) -> AppSoak:
    """One application's soak in a temporary folder (sinks, links, gallery), removed afterwards."""
    from edgewise.edge.bundle import load_bundle
    from edgewise.edge.progress import log
    from edgewise.edge.sinks import JsonLinesSink, SQLiteSink

    tmp = Path(tempfile.mkdtemp(prefix=f"edgewise-soak-{name}-"))
    try:
        bundle = load_bundle(bundle_path)
        app, source, what = OPENERS[name](bundle, data, tmp, a.variant, a.threads)
        sinks = [JsonLinesSink(tmp / "events.jsonl"), SQLiteSink(tmp / "events.db")]
        log(f"soak {name}: {a.frames} frames over {what}, sinks in {tmp}", quiet=a.quiet)
        try:
            summary, samples, g, secs = soak_loop(app, source, sinks, frames=a.frames, every=a.sample_every,
                                                  window=a.stats_window, warmup=a.warmup,
                                                  target_mb=a.target_mb)
        finally:
            close = getattr(app, "close", None)
            if callable(close):
                close()
        summary.pop("times", None)
        return AppSoak(name, str(bundle_path), getattr(app, "variant", "?"), what, summary["frames"],
                       a.threads, a.stats_window, round(secs, 1), summary, g, samples)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _in_own_process(name: str, bundle_path: str, data: Path | None, a: argparse.Namespace) -> AppSoak:
    """``soak_app`` in a freshly spawned interpreter: its RSS is this application's alone."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as ex:
        try:
            return ex.submit(soak_app, name, bundle_path, data, a).result()
        except BrokenProcessPool as e:  # the child died (killed, out of memory): one line, not a traceback
            raise OSError(f"the {name} soak process died: {e}") from None


def plot(results: list[AppSoak], path: Path) -> Path:
    """RSS and open fds against frames, one line per application, the warm-up shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    for r in results:
        f = [s.frames for s in r.samples]
        ax1.plot(f, [s.rss_mb - r.growth.baseline_rss_mb for s in r.samples],
                 label=f"{r.app} (growth {r.growth.growth_mb:+.1f} MB)")
        ax2.plot(f, [s.fds for s in r.samples], label=r.app)
    if results:
        ax1.axvspan(0, results[0].growth.warmup_frames, color="0.9", label="warm-up")
        ax1.axhline(results[0].growth.target_mb, color="r", ls="--", lw=0.8, label="target")
    ax1.set_ylabel("RSS - RSS after warm-up (MB)")
    ax2.set_ylabel("open file descriptors")
    ax2.set_xlabel("frames / windows")
    ax1.legend(fontsize=8)
    ax2.legend(fontsize=8)
    ax1.set_title("edgewise soak: memory and descriptors over the loop")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def table(results: list[AppSoak]) -> str:
    rows = [("APP", "FRAMES", "ERRORS", "FPS", "RSS@WARMUP", "RSS END", "GROWTH", "PEAK+", "MB/10k", "FDS",
             "OK")]
    for r in results:
        g = r.growth
        rows.append((r.app, str(r.frames), str(r.summary.get("errors", "?")), str(r.summary.get("fps", "?")),
                     f"{g.baseline_rss_mb:.1f}", f"{g.end_rss_mb:.1f}", f"{g.growth_mb:+.2f}",
                     f"{g.peak_growth_mb:+.2f}", f"{g.slope_mb_per_10k:+.3f}",
                     f"{g.fds_baseline}->{g.fds_end}", "yes" if g.ok else "NO"))
    w = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(x) for c, x in zip(r, w, strict=True)).rstrip() for r in rows)


def _bundles(specs: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for s in specs:
        app, sep, path = s.partition("=")
        if not sep or app not in SOAK_APPS or not path:
            raise ValueError(f"--bundle {s}: expected APP=PATH with APP one of {', '.join(SOAK_APPS)}")
        out[app] = path
    return out


def build_parser() -> argparse.ArgumentParser:
    from edgewise.edge.apps.settings import RunSettings
    from edgewise.edge.cliargs import Parser, add_json, add_quiet

    p = Parser(prog="edgewise soak",
               description="Run each application's edge loop for many frames on real data and report "
               "memory (RSS) and open-descriptor growth after warm-up; writes soak.json and soak.png.",
               epilog="example:\n  nice -n 10 edgewise soak --data $EDGEWISE_DATA \\\n"
               "      --bundle classify=digits.bundle --bundle vibration=vibration.bundle --frames 20000")
    p.add_argument("--data", default=os.environ.get("EDGEWISE_DATA"),
                   help="datasets folder (default: $EDGEWISE_DATA)")
    p.add_argument("--bundle", action="append", default=[], metavar="APP=PATH",
                   help="bundle of an application; the applications soaked are the ones given")
    p.add_argument("--frames", type=int, default=20_000, help="frames or windows per application (20000)")
    p.add_argument("--warmup", type=int, default=None,
                   help="frames before the baseline sample (default: a tenth of --frames)")
    p.add_argument("--sample-every", type=int, default=None,
                   help="frames between samples (default: --frames / 200)")
    p.add_argument("--target-mb", type=float, default=10.0, help="growth after warm-up judged ok (10)")
    p.add_argument("--threads", type=int, default=1, help="inference threads (1)")
    p.add_argument("--variant", help="model variant (default: each bundle's default)")
    default_window = RunSettings.__dataclass_fields__["stats_window"].default
    p.add_argument("--stats-window", type=int, default=default_window,
                   help="the runner's stats window (default: the one `edgewise run` uses)")
    p.add_argument("--out", default="soak", help="folder for soak.json and soak.png")
    add_json(p, "the results")
    add_quiet(p)
    return p


def soak_main(argv: list[str]) -> int:
    """``edgewise soak``: parse, soak every application given a bundle, print, write, plot."""
    from edgewise.edge.cliargs import emit_json
    from edgewise.edge.jsonenc import dumps

    from .host import host_info

    a = build_parser().parse_args(argv)
    bundles = _bundles(a.bundle)
    if not bundles:
        raise ValueError("no application to soak: give --bundle APP=PATH (e.g. classify=digits.bundle)")
    if a.frames < 2 or a.threads < 1 or a.stats_window < 1:
        raise ValueError("--frames must be at least 2, --threads and --stats-window at least 1")
    a.warmup = a.frames // 10 if a.warmup is None else a.warmup
    a.sample_every = a.sample_every or max(1, a.frames // 200)
    if not 0 <= a.warmup < a.frames:
        raise ValueError(f"--warmup {a.warmup}: must be at least 0 and below --frames {a.frames}")
    data = Path(a.data) if a.data else None
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    doc: dict[str, Any] = {"host": host_info(), "threads": a.threads, "frames": a.frames, "warmup": a.warmup,
                           "sample_every": a.sample_every, "target_mb": a.target_mb,
                           "command": "edgewise soak " + " ".join(argv), "results": [], "failed": {}}
    results: list[AppSoak] = []
    for name in (n for n in SOAK_APPS if n in bundles):
        try:  # one application that cannot start (a stale bundle, missing data) does not cost the others
            results.append(_in_own_process(name, bundles[name], data, a))
        except (ValueError, OSError, ImportError) as e:
            doc["failed"][name] = f"{type(e).__name__}: {e}"
            print(f"edgewise soak: {name}: not soaked: {e}", file=sys.stderr)
        doc["results"] = [asdict(r) for r in results]
        (out / "soak.json").write_text(dumps(doc, indent=2, fallback=str))  # after each application
    png = plot(results, out / "soak.png")
    if not emit_json(doc, a.json):
        print(table(results))
        h = doc["host"]
        print(f"host {h['machine']} {h['cpu']}, {h['cores']} cores; {a.threads} inference thread(s); "
              f"growth from frame {a.warmup} to the end; samples in {out / 'soak.json'}, plot {png}")
    return 0 if results and not doc["failed"] and all(r.growth.ok for r in results) else 1


if __name__ == "__main__":
    from edgewise.edge.cli import main

    sys.exit(main(["soak", *sys.argv[1:]]))
