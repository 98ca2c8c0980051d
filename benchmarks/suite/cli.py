"""``edgewise bench all``: the three applications on the real data, in one run, with regressions.

One result file per host (``<out>/<name>.json`` / ``.md`` / ``-latency.png`` / ``-accuracy.png``)
that holds every application's rows (model level and pipeline level, latency beside accuracy,
peers in the same run). ``--compare OLD.json`` marks each row that regressed beyond the
tolerances, ``--fail-on-regression`` turns a regression into exit code 1 (CI runs the quick
suite against a committed baseline measured on the same machine).
"""

from __future__ import annotations

import os
import platform
import re
import sys
import tempfile
import time
from pathlib import Path

from edgewise.edge.cliargs import CliError, Parser, add_json, add_quiet, emit_json
from edgewise.edge.jsonenc import dumps
from edgewise.edge.progress import log

from .collect import COLLECTORS, Plan, model_rows
from .compare import Tolerance, compare, comparison_dict
from .header import projection_summary, suite_header
from .render import plot_suite, suite_markdown
from .rows import SuiteResult, SuiteRow

__all__ = ["suite_main", "run_suite", "default_threads", "parse_bundles", "apply_comparison"]

APPS = ("face", "inspect", "vibration")


def default_threads(cores: int | None = None) -> list[int]:
    """1, 2 and 4 threads where the machine has that many cores (4 is meaningless on 2)."""
    cores = cores or os.cpu_count() or 1
    return [t for t in (1, 2, 4) if t <= cores]


def parse_bundles(specs: list[str]) -> dict[str, Path]:
    """``face=B`` ... -> {app: path}; an unknown app, a repeated app or a missing path is refused."""
    out: dict[str, Path] = {}
    for s in specs:
        app, eq, path = s.partition("=")
        if not eq or app not in APPS or not path:
            raise CliError(f"--bundle {s}: expected APP=PATH with APP one of {', '.join(APPS)}")
        if app in out:
            raise CliError(f"--bundle {app}= given twice")
        if not Path(path).exists():
            raise CliError(f"--bundle {s}: no such bundle")
        out[app] = Path(path)
    return out


def _train_quick(app: str, data: Path, where: Path, quiet: bool) -> Path:
    """A quick bundle with the demo's recipe for ``app`` (minutes; the full trainings are longer)."""
    where.mkdir(parents=True, exist_ok=True)
    if app == "face":
        from edgewise.train.face import train_face

        from ..demo.face import DEMO_EPOCHS, DEMO_SIZE

        out = where / "face.bundle"
        train_face(data, out, epochs=DEMO_EPOCHS, size=DEMO_SIZE, quiet=quiet,
                   variants=["tflite_float32", "tflite_int8", "onnx_float32", "onnx_int8"])
    elif app == "inspect":
        from edgewise.train.data.magnetic_tile import find_magnetic_tile
        from edgewise.train.inspect import InspectConfig, train_inspect

        from ..demo.inspect import DEMO_EPOCHS as IE
        from ..demo.inspect import DEMO_LIMIT

        src = find_magnetic_tile(data)
        if src is None:
            raise CliError(f"--train-quick inspect: no magnetic tile data under {data}")
        out = where / "inspect.bundle"
        cfg = InspectConfig(mode="supervised", epochs=IE, limit=DEMO_LIMIT, defect_crops=12, good_crops=6,
                            batch=32, variants=["tflite_float32", "tflite_int8", "onnx_float32", "onnx_int8"])
        train_inspect(src, out, cfg, quiet=quiet)
    else:
        from edgewise.train.data.cwru import load_cwru_dataset
        from edgewise.train.vibration import VibrationConfig, VibrationTrainer

        from ..demo.vibration import DEMO_VARIANTS

        recs, ds = load_cwru_dataset(data, "DE", 48000.0, quiet)
        out = where / "vibration.bundle"
        VibrationTrainer(VibrationConfig(epochs=120), dataset=ds, quiet=quiet,
                         variants=DEMO_VARIANTS).fit(recs).export(out)
    return out


def run_suite(data: Path, bundles: dict[str, Path], plan: Plan, projections: list[str] | None = None,
              quiet: bool = False) -> SuiteResult:
    """Every application that has a bundle: its model rows, then its pipeline rows with peers."""
    header = {**suite_header(projections), "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "data": str(data)}
    rows: list[SuiteRow] = []
    skipped: list[str] = []
    for app in APPS:
        if app not in bundles:
            skipped.append(f"{app}: no bundle (--bundle {app}=PATH, or --train-quick)")
            continue
        t0 = time.monotonic()
        log(f"== {app}: model level ({bundles[app]}) ==", quiet=quiet)
        got, why = model_rows(app, bundles[app], plan, quiet)
        rows += got
        skipped += why
        log(f"== {app}: pipeline level on the real data, with peers ==", quiet=quiet)
        got, why = COLLECTORS[app](bundles[app], data, plan, quiet)
        rows += got
        skipped += why
        log(f"{app}: {time.monotonic() - t0:.0f} s", quiet=quiet)
    return SuiteResult(header=header, rows=rows, skipped=skipped, quick=plan.quick,
                       threads=list(plan.threads))


def apply_comparison(result: SuiteResult, baseline: Path, tol: Tolerance) -> int:
    """Compare with ``baseline`` in place; returns the number of regressed rows."""
    import json

    try:
        old = SuiteResult.from_dict(json.loads(baseline.read_text(encoding="utf-8")))
    except json.JSONDecodeError as e:
        raise CliError(f"--compare {baseline}: not JSON ({e.msg})") from e
    except ValueError as e:
        raise CliError(f"--compare {baseline}: {e}") from e
    findings = compare(result, old, tol)
    result.comparison = comparison_dict(findings, str(baseline), tol)
    return len(result.comparison["regressions"])


def _host_name() -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", platform.node() or "host").strip("-") or "host"


def suite_main(argv: list[str]) -> int:
    """Parse, measure (or only compare an existing result), write, and exit 1 on a regression if asked."""
    from edgewise.train.data import data_root

    p = Parser(
        prog="edgewise bench all",
        description="Face, inspection and vibration on the real data in one run: every variant (LiteRT, "
        "ONNX Runtime; float32, int8) at 1, 2 and 4 threads where the cores exist, with each latency row's "
        "accuracy beside it and the peers (Eigenfaces/Fisherfaces/LBPH, the vibration baseline) in the same "
        "run. Writes OUT/NAME.json, .md and plots; --compare marks regressions.",
        epilog="examples:\n"
        "  edgewise bench all --data $EDGEWISE_DATA --bundle face=face.bundle --bundle inspect=mt.bundle \\\n"
        "      --bundle vibration=vib.bundle --out benchmarks/results\n"
        "  edgewise bench all --data $EDGEWISE_DATA --train-quick --quick\n"
        "  edgewise bench all --data $EDGEWISE_DATA --bundle vibration=vib.bundle --quick \\\n"
        "      --compare benchmarks/results/vm-quick-baseline.json --fail-on-regression",
    )
    p.add_argument("--data", help="datasets folder (default $EDGEWISE_DATA)")
    p.add_argument("--bundle", action="append", default=[], metavar="APP=PATH",
                   help="bundle per application: face=B, inspect=B, vibration=B (repeat)")
    p.add_argument("--train-quick", action="store_true",
                   help="train a quick bundle (the demo's recipe) for every application without --bundle")
    p.add_argument("--apps", nargs="+", choices=APPS, default=list(APPS), help="applications to run")
    p.add_argument("--threads", type=int, nargs="+", help="thread counts (default: 1 2 4 where available)")
    p.add_argument("--quick", action="store_true",
                   help="CI size: fewer timed iterations, draws and images (same rows)")
    p.add_argument("--out", default="benchmarks/results", help="folder for NAME.json, NAME.md and the plots")
    p.add_argument("--name", default=_host_name(), help="file name stem (default: this host's name)")
    p.add_argument("--work", metavar="DIR",
                   help="folder for quick bundles and each application's own reports (default: a new "
                   "temporary folder, named in the log)")
    add_json(p)
    p.add_argument("--md", metavar="PATH", help="also write the Markdown report to PATH")
    p.add_argument("--projection", action="append", default=[], metavar="FILE",
                   help="an 'edgewise project --json' result to show beside the measured figures (repeat)")
    p.add_argument("--compare", metavar="OLD.json", help="mark every row that regressed against this result")
    p.add_argument("--from-result", metavar="NEW.json",
                   help="do not measure: compare / render this existing suite result")
    p.add_argument("--latency-tolerance", type=float, default=1.5,
                   help="a row regresses when its p50 exceeds the baseline's by this ratio")
    p.add_argument("--accuracy-tolerance", type=float, default=0.01,
                   help="... or when its metric drops by more than this")
    p.add_argument("--min-delta-ms", type=float, default=0.05,
                   help="latency changes smaller than this (ms) never count as regressions")
    p.add_argument("--fail-on-regression", action="store_true", help="exit 1 when a row regressed")
    add_quiet(p)
    a = p.parse_args(argv)
    try:
        tol = Tolerance(a.latency_tolerance, a.accuracy_tolerance, a.min_delta_ms)
    except ValueError as e:
        raise CliError(str(e)) from e
    if a.fail_on_regression and not a.compare:
        raise CliError("--fail-on-regression needs --compare OLD.json")
    if a.compare and not Path(a.compare).is_file():
        raise CliError(f"--compare {a.compare}: no such file")
    for f in a.projection:
        if not Path(f).is_file():
            raise CliError(f"--projection {f}: no such file")
    if a.from_result:
        import json

        result = SuiteResult.from_dict(json.loads(Path(a.from_result).read_text(encoding="utf-8")))
        if a.projection:  # projections made after the measurement join its header
            result.header["projections"] = [projection_summary(f) for f in a.projection]
    else:
        threads = a.threads or default_threads()
        if min(threads) < 1:
            raise CliError("--threads must be at least 1")
        data = data_root(a.data)
        if data is None:
            raise CliError("no data: pass --data DIR or set EDGEWISE_DATA (the suite runs on the real data)")
        bundles = {k: v for k, v in parse_bundles(a.bundle).items() if k in a.apps}
        work = Path(a.work) if a.work else Path(tempfile.mkdtemp(prefix="edgewise-suite-"))
        log(f"bench all: quick bundles and per-application reports in {work}", quiet=a.quiet)
        if a.train_quick:
            for app in a.apps:
                if app not in bundles:
                    log(f"training a quick {app} bundle (the demo's recipe) ...", quiet=a.quiet)
                    bundles[app] = _train_quick(app, data, work / "bundles", a.quiet)
        plan = Plan(tuple(threads), a.quick, work)
        result = run_suite(data, bundles, plan, a.projection, a.quiet)
        result.header["command"] = "edgewise bench all " + " ".join(argv)
    regressions = apply_comparison(result, Path(a.compare), tol) if a.compare else 0
    _write(result, Path(a.out), a.name, a.md, a.quiet)
    if not emit_json(result.to_dict(), a.json):
        print(suite_markdown(result))
    if a.compare:
        for f in (result.comparison or {}).get("regressions", []):
            print(f"REGRESSED {f['key']}: {f['kind']} {f['old']} -> {f['new']}", file=sys.stderr)
        log(f"compared with {a.compare}: {regressions} regressed row(s)", quiet=a.quiet)
    return 1 if a.fail_on_regression and regressions else 0


def _write(result: SuiteResult, out: Path, name: str, md_path: str | None, quiet: bool) -> None:
    out.mkdir(parents=True, exist_ok=True)
    md = suite_markdown(result)
    (out / f"{name}.json").write_text(dumps(result.to_dict(), indent=2) + "\n", encoding="utf-8")
    (out / f"{name}.md").write_text(md, encoding="utf-8")
    plots = plot_suite(result, out / name)
    extra = f", {len(plots)} plots" if plots else " (plots skipped: matplotlib not installed)"
    log(f"suite written: {out / name}.json, .md{extra}", quiet=quiet)
    if md_path:
        Path(md_path).write_text(md, encoding="utf-8")
