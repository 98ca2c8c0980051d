"""``edgewise demo``: the whole path, train -> convert -> bench -> run, for every part built.

It always starts with the digits classifier (real data bundled with scikit-learn, no
download), then runs each application's own demo, on the real datasets when
``--data``/``EDGEWISE_DATA`` points at them, and otherwise says what it uses. It ends with one
verdict line per part: what was measured, against what (chance, or a classic method measured
in the same run), and whether that is good. A demo-sized training that cannot reach a usable
model says so and names the full training command.
"""


import importlib
import textwrap
import time
from pathlib import Path

from edgewise.edge.jsonenc import dumps
from edgewise.edge.progress import log
from edgewise.train.data import data_root

from .verdicts import APP_DEMOS, Verdict, verdicts

__all__ = ["demo_main", "run_demo", "APP_DEMOS", "Verdict", "verdicts"]


def demo_main(argv: list[str]) -> int:
    """``edgewise demo``: parse, check that training is possible here, then ``run_demo``."""
    from edgewise.edge.cliargs import CliError, Parser, add_quiet, require

    p = Parser(prog="edgewise demo",
               description="The whole path on real bundled data: train -> convert -> bench -> run, "
               "for the digits classifier and then every application (workstation).",
               epilog="example:\n  edgewise demo --data $EDGEWISE_DATA --apps digits vibration")
    p.add_argument("--data", help="datasets folder (default: $EDGEWISE_DATA); real data if set")
    p.add_argument("--out", default="edgewise-demo", help="output folder")
    p.add_argument("--apps", nargs="+", metavar="PART",
                   help="only these parts: " + ", ".join(("digits", *APP_DEMOS)) + " (default: all)")
    add_quiet(p)
    a = p.parse_args(argv)
    require("tensorflow", "keras", "tf2onnx", "sklearn", what="the demo (it trains models)")
    bad = [x for x in a.apps or [] if x not in ("digits", *APP_DEMOS)]
    if bad:
        raise CliError(f"--apps {' '.join(bad)}: unknown part (choose from digits {' '.join(APP_DEMOS)})")
    return run_demo(Path(a.out), a.data, a.apps or ["digits", *APP_DEMOS], quiet=a.quiet)


def run_demo(out: Path, data_dir: str | None, parts: list[str], *, quiet: bool = False) -> int:
    """Run the demo ``parts`` into ``out``, then print one verdict line per part."""
    out.mkdir(parents=True, exist_ok=True)
    data = data_root(data_dir)
    if data is None:
        log(
            "no datasets folder (--data / EDGEWISE_DATA): application demos use their "
            "synthetic data, labelled as such"
        )
    summary: dict = {}
    seconds: dict[str, float] = {}
    t_all = time.monotonic()
    if "digits" in parts:
        t0 = time.monotonic()
        from .digits import demo_digits

        summary["digits"] = demo_digits(out, quiet)
        seconds["digits"] = time.monotonic() - t0
    for app in APP_DEMOS:
        if app not in parts:
            continue
        mod = importlib.import_module(f"edgewise.benchmarks.demo.{app}")
        log(f"== {app} ==")
        t0 = time.monotonic()
        summary[app] = mod.demo(out / app, data=data, quiet=quiet)
        seconds[app] = time.monotonic() - t0
    found = verdicts(summary)
    summary["verdicts"] = [v.line() for v in found]
    summary["seconds"] = {k: round(v, 1) for k, v in seconds.items()}
    summary["seconds"]["total"] = round(time.monotonic() - t_all, 1)
    (out / "demo_summary.json").write_text(dumps(summary, indent=2, fallback=str))
    print("\n== verdict ==")
    for v in found:
        print(textwrap.fill(f"{v.line()} ({seconds.get(v.app, 0.0) / 60:.1f} min)", width=110,
                            subsequent_indent="    ", break_on_hyphens=False, break_long_words=False))
    print(f"demo: {summary['seconds']['total'] / 60:.1f} min in all; outputs in {out}/ "
          f"(figures in {out / 'demo_summary.json'})")
    return 0
