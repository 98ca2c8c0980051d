"""``edgewise bench face``: run every protocol and timing on one bundle, write JSON, Markdown and ROC."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgewise.edge.apps.face.align import face_crops
from edgewise.edge.apps.face.detect import detector_model_path, make_detector
from edgewise.edge.apps.face.embed import TTA_MODES, FaceEmbedder, bundle_tta, crop_template, tta_pair
from edgewise.edge.apps.face.match import bundle_score_rule, unknown_threshold
from edgewise.edge.bundle import load_bundle
from edgewise.edge.jsonenc import dumps
from edgewise.edge.progress import log

from ..host import host_info
from .classic import CLASSIC, classic_open_set
from .data import orl_set, splits, templates, unaligned_images
from .markdown import markdown
from .protocols import open_set, six_person_protocol
from .summary import summary_markdown, summary_methods, summary_table
from .timing import compose_frame, embed_speed, time_per_face

__all__ = ["bench_face", "bench_main"]


def _stored_threshold(bundle: Any, mode: str, far: float | None = None) -> float | None:
    """The bundle's unknown threshold for a tta ``mode`` (and ``far``); None when it stores none."""
    try:
        return unknown_threshold(bundle, mode, far)
    except ValueError:  # older bundles: one threshold, for their own mode only
        return None


def _embed(bundle: Any, names: list[str], aligned: np.ndarray, threads: int
           ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Every aligned face embedded by every variant, as is and mirrored (the tta modes combine them)."""
    plain, mirror = {}, {}
    for v in names:
        emb = FaceEmbedder(bundle, v, threads=threads)
        plain[v] = emb.embed(list(aligned))
        mirror[v] = emb.embed(list(np.ascontiguousarray(aligned[:, :, ::-1])))
        emb.model.close()
    return plain, mirror


def _threshold_options(bundle: Any, variant: str, plain: dict[str, np.ndarray], mirror: dict[str, np.ndarray],
                       tta: str, far0: float | None) -> tuple[dict[str, Any], dict[str, float]]:
    """The other stored thresholds (tta modes x calibrated FARs) on ``variant``: embeddings and
    threshold per row, the bundle's own (its tta mode at its FAR) left out."""
    configs: dict[str, Any] = {}
    thresholds: dict[str, float] = {}
    table_fars = sorted({float(k) for m in (bundle.spec.thresholds.get("unknown_by_tta") or {}).values()
                         for k in m}, reverse=True)
    for mode in TTA_MODES:
        for far in table_fars:
            t = _stored_threshold(bundle, mode, far)
            if t is None or (mode == tta and far == far0):
                continue
            key = f"{variant}, tta {mode}, FAR {100 * far:g} %"
            configs[key] = tta_pair(plain[variant], mirror[variant], mode)
            thresholds[key] = t
    return configs, thresholds


def _open_sets(bundle: Any, names: list[str], plain: dict[str, np.ndarray], mirror: dict[str, np.ndarray],
               labels: np.ndarray, repeats: int, seed: int) -> dict[str, dict[str, Any]]:
    """Open set per variant and tta mode on split ``seed``, and the mean over ``repeats`` random
    splits (at 200 probes the split matters)."""
    opens = {}
    for v in names:
        for mode in TTA_MODES:
            en_e, pr_e = tta_pair(plain[v], mirror[v], mode)
            key = f"{v}, tta {mode}"
            opens[key] = open_set(en_e, labels, threshold=_stored_threshold(bundle, mode), seed=seed,
                                  probe_emb=pr_e)
            opens[key]["tta"] = mode
            runs = [open_set(en_e, labels, seed=seed + k, probe_emb=pr_e) for k in range(repeats)]
            opens[key]["mean_over_splits"] = {
                "splits": repeats,
                "rank1": float(np.mean([o["rank1"] for o in runs])),
                "rank1_min": float(np.min([o["rank1"] for o in runs])),
                "rank1_max": float(np.max([o["rank1"] for o in runs])),
                "tar_at_far_0.01": float(np.mean([o["tar_at_far_0.01"] for o in runs])),
            }
    return opens


def _embed_costs(bundle: Any, names: list[str], crop: np.ndarray, threads: list[int], iterations: int,
                 quiet: bool) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """int8 vs float32 embedding time per thread count (calls interleaved), when both are measured."""
    speedup, embed_ms = {}, {}
    if {"tflite_float32", "tflite_int8"} <= set(names):
        for th in threads:
            e = embed_speed(bundle, ["tflite_float32", "tflite_int8"], crop, th,
                            iterations=max(100, 6 * iterations), flip=True)
            embed_ms[str(th)] = e
            speedup[str(th)] = round(e["tflite_float32"] / e["tflite_int8"], 2)
            log(f"embedding p50 at {th} thread(s): {e}", quiet=quiet)
    return speedup, embed_ms


def _add_total_times(table: dict[str, dict[str, Any]], timing: list[dict[str, Any]], threads: int,
                     first_variant: str) -> None:
    """Total time per face per table row at ``threads``: the measured pipeline for embedding rows,
    measured detect + align plus the row's own prediction time for classic rows."""
    tm = [r for r in timing if r["threads"] == threads]
    da = np.median([r["detect_ms_p50"] + r["align_ms_p50"] for r in tm])
    for name, row in table.items():
        if name.startswith("embedding"):
            r = next(r for r in tm if name == f"embedding {r['variant']}")
            row["classification_ms_p50"] = r["embed_ms_p50"] + r["match_ms_p50"]
            row["total_ms_p50"] = r["total_ms_p50"]
        elif name.startswith("closed-set"):
            r = next(r for r in tm if r["variant"] == first_variant)
            row["classification_ms_p50"] = r["embed_ms_p50"]
            row["total_ms_p50"] = r["total_ms_p50"]
        else:
            row["total_ms_p50"] = float(da + row.get("classification_ms_p50", 0.0))


def _rows_follow_rule(table: dict[str, dict[str, Any]], summary: list[dict[str, Any]], names: list[str],
                      rule: str) -> None:
    """The reference table's main embedding rows at the bundle's own score rule (what ``run face`` does
    by default), from the summary's identical draws; the cosine figures stay as ``cosine_rule``."""
    if rule == "cosine":
        return
    for v in names:
        row = table.get(f"embedding {v}")
        tag = "fused" if rule == "fused" else "AS-norm"
        s = next((r["six_person"] for r in summary if v in r["method"] and tag in r["method"]), None)
        if row is None or s is None:
            continue
        keep = ("accuracy_with_rejection", "enrollment_rate", "false_accept_rate")
        row["cosine_rule"] = {k: row[k] for k in keep if k in row}
        acc_s, n_s = (int(x) for x in s["strangers_accepted"].split("/"))
        row.update(rule=rule, threshold=s["threshold"], accuracy_with_rejection=s["accuracy_with_strangers"],
                   accuracy_with_rejection_probes_only=s["accuracy_probes_only"],
                   enrollment_rate=s["enrollment_rate"],
                   accepted=s["probes_accepted"], strangers=n_s, strangers_accepted=acc_s,
                   false_accept_rate=s["stranger_acceptance"])


def bench_face(data: Path, bundle_path: Path, out: Path, *, detector_model: Path, threads: list[int],
               repeats: int = 10, p0: float = 0.85, variants: list[str] | None = None, iterations: int = 50,
               seed: int = 0, quiet: bool = False) -> dict[str, Any]:
    """Every protocol and timing on one bundle; writes face_bench.json, face_bench.md, face_roc.png."""
    bundle = load_bundle(bundle_path)
    out.mkdir(parents=True, exist_ok=True)
    tta = bundle_tta(bundle)
    far0 = bundle.spec.thresholds.get("far_target")  # None (older bundles): no table row is "the bundle's"
    threshold = unknown_threshold(bundle)
    orl = orl_set(data)
    labels = orl.labels
    det = make_detector("yunet", detector_model, threads=max(threads))  # .onnx: OpenCV; .tflite: LiteRT
    t0 = time.monotonic()
    # the bundle's landmark template (a pretrained embedder may bring its own); ORL is grey either way
    aligned, how = face_crops(orl.images, det, bundle.spec.input.hwc[0], pad=0.2,
                              template=crop_template(bundle))
    log(f"ORL: {len(orl)} faces aligned in {time.monotonic() - t0:.1f}s ({how.count('aligned')} with "
        "landmarks)", quiet=quiet)
    unaligned = unaligned_images(orl.images)
    names = [v for v in (variants or ["tflite_float32", "tflite_int8"]) if v in bundle.spec.variants]
    if not names and variants is None:  # a pretrained embedder's bundle: ONNX only, or one TFLite precision
        names = list(bundle.spec.variants)
    if not names:
        raise ValueError(f"{bundle_path}: none of the variants {variants} in the bundle")
    plain, mirror = _embed(bundle, names, aligned, max(threads))
    embs = {v: tta_pair(plain[v], mirror[v], tta) for v in names}
    log("6-person protocol ...", quiet=quiet)
    # main rows: every variant as the bundle asks (its tta mode, its FAR); then the other stored
    # threshold options on the last variant (int8), same draws
    options, option_thresholds = _threshold_options(bundle, names[-1], plain, mirror, tta, far0)
    table = six_person_protocol({**embs, **options}, {**dict.fromkeys(embs, threshold), **option_thresholds},
                                aligned, unaligned, labels, repeats=repeats, p0=p0, seed=seed)
    option_rows = {f"embedding {k}": table.pop(f"embedding {k}") for k in options}
    opens = _open_sets(bundle, names, plain, mirror, labels, repeats, seed)
    classic = {f"{k} {a}": classic_open_set(k, imgs, labels, seed=seed)
               for k in CLASSIC for a, imgs in (("aligned", aligned), ("unaligned", unaligned))}
    # timing on a composed 640x480 frame, every variant x thread count in this one run
    frame = compose_frame(orl.images[0], seed)
    ids = np.unique(labels).tolist()
    enroll, _, _ = splits(labels, ids, 5, np.random.default_rng(seed))
    timing = []
    for v in names:
        temps = templates(embs[v][0], labels, ids, enroll)
        for th in threads:
            timing.append(time_per_face(bundle, v, detector_model, frame, th, [str(i) for i in ids], temps,
                                        threshold, iterations=iterations, flip=tta == "flip"))
            log(f"time per face {v} threads={th}: {timing[-1]['total_ms_p50']:.1f} ms", quiet=quiet)
    speedup, embed_ms = _embed_costs(bundle, names, aligned[0], threads, iterations, quiet)
    _add_total_times(table, timing, max(threads), names[0])
    log("summary table: every method, open set and 6-person protocol ...", quiet=quiet)
    methods, extra = summary_methods(bundle, names, plain, mirror, aligned, unaligned, tta, far0, threshold)
    summary = summary_table(methods, extra, labels, repeats, seed, timing,
                            {k: v["ms_p50"] for k, v in classic.items()})
    rule = bundle_score_rule(bundle)
    _rows_follow_rule(table, summary, names, rule)
    result = {
        "host": host_info(), "threads": threads, "bundle": str(bundle_path), "bundle_name": bundle.name,
        "unknown_threshold": threshold, "far_target": far0, "tta": tta, "detector": str(detector_model.name),
        "score_rule": rule,
        "protocol": {"repeats": repeats, "people": 6, "enroll_per_person": 5, "p0": p0,
                     "strangers": "all images of the other 34 ORL people", "seed": seed},
        "alignment": {k: how.count(k) for k in sorted(set(how))},
        "summary": summary,
        "table": table,
        "threshold_options": option_rows,
        "open_set": {v: {k: x for k, x in o.items() if not k.startswith("_")} for v, o in opens.items()},
        "open_set_classic": classic,
        "time_per_face": timing,
        "int8_speedup_embed": speedup,
        "embed_ms_p50_interleaved": embed_ms,
        "frame": "640x480 composed: ORL s1/1.pgm scaled 2x on a blurred-noise background",
        "reference": {"cnn_pi_with_rejection": 0.9959, "cnn_pi_without": 0.9748, "p0": 0.85,
                      "enrollment_rate": "250/278", "classification_ms": 105, "total_ms": 529,
                      "fisherfaces_unaligned": 0.885, "fisherfaces_aligned": 0.9687},
    }
    from edgewise.train import report

    report.plot_roc({f"embedding {v}": o["_roc"] for v, o in opens.items() if o["tta"] in ("none", tta)},
                    out / "face_roc.png",
                    "ORL open set, 40 unseen identities (5 enrolled, 5 probes)")
    (out / "face_bench.json").write_text(dumps(result, indent=2))
    (out / "face_bench.md").write_text(markdown(result))
    (out / "face_summary.md").write_text(summary_text(result))
    return result


def summary_text(r: dict[str, Any]) -> str:
    """The one table with the line that says what it was measured on."""
    h = r["host"]
    far = r.get("far_target")
    point = f"FAR {100 * far:g} %" if far is not None else "the bundle's threshold"
    return (f"Face methods on ORL (40 identities never trained on), bundle {r['bundle_name']}; host "
            f"{h['machine']} {h['cpu']} ({h['cores']} cores), threads {r['threads']}; operating points "
            f"from the bundle ({point}, calibrated on held-out training identities, never on ORL)\n\n"
            + summary_markdown(r["summary"], r["threads"], r["protocol"]["repeats"]))


def bench_main(argv: list[str]) -> int:
    from edgewise.edge.cliargs import Parser, add_json, add_quiet, emit_json, fail
    from edgewise.train.data import data_root

    p = Parser(
        prog="edgewise bench face",
        description="Reproduce the classic Pi face table on ORL (unseen identities) and measure open-set "
        "figures and total time per face.",
        epilog="example:\n  edgewise bench face --data $EDGEWISE_DATA --bundle face.bundle --out bench_face",
    )
    p.add_argument("--data", help="datasets folder with faces/orl (default $EDGEWISE_DATA)")
    p.add_argument("--bundle", required=True, help="face embedding bundle directory or .zip")
    p.add_argument("--out", default="bench_face", help="output folder (JSON, Markdown, ROC)")
    p.add_argument("--detector-model",
                   help="YuNet .onnx (default DATA/models/face_detection/yunet_n_320_320.onnx)")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts for the timing")
    p.add_argument("--repeats", type=int, default=10, help="random draws of the 6-person protocol")
    p.add_argument("--p0", type=float, default=0.85,
                   help="probability threshold of the closed-set classifier")
    p.add_argument("--iterations", type=int, default=50, help="timed faces per thread count")
    p.add_argument("--quick", action="store_true", help="3 draws, 15 timing iterations")
    p.add_argument("--md", metavar="PATH", help="also write the summary table as Markdown to PATH")
    p.add_argument("--seed", type=int, default=0, help="random seed of the protocol draws")
    add_json(p)
    add_quiet(p)
    a = p.parse_args(argv)
    if min(a.threads) < 1:
        p.error("--threads must be at least 1")
    if not Path(a.bundle).exists():
        return fail("edgewise bench face", f"{a.bundle}: no such bundle")
    try:
        data = data_root(a.data)
        if data is None:
            raise ValueError("no data: pass --data DIR or set EDGEWISE_DATA (needs faces/orl)")
        det = detector_model_path("yunet", a.detector_model, data)
        if det is None or not det.is_file():
            raise ValueError(f"{det}: YuNet model file not found (--detector-model)")
        r = bench_face(data, Path(a.bundle), Path(a.out), detector_model=det,
                       threads=a.threads, repeats=3 if a.quick else a.repeats,
                       p0=a.p0, iterations=15 if a.quick else a.iterations, seed=a.seed)
    except ValueError as e:
        return fail("edgewise bench face", e)
    if a.md:
        Path(a.md).write_text(summary_text(r))
    if not emit_json(r, a.json):
        print(summary_text(r))
        full = Path(a.out, "face_bench.md")
        print(f"full report (reference table, open set per tta mode, timings): {full}", file=sys.stderr)
    return 0
