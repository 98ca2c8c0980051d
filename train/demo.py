"""``edgewise demo``: the whole path, train -> convert -> bench -> run, for every part built.

It always starts with the digits classifier (real data bundled with scikit-learn, no
download), then runs each application's own demo when that application exists, on the real
datasets when ``--data``/``EDGEWISE_DATA`` points at them, and otherwise says what it uses.
"""

from __future__ import annotations

import argparse
import importlib
import json
from pathlib import Path

from edgewise.edge.progress import log

from .data import data_root

__all__ = ["demo_main"]

APP_DEMOS = ("vibration", "inspect", "face")


def demo_digits(out: Path, quiet: bool) -> dict:
    """Digits: train, convert (6 variants + parity), info, bench, run on an image folder."""
    from edgewise.benchmarks.latency import bench_bundle, latency_markdown
    from edgewise.edge.apps.classify import ClassifyApp
    from edgewise.edge.bundle import load_bundle
    from edgewise.edge.pipeline import Runner
    from edgewise.edge.sinks import JsonLinesSink
    from edgewise.edge.sources import ImageFolderSource

    from .classify import export_images, load_digits_split, train_digits

    log("== digits classifier (real data: scikit-learn's bundled UCI digits) ==", quiet=quiet)
    bundle_dir = out / "digits.bundle"
    _, res = train_digits(bundle_dir, quiet=quiet)
    print((res.path / "report" / "parity.md").read_text())
    bundle = load_bundle(bundle_dir)  # verifies every checksum
    bench = bench_bundle(bundle, threads=[1, 2], iterations=300, quiet=quiet)
    md = latency_markdown(bench)
    (out / "digits_latency.md").write_text(md)
    (out / "digits_latency.json").write_text(json.dumps(bench, indent=2))
    print(md)
    images = export_images(load_digits_split()["x_test"], out / "digits_test_images", limit=60)
    app = ClassifyApp(bundle, "tflite_int8", threads=2)
    stats = Runner(app, [JsonLinesSink(out / "digits_events.jsonl")]).run(
        ImageFolderSource(images, gray=True)
    )
    s = stats.summary()
    log(
        f"edge loop: {s['frames']} images, {s['fps']} fps, end-to-end p50 "
        f"{s['end_to_end']['p50_ms']:.2f} ms -> {out / 'digits_events.jsonl'}",
        quiet=False,
    )
    return {"parity": res.parity, "bench": bench, "run": s}


def demo_main(a: argparse.Namespace) -> int:
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    data = data_root(a.data)
    if data is None:
        log(
            "no datasets folder (--data / EDGEWISE_DATA): application demos use their "
            "synthetic data, labelled as such"
        )
    parts = a.apps or ["digits", *APP_DEMOS]
    summary: dict = {}
    if "digits" in parts:
        summary["digits"] = demo_digits(out, a.quiet)
    for app in APP_DEMOS:
        if app not in parts:
            continue
        try:
            mod = importlib.import_module(f"edgewise.train.{app}")
        except ModuleNotFoundError:
            log(f"== {app}: not built yet ==")
            continue
        if not hasattr(mod, "demo"):
            log(f"== {app}: no demo yet ==")
            continue
        log(f"== {app} ==")
        summary[app] = mod.demo(out / app, data=data, quiet=a.quiet)
    (out / "demo_summary.json").write_text(json.dumps(summary, indent=2, default=str))
    log(f"demo finished: outputs in {out}/")
    return 0
