"""``edgewise bench face-detector``: the face pipeline's detectors side by side, accuracy beside latency.

A face frame's model time on a Pi is mostly the detector, so its int8 file is only worth
deploying if it finds the same faces. Per face set (ORL and the four ``.mat`` collections,
read by the training loaders in their original formats), every image is placed on the
detector's canvas at three sizes (``converters.face.detector.place_faces``) and each detector
runs on the same canvases: share of canvases with a face, share of the reference's largest face
found again (IoU >= 0.5), median IoU, landmark error over eye distance. The first detector is
the reference (default: OpenCV's YuNet). Latency is this host's, per canvas, at ``--threads``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgewise.benchmarks.outputs import write_outputs
from edgewise.edge.cliargs import Parser, add_json, add_quiet, fail
from edgewise.edge.progress import log

__all__ = ["bench_main", "face_sets", "detector_rows", "markdown"]

PROG = "edgewise bench face-detector"
MAT_SETS = ("AR_II", "GT", "IMM", "UMIST")


def face_sets(data: Path, limit: int) -> dict[str, list[np.ndarray]]:
    """ORL and the ``.mat`` collections under ``data/faces``, ``limit`` images each, spread over
    the set (every person, not the first few). A missing set is skipped with a line."""
    from edgewise.train.data.faces import load_mat_faces, load_orl

    out: dict[str, list[np.ndarray]] = {}
    loaders: list[tuple[str, Any]] = [("ORL", lambda: load_orl(data / "faces" / "orl"))]
    loaders += [(n, lambda n=n: load_mat_faces(data / "faces" / "extra" / f"{n}.mat")) for n in MAT_SETS]
    for name, load in loaders:
        try:
            images = load().images
        except ValueError as e:
            log(f"{PROG}: {name} skipped: {e}")
            continue
        pick = np.linspace(0, len(images) - 1, min(limit, len(images))).astype(int)
        out[name] = [images[i] for i in pick]
    if not out:
        raise ValueError(f"{data}: no face sets (faces/orl, faces/extra/*.mat)")
    return out


def _timed(det: Any, canvases: np.ndarray) -> tuple[list[Any], list[float]]:
    found, ms = [], []
    for c in canvases:
        t0 = time.perf_counter()
        found.append(det.detect(c if c.dtype == np.uint8 else c.astype(np.uint8)))
        ms.append((time.perf_counter() - t0) * 1e3)
    return found, ms


def detector_rows(sets: dict[str, list[np.ndarray]], detectors: list[Path], threads: int,
                  quiet: bool = True) -> list[dict[str, Any]]:
    """One row per face set and detector: agreement with the first detector, and latency."""
    from edgewise.converters.face.detector import agreement, place_faces
    from edgewise.edge.apps.face.detect import make_detector

    dets = [make_detector("yunet", d, threads=threads) for d in detectors]
    rows = []
    for name, images in sets.items():
        canvases = place_faces(images, 320, 320)
        log(f"{name}: {len(canvases)} canvases x {len(dets)} detectors ...", quiet=quiet)
        results = [_timed(d, canvases) for d in dets]
        for path, (found, ms) in zip(detectors, results, strict=True):
            a = agreement(detectors[0].name, results[0][0], path.name, found)
            rows.append({"set": name, "detector": path.name, "canvases": len(canvases),
                         "found": a.other_found, "reference_found": a.reference_found,
                         "found_loss_pt": a.found_loss_pt, "matched": a.matched,
                         "iou_median": a.iou_median,
                         "landmark_error_median": a.landmark_error_median,
                         "p50_ms": round(float(np.median(ms)), 3), "threads": threads})
    for d in dets:
        getattr(d, "close", lambda: None)()
    return rows


def markdown(r: dict[str, Any]) -> str:
    h = r["host"]
    lines = [f"# Face detectors: agreement with {r['reference']} and latency",
             "",
             f"Host: {h.get('machine')} {h.get('cpu', '')}, {h.get('cores')} cores, "
             f"{r['threads']} thread(s); latency is this host's, per 320x320 canvas. Canvases: real "
             "face-set images placed at three sizes.",
             "",
             "| set | detector | canvases | faces found | lost vs reference (pt) | "
             "largest face found again | median IoU | landmark error / eye distance | p50 ms |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for x in r["rows"]:
        lm = "-" if x["landmark_error_median"] is None else f"{100 * x['landmark_error_median']:.1f} %"
        lines.append(f"| {x['set']} | {x['detector']} | {x['canvases']} | {100 * x['found']:.1f} % | "
                     f"{x['found_loss_pt']:+.2f} | {100 * x['matched']:.1f} % | {x['iou_median']:.3f} | "
                     f"{lm} | {x['p50_ms']:.2f} |")
    return "\n".join(lines) + "\n"


def bench_main(argv: list[str]) -> int:
    from edgewise.benchmarks.host import host_info
    from edgewise.edge.apps.face.detect import DETECTOR_FILES

    p = Parser(prog=PROG, description="The face pipeline's detectors side by side on real face sets: faces "
               "found, agreement with OpenCV's YuNet, landmark error and latency. Detectors: YuNet .onnx "
               "(OpenCV) or .tflite (edgewise convert --task face-detector).",
               epilog="example:\n  edgewise bench face-detector --data $EDGEWISE_DATA \\\n"
               "      --detector det/yunet_n_320_320_float32.tflite \\\n"
               "      --detector det/yunet_n_320_320_int8.tflite")
    p.add_argument("--data", default=os.environ.get("EDGEWISE_DATA"),
                   help="datasets folder ($EDGEWISE_DATA)")
    p.add_argument("--detector", action="append", default=[], metavar="FILE",
                   help="a detector to compare (repeatable); OpenCV's YuNet from --data is always first, "
                   "the reference")
    p.add_argument("--limit", type=int, default=200, help="images per face set (default 200)")
    p.add_argument("--threads", type=int, default=1, help="inference threads (default 1)")
    p.add_argument("--quick", action="store_true", help="40 images per face set")
    add_json(p)
    p.add_argument("--md", help="write the Markdown report here")
    p.add_argument("--out", help="folder for face_detector_bench.json and .md")
    add_quiet(p)
    a = p.parse_args(argv)
    try:
        if not a.data:
            raise ValueError("--data DIR (or EDGEWISE_DATA) is required: the face sets and YuNet live there")
        if a.limit < 1 or a.threads < 1:
            raise ValueError("--limit and --threads must be at least 1")
        data = Path(a.data)
        reference = data / DETECTOR_FILES["yunet"]
        if not reference.is_file():
            raise ValueError(f"{reference}: OpenCV's YuNet (the reference) is not in the --data folder")
        detectors = [reference] + [Path(d) for d in a.detector]
        for d in detectors:
            if not d.is_file():
                raise ValueError(f"{d}: no such detector file")
        sets = face_sets(data, 40 if a.quick else a.limit)
        rows = detector_rows(sets, detectors, a.threads, a.quiet)
    except (ValueError, OSError) as e:
        return fail(PROG, e)
    r = {"host": host_info(), "reference": detectors[0].name, "threads": a.threads, "rows": rows}
    write_outputs(r, markdown(r), stem="face_detector_bench", out=a.out, json_path=a.json, md_path=a.md)
    return 0
