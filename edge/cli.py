"""The ``edgewise`` command: one entry point for workstation and device.

Subcommands that need TensorFlow (train, convert, demo) import it inside their handler, so
``edgewise run`` / ``info`` / ``bench`` on a Raspberry Pi never touch it. Application
subcommands (``train APP``, ``run APP``, ``bench APP``, ``enroll``, ``deploy``, ``verify``)
are forwarded to the module that owns them, which parses its own arguments.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from typing import Any

from . import progress

__all__ = ["main"]

# application -> (edge module with run_main, train module with train_main, issue that builds it)
APPS: dict[str, tuple[str, str, int]] = {
    "classify": ("edgewise.edge.apps.classify", "edgewise.train.classify", 2),
    "vibration": ("edgewise.edge.apps.vibration", "edgewise.train.vibration", 4),
    "inspect": ("edgewise.edge.apps.inspect", "edgewise.train.inspect", 5),
    "face": ("edgewise.edge.apps.face", "edgewise.train.face", 6),
}
# other forwarded subcommands -> (module, function, issue)
FORWARDED: dict[str, tuple[str, str, int]] = {
    "enroll": ("edgewise.edge.apps.face", "enroll_main", 6),
    "deploy": ("edgewise.edge.deploy", "deploy_main", 3),
    "verify": ("edgewise.edge.verify", "verify_main", 7),
}

EXAMPLES = """\
examples:
  edgewise demo                                   # whole path on real bundled data, then apps
  edgewise convert model.keras --data calib.npz --out model.bundle --strict
  edgewise info model.bundle                      # metadata + verify every checksum
  edgewise bench model.bundle --threads 1 2 --json
  edgewise train vibration --data $EDGEWISE_DATA --out vibration.bundle
  edgewise run inspect --bundle inspect.bundle --source /dev/video0
  edgewise enroll --gallery people.db --name alice --images photos/alice
  edgewise deploy vibration.bundle --host pi@raspberrypi.local --app vibration
"""


class CliError(Exception):
    """A user-facing error: printed as one line, exit code 2."""


def _forward(module: str, func: str, issue: int, argv: list[str], what: str) -> int:
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name and module.startswith(e.name):
            raise CliError(f"'{what}' is not built yet (tracked in issue #{issue})") from None
        raise
    fn = getattr(mod, func, None)
    if fn is None:
        raise CliError(f"'{what}' is not built yet (tracked in issue #{issue})")
    return int(fn(argv) or 0)


def cmd_info(a: argparse.Namespace) -> int:
    from .bundle import load_bundle, verify_files

    b = load_bundle(a.bundle, verify=False)
    checks = verify_files(b.path, b.meta)
    if a.json:
        print(json.dumps({"bundle": b.meta, "verified": checks}, indent=2))
        return 0
    m = b.meta
    print(f"bundle   {b.path}")
    print(f"name     {m['name']}  task={m['task']}  app={m['app']}")
    print(f"created  {m['created']}  edgewise {m['edgewise_version']}  schema {m['schema_version']}")
    print(f"input    {json.dumps(m['input'])}")
    print(f"output   {json.dumps(m['output'])}")
    if b.labels:
        print(f"labels   {', '.join(b.labels)}")
    if b.thresholds:
        print(f"thresholds {json.dumps(b.thresholds)}")
    print("variants:")
    for v in b.variants.values():
        p = v.parity
        flag = "FLAGGED " + "; ".join(p.get("reasons", [])) if v.flagged else "ok"
        extra = ""
        if p.get("metric"):
            extra = f" {p['metric']}={p.get('metric_variant')} (delta {p.get('metric_delta')})"
        print(
            f"  {v.name:15s} {v.backend:11s} {v.precision:8s} {v.file:24s}"
            f" agree={p.get('decision_agreement')}{extra} {flag}"
        )
    print(f"files: {len(checks)} verified (size + sha256)")
    return 0


def cmd_convert(a: argparse.Namespace) -> int:
    import numpy as np

    from edgewise.converters import ConversionSpec, build_bundle
    from edgewise.converters.parity import Decider
    from edgewise.train.keras_utils import tf_setup

    keras = tf_setup()
    try:
        model = keras.models.load_model(a.model, compile=False)
    except (OSError, ValueError) as e:
        raise CliError(f"{a.model}: cannot load Keras model ({str(e).splitlines()[0]})") from None
    try:
        data = np.load(a.data)
    except (OSError, ValueError) as e:
        raise CliError(f"{a.data}: cannot read samples ({e})") from None
    if "x" not in data and "x_calib" not in data:
        raise CliError(f"{a.data}: needs array 'x' (or 'x_calib' and 'x_eval'), has {list(data)}")
    calib = data["x_calib"] if "x_calib" in data else data["x"]
    ev = data["x_eval"] if "x_eval" in data else data["x"]
    y = data["y_eval"] if "y_eval" in data else (data["y"] if "y" in data else None)
    decider = Decider(kind=a.decision, score=a.score, threshold=a.threshold)
    spec = ConversionSpec(
        name=a.name or a.model.rsplit("/", 1)[-1].split(".")[0],
        task=a.task, app="generic",
        input={"layout": a.layout, "color": a.color},
        thresholds={"decision": a.threshold} if a.threshold is not None else {},
        labels=a.labels.split(",") if a.labels else [],
        decider=decider,
    )
    res = build_bundle(
        model, a.out, spec, calib_x=calib, eval_x=ev, eval_y=y, variants=a.variants,
        threads=a.threads, zip_path=a.zip, quiet=a.quiet,
    )
    if a.json:
        print(json.dumps({"bundle": str(res.path), "parity": res.parity}, indent=2))
    else:
        print((res.path / "report" / "parity.md").read_text())
        print(f"bundle written: {res.path}")
    if res.flagged:
        print(f"flagged variants: {', '.join(res.flagged)}", file=sys.stderr)
        return 1 if a.strict else 0
    return 0


def cmd_bench(a: argparse.Namespace) -> int:
    from pathlib import Path

    from edgewise.benchmarks.latency import bench_bundle, latency_markdown

    res = bench_bundle(
        a.bundle, variants=a.variants, threads=a.threads, iterations=a.iterations,
        warmup=a.warmup, quiet=a.quiet,
    )
    md = latency_markdown(res)
    if a.out:
        out = Path(a.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "latency.json").write_text(json.dumps(res, indent=2))
        (out / "latency.md").write_text(md)
        from edgewise.benchmarks.report import plot_latency

        if plot_latency(res, out / "latency.png") is None:
            print("matplotlib not installed: latency.png skipped", file=sys.stderr)
    print(json.dumps(res, indent=2) if a.json else md)
    return 0


def cmd_demo(a: argparse.Namespace) -> int:
    from edgewise.train.demo import demo_main

    return int(demo_main(a))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="edgewise",
        description="Deep learning from the workstation to a Raspberry Pi, with numbers.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from . import __version__

    p.add_argument("--version", action="version", version=f"edgewise {__version__}")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    s = sub.add_parser("info", help="print a bundle's metadata and verify every checksum")
    s.add_argument("bundle", help="bundle directory or .zip")
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=cmd_info)

    s = sub.add_parser(
        "convert", help="Keras model -> TFLite/ONNX variants with parity checks, in a bundle",
        epilog="example: edgewise convert model.keras --data samples.npz --out model.bundle",
    )
    s.add_argument("model", help="Keras model file (.keras or .h5)")
    s.add_argument("--data", required=True,
                   help=".npz with 'x' (and 'y'), or 'x_calib', 'x_eval', 'y_eval': real samples")
    s.add_argument("--out", required=True, help="bundle directory to write")
    s.add_argument("--zip", help="also write the bundle as this .zip")
    s.add_argument("--name", help="bundle name (default: model file stem)")
    s.add_argument("--task", default="classification")
    s.add_argument("--decision", choices=["argmax", "threshold", "none"], default="argmax")
    s.add_argument("--score", default="last", help="score for --decision threshold: last|max|mse")
    s.add_argument("--threshold", type=float, help="decision threshold stored in the bundle")
    s.add_argument("--labels", help="comma-separated class labels")
    s.add_argument("--layout", default="NHWC")
    s.add_argument("--color", default="none")
    s.add_argument("--variants", nargs="+", help="subset of variants (default: all six)")
    s.add_argument("--threads", type=int, default=2)
    s.add_argument("--strict", action="store_true", help="exit 1 when a variant is flagged")
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=cmd_convert)

    s = sub.add_parser(
        "bench", help="latency p50/p90/p99, throughput, memory, accuracy per variant",
        epilog="examples:\n  edgewise bench model.bundle --threads 1 2\n"
        "  edgewise bench face --data $EDGEWISE_DATA   (application benchmark)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s.add_argument("bundle", help="bundle directory/.zip, or an application name")
    s.add_argument("--variants", nargs="+")
    s.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    s.add_argument("--iterations", type=int, default=200)
    s.add_argument("--warmup", type=int, default=20)
    s.add_argument("--out", help="write latency.json and latency.md here")
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=cmd_bench)

    for name, helptext in (
        ("train", "train an application's model and write its bundle (workstation)"),
        ("run", "run an application's edge loop on a camera, video, folder or sensor"),
    ):
        s = sub.add_parser(name, help=helptext, add_help=False)
        s.add_argument("app", nargs="?", choices=sorted(APPS), help="application")
        s.add_argument("rest", nargs=argparse.REMAINDER)
        s.set_defaults(fn=None)

    for name, helptext in (
        ("enroll", "add, list or remove people in a face gallery"),
        ("deploy", "deploy a bundle to a Raspberry Pi over SSH (atomic switch, rollback)"),
        ("verify", "check a bundle on an emulated Raspberry Pi CPU (arm64) before flashing"),
    ):
        s = sub.add_parser(name, help=helptext, add_help=False)
        s.add_argument("rest", nargs=argparse.REMAINDER)
        s.set_defaults(fn=None)

    s = sub.add_parser("demo", help="the whole path: train -> convert -> bench -> run")
    s.add_argument("--data", help="datasets folder (default: $EDGEWISE_DATA); real data if set")
    s.add_argument("--out", default="edgewise-demo", help="output folder")
    s.add_argument("--apps", nargs="+", help="only these parts (digits and/or application names)")
    s.set_defaults(fn=cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    # `edgewise bench APP ...` belongs to the application's benchmark, which parses its own flags
    cmd_at = next((i for i, t in enumerate(argv) if not t.startswith("-")), None)
    if cmd_at is not None and argv[cmd_at] == "bench" and argv[cmd_at + 1 : cmd_at + 2] in (
        [[app] for app in APPS] + [["suite"]]
    ):
        progress.QUIET = "-q" in argv[:cmd_at] or "--quiet" in argv[:cmd_at]
        logging.basicConfig(level=logging.INFO, stream=sys.stderr)
        app = argv[cmd_at + 1]
        try:
            return _forward(f"edgewise.benchmarks.{app}", "bench_main", APPS.get(app, ("", "", 0))[2],
                            argv[cmd_at + 2 :], f"bench {app}")
        except (CliError, ValueError, FileNotFoundError) as e:
            print(f"edgewise bench: error: {e}", file=sys.stderr)
            return 2
    if cmd_at is not None and argv[cmd_at] in FORWARDED:
        # argparse's REMAINDER refuses a leading option (`edgewise deploy --rollback ...`)
        a = parser.parse_args(argv[: cmd_at + 1])
        a.rest = argv[cmd_at + 1 :]
    else:
        a = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if a.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    progress.QUIET = a.quiet
    if a.command is None:
        parser.print_help()
        return 0
    from .bundle import BundleError

    try:
        if a.command in ("train", "run"):
            if a.app is None:
                sub_help = f"usage: edgewise {a.command} {{{','.join(sorted(APPS))}}} [--help]"
                print(sub_help, file=sys.stderr)
                return 2
            edge_mod, train_mod, issue = APPS[a.app]
            module = train_mod if a.command == "train" else edge_mod
            func = f"{a.command}_main"
            return _forward(module, func, issue, a.rest, f"{a.command} {a.app}")
        if a.command in FORWARDED:
            module, func, issue = FORWARDED[a.command]
            return _forward(module, func, issue, a.rest, a.command)
        return int(a.fn(a) or 0)
    except (CliError, BundleError, ValueError, FileNotFoundError) as e:
        print(f"edgewise {a.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _json_default(o: Any) -> Any:
    return str(o)


if __name__ == "__main__":
    sys.exit(main())
