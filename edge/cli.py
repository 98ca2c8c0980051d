"""The ``edgewise`` command: one entry point for workstation and device.

Subcommands that need TensorFlow (train, convert, demo) import it inside their handler, so
``edgewise run`` / ``info`` / ``bench`` on a Raspberry Pi never touch it. Application
subcommands (``train APP``, ``run APP``, ``bench APP``, ``enroll``, ``deploy``, ``verify``)
are forwarded to the module that owns them, which parses its own arguments with the shared
``cliargs.Parser``, so help, ``-q`` and ``--json PATH`` mean the same everywhere.

Every expected error (bad input, a missing file, an optional part that is not installed)
ends here as one line ``edgewise <cmd>: error: <what>`` on stderr with exit code 2; ``-v``
adds the traceback for a bug report.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable
from typing import Any

from . import progress
from .cliargs import CliError, Parser, add_json, add_quiet, emit_json, error_line, require

__all__ = ["main", "build_parser", "CliError", "APPS", "FORWARDED"]

# application -> (edge module with run_main, train module with train_main, one-line description)
APPS: dict[str, tuple[str, str, str]] = {
    "classify": ("edgewise.edge.apps.classify", "edgewise.train.classify",
                 "image classifier (digits CNN on scikit-learn's bundled digits)"),
    "vibration": ("edgewise.edge.apps.vibration", "edgewise.train.vibration",
                  "vibration anomaly detection (autoencoder on healthy CWRU bearing windows)"),
    "inspect": ("edgewise.edge.apps.inspect", "edgewise.train.inspect",
                "visual inspection of parts: tile defect model, PASS/FAIL per part"),
    "face": ("edgewise.edge.apps.face", "edgewise.train.face",
             "face recognition: detect, align, embed, match an enrolled gallery"),
}
# applications with their own benchmark (edgewise.benchmarks.APP.bench_main)
BENCH_APPS = ("vibration", "inspect", "face")
# other forwarded subcommands -> (module, function)
FORWARDED: dict[str, tuple[str, str]] = {
    "enroll": ("edgewise.edge.apps.face", "enroll_main"),
    "deploy": ("edgewise.edge.deploy", "deploy_main"),
    "verify": ("edgewise.edge.verify", "verify_main"),
}

EXAMPLES = """\
examples:
  edgewise demo                                   # whole path on real bundled data, then apps
  edgewise train classify --out digits.bundle
  edgewise info digits.bundle                     # metadata + verify every checksum
  edgewise bench digits.bundle --threads 1 2 --json latency.json
  edgewise run classify --bundle digits.bundle --source images/ --jsonl events.jsonl
  edgewise convert model.keras --data samples.npz --out model.bundle --strict
  edgewise train vibration --data $EDGEWISE_DATA --out vibration.bundle
  edgewise run inspect --bundle inspect.bundle --source parts/ --save-fails fails/
  edgewise enroll --gallery people.db --bundle face.bundle --name alice --images photos/alice \\
      --detector-model $EDGEWISE_DATA/models/face_detection/yunet_n_320_320.onnx
  edgewise deploy vibration.bundle --host pi@raspberrypi.local --app vibration

every subcommand has --help; -q/--quiet is accepted everywhere; --json PATH writes JSON ('-': stdout)
"""


def _app_list(names: tuple[str, ...] | list[str]) -> str:
    return "applications:\n" + "\n".join(f"  {n:10s} {APPS[n][2]}" for n in names)


def _call(module: str, func: str, argv: list[str]) -> int:
    fn: Callable[[list[str]], Any] = getattr(importlib.import_module(module), func)
    return int(fn(argv) or 0)


# -- built-in subcommands ------------------------------------------------------------------


def _metric_text(p: dict[str, Any]) -> str:
    """'accuracy=0.9667 (delta +0.0028)': figures rounded for people."""
    if not p.get("metric") or p.get("metric_variant") is None:
        return ""
    delta = p.get("metric_delta")
    d = f" (delta {delta:+.4f})" if isinstance(delta, (int, float)) else ""
    return f" {p['metric']}={p['metric_variant']:.4f}{d}"


def cmd_info(a: argparse.Namespace) -> int:
    from .bundle import load_bundle, verify_files

    b = load_bundle(a.bundle, verify=False)
    checks = verify_files(b.path, b.meta)
    if emit_json({"bundle": b.meta, "verified": checks}, a.json):
        return 0
    m = b.meta
    print(f"bundle   {b.path}")
    print(f"name     {m['name']}  task={m['task']}  app={m['app']}")
    print(f"created  {m['created']}  edgewise {m['edgewise_version']}  schema {m['schema_version']}")
    print(f"input    {_json_line(m['input'])}")
    print(f"output   {_json_line(m['output'])}")
    if b.labels:
        print(f"labels   {', '.join(b.labels)}")
    if b.thresholds:
        print(f"thresholds {_json_line(b.thresholds)}")
    parity_n = next((v.parity.get("samples") for v in b.variants.values() if v.parity.get("samples")), None)
    print("variants (agreement with Keras and metric on the conversion evaluation set"
          + (f", {parity_n} samples" if parity_n else "") + "):")
    for v in b.variants.values():
        p = v.parity
        flag = "FLAGGED " + "; ".join(p.get("reasons", [])) if v.flagged else "ok"
        agree = p.get("decision_agreement")
        agree_s = f"{agree:.4f}" if isinstance(agree, (int, float)) else "-"
        print(f"  {v.name:15s} {v.backend:11s} {v.precision:8s} {v.file:24s}"
              f" agree={agree_s}{_metric_text(p)} {flag}")
    ev = m.get("evaluation") or {}
    if ev.get("samples"):
        print(f"evaluation samples stored in the bundle (eval/, scored by `edgewise bench`): {ev['samples']}")
    print(f"files: {len(checks)} verified (size + sha256)")
    return 0


def _json_line(obj: Any) -> str:
    import json

    return json.dumps(obj)


# --normalization NAME -> bundle.json input.normalization, as the training bundles store it:
# the device feeds x * scale + offset for 0-255 pixels (edge/apps/classify.py::prepare_image).
NORMALIZATIONS: dict[str, dict[str, float] | None] = {
    "none": None,
    "0-1": {"scale": 1 / 255, "offset": 0.0},
    "-1-1": {"scale": 1 / 127.5, "offset": -1.0},
}


def parse_normalization(text: str) -> dict[str, float] | None:
    """``none``, ``0-1``, ``-1-1`` or ``SCALE,OFFSET`` -> the bundle's normalization (None: raw)."""
    if text in NORMALIZATIONS:
        return NORMALIZATIONS[text]
    parts = text.split(",")
    try:
        scale, offset = (float(v) for v in parts)
    except ValueError:
        scale = offset = float("nan")
    if len(parts) != 2 or not all(abs(v) < float("inf") for v in (scale, offset)) or scale == 0:
        raise argparse.ArgumentTypeError(
            f"'{text}': expected none, 0-1, -1-1 or SCALE,OFFSET (two numbers, SCALE not 0)"
        )
    return {"scale": scale, "offset": offset}


def cmd_convert(a: argparse.Namespace) -> int:
    from pathlib import Path

    for f, flag in ((a.model, "model"), (a.data, "--data")):
        if not Path(f).is_file():
            raise CliError(f"{flag} {f}: no such file")
    if a.threads < 1:
        raise CliError(f"--threads {a.threads}: must be at least 1")
    require("tensorflow", "keras", "tf2onnx", what="converting a Keras model")
    import numpy as np

    from edgewise.converters import ConversionSpec, build_bundle
    from edgewise.converters.parity import Decider
    from edgewise.train.keras_utils import tf_setup

    try:
        data = np.load(a.data)
    except (OSError, ValueError) as e:
        raise CliError(f"{a.data}: cannot read samples ({error_line(e)})") from None
    if "x" not in data and "x_calib" not in data:
        raise CliError(f"{a.data}: needs array 'x' (or 'x_calib' and 'x_eval'), has {list(data)}")
    keras = tf_setup()
    try:
        model = keras.models.load_model(a.model, compile=False)
    except (OSError, ValueError) as e:
        raise CliError(f"{a.model}: cannot load Keras model ({error_line(e)})") from None
    calib = data["x_calib"] if "x_calib" in data else data["x"]
    ev = data["x_eval"] if "x_eval" in data else data["x"]
    y = data["y_eval"] if "y_eval" in data else (data["y"] if "y" in data else None)
    decider = Decider(kind=a.decision, score=a.score, threshold=a.threshold)
    spec = ConversionSpec(
        name=a.name or a.model.rsplit("/", 1)[-1].split(".")[0],
        task=a.task, app="generic",
        input={"layout": a.layout, "color": a.color,
               "normalization": a.normalization},  # None: raw inputs, stored as such
        thresholds={"decision": a.threshold} if a.threshold is not None else {},
        labels=a.labels.split(",") if a.labels else [],
        decider=decider,
    )
    res = build_bundle(
        model, a.out, spec, calib_x=calib, eval_x=ev, eval_y=y, variants=a.variants,
        threads=a.threads, zip_path=a.zip, quiet=a.quiet,
    )
    if not emit_json({"bundle": str(res.path), "parity": res.parity}, a.json):
        print((res.path / "report" / "parity.md").read_text())
        print(f"bundle written: {res.path}")
    if res.flagged:
        print(f"flagged variants: {', '.join(res.flagged)}", file=sys.stderr)
        return 1 if a.strict else 0
    return 0


def cmd_bench(a: argparse.Namespace) -> int:
    from pathlib import Path

    if min(a.threads) < 1 or a.iterations < 1 or a.warmup < 0:
        raise CliError("--threads and --iterations must be at least 1, --warmup at least 0")
    from edgewise.benchmarks.latency import bench_bundle, latency_markdown

    res = bench_bundle(
        a.bundle, variants=a.variants, threads=a.threads, iterations=a.iterations,
        warmup=a.warmup, quiet=a.quiet,
    )
    md = latency_markdown(res)
    if a.out:
        out = Path(a.out)
        out.mkdir(parents=True, exist_ok=True)
        emit_json(res, str(out / "latency.json"))
        (out / "latency.md").write_text(md)
        from edgewise.benchmarks.report import plot_latency

        if plot_latency(res, out / "latency.png") is None:
            progress.log("latency.png skipped: matplotlib is not installed")
    if not emit_json(res, a.json):
        print(md)
    return 0


def cmd_demo(a: argparse.Namespace) -> int:
    require("tensorflow", "keras", "tf2onnx", "sklearn", what="the demo (it trains models)")
    from edgewise.benchmarks.demo import APP_DEMOS, demo_main

    bad = [x for x in a.apps or [] if x not in ("digits", *APP_DEMOS)]
    if bad:
        raise CliError(f"--apps {' '.join(bad)}: unknown part (choose from digits {' '.join(APP_DEMOS)})")
    return int(demo_main(a))


# -- parser --------------------------------------------------------------------------------


def _group_parser(sub: Any, name: str, helptext: str, apps: tuple[str, ...], verb: str) -> None:
    """``train`` / ``run`` / application ``bench``: help lists the applications; work is forwarded."""
    s = sub.add_parser(name, help=helptext, description=f"{helptext}.\n\n{_app_list(apps)}",
                       epilog=f"more: edgewise {name} APP --help   (e.g. edgewise {name} {apps[0]} --help)")
    s.add_argument("app", metavar="APP", choices=apps, help=f"application to {verb}: {', '.join(apps)}")
    s.add_argument("args", nargs="*", default=[], metavar="OPTION", help=f"options of 'edgewise {name} APP'")
    _sub_quiet(s)


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="edgewise",
        description="Deep learning from the workstation to a Raspberry Pi, with numbers.",
        epilog=EXAMPLES,
    )
    from . import __version__

    p.add_argument("--version", action="version", version=f"edgewise {__version__}")
    add_quiet(p)
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging, tracebacks on errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND",
                           help="edgewise COMMAND --help shows its options")

    s = sub.add_parser("info", help="print a bundle's metadata and verify every checksum")
    s.add_argument("bundle", help="bundle directory or .zip")
    add_json(s, "the metadata and checksum results")
    _sub_quiet(s)
    s.set_defaults(fn=cmd_info)

    s = sub.add_parser(
        "convert", help="Keras model -> TFLite/ONNX variants with parity checks, in a bundle",
        epilog="example:\n  edgewise convert model.keras --data samples.npz --out model.bundle --strict",
    )
    s.add_argument("model", help="Keras model file (.keras or .h5)")
    s.add_argument("--data", required=True,
                   help=".npz with 'x' (and 'y'), or 'x_calib', 'x_eval', 'y_eval': real samples")
    s.add_argument("--out", required=True, help="bundle directory to write")
    s.add_argument("--zip", help="also write the bundle as this .zip")
    s.add_argument("--name", help="bundle name (default: model file stem)")
    s.add_argument("--task", default="classification",
                   help="task stored in bundle.json (classification, anomaly, embedding, ...)")
    s.add_argument("--decision", choices=["argmax", "threshold", "none"], default="argmax",
                   help="how an output becomes a decision, for the parity check")
    s.add_argument("--score", default="last", help="score for --decision threshold: last|max|mse")
    s.add_argument("--threshold", type=float, help="decision threshold stored in the bundle")
    s.add_argument("--labels", help="comma-separated class labels")
    s.add_argument("--layout", default="NHWC", help="input layout stored in bundle.json (NHWC, NC, ...)")
    s.add_argument("--color", default="none", help="input colour order stored in bundle.json: rgb, bgr, gray "
                   "or none")
    s.add_argument("--normalization", type=parse_normalization, default="none", metavar="NORM",
                   help="how the device turns 0-255 pixels into the model's input, stored in bundle.json: "
                   "0-1 (x/255), -1-1 (x/127.5 - 1; write --normalization=-1-1), SCALE,OFFSET "
                   "(x*SCALE + OFFSET) or none (raw pixels). The --data samples are already in this range")
    s.add_argument("--variants", nargs="+", help="subset of variants (default: all six)")
    s.add_argument("--threads", type=int, default=2, help="threads for the parity runs of each variant")
    s.add_argument("--strict", action="store_true", help="exit 1 when a variant is flagged")
    add_json(s, "the bundle path and parity rows")
    _sub_quiet(s)
    s.set_defaults(fn=cmd_convert)

    s = sub.add_parser(
        "bench", help="latency p50/p90/p99, throughput, memory, accuracy per variant",
        description="Benchmark every variant of a bundle on this machine, or run an application's "
        "own benchmark (edgewise bench APP --help).\n\n" + _app_list(BENCH_APPS),
        epilog="examples:\n  edgewise bench digits.bundle --threads 1 2 --json latency.json\n"
        "  edgewise bench face --bundle face.bundle --data $EDGEWISE_DATA   (application benchmark)",
    )
    s.add_argument("bundle", help="bundle directory/.zip, or an application name ("
                   + ", ".join(BENCH_APPS) + ")")
    s.add_argument("--variants", nargs="+",
                   help="only these variants; refused if one cannot run here (default: every variant, "
                   "skipping those whose runtime is not installed)")
    s.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts to time")
    s.add_argument("--iterations", type=int, default=200, help="timed single inferences per cell")
    s.add_argument("--warmup", type=int, default=20, help="untimed inferences before timing")
    s.add_argument("--out", help="folder for latency.json, latency.md and latency.png")
    add_json(s, "the results")
    _sub_quiet(s)
    s.set_defaults(fn=cmd_bench)

    _group_parser(sub, "train", "train an application's model and write its bundle (workstation)",
                  tuple(APPS), "train")
    _group_parser(sub, "run", "run an application's edge loop on a camera, video, folder or sensor",
                  tuple(APPS), "run")

    for name, helptext in (
        ("enroll", "add, list or remove people in a face gallery"),
        ("deploy", "deploy a bundle to a Raspberry Pi over SSH (atomic switch, rollback)"),
        ("verify", "check a bundle on an emulated Raspberry Pi CPU (arm64) before flashing"),
    ):
        s = sub.add_parser(name, help=helptext, add_help=False)
        s.add_argument("args", nargs=argparse.REMAINDER)

    s = sub.add_parser("demo", help="the whole path: train -> convert -> bench -> run (workstation)")
    s.add_argument("--data", help="datasets folder (default: $EDGEWISE_DATA); real data if set")
    s.add_argument("--out", default="edgewise-demo", help="output folder")
    s.add_argument("--apps", nargs="+", metavar="PART",
                   help="only these parts: digits, vibration, inspect, face (default: all)")
    _sub_quiet(s)
    s.set_defaults(fn=cmd_demo)
    return p


def _sub_quiet(s: argparse.ArgumentParser) -> None:
    # SUPPRESS: a subcommand's own default must not undo `edgewise -q CMD`
    s.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                   help="no progress output, results only")


# -- dispatch ------------------------------------------------------------------------------


def _route(argv: list[str]) -> tuple[str, str, str, list[str]] | None:
    """(what, module, function, argv) when ``argv`` is a forwarded subcommand, else None."""
    if not argv:
        return None
    cmd, rest = argv[0], argv[1:]
    quiet = []  # `edgewise train -q APP ...`: the group's -q goes to the application
    while rest and rest[0] in ("-q", "--quiet"):
        quiet.append(rest.pop(0))
    nxt = rest[0] if rest else None
    if cmd in ("train", "run") and nxt in APPS:
        edge_mod, train_mod, _ = APPS[nxt]
        return f"{cmd} {nxt}", train_mod if cmd == "train" else edge_mod, f"{cmd}_main", rest[1:] + quiet[:1]
    if cmd == "bench" and nxt in BENCH_APPS:
        return f"bench {nxt}", f"edgewise.benchmarks.{nxt}", "bench_main", rest[1:] + quiet[:1]
    rest = quiet + rest
    if cmd in FORWARDED:
        return cmd, *FORWARDED[cmd], rest
    return None


def _guarded(what: str, verbose: bool, call: Callable[[], int]) -> int:
    """Run a subcommand; an expected error becomes one line on stderr and exit 2."""
    from .bundle import BundleError

    try:
        return int(call() or 0)
    except (CliError, BundleError, ValueError, OSError, ImportError) as e:
        if verbose:
            logging.getLogger("edgewise").debug("traceback (-v)", exc_info=e)
        print(f"edgewise {what}: error: {error_line(e)}", file=sys.stderr)
        return e.code if isinstance(e, CliError) else 2
    except KeyboardInterrupt:
        return 130


def _parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """``parse_args``, but an unknown option is reported by the subcommand it was given to."""
    a, extra = parser.parse_known_args(argv)
    if extra:
        subs = next(x for x in parser._actions if isinstance(x, argparse._SubParsersAction))  # noqa: SLF001
        owner = subs.choices.get(getattr(a, "command", None) or "", parser)
        owner.error(f"unrecognized arguments: {' '.join(extra)}")
    return a


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    cmd_at = next((i for i, t in enumerate(argv) if not t.startswith("-")), len(argv))
    route = _route(argv[cmd_at:])
    # global options come before the subcommand; a forwarded subcommand parses the rest itself
    a = _parse(parser, argv[:cmd_at] if route else argv)
    logging.basicConfig(
        level=logging.DEBUG if a.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    quiet = bool(a.quiet or (route and {"-q", "--quiet"} & set(route[3])))
    progress.set_verbosity(quiet=quiet, verbose=a.verbose)
    progress.quiet_loggers()
    if route:
        what, module, func, rest = route
        if a.quiet and not {"-q", "--quiet"} & set(rest):
            rest = [*rest, "--quiet"]
        return _guarded(what, a.verbose, lambda: _call(module, func, rest))
    if a.command is None:
        parser.print_help()
        return 0
    if not hasattr(a, "fn"):  # `train`/`run` APP was parsed as a choice above; nothing else gets here
        parser.parse_args([a.command, "--help"])
        return 0
    return _guarded(a.command, a.verbose, lambda: int(a.fn(a) or 0))


if __name__ == "__main__":
    sys.exit(main())
