"""The digits part of ``edgewise demo``: train, convert, bench and run the bundled-data classifier."""

from __future__ import annotations

import json
from pathlib import Path

from edgewise.edge.jsonenc import dumps
from edgewise.edge.progress import log


def demo_digits(out: Path, quiet: bool) -> dict:
    """Digits: train, convert (6 variants + parity), info, bench, run on an image folder."""
    import numpy as np

    from edgewise.benchmarks.latency import bench_bundle, latency_markdown
    from edgewise.edge.apps.classify import ClassifyApp
    from edgewise.edge.bundle import load_bundle
    from edgewise.edge.pipeline import Runner
    from edgewise.edge.sinks import JsonLinesSink
    from edgewise.edge.sources import ImageFolderSource
    from edgewise.train.classify import export_images, load_digits_split, train_digits

    log("== digits classifier (real data: scikit-learn's bundled UCI digits) ==", quiet=quiet)
    bundle_dir = out / "digits.bundle"
    _, res = train_digits(bundle_dir, quiet=quiet)
    print((res.path / "report" / "parity.md").read_text())
    bundle = load_bundle(bundle_dir)  # verifies every checksum
    bench = bench_bundle(bundle, threads=[1, 2], iterations=300, quiet=quiet)
    md = latency_markdown(bench)
    (out / "digits_latency.md").write_text(md)
    (out / "digits_latency.json").write_text(dumps(bench, indent=2))
    print(md)
    split = load_digits_split()
    n_edge = 60
    images = export_images(split["x_test"], out / "digits_test_images", limit=n_edge)
    app = ClassifyApp(bundle, "tflite_int8", threads=2)
    events = out / "digits_events.jsonl"
    stats = Runner(app, [JsonLinesSink(events)]).run(ImageFolderSource(images, gray=True))
    s = stats.summary()
    log(
        f"edge loop: {s['frames']} images, {s['fps']} fps, end-to-end p50 "
        f"{s['end_to_end']['p50_ms']:.2f} ms -> {events}",
        quiet=False,
    )
    ev = [json.loads(line) for line in events.read_text().splitlines()]
    truth = {f"{i:04d}.png": str(y) for i, y in enumerate(split["y_test"][:n_edge])}
    correct = sum(str(e.get("label")) == truth.get(Path(e.get("path", "")).name) for e in ev)
    int8 = next(r for r in res.parity if r["variant"] == "tflite_int8")
    from sklearn.linear_model import LogisticRegression

    flat = {k: split[k].reshape(len(split[k]), -1) for k in ("x_train", "x_test")}
    base = LogisticRegression(max_iter=2000).fit(flat["x_train"], split["y_train"])
    base_acc = float(np.mean(base.predict(flat["x_test"]) == split["y_test"]))
    verdict = {
        "test": {"images": int(len(split["y_test"])), "int8_accuracy": float(int8["metric_variant"]),
                 "keras_accuracy": float(int8["metric_keras"]),
                 "baseline": "logistic regression on the pixels",
                 "baseline_accuracy": base_acc, "chance": 0.1},
        "edge": {"images": len(ev), "correct": int(correct), "fps": float(s["fps"])},
    }
    return {"parity": res.parity, "bench": bench, "run": s, "verdict": verdict}


