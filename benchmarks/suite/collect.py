"""Each application measured through its own benchmark's public functions, turned into suite rows.

Two levels per application, both with accuracy beside latency:

- ``model``: every variant of the bundle (LiteRT and ONNX Runtime, float32 / int8 / ...) at
  every thread count, one inference on the bundle's stored evaluation samples, scored on them
  (``benchmarks.latency.bench_bundle``);
- ``pipeline``: the application's own per-item work on the real data, with its peers in the same
  run: face (``benchmarks.face.bench_face``: detect + align + embed + match on a camera-sized
  frame, ORL open-set rank-1; Eigenfaces / Fisherfaces / LBPH beside it), inspection
  (``benchmarks.inspect.bench_bundles``: every tile of a part image, image AUROC on the held-out
  split), vibration (``edge_cost``: features + model + scoring per window on one core, min AUROC
  over the fault recordings; the Mahalanobis baseline on the classical indicators beside it).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgewise.edge.bundle import load_bundle
from edgewise.edge.evaluate import percentiles
from edgewise.edge.progress import log

from .rows import SuiteRow

__all__ = ["Plan", "model_rows", "face_rows", "inspect_rows", "vibration_rows", "COLLECTORS"]

METRICS = ("accuracy", "auroc", "pair_auroc")


@dataclass(frozen=True)
class Plan:
    """How much each application measures: the full run or ``--quick`` (CI)."""

    threads: tuple[int, ...]
    quick: bool
    out: Path

    @property
    def model_iterations(self) -> int:
        return 60 if self.quick else 300


def _spread(r: dict[str, Any]) -> dict[str, float]:
    return {k: round(float(r[f"{k}_ms"]), 4) for k in ("min", "p90", "max") if r.get(f"{k}_ms") is not None}


def model_rows(app: str, bundle: Path, plan: Plan, quiet: bool) -> tuple[list[SuiteRow], list[str]]:
    """Every variant x thread count of the bundle's model; the runtimes that could not run, as notes."""
    from ..latency import bench_bundle

    res = bench_bundle(bundle, threads=list(plan.threads), iterations=plan.model_iterations,
                       warmup=10 if plan.quick else 30, quiet=quiet, memory=False)
    samples = (res.get("evaluation") or {}).get("samples")
    rows = []
    for r in res["rows"]:
        metric = next((k for k in METRICS if r.get(k) is not None), None)
        rows.append(SuiteRow(app, "model", r["variant"], r["backend"], r["precision"], r["threads"],
                             round(r["p50_ms"], 4), round(r["p99_ms"], 4), _spread(r), metric,
                             None if metric is None else round(float(r[metric]), 6),
                             note=f"bundle eval/ samples ({samples})" if metric else "no stored eval labels"))
    skipped = [f"{app} model {s['variant']}: {s['reason']}" for s in res.get("skipped", [])]
    backends = {r.backend for r in rows}
    for be in ("litert", "onnxruntime"):
        if be not in backends:
            skipped.append(f"{app} model: no {be} variant in {bundle.name} (nothing to time)")
    return rows, skipped


def _variant_of(method: str) -> str | None:
    """``embedding tflite_int8 + tta flip, cosine`` / ``fused: embedding tflite_int8 ...`` -> the variant."""
    words = method.replace("fused: ", "").split()
    return words[1] if len(words) > 1 and words[0] == "embedding" else None


def face_rows(bundle: Path, data: Path, plan: Plan, quiet: bool) -> tuple[list[SuiteRow], list[str]]:
    """The face table of ``bench face`` (every method on ORL, time per face per thread count) as rows."""
    from edgewise.edge.apps.face.detect import detector_model_path

    from ..face import bench_face

    det = detector_model_path("yunet", None, data)
    if det is None or not det.is_file():
        return [], [f"face pipeline: YuNet model not found under {data} (models/face_detection)"]
    b = load_bundle(bundle)
    r = bench_face(data, bundle, plan.out / "face", detector_model=det, threads=list(plan.threads),
                   repeats=3 if plan.quick else 10, iterations=15 if plan.quick else 50, quiet=quiet)
    rows = []
    for s in r["summary"]:
        o = s["open_set"]
        v = _variant_of(s["method"])
        spec = b.spec.variants.get(v) if v else None
        for th, ms in s["time_ms_p50"].items():
            rows.append(SuiteRow(
                "face", "pipeline", s["method"], spec.backend if spec else "opencv",
                spec.precision if spec else "float64", int(th), round(float(ms), 4), None, {},
                "open_set_rank1", round(float(o["rank1"]), 6), peer=spec is None,
                note=f"ORL, 40 unseen people, mean of {r['protocol']['repeats']} splits; time per face "
                "(detect + align + classify) on a 640x480 frame"))
    return rows, []


def inspect_rows(bundle: Path, data: Path, plan: Plan, quiet: bool) -> tuple[list[SuiteRow], list[str]]:
    """Full part image (every tile) per variant and thread count, with image AUROC on the test split."""
    from edgewise.train.data.magnetic_tile import find_magnetic_tile

    from ..inspect import bench_bundles

    res = bench_bundles([bundle], find_magnetic_tile(data) or data, threads=list(plan.threads),
                        max_images=15 if plan.quick else 60, repeats=1 if plan.quick else 3, quiet=quiet)
    b = load_bundle(bundle)
    rows = []
    for r in res["bundles"]:
        for name, v in r["variants"].items():
            spec = b.spec.variants[name]
            for th, lat in v["latency"].items():
                rows.append(SuiteRow(
                    "inspect", "pipeline", name, spec.backend, spec.precision, int(th),
                    round(lat["p50_ms"], 4), round(lat["p99_ms"], 4), {}, "image_auroc",
                    round(float(v["auroc"]), 6),
                    note=f"{name}: {r['test_images']} held-out images ({r['test_defective']} defective), "
                    f"recall "
                    f"{v['recall']:.3f} at the bundle threshold; {r['tiles_per_image']['mean']:.1f} "
                    "tiles/image"))
    return rows, []


def _baseline_cost(bundle: Any, signal: np.ndarray, iterations: int) -> dict[str, float]:
    """The classical detector's per-window cost: the device's feature extractor (its indicators) and
    the Mahalanobis distance, one window at a time as on the device. The extractor also computes
    the autoencoder's features, so this is an upper bound of the baseline alone."""
    from edgewise.edge.apps.vibration import FeatureConfig, FeatureExtractor, Mahalanobis, frame_signal

    cfg = bundle.spec.config
    fx = FeatureExtractor(float(cfg["fs"]), int(cfg["window"]), FeatureConfig.from_bundle(cfg["features"]))
    maha = Mahalanobis.from_dict(cfg["baseline"])
    wins = frame_signal(signal, fx.window, max(1, (len(signal) - fx.window) // 64))
    times = []
    for i in range(iterations + 20):
        t0 = time.perf_counter()
        _, ind = fx.transform(wins[i % len(wins)][None, :])
        maha.score_one(ind[0])
        if i >= 20:
            times.append(time.perf_counter() - t0)
    return percentiles(times)


def vibration_rows(bundle_path: Path, data: Path, plan: Plan, quiet: bool
                   ) -> tuple[list[SuiteRow], list[str]]:
    """Per window on one core: every variant and the baseline, each with its min AUROC over the fault
    files."""
    from edgewise.edge.apps.vibration.cost import edge_cost
    from edgewise.edge.backends import runtime_missing

    from ..vibration import detection
    from ..vibration_sets import bundle_set

    bundle = load_bundle(bundle_path)
    variants = [v for v, spec in bundle.spec.variants.items() if not runtime_missing(spec.backend)]
    skipped = [f"vibration pipeline {v}: {runtime_missing(s.backend)}"
               for v, s in bundle.spec.variants.items() if runtime_missing(s.backend)]
    sets = bundle_set(bundle, data)
    log(f"vibration: detection on {len(sets.healthy)} healthy and {len(sets.faults)} fault recordings ...",
        quiet=quiet)
    det = detection(bundle, sets, variants, threads=1)
    healthy = next(iter(sets.healthy.values()))
    iterations = 300 if plan.quick else 2000
    note = (f"CWRU: healthy test part vs {len(sets.faults)} fault files; min AUROC over files; "
            "1 thread, 1 core")
    rows = []
    for v in variants:
        c = edge_cost(bundle, v, iterations=iterations, signal=healthy)
        spec = bundle.spec.variants[v]
        rows.append(SuiteRow("vibration", "pipeline", v, spec.backend, spec.precision, 1,
                             round(c["p50_ms"], 4), round(c["p99_ms"], 4), {}, "min_auroc",
                             _min_auroc(det.get(v)), note=note))
    c = _baseline_cost(bundle, healthy, iterations)
    rows.append(SuiteRow("vibration", "pipeline", "baseline (Mahalanobis on classical indicators)", "numpy",
                         "float64", 1, round(c["p50_ms"], 4), round(c["p99_ms"], 4), _spread(c), "min_auroc",
                         _min_auroc(det.get("baseline")), peer=True, note=note))
    return rows, skipped


def _min_auroc(d: dict[str, Any] | None) -> float | None:
    return None if not d or d.get("auroc_min") is None else round(float(d["auroc_min"]), 6)


COLLECTORS = {"face": face_rows, "inspect": inspect_rows, "vibration": vibration_rows}
