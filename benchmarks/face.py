"""``edgewise bench face``: the classic Raspberry Pi face table on ORL, plus open-set figures.

ORL identities are never seen by the embedding network (it trains on faces/extra), so this is
recognition of new people from a few photos.

* Reference protocol (repeated over random draws, counts pooled): 6 ORL people enrolled from 5
  images each, their other 5 images are probes, every image of the other 34 people is a
  stranger. Rows: our embedding (float32, int8) with the bundle's unknown threshold; a
  closed-set CNN classifier (softmax on the embedding backbone, trained on the 6 people) with
  probability threshold p0; Fisherfaces, Eigenfaces and LBPH (``cv2.face``) with and without
  alignment. Accuracy without rejection = closed-set top-1 on the probes; with rejection =
  correct / all accepted faces (an accepted stranger is an error); enrollment rate = accepted
  probes / probes.
* Open set, all 40 people (5 enrolled, 5 probes): rank-1, TAR at FAR = 1 %, ROC.
* Total time per face (detect + align + embed + match) on a 640x480 frame composed from an
  ORL face (ORL images are 92x112 crops, so a camera-sized frame has to be composed), p50 at 1
  and 2 threads.

>>> # edgewise bench face --data $EDGEWISE_DATA --bundle face.bundle --out bench_face
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from edgewise.edge.apps.face.align import face_crop, face_crops
from edgewise.edge.apps.face.detect import YuNetDetector, detector_model_path, largest
from edgewise.edge.apps.face.embed import TTA_MODES, FaceEmbedder, bundle_tta, l2n, tta_pair
from edgewise.edge.apps.face.match import match, unknown_threshold
from edgewise.edge.bundle import load_bundle
from edgewise.edge.evaluate import percentiles, roc_curve
from edgewise.edge.jsonenc import dumps
from edgewise.edge.progress import log

from .host import host_info

__all__ = ["six_person_protocol", "open_set", "compose_frame", "time_per_face", "bench_face", "bench_main"]

CLASSIC = ("fisherfaces", "eigenfaces", "lbph")


def _orl(data: Path) -> Any:
    from edgewise.train.data.faces import load_orl

    for c in (data / "faces" / "orl", data / "orl", data):
        if (c / "s1").is_dir():
            return load_orl(c)
    raise ValueError(f"{data}: no ORL folders (faces/orl/s1 ... s40)")


def _classic(kind: str) -> Any:
    import cv2

    if not hasattr(cv2, "face"):
        raise RuntimeError("cv2.face missing: install opencv-contrib-python-headless")
    makers = {"fisherfaces": cv2.face.FisherFaceRecognizer_create,
              "eigenfaces": cv2.face.EigenFaceRecognizer_create,
              "lbph": cv2.face.LBPHFaceRecognizer_create}
    return makers[kind]()


def _splits(labels: np.ndarray, people: list[int], n_enroll: int, rng: np.random.Generator
            ) -> tuple[list[int], list[int], list[int]]:
    """Enroll / probe indices of ``people``, and every other image as a stranger."""
    enroll, probe = [], []
    for p in people:
        idx = rng.permutation(np.flatnonzero(labels == p))
        enroll += idx[:n_enroll].tolist()
        probe += idx[n_enroll:].tolist()
    strangers = np.flatnonzero(~np.isin(labels, people)).tolist()
    return enroll, probe, strangers


class _Tally:
    """Pooled counts for one table row."""

    def __init__(self) -> None:
        self.probes = self.correct = self.accepted_probes = self.accepted_correct = 0
        self.strangers = self.accepted_strangers = 0
        self.has_rejection = False
        self.times: list[float] = []

    def add(self, pred: np.ndarray, truth: np.ndarray, accept: np.ndarray | None,
            s_accept: np.ndarray | None) -> None:
        ok = pred == truth
        self.probes += len(truth)
        self.correct += int(ok.sum())
        if accept is not None and s_accept is not None:
            self.has_rejection = True
            self.accepted_probes += int(accept.sum())
            self.accepted_correct += int((ok & accept).sum())
            self.strangers += len(s_accept)
            self.accepted_strangers += int(s_accept.sum())

    def row(self) -> dict[str, Any]:
        r: dict[str, Any] = {"probes": self.probes,
                             "accuracy_no_rejection": self.correct / max(self.probes, 1)}
        if self.has_rejection:
            acc = self.accepted_probes + self.accepted_strangers
            r.update(
                accuracy_with_rejection=self.accepted_correct / max(acc, 1),
                # the reference's own reading: no strangers, correct / accepted enrolled probes
                accuracy_with_rejection_probes_only=self.accepted_correct / max(self.accepted_probes, 1),
                enrollment_rate=self.accepted_probes / max(self.probes, 1),
                accepted=f"{self.accepted_probes}/{self.probes}",
                strangers=self.strangers,
                strangers_accepted=self.accepted_strangers,
                false_accept_rate=self.accepted_strangers / max(self.strangers, 1),
            )
        if self.times:
            r["classification_ms_p50"] = percentiles(self.times)["p50_ms"]
        return r


def _templates(emb: np.ndarray, labels: np.ndarray, people: list[int], idx: list[int]) -> np.ndarray:
    idx_a = np.array(idx)
    return l2n(np.stack([emb[idx_a[labels[idx_a] == p]].mean(0) for p in people]))


def six_person_protocol(embs: dict[str, Any], thresholds: dict[str, float], aligned: np.ndarray,
                        unaligned: np.ndarray, labels: np.ndarray, *, repeats: int = 10, n_people: int = 6,
                        n_enroll: int = 5, p0: float = 0.85, seed: int = 0) -> dict[str, dict[str, Any]]:
    """The reference table's protocol, ``repeats`` random draws of the 6 people, counts pooled.

    ``embs[name]`` is one (n, d) array, or an (enrollment, probe) pair of arrays over the same
    images when enrollment and probes are embedded differently (``tta_pair``). The closed-set
    classifier is trained on the first entry's enrollment embeddings.
    """
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(seed)
    ids = np.unique(labels)
    tallies: dict[str, _Tally] = {}

    def t(name: str) -> _Tally:
        return tallies.setdefault(name, _Tally())

    for _ in range(repeats):
        people = sorted(rng.choice(ids, size=n_people, replace=False).tolist())
        enroll, probe, strangers = _splits(labels, people, n_enroll, rng)
        truth = np.array([people.index(labels[i]) for i in probe])
        for name, e in embs.items():
            en_e, pr_e = e if isinstance(e, tuple) else (e, e)
            temps = _templates(en_e, labels, people, enroll)
            ps = pr_e[probe] @ temps.T
            ss = pr_e[strangers] @ temps.T
            t(f"embedding {name}").add(ps.argmax(1), truth, ps.max(1) >= thresholds[name],
                                       ss.max(1) >= thresholds[name])
        base = embs[next(iter(embs))]  # closed-set classifier on the first (float32) embedding
        en_e, pr_e = base if isinstance(base, tuple) else (base, base)
        y_en = [people.index(labels[i]) for i in enroll]
        clf = LogisticRegression(C=10.0, max_iter=2000).fit(en_e[enroll], y_en)
        pp, sp = clf.predict_proba(pr_e[probe]), clf.predict_proba(pr_e[strangers])
        t(f"closed-set CNN classifier, p0={p0}").add(pp.argmax(1), truth, pp.max(1) >= p0, sp.max(1) >= p0)
        for kind in CLASSIC:
            for al, imgs in (("aligned", aligned), ("unaligned", unaligned)):
                rec = _classic(kind)
                rec.train([imgs[i] for i in enroll], np.array(y_en, np.int32))
                pred = []
                for i in probe:
                    tm = time.perf_counter()
                    pred.append(rec.predict(imgs[i])[0])
                    t(f"{kind} {al}").times.append(time.perf_counter() - tm)
                t(f"{kind} {al}").add(np.array(pred), truth, None, None)
    return {k: v.row() for k, v in tallies.items()}


def open_set(emb: np.ndarray, labels: np.ndarray, n_enroll: int = 5, far: float = 0.01, seed: int = 0,
             threshold: float | None = None, probe_emb: np.ndarray | None = None) -> dict[str, Any]:
    """All identities enrolled from ``n_enroll`` images: rank-1, TAR at ``far``, ROC points.

    ``probe_emb`` embeds the probes differently from the enrollment images (same rows as ``emb``).
    """
    rng = np.random.default_rng(seed)
    ids = np.unique(labels).tolist()
    enroll, probe, _ = _splits(labels, ids, n_enroll, rng)
    temps = _templates(emb, labels, ids, enroll)
    sims = (emb if probe_emb is None else probe_emb)[probe] @ temps.T
    truth = np.array([ids.index(labels[i]) for i in probe])
    gen = np.zeros_like(sims, dtype=bool)
    gen[np.arange(len(truth)), truth] = True
    imp = np.sort(sims[~gen])
    thr = float(imp[int(np.ceil((1 - far) * len(imp))) - 1])
    fpr, tpr, _ = roc_curve(sims.ravel(), gen.ravel().astype(int))
    out = {
        "identities": len(ids), "probes": len(probe),
        "rank1": float((sims.argmax(1) == truth).mean()),
        f"tar_at_far_{far:g}": float((sims[gen] > thr).mean()),
        "threshold_at_far": thr,
        "_roc": (sims.ravel(), gen.ravel().astype(int)),
        "_fpr_tpr": (fpr, tpr),
    }
    if threshold is not None:
        out["at_bundle_threshold"] = {"threshold": threshold, "tar": float((sims[gen] >= threshold).mean()),
                                      "far": float((sims[~gen] >= threshold).mean())}
    return out


def classic_open_set(kind: str, imgs: np.ndarray, labels: np.ndarray, n_enroll: int = 5, seed: int = 0
                     ) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    ids = np.unique(labels).tolist()
    enroll, probe, _ = _splits(labels, ids, n_enroll, rng)
    rec = _classic(kind)
    rec.train([imgs[i] for i in enroll], labels[enroll].astype(np.int32))
    times, ok = [], 0
    for i in probe:
        t0 = time.perf_counter()
        ok += int(rec.predict(imgs[i])[0] == labels[i])
        times.append(time.perf_counter() - t0)
    return {"rank1": ok / len(probe), "ms_p50": percentiles(times)["p50_ms"]}


def compose_frame(face: np.ndarray, seed: int = 0) -> np.ndarray:
    """A 640x480 BGR frame: a textured grey background with the ORL face scaled 2x in it."""
    import cv2

    rng = np.random.default_rng(seed)
    bg = cv2.GaussianBlur(rng.integers(60, 200, (480, 640), dtype=np.uint8), (0, 0), 6)
    f = cv2.resize(face, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)
    y0, x0 = 120, 230
    bg[y0 : y0 + f.shape[0], x0 : x0 + f.shape[1]] = f
    return cv2.cvtColor(bg, cv2.COLOR_GRAY2BGR)


def time_per_face(bundle: Any, variant: str, detector_model: Path, frame: np.ndarray, threads: int,
                  names: list[str], temps: np.ndarray, threshold: float, iterations: int = 50,
                  warmup: int = 5, flip: bool = False) -> dict[str, Any]:
    """detect -> align -> embed -> match on one frame, ``iterations`` times; per-stage p50 (ms)."""
    import cv2

    cv2.setNumThreads(threads)
    det = YuNetDetector(detector_model)
    emb = FaceEmbedder(bundle, variant, threads)
    stages: dict[str, list[float]] = {"detect": [], "align": [], "embed": [], "match": [], "total": []}
    found = 0
    for i in range(warmup + iterations):
        t0 = time.perf_counter()
        d = largest(det.detect(frame))
        t1 = time.perf_counter()
        crop, _ = face_crop(frame, d, emb.size)
        t2 = time.perf_counter()
        e = emb.embed([crop], flip=flip)[0]
        t3 = time.perf_counter()
        match(e, names, temps, threshold)
        t4 = time.perf_counter()
        if i >= warmup:
            found += d is not None
            for k, v in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t4 - t0), strict=True):
                stages[k].append(v)
    emb.model.close()
    return {"threads": threads, "variant": variant, "flip": flip, "face_found": f"{found}/{iterations}",
            **{f"{k}_ms_p50": percentiles(v)["p50_ms"] for k, v in stages.items()}}


def embed_speed(bundle: Any, variants: list[str], crop: np.ndarray, threads: int, iterations: int = 300,
                warmup: int = 20, flip: bool = False) -> dict[str, float]:
    """p50 embedding time per variant, calls interleaved so that load from other processes on a
    shared machine hits every variant alike (the ratio is what this measures). With ``flip``
    each variant is also timed with mirror averaging (key ``<variant>+flip``)."""
    models = {v: FaceEmbedder(bundle, v, threads) for v in variants}
    keys = [(v, f) for v in variants for f in ((False, True) if flip else (False,))]
    times: dict[str, list[float]] = {v + ("+flip" if f else ""): [] for v, f in keys}
    for i in range(warmup + iterations):
        for v, f in keys:
            t0 = time.perf_counter()
            models[v].embed([crop], flip=f)
            if i >= warmup:
                times[v + ("+flip" if f else "")].append(time.perf_counter() - t0)
    for m in models.values():
        m.model.close()
    return {v: percentiles(t)["p50_ms"] for v, t in times.items()}


def _unaligned(images: list[np.ndarray]) -> np.ndarray:
    """The classic setting: the whole 92x112 ORL image, downsized to 46x56."""
    import cv2

    return np.stack([cv2.resize(im, (46, 56), interpolation=cv2.INTER_AREA) for im in images])


def bench_face(data: Path, bundle_path: Path, out: Path, *, detector_model: Path, threads: list[int],
               repeats: int = 10, p0: float = 0.85, variants: list[str] | None = None, iterations: int = 50,
               seed: int = 0, quiet: bool = False) -> dict[str, Any]:
    bundle = load_bundle(bundle_path)
    out.mkdir(parents=True, exist_ok=True)
    tta = bundle_tta(bundle)
    far0 = bundle.spec.thresholds.get("far_target")  # None (older bundles): no table row is "the bundle's"
    threshold = unknown_threshold(bundle)

    def thr(mode: str, far: float | None = None) -> float | None:
        try:
            return unknown_threshold(bundle, mode, far)
        except ValueError:  # older bundles: one threshold, for their own mode only
            return None

    orl = _orl(data)
    labels = orl.labels
    det = YuNetDetector(detector_model)
    size = bundle.spec.input.hwc[0]
    t0 = time.monotonic()
    aligned, how = face_crops(orl.images, det, size, pad=0.2)
    log(f"ORL: {len(orl)} faces aligned in {time.monotonic() - t0:.1f}s ({how.count('aligned')} with "
        "landmarks)", quiet=quiet)
    unaligned = _unaligned(orl.images)
    names = [v for v in (variants or ["tflite_float32", "tflite_int8"]) if v in bundle.spec.variants]
    if not names:
        raise ValueError(f"{bundle_path}: none of the variants {variants} in the bundle")
    plain, mirror = {}, {}
    for v in names:
        emb = FaceEmbedder(bundle, v, threads=max(threads))
        plain[v] = emb.embed(list(aligned))
        mirror[v] = emb.embed(list(np.ascontiguousarray(aligned[:, :, ::-1])))
        emb.model.close()
    embs = {v: tta_pair(plain[v], mirror[v], tta) for v in names}
    log("6-person protocol ...", quiet=quiet)
    # main rows: every variant as the bundle asks (its tta mode, its FAR); then the other stored
    # threshold options (tta modes x calibrated FARs) on the last variant (int8), same draws
    configs: dict[str, Any] = dict(embs)
    thresholds = dict.fromkeys(configs, threshold)
    options = []
    table_fars = sorted({float(k) for m in (bundle.spec.thresholds.get("unknown_by_tta") or {}).values()
                         for k in m}, reverse=True)
    for mode in TTA_MODES:
        for far in table_fars:
            t = thr(mode, far)
            if t is None or (mode == tta and far == far0):
                continue
            key = f"{names[-1]}, tta {mode}, FAR {100 * far:g} %"
            configs[key] = tta_pair(plain[names[-1]], mirror[names[-1]], mode)
            thresholds[key] = t
            options.append(key)
    table = six_person_protocol(configs, thresholds, aligned, unaligned, labels,
                                repeats=repeats, p0=p0, seed=seed)
    option_rows = {f"embedding {k}": table.pop(f"embedding {k}") for k in options}
    opens = {}
    for v in names:
        for mode in TTA_MODES:  # the split matters at 200 probes: also the mean over random splits
            en_e, pr_e = tta_pair(plain[v], mirror[v], mode)
            key = f"{v}, tta {mode}"
            opens[key] = open_set(en_e, labels, threshold=thr(mode), seed=seed, probe_emb=pr_e)
            opens[key]["tta"] = mode
            runs = [open_set(en_e, labels, seed=seed + k, probe_emb=pr_e) for k in range(repeats)]
            opens[key]["mean_over_splits"] = {
                "splits": repeats,
                "rank1": float(np.mean([o["rank1"] for o in runs])),
                "rank1_min": float(np.min([o["rank1"] for o in runs])),
                "rank1_max": float(np.max([o["rank1"] for o in runs])),
                "tar_at_far_0.01": float(np.mean([o["tar_at_far_0.01"] for o in runs])),
            }
    classic = {f"{k} {a}": classic_open_set(k, imgs, labels, seed=seed)
               for k in CLASSIC for a, imgs in (("aligned", aligned), ("unaligned", unaligned))}
    # timing on a composed 640x480 frame, every variant x thread count in this one run
    frame = compose_frame(orl.images[0], seed)
    ids = np.unique(labels).tolist()
    enroll, _, _ = _splits(labels, ids, 5, np.random.default_rng(seed))
    timing = []
    for v in names:
        temps = _templates(embs[v][0], labels, ids, enroll)
        for th in threads:
            timing.append(time_per_face(bundle, v, detector_model, frame, th, [str(i) for i in ids], temps,
                                        threshold, iterations=iterations, flip=tta == "flip"))
            log(f"time per face {v} threads={th}: {timing[-1]['total_ms_p50']:.1f} ms", quiet=quiet)
    speedup, embed_ms = {}, {}
    if {"tflite_float32", "tflite_int8"} <= set(names):
        for th in threads:
            embed_ms[str(th)] = embed_speed(bundle, ["tflite_float32", "tflite_int8"], aligned[0], th,
                                            iterations=max(100, 6 * iterations), flip=True)
            e = embed_ms[str(th)]
            speedup[str(th)] = round(e["tflite_float32"] / e["tflite_int8"], 2)
            log(f"embedding p50 at {th} thread(s): {embed_ms[str(th)]}", quiet=quiet)
    for name, row in table.items():  # total time per face: measured detect+align + this method
        tm = [r for r in timing if r["threads"] == max(threads)]
        da = np.median([r["detect_ms_p50"] + r["align_ms_p50"] for r in tm])
        if name.startswith("embedding"):
            r = next(r for r in tm if name == f"embedding {r['variant']}")
            row["classification_ms_p50"] = r["embed_ms_p50"] + r["match_ms_p50"]
            row["total_ms_p50"] = r["total_ms_p50"]
        elif name.startswith("closed-set"):
            r = next(r for r in tm if r["variant"] == names[0])
            row["classification_ms_p50"] = r["embed_ms_p50"]
            row["total_ms_p50"] = r["total_ms_p50"]
        else:
            row["total_ms_p50"] = float(da + row.get("classification_ms_p50", 0.0))
    result = {
        "host": host_info(), "threads": threads, "bundle": str(bundle_path), "bundle_name": bundle.name,
        "unknown_threshold": threshold, "far_target": far0, "tta": tta, "detector": str(detector_model.name),
        "protocol": {"repeats": repeats, "people": 6, "enroll_per_person": 5, "p0": p0,
                     "strangers": "all images of the other 34 ORL people", "seed": seed},
        "alignment": {k: how.count(k) for k in sorted(set(how))},
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
    return result


def _six_row(name: str, row: dict[str, Any], times: bool) -> str:
    acc_r = row.get("accuracy_with_rejection")
    enr = f"{_pct(row['enrollment_rate'])} ({row['accepted']})" if acc_r is not None else "—"
    far = (f"{_pct(row['false_accept_rate'])} ({row['strangers_accepted']}/{row['strangers']})"
           if acc_r is not None else "—")
    cells = [name, _pct(row["accuracy_no_rejection"]), _pct(row.get("accuracy_with_rejection_probes_only")),
             _pct(acc_r), enr, far]
    if times:
        cells += [_ms(row.get("classification_ms_p50")), _ms(row.get("total_ms_p50"))]
    return "| " + " | ".join(cells) + " |"


def _pct(v: Any) -> str:
    return "—" if v is None else f"{100 * v:.2f} %"


def _ms(v: Any) -> str:
    return "—" if v is None else f"{v:.1f} ms"


def markdown(r: dict[str, Any]) -> str:
    h = r["host"]
    far = r.get("far_target")
    far_txt = f"FAR {100 * far:g} %" if far is not None else "a FAR the bundle does not record"
    lines = [
        f"# Face recognition benchmark ({r['bundle_name']})",
        "",
        f"Host: {h['machine']} {h['cpu']} ({h['cores']} cores), threads {r['threads']}; "
        f"unknown threshold {r['unknown_threshold']:.4f} (from the bundle: calibrated on held-out training "
        f"identities for {far_txt}, never on ORL); test-time augmentation "
        f"{r.get('tta', 'none')}; detector {r['detector']}.",
        "",
        f"## Reference protocol on ORL: 6 people x 5 enrollment images, 5 probes each, 34 strangers "
        f"x 10 images; {r['protocol']['repeats']} random draws pooled",
        "",
        "| Method | Accuracy w/o rejection | Accuracy with rejection, enrolled probes only (reference "
        "definition) | Accuracy with rejection, strangers included | Enrollment rate | Stranger false-accept "
        "rate | Classification time | Total time per face |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, row in r["table"].items():
        lines.append(_six_row(name, row, times=True))
    ref = r["reference"]
    lines += [
        f"| *reference: CNN on a Pi, p0={ref['p0']}* | {_pct(ref['cnn_pi_without'])} | "
        f"{_pct(ref['cnn_pi_with_rejection'])} | — (no strangers) | {ref['enrollment_rate']} | — | "
        f"{ref['classification_ms']} ms | {ref['total_ms']} ms |",
        f"| *reference: Fisherfaces unaligned / aligned* | {_pct(ref['fisherfaces_unaligned'])} / "
        f"{_pct(ref['fisherfaces_aligned'])} | — | — | — | — | — | 1006 ms |",
        "",
        "Accuracy with rejection, enrolled probes only = correct / accepted probes of the enrolled people "
        "(the reference's reading: its test had no strangers). Strangers included = correct / all accepted "
        "faces, where an accepted stranger counts as an error. Enrollment rate = accepted probes / probes. "
        "Stranger false-accept rate = stranger images accepted as someone / stranger images. "
        "Classic rows have no rejection rule. Total time per face for classic rows = measured detect + "
        "align on the 640x480 frame + their prediction time.",
        "",
        "### Other stored thresholds (same draws; tta = mirror averaging: flip = enrollment and probe, "
        "enroll = enrollment only)",
        "",
        "| Method | Accuracy w/o rejection | Accuracy with rejection, enrolled probes only | Accuracy with "
        "rejection, strangers included | Enrollment rate | Stranger false-accept rate |",
        "|---|---|---|---|---|---|",
        *[_six_row(k, row, times=False) for k, row in r.get("threshold_options", {}).items()],
        "",
        "## Open set: all 40 ORL people (unseen in training), 5 enrolled, 5 probes each",
        "",
        "| Method | rank-1 (split 0) | TAR at FAR 1 % | at bundle threshold (TAR / FAR) "
        "| rank-1 mean [min, max] over splits | TAR at FAR 1 % mean |",
        "|---|---|---|---|---|---|",
    ]
    for v, o in r["open_set"].items():
        b = o.get("at_bundle_threshold", {})
        m = o.get("mean_over_splits", {})
        lines.append(f"| embedding {v} | {_pct(o['rank1'])} | {_pct(o['tar_at_far_0.01'])} | "
                     f"{_pct(b.get('tar'))} / {_pct(b.get('far'))} | {_pct(m.get('rank1'))} "
                     f"[{_pct(m.get('rank1_min'))}, {_pct(m.get('rank1_max'))}] ({m.get('splits')} splits) | "
                     f"{_pct(m.get('tar_at_far_0.01'))} |")
    for k, o in r["open_set_classic"].items():
        lines.append(f"| {k} | {_pct(o['rank1'])} | — | — | — | — |")
    lines += [
        "",
        f"## Total time per face ({r['frame']})",
        "",
        "| variant | threads | detect | align | embed | match | total p50 | face found |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for t in r["time_per_face"]:
        flip = " + flip" if t.get("flip") else ""
        lines.append(f"| {t['variant']}{flip} | {t['threads']} | {_ms(t['detect_ms_p50'])} | "
                     f"{_ms(t['align_ms_p50'])} | {_ms(t['embed_ms_p50'])} | {_ms(t['match_ms_p50'])} | "
                     f"{_ms(t['total_ms_p50'])} | {t['face_found']} |")
    if r["embed_ms_p50_interleaved"]:
        cost = "; ".join(f"{k} thread(s): " + ", ".join(f"{v} {ms:.2f} ms" for v, ms in e.items())
                         for k, e in r["embed_ms_p50_interleaved"].items())
        lines += ["", f"Embedding cost per face with and without mirror averaging (p50, interleaved): {cost}"]
    if r["int8_speedup_embed"]:
        lines += ["", "int8 vs float32 embedding (calls interleaved in one run, p50): " + "; ".join(
            f"{k} thread(s): float32 {e['tflite_float32']:.2f} ms, int8 {e['tflite_int8']:.2f} ms, "
            f"{r['int8_speedup_embed'][k]}x" for k, e in r["embed_ms_p50_interleaved"].items())]
    return "\n".join(lines) + "\n"


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
    if not emit_json(r, a.json):
        print(markdown(r))
    return 0
