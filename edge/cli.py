"""The ``edgewise`` command: one table of subcommands, one error handler.

Each subcommand is a module and a function taking its own argv (``COMMANDS``); the module is
imported only when that subcommand runs, so ``edgewise run`` / ``info`` / ``bench`` on a
Raspberry Pi never import TensorFlow, and a subcommand's optional part that is missing is
reported when it is needed. Every function parses its arguments with the shared
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
from dataclasses import dataclass
from typing import Any

from . import progress
from .cliargs import CliError, Parser, add_quiet, error_line

__all__ = ["main", "build_parser", "Command", "COMMANDS", "APPS", "GROUPS", "CliError"]


@dataclass(frozen=True)
class Command:
    """Where a subcommand lives: ``module.func(argv) -> exit code``, and its line in the help."""

    module: str
    func: str
    help: str

    def load(self) -> Callable[[list[str]], Any]:
        return getattr(importlib.import_module(self.module), self.func)


# application -> one line, shown by `edgewise train|run|bench --help`
APPS: dict[str, str] = {
    "classify": "image classifier (digits CNN on scikit-learn's bundled digits)",
    "vibration": "vibration anomaly detection (autoencoder on healthy CWRU bearing windows)",
    "inspect": "visual inspection of parts: tile defect model, PASS/FAIL per part",
    "face": "face recognition: detect, align, embed, match an enrolled gallery",
}

# the one table: "COMMAND" or "GROUP APP" -> where it lives (in the order `edgewise --help` lists them)
COMMANDS: dict[str, Command] = {
    "demo": Command("edgewise.benchmarks.demo", "demo_main",
                    "the whole path: train -> convert -> bench -> run (workstation)"),
    "train classify": Command("edgewise.train.classify", "train_main", APPS["classify"]),
    "train vibration": Command("edgewise.train.vibration", "train_main", APPS["vibration"]),
    "train inspect": Command("edgewise.train.inspect", "train_main", APPS["inspect"]),
    "train face": Command("edgewise.train.face", "train_main", APPS["face"]),
    "convert": Command("edgewise.converters.cli", "convert_main",
                       "Keras model -> TFLite/ONNX variants with parity checks, in a bundle"),
    "info": Command("edgewise.edge.info", "info_main", "print a bundle's metadata and verify every checksum"),
    "keygen": Command("edgewise.edge.signing.cli", "keygen_main", "make an ed25519 key pair to sign bundles"),
    "sign": Command("edgewise.edge.signing.cli", "sign_main", "sign a bundle's manifest with a private key"),
    "bench": Command("edgewise.benchmarks.latency", "bench_main",
                     "latency p50/p90/p99, throughput, memory, accuracy per variant "
                     "(bench APP: an application's own benchmark)"),
    "bench vibration": Command("edgewise.benchmarks.vibration", "bench_main", APPS["vibration"]),
    "bench inspect": Command("edgewise.benchmarks.inspect", "bench_main", APPS["inspect"]),
    "bench inspect-levers": Command("edgewise.benchmarks.inspect_levers", "levers_main",
                                    "inspection ranking under top-k aggregation and test-time flips "
                                    "(no retraining)"),
    "bench face": Command("edgewise.benchmarks.face", "bench_main", APPS["face"]),
    "bench face-detector": Command("edgewise.benchmarks.face.detector", "bench_main",
                                   "face detectors (OpenCV YuNet, LiteRT float32/int8): faces found, "
                                   "latency"),
    "bench all": Command("edgewise.benchmarks.suite", "suite_main",
                         "the three applications on the real data in one suite, with regressions"),
    "run classify": Command("edgewise.edge.apps.classify", "run_main", APPS["classify"]),
    "run vibration": Command("edgewise.edge.apps.vibration", "run_main", APPS["vibration"]),
    "run inspect": Command("edgewise.edge.apps.inspect", "run_main", APPS["inspect"]),
    "run face": Command("edgewise.edge.apps.face", "run_main", APPS["face"]),
    "commission vibration": Command("edgewise.edge.apps.vibration.commission_cli", "commission_main",
                                    "learn this machine's healthy state on the device (no TensorFlow)"),
    "soak": Command("edgewise.benchmarks.soak", "soak_main",
                    "each application's loop for many frames on real data: memory and fd growth"),
    "enroll": Command("edgewise.edge.apps.face", "enroll_main",
                      "add, list or remove people in a face gallery"),
    "deploy": Command("edgewise.edge.device.deploy", "deploy_main",
                      "deploy a bundle to a Raspberry Pi over SSH (atomic switch, rollback)"),
    "fleet": Command("edgewise.edge.device.fleet.cli", "fleet_main",
                     "roll a bundle out to an Ansible inventory of Pis (rolling, halts, fleet table)"),
    "image": Command("edgewise.edge.device.image.build", "image_main",
                     "a flashable Raspberry Pi OS card that installs a bundle's service at first boot"),
    "verify": Command("edgewise.edge.device.verify", "verify_main",
                      "check a bundle on an emulated Raspberry Pi CPU (arm64) before flashing"),
    "project": Command("edgewise.edge.device.project.cli", "project_main",
                       "projected Pi 4 / Pi 5 time per inference per variant (compute-bound lower bound)"),
}

# commands that are only groups: the next word picks the application
GROUPS: dict[str, str] = {
    "train": "train an application's model and write its bundle (workstation)",
    "run": "run an application's edge loop on a camera, video, folder or sensor",
    "commission": "learn an installed machine's healthy state on the device (no TensorFlow)",
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

QUIET = ("-q", "--quiet")


def _apps_of(group: str) -> list[str]:
    return [name.split()[1] for name in COMMANDS if name.startswith(group + " ")]


def _top_level() -> dict[str, str]:
    """First word -> help line, in table order (a group's line from ``GROUPS``)."""
    lines: dict[str, str] = {}
    for name, cmd in COMMANDS.items():
        first = name.split()[0]
        lines.setdefault(first, GROUPS.get(first, cmd.help))
    return lines


def build_parser() -> argparse.ArgumentParser:
    """The top level: global options and the list of subcommands (each parses its own options)."""
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
    for name, helptext in _top_level().items():
        sub.add_parser(name, help=helptext, add_help=False)
    return p


def _group_parser(group: str) -> argparse.ArgumentParser:
    """``edgewise train|run`` without a known application: its help, or the error naming APP."""
    apps = _apps_of(group)
    listing = "applications:\n" + "\n".join(f"  {n:10s} {APPS[n]}" for n in apps)
    p = Parser(prog=f"edgewise {group}", description=f"{GROUPS[group]}.\n\n{listing}",
               epilog=f"more: edgewise {group} APP --help   (e.g. edgewise {group} {apps[0]} --help)")
    p.add_argument("app", metavar="APP", choices=apps, help=f"application to {group}: {', '.join(apps)}")
    p.add_argument("args", nargs="*", default=[], metavar="OPTION", help=f"options of 'edgewise {group} APP'")
    add_quiet(p)
    return p


def _resolve(words: list[str]) -> tuple[str, Command, list[str]] | None:
    """(name, command, its argv) for the words from the subcommand on; None if not in the table."""
    first, rest = words[0], words[1:]
    quiet = []  # `edgewise train -q APP ...`: the group's -q goes to the application
    while rest and rest[0] in QUIET:
        quiet.append(rest.pop(0))
    if rest and f"{first} {rest[0]}" in COMMANDS:
        return f"{first} {rest[0]}", COMMANDS[f"{first} {rest[0]}"], rest[1:] + quiet[:1]
    if first in COMMANDS:
        return first, COMMANDS[first], quiet + rest
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


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    cmd_at = next((i for i, t in enumerate(argv) if not t.startswith("-")), len(argv))
    a = parser.parse_args(argv[:cmd_at])  # global options only: the subcommand parses the rest
    words = argv[cmd_at:]
    if not words:
        parser.print_help()
        return 0
    route = _resolve(words)
    if route is None:
        if words[0] in GROUPS:  # no application, or an unknown one: help or a one-line error
            g = _group_parser(words[0])
            g.parse_args(words[1:])
            g.error("options go after APP")
        parser.parse_args(argv[:cmd_at + 1])  # an unknown command: argparse names the choices
        return 2
    name, command, rest = route
    if a.quiet and not set(QUIET) & set(rest):
        rest = [*rest, "--quiet"]
    logging.basicConfig(
        level=logging.DEBUG if a.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    progress.set_verbosity(quiet=bool(set(QUIET) & set(rest)), verbose=a.verbose)
    progress.quiet_loggers()
    return _guarded(name, a.verbose, lambda: int(command.load()(rest) or 0))


if __name__ == "__main__":
    sys.exit(main())
