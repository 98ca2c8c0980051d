"""``edgewise run inspect``: flags to a typed ``InspectOptions``, then an ``InspectApp`` on the
shared runner. The option flags are generated from ``InspectOptions``, so flag, default and
help are written once."""

from __future__ import annotations

from pathlib import Path

from ...bundle import load_bundle
from ...progress import log
from ..base import add_option_flags, options_from
from ..run import run_app
from ..settings import RunSettings, run_parser
from .app import InspectApp, InspectOptions

__all__ = ["run_main"]


def run_main(argv: list[str]) -> int:
    """Parse, build the app, run it over the source; exit code 0 when the source ends."""
    p = run_parser(
        "inspect",
        "Inspect parts: tile each image at a fixed scale, score every tile, PASS/FAIL the part "
        "against the bundle's threshold (chosen for a target recall; the recall it guarantees is "
        "printed at start).",
        "edgewise run inspect --bundle tiles.bundle --source parts/ --save-fails fails/ "
        "--sqlite events.db --gpio-pin 17",
    )
    g = p.add_argument_group("inspection")
    add_option_flags(g, InspectOptions)
    g.add_argument("--threshold", type=float, help="override the bundle's decision threshold")
    a = p.parse_args(argv)
    try:
        options = options_from(a, InspectOptions)
    except ValueError as e:
        p.error(str(e))
    settings = RunSettings.from_args(a)
    app = InspectApp(load_bundle(settings.bundle), settings.variant, settings.threads, threshold=a.threshold,
                     options=options)
    line = app.operating_point_line()  # the guarantee the threshold carries, before the first part
    if line:
        log(line, quiet=getattr(a, "quiet", None) or None)
    # parts are inspected in grey: a folder's images are read as grey directly
    return run_app(app, settings.with_gray(Path(settings.source.source).is_dir()))
