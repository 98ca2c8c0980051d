"""Train the face embedding network: MobileFaceNet-like CNN, CosFace margin loss, int8 bundle.

Identities come from the ``.mat`` face sets in ``faces/extra`` (UMIST, IMM, GT, AR) plus any
``person/*.jpg`` tree; ORL is never used here, it is the benchmark's unseen-identity set. Every
image goes through the edge's own detector + alignment (``edge.apps.face.face_crops``), so the
network learns on exactly the crops the device will give it. Some identities are held out of
training entirely: the unknown-person threshold is calibrated on them (probe vs. enrolled
templates of *other* people) for a target false-accept rate and stored in the bundle.

>>> # edgewise train face --data $EDGEWISE_DATA --out face.bundle --epochs 90
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgewise.edge.apps.face import TTA_MODES, YuNetDetector, face_crops, l2n, tta_pair
from edgewise.edge.progress import Bar, log

from .data.faces import FaceSet, load_orl, load_training_faces

__all__ = [
    "FaceData",
    "faces_root",
    "prepare",
    "build_embedding_net",
    "augment",
    "train_embedding",
    "template_scores",
    "calibrate_modes",
    "calibrate_threshold",
    "open_set_rank1",
    "train_face",
    "recalibrate",
    "train_main",
    "demo",
]

SIZE = 64
# Batch-norm statistics must settle within a short training: with Keras' 0.99 the inference-time
# statistics of a few hundred steps are still near their initial values and every embedding
# collapses onto one direction.
BN_MOMENTUM = 0.9
NORMALIZATION = {"scale": 1 / 127.5, "offset": -1.0}


def faces_root(data: str | Path) -> Path:
    """``DATA/faces`` if it exists (the EDGEWISE_DATA layout), else ``DATA`` itself."""
    d = Path(data)
    if (d / "faces" / "extra").is_dir():
        return d / "faces"
    if (d / "extra").is_dir():
        return d
    raise ValueError(f"{d}: no faces/extra folder with the .mat face sets")


def default_yunet(data: str | Path | None) -> Path | None:
    """YuNet under the datasets folder (the same lookup as ``run face``), or None when absent."""
    from edgewise.edge.apps.face import detector_model_path

    if data is None:
        return None
    try:
        return detector_model_path("yunet", data=data)
    except ValueError:
        return None


@dataclass
class FaceData:
    """Aligned grey crops (n, S, S) uint8, labels, identity names, and how each crop was made."""

    x: np.ndarray
    y: np.ndarray
    names: list[str]
    how: list[str]


def prepare(s: FaceSet, detector: Any, size: int = SIZE, quiet: bool = True) -> FaceData:
    """Detect + align every image of a face set with the edge code (one crop per image)."""
    t0 = time.monotonic()
    crops, how = face_crops(s.images, detector, size)
    counts = {k: how.count(k) for k in sorted(set(how))}
    log(f"aligned {len(s)} faces in {time.monotonic() - t0:.1f}s: {counts}", quiet=quiet)
    return FaceData(crops, s.labels.copy(), list(s.names), how)


def to_input(x: np.ndarray) -> np.ndarray:
    return (x.astype(np.float32) * np.float32(NORMALIZATION["scale"]) + np.float32(NORMALIZATION["offset"]))[
        ..., None
    ]


def build_embedding_net(keras: Any, size: int = SIZE, dim: int = 128, width: float = 1.0) -> Any:
    """A compact MobileFaceNet-like network: inverted residuals, global depthwise conv, BN embedding.

    Grey ``size`` x ``size`` input (size a multiple of 16); output L2-normalized ``dim``-vector.
    """
    L = keras.layers

    def c(n: int) -> int:
        return max(8, int(round(n * width / 8)) * 8)

    def conv(h: Any, n: int, k: int, s: int, act: bool = True) -> Any:
        h = L.Conv2D(n, k, s, padding="same", use_bias=False)(h)
        h = L.BatchNormalization(momentum=BN_MOMENTUM)(h)
        return L.ReLU(6.0)(h) if act else h

    def block(h: Any, n: int, s: int, t: int = 2) -> Any:
        inp = h
        h = conv(h, int(h.shape[-1]) * t, 1, 1)
        h = L.DepthwiseConv2D(3, s, padding="same", use_bias=False)(h)
        h = L.ReLU(6.0)(L.BatchNormalization(momentum=BN_MOMENTUM)(h))
        h = conv(h, n, 1, 1, act=False)
        return L.Add()([inp, h]) if s == 1 and int(inp.shape[-1]) == n else h

    inp = keras.Input((size, size, 1), name="face")
    h = conv(inp, c(24), 3, 2)  # size/2; one cheap depthwise step to size/4 before the blocks
    h = L.DepthwiseConv2D(3, 2, padding="same", use_bias=False)(h)
    h = L.ReLU(6.0)(L.BatchNormalization(momentum=BN_MOMENTUM)(h))
    h = conv(h, c(48), 1, 1)
    for n, s, reps in ((64, 1, 2), (96, 2, 3), (128, 2, 2)):
        for r in range(reps):
            h = block(h, c(n), s if r == 0 else 1)
    h = conv(h, c(256), 1, 1)
    h = L.DepthwiseConv2D(int(h.shape[1]), 1, padding="valid", use_bias=False, name="gdconv")(h)
    h = L.BatchNormalization(momentum=BN_MOMENTUM)(h)
    h = L.Conv2D(dim, 1, use_bias=False)(h)
    # no learned shared offset: it would add the same direction to every embedding
    h = L.BatchNormalization(momentum=BN_MOMENTUM, center=False, name="embedding_bn")(L.Flatten()(h))
    out = L.UnitNormalization(name="embedding")(h)
    return keras.Model(inp, out, name="face_embed")


def cosface_head(keras: Any, n_classes: int, dim: int, s: float = 30.0, m: float = 0.35) -> Any:
    """CosFace: logits = s * (cos(theta) - m for the true class), weights L2-normalized."""
    ops = keras.ops

    class CosFace(keras.layers.Layer):
        def build(self, shapes: Any) -> None:
            self.w = self.add_weight(shape=(dim, n_classes), initializer="glorot_uniform", name="centers")

        def call(self, inputs: Any) -> Any:
            emb, y = inputs
            w = self.w / ops.sqrt(ops.sum(self.w * self.w, axis=0, keepdims=True) + 1e-12)
            cos = ops.matmul(emb, w)
            onehot = ops.one_hot(ops.cast(ops.reshape(y, (-1,)), "int32"), n_classes)
            return s * (cos - m * onehot)

    return CosFace(name="cosface")


def augment(x: np.ndarray, rng: np.random.Generator, strength: str = "strong") -> np.ndarray:
    """Random pose jitter, flip, blur / low resolution, brightness, contrast and gamma (uint8 in/out).

    The low-resolution and blur steps make the network tolerate small, soft faces (GT is 40x30),
    the photometric steps make any grey rendering of a colour camera acceptable. ``strong``
    (the default) widens the geometric jitter (rotation +-15 deg, scale 0.85-1.15, shift 8 %:
    aligned crops of turned or tilted heads vary that much) and blanks a random patch in a
    quarter of the images (glasses, hands, hair); ``"basic"`` is the earlier, milder recipe.
    """
    import cv2

    if strength not in ("basic", "strong"):
        raise ValueError(f"augmentation strength must be 'basic' or 'strong'; got {strength!r}")
    strong = strength == "strong"
    rot, scl, sh = (15.0, 0.15, 0.08) if strong else (10.0, 0.1, 0.05)
    n, S = len(x), x.shape[1]
    out = np.empty_like(x)
    for i in range(n):
        a = rng.uniform(-rot, rot)
        sc = rng.uniform(1 - scl, 1 + scl)
        m = cv2.getRotationMatrix2D((S / 2, S / 2), a, sc)
        m[:, 2] += rng.uniform(-sh, sh, 2) * S
        im = cv2.warpAffine(x[i], m, (S, S), borderMode=cv2.BORDER_REPLICATE)
        if rng.random() < 0.5:
            im = im[:, ::-1]
        r = rng.random()
        if r < 0.2:
            k = int(rng.integers(S // 4, S // 2 + 1))
            im = cv2.resize(cv2.resize(im, (k, k), interpolation=cv2.INTER_AREA), (S, S))
        elif r < 0.3:
            im = cv2.GaussianBlur(im, (3, 3), rng.uniform(0.5, 1.2))
        f = im.astype(np.float32) / 255.0
        f = np.clip(f ** rng.uniform(0.7, 1.4), 0, 1)
        f = (f - f.mean()) * rng.uniform(0.7, 1.3) + f.mean() + rng.uniform(-0.12, 0.12)
        if strong and rng.random() < 0.25:
            h, w = (int(v) for v in rng.integers(S // 8, S // 3 + 1, 2))
            y0, x0 = int(rng.integers(0, S - h + 1)), int(rng.integers(0, S - w + 1))
            f[y0 : y0 + h, x0 : x0 + w] = rng.uniform(0, 1)
        out[i] = np.clip(f * 255.0, 0, 255).astype(np.uint8)
    return out


def template_scores(emb: np.ndarray, y: np.ndarray, n_enroll: int = 5, seed: int = 0,
                    probe_emb: np.ndarray | None = None
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Enroll ``n_enroll`` images per identity as a mean template; probe with the rest.

    ``probe_emb`` (same rows as ``emb``) embeds the probes differently from the enrollment
    images (flip averaging at enrollment only). Returns (similarities (probes, ids), probe
    labels (index into ids), ids, genuine mask). Identities with fewer than ``n_enroll + 1``
    images are skipped.
    """
    rng = np.random.default_rng(seed)
    ids = [k for k in np.unique(y) if (y == k).sum() > n_enroll]
    temps, probes, plab = [], [], []
    for j, k in enumerate(ids):
        idx = rng.permutation(np.flatnonzero(y == k))
        temps.append(l2n(emb[idx[:n_enroll]].mean(0)))
        probes.append((emb if probe_emb is None else probe_emb)[idx[n_enroll:]])
        plab += [j] * (len(idx) - n_enroll)
    t = np.stack(temps)
    p = np.concatenate(probes)
    sims = p @ t.T
    plab_a = np.array(plab)
    genuine = np.zeros_like(sims, dtype=bool)
    genuine[np.arange(len(plab_a)), plab_a] = True
    return sims, plab_a, np.array(ids), genuine


def calibrate_threshold(sims: np.ndarray, genuine: np.ndarray, far: float,
                        comparable: np.ndarray | None = None) -> dict[str, float]:
    """Threshold so that at most ``far`` of impostor (probe, other template) pairs are accepted.

    ``comparable`` (same shape as ``sims``) keeps only impostor pairs from the same source set:
    a stranger in front of the camera shares its lighting and background with the enrolled
    people, and pairs across two different datasets would make the threshold far too lenient.
    """
    keep = ~genuine if comparable is None else (~genuine & comparable)
    imp = np.sort(sims[keep])
    gen = sims[genuine]
    k = int(math.floor(far * len(imp)))
    thr = float(imp[len(imp) - k - 1]) + 1e-6 if k < len(imp) else float(imp[0])
    thr = min(thr, 1.0)  # cosine similarity never exceeds 1: at 1.0 nobody but exact copies match
    return {
        "unknown": round(thr, 6),
        "far_target": far,
        "far_measured": float((imp >= thr).mean()),
        "tar_at_threshold": float((gen >= thr).mean()),
        "impostor_pairs": int(len(imp)),
        "genuine_pairs": int(len(gen)),
    }


def calibrate_modes(e: np.ndarray, e_mirror: np.ndarray, y: np.ndarray, names: list[str],
                    fars: tuple[float, ...], seed: int = 0, draws: int = 10) -> dict[str, dict[str, Any]]:
    """Unknown thresholds for every TTA mode and target FAR on held-out identities.

    ``draws`` random enrollment draws are pooled (each identity's template made from different
    photos), which multiplies the impostor pairs so that a FAR of 0.01 % still rests on a few
    pairs rather than none. Impostor pairs stay within one source set (see ``calibrate_threshold``).
    """
    source = np.array([n.split("/")[0] for n in names])
    out: dict[str, dict[str, Any]] = {}
    for mode in TTA_MODES:
        enr, prb = tta_pair(e, e_mirror, mode)
        parts = [template_scores(enr, y, 5, seed + d, probe_emb=prb) for d in range(draws)]
        sims = np.concatenate([p[0] for p in parts])
        genuine = np.concatenate([p[3] for p in parts])
        same = np.concatenate([source[p[2][p[1]]][:, None] == source[p[2]][None, :] for p in parts])
        out[mode] = {f"{far:g}": calibrate_threshold(sims, genuine, far, same) for far in fars}
        out[mode]["rank1"] = float(np.mean([(p[0].argmax(1) == p[1]).mean() for p in parts]))
    return out


def open_set_rank1(emb: np.ndarray, y: np.ndarray, n_enroll: int = 5, seed: int = 0) -> float:
    sims, plab, _, _ = template_scores(emb, y, n_enroll, seed)
    return float((sims.argmax(1) == plab).mean())


def _pair_auc(out: np.ndarray, x: np.ndarray, y: np.ndarray | None) -> float:
    """Verification AUROC of all pairs of the evaluation set (metric for the parity table)."""
    from edgewise.edge.metrics import auroc

    if y is None:
        return float("nan")
    e = l2n(out.reshape(len(out), -1))
    s = e @ e.T
    iu = np.triu_indices(len(e), 1)
    same = (y.ravel()[:, None] == y.ravel()[None, :])[iu]
    return auroc(s[iu], same.astype(int))


def train_embedding(train: FaceData, val: FaceData | None = None, *, epochs: int = 90, batch: int = 32,
                    dim: int = 128, width: float = 1.0, lr: float = 3e-3, margin: float = 0.35, seed: int = 0,
                    threads: int = 2, augmentation: str = "strong", quiet: bool = False
                    ) -> tuple[Any, dict[str, list[float]]]:
    """Fit the embedding network with CosFace on ``train``; per-epoch held-out rank-1 on ``val``."""
    from .keras_utils import tf_setup

    keras = tf_setup(seed, threads=threads)
    size = train.x.shape[1]
    n_classes = int(train.y.max()) + 1
    net = build_embedding_net(keras, size, dim, width)
    lab = keras.Input((1,), dtype="int32", name="label")
    logits = cosface_head(keras, n_classes, dim, m=margin)([net.output, lab])
    trainer = keras.Model([net.input, lab], logits)
    steps = int(math.ceil(len(train.x) / batch))
    sched = keras.optimizers.schedules.CosineDecay(lr, decay_steps=epochs * steps, alpha=0.02,
                                                   warmup_target=None)
    # No training accuracy: the CosFace logits subtract the margin (s * m = 10.5) from the true
    # class, so their argmax is almost never right while the embedding already separates people;
    # progress is the loss and rank-1 / pair AUROC on identities never trained on.
    trainer.compile(optimizer=keras.optimizers.Adam(sched),
                    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(seed)
    hist: dict[str, list[float]] = {"loss": [], "val_rank1": [], "val_auc": []}
    with Bar(epochs, "face epochs", quiet=quiet, verbose_lines=True) as bar:
        for _ in range(epochs):
            xa = to_input(augment(train.x, rng, augmentation))
            h = trainer.fit([xa, train.y.reshape(-1, 1)], train.y, batch_size=batch, epochs=1, shuffle=True,
                            verbose=0)
            hist["loss"].append(float(h.history["loss"][0]))
            figures = {"loss": hist["loss"][-1]}
            if val is not None:
                e = net.predict(to_input(val.x), verbose=0, batch_size=256)
                hist["val_rank1"].append(open_set_rank1(e, val.y))
                hist["val_auc"].append(float(_pair_auc(e, val.x, val.y)))
                figures.update(heldout_rank1=hist["val_rank1"][-1], heldout_auc=hist["val_auc"][-1])
            bar.update(1, **figures)
    return net, hist


def split_identities(d: FaceData, n_holdout: int, seed: int = 0) -> tuple[FaceData, FaceData]:
    """Hold out ``n_holdout`` whole identities (with >= 6 images), spread over the source sets."""
    rng = np.random.default_rng(seed)
    counts = np.bincount(d.y, minlength=len(d.names))
    eligible = [k for k in range(len(d.names)) if counts[k] >= 6]
    held = set(rng.choice(eligible, size=min(n_holdout, len(eligible)), replace=False).tolist())
    tr_ids = [k for k in range(len(d.names)) if k not in held]
    ho_ids = sorted(held)

    def take(ids: list[int]) -> FaceData:
        remap = {k: i for i, k in enumerate(ids)}
        m = np.isin(d.y, ids)
        return FaceData(d.x[m], np.array([remap[k] for k in d.y[m]]), [d.names[k] for k in ids],
                        [h for h, keep in zip(d.how, m, strict=True) if keep])

    return take(tr_ids), take(ho_ids)


def train_face(data: str | Path, out: str | Path, *, epochs: int = 90, far: float = 0.001,
               holdout: int = 30, seed: int = 0, threads: int = 2, detector_model: str | Path | None = None,
               people: list[str | Path] | None = None, variants: list[str] | None = None,
               width: float = 1.0, size: int = SIZE, sets: list[str] | None = None, margin: float = 0.35,
               lr: float = 3e-3, tta: str = "flip", augmentation: str = "strong",
               fars: tuple[float, ...] = (0.01, 0.001, 0.0001), quiet: bool = False) -> dict[str, Any]:
    """The whole workstation side: align -> train -> calibrate -> convert -> report. Returns metrics."""
    from edgewise.converters import ConversionSpec, build_bundle
    from edgewise.converters.package import add_report
    from edgewise.converters.parity import Decider

    from . import report

    root = faces_root(data)
    yunet = Path(detector_model) if detector_model else default_yunet(Path(data))
    if yunet is None:
        raise ValueError("YuNet model not found: pass --detector-model yunet_n_320_320.onnx")
    det = YuNetDetector(yunet)
    t_start = time.monotonic()
    full = prepare(load_training_faces(root, people, sets), det, size, quiet=quiet)
    tr, ho = split_identities(full, holdout, seed)
    log(f"training identities {len(tr.names)} ({len(tr.x)} images); held out {len(ho.names)} "
        f"({len(ho.x)} images) for the unknown threshold", quiet=quiet)
    if tta not in TTA_MODES:
        raise ValueError(f"unknown --tta {tta!r}; valid: {', '.join(TTA_MODES)}")
    fars = tuple(sorted({*fars, far}, reverse=True))
    net, hist = train_embedding(tr, ho, epochs=epochs, seed=seed, threads=threads, width=width, lr=lr,
                                margin=margin, augmentation=augmentation, quiet=quiet)
    e_ho = net.predict(to_input(ho.x), verbose=0, batch_size=256)
    e_ho_mirror = net.predict(to_input(ho.x[:, :, ::-1]), verbose=0, batch_size=256)
    modes = calibrate_modes(e_ho, e_ho_mirror, ho.y, ho.names, fars, seed)
    by_tta = {m: {k: v["unknown"] for k, v in c.items() if k != "rank1"} for m, c in modes.items()}
    enr, prb = tta_pair(e_ho, e_ho_mirror, tta)
    sims, plab, ids, genuine = template_scores(enr, ho.y, 5, seed, probe_emb=prb)
    source = np.array([n.split("/")[0] for n in ho.names])
    same_set = source[ids[plab]][:, None] == source[ids][None, :]
    thr = modes[tta][f"{far:g}"]
    sims_plot = np.where(genuine | same_set, sims, np.nan)
    metrics: dict[str, Any] = {
        "train_identities": len(tr.names), "train_images": int(len(tr.x)),
        "heldout_identities": len(ho.names), "heldout_images": int(len(ho.x)),
        "heldout_rank1": open_set_rank1(e_ho, ho.y, 5, seed),
        "heldout_rank1_tta": float((sims.argmax(1) == plab).mean()),
        "heldout_pair_auc": float(_pair_auc(e_ho, ho.x, ho.y)),
        "calibration": thr, "calibration_by_tta": modes, "tta": tta, "augmentation": augmentation,
        "epochs": epochs, "history": hist,
        "alignment": {k: full.how.count(k) for k in sorted(set(full.how))},
    }
    orl = root / "orl"
    if orl.is_dir():  # reported only, never used for any choice (it is the benchmark's test set)
        o = prepare(load_orl(orl), det, size, quiet=True)
        e_orl = net.predict(to_input(o.x), verbose=0)
        metrics["orl_keras_rank1_5enrolled"] = open_set_rank1(e_orl, o.y, 5, seed)
        e_orl_m = net.predict(to_input(o.x[:, :, ::-1]), verbose=0)
        enr_o, prb_o = tta_pair(e_orl, e_orl_m, tta)
        so, po, _, _ = template_scores(enr_o, o.y, 5, seed, probe_emb=prb_o)
        metrics["orl_keras_rank1_5enrolled_tta"] = float((so.argmax(1) == po).mean())
    log(f"held-out rank-1 {metrics['heldout_rank1']:.3f} (tta {tta}: {metrics['heldout_rank1_tta']:.3f}), "
        f"unknown threshold {thr['unknown']:.4f} "
        f"(FAR {thr['far_measured']:.4f}, TAR {thr['tar_at_threshold']:.3f})"
        + (f"; ORL rank-1 (keras) {metrics['orl_keras_rank1_5enrolled']:.3f}" if orl.is_dir() else ""),
        quiet=quiet)
    rng = np.random.default_rng(seed)
    calib = to_input(tr.x[rng.choice(len(tr.x), size=min(256, len(tr.x)), replace=False)])
    spec = ConversionSpec(
        name="face-embed",
        task="embedding",
        app="face",
        input={"layout": "NHWC", "color": "gray", "normalization": dict(NORMALIZATION)},
        output={"meaning": "L2-normalized face embedding; cosine similarity = dot product",
                "kind": "embedding"},
        thresholds={"unknown": thr["unknown"], "far_target": far, "tta": tta, "unknown_by_tta": by_tta},
        config={
            "crop": {"size": size, "landmarks": "arcface-112 scaled", "fallback": "box / centre crop"},
            "matching": "cosine similarity to each person's mean template",
            "loss": f"CosFace s=30 m={margin}",
            "tta": tta,
            "augmentation": augmentation,
            "train_sets": sorted({n.split("/")[0] for n in tr.names}),
            "heldout_identities": ho.names,
            "seed": seed,
        },
        metrics={k: v for k, v in metrics.items() if k != "history"},
        decider=Decider(kind="none", metric_fn=_pair_auc, metric_name="pair_auroc"),
    )
    res = build_bundle(net, out, spec, calib_x=calib, eval_x=to_input(ho.x), eval_y=ho.y,
                       variants=variants, threads=threads, quiet=quiet)
    metrics["parity"] = res.parity
    metrics["train_seconds"] = round(time.monotonic() - t_start, 1)
    with _tmpdir() as tmp:
        files = {}
        report.plot_learning_curves({k: v for k, v in hist.items() if v}, tmp / "curves.png",
                                    "face embedding")
        groups = {"genuine": sims[genuine], "impostor (same set)": sims[~genuine & same_set]}
        report.plot_score_histogram(groups,
                                    tmp / "similarity.png", threshold=thr["unknown"],
                                    title="held-out identities: probe vs template cosine similarity")
        m_ok = np.isfinite(sims_plot.ravel())
        roc = (sims.ravel()[m_ok], genuine.ravel()[m_ok].astype(int))
        report.plot_roc({"held-out, same-set impostors (keras)": roc}, tmp / "roc.png",
                        "held-out verification ROC")
        for f in ("curves.png", "similarity.png", "roc.png"):
            files[f"report/{f}"] = (tmp / f).read_bytes()
        files["report/metrics.json"] = json.dumps(_plain(metrics), indent=2).encode()
        add_report(res.path, files, {"train": _plain({k: v for k, v in metrics.items() if k != "parity"})})
    return metrics


def recalibrate(bundle: str | Path, data: str | Path, out: str | Path, *, far: float = 0.001,
                tta: str = "flip", fars: tuple[float, ...] = (0.01, 0.001, 0.0001),
                detector_model: str | Path | None = None,
                people: list[str | Path] | None = None, variant: str = "tflite_float32", threads: int = 1,
                seed: int = 0, quiet: bool = False) -> dict[str, Any]:
    """Re-derive a bundle's unknown thresholds (every TTA mode x FAR) without retraining.

    Uses exactly the identities the bundle lists as held out of its training
    (``config.heldout_identities``), embedded by the bundle's own ``variant`` through the edge
    code, so an older bundle gets the per-mode threshold table of current trainings. The copy
    at ``out`` is re-sealed; the model files are untouched.
    """
    import shutil

    from edgewise.edge.apps.face import FaceEmbedder
    from edgewise.edge.bundle import load_bundle, reopen

    src = load_bundle(bundle)
    held = list(src.config.get("heldout_identities") or [])
    if not held:
        raise ValueError(f"{bundle}: bundle.json lists no heldout_identities; cannot recalibrate")
    if tta not in TTA_MODES:
        raise ValueError(f"unknown --tta {tta!r}; valid: {', '.join(TTA_MODES)}")
    out = Path(out)
    if out.resolve() != Path(bundle).resolve():
        if out.exists():
            raise ValueError(f"{out}: already exists; choose a new --out for the recalibrated bundle")
        shutil.copytree(bundle, out)
    yunet = Path(detector_model) if detector_model else default_yunet(Path(data))
    if yunet is None:
        raise ValueError("YuNet model not found: pass --detector-model yunet_n_320_320.onnx")
    faces = load_training_faces(faces_root(data), people)
    keep = [k for k, n in enumerate(faces.names) if n in held]
    if len(keep) != len(held):
        raise ValueError(f"{len(held) - len(keep)} held-out identities of {bundle} are missing from {data}")
    sub = faces.subset(np.flatnonzero(np.isin(faces.labels, keep)))
    remap = {k: i for i, k in enumerate(keep)}
    sub = FaceSet(sub.images, np.array([remap[k] for k in sub.labels]), [faces.names[k] for k in keep],
                  sub.sources)
    ho = prepare(sub, YuNetDetector(yunet), int(src.input["shape"][1]), quiet=quiet)
    emb = FaceEmbedder(src, variant, threads)
    e, e_mirror = emb.embed(ho.x), emb.embed(np.ascontiguousarray(ho.x[:, :, ::-1]))
    fars = tuple(sorted({*fars, far}, reverse=True))
    modes = calibrate_modes(e, e_mirror, ho.y, ho.names, fars, seed)
    thr = modes[tta][f"{far:g}"]
    w = reopen(out)
    w.meta["thresholds"].update(
        unknown=thr["unknown"], far_target=far, tta=tta,
        unknown_by_tta={m: {k: v["unknown"] for k, v in c.items() if k != "rank1"} for m, c in modes.items()})
    w.meta["config"]["tta"] = tta
    rec = {"variant": variant, "heldout_identities": len(held), "heldout_images": int(len(ho.x)),
           "calibration": thr, "calibration_by_tta": modes}
    w.meta.setdefault("metrics", {})["recalibration"] = _plain(rec)
    w.finish()
    log(f"recalibrated {out}: tta {tta}, unknown threshold {thr['unknown']:.4f} at FAR {far:g} "
        f"(held-out rank-1 with tta {modes[tta]['rank1']:.3f})", quiet=quiet)
    return rec


class _tmpdir:
    def __enter__(self) -> Path:
        import tempfile

        self._d = tempfile.TemporaryDirectory()
        return Path(self._d.name)

    def __exit__(self, *exc: object) -> None:
        self._d.cleanup()


def _plain(o: Any) -> Any:
    if isinstance(o, dict):
        return {str(k): _plain(v) for k, v in o.items()}
    if isinstance(o, list | tuple):
        return [_plain(v) for v in o]
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return o


def _checked_args(a: Any) -> Path:
    """The datasets folder, after checking every flag and file ``train face`` will need.

    Runs before TensorFlow is imported, so a wrong path fails in well under a second.
    """
    from .data import data_root

    for bad, why in ((a.epochs < 1, "--epochs must be at least 1"),
                     (a.threads < 1, "--threads must be at least 1"),
                     (not 0 < a.far < 1, "--far must be between 0 and 1"),
                     (a.holdout < 2, "--holdout must be at least 2 identities"),
                     (a.size < 16 or a.size % 16, "--size must be a multiple of 16"),
                     (a.width <= 0, "--width must be positive")):
        if bad:
            raise ValueError(why)
    data = data_root(a.data)
    if data is None:
        raise ValueError("no data: pass --data DIR or set EDGEWISE_DATA (needs faces/extra/*.mat)")
    if a.recalibrate and not Path(a.recalibrate).exists():
        raise ValueError(f"--recalibrate {a.recalibrate}: no such bundle")
    if not a.recalibrate and not list((faces_root(data) / "extra").glob("*.mat")):
        raise ValueError(f"{faces_root(data) / 'extra'}: no .mat face sets")
    yunet = Path(a.detector_model) if a.detector_model else default_yunet(data)
    if yunet is None or not yunet.is_file():
        raise ValueError(f"{yunet or 'YuNet model'}: not found (--detector-model yunet_n_320_320.onnx)")
    for tree in a.people or []:
        if not Path(tree).is_dir():
            raise ValueError(f"--people {tree}: no such folder")
    return data


def train_main(argv: list[str]) -> int:
    from edgewise.edge.cliargs import Parser, add_quiet, fail, require

    p = Parser(
        prog="edgewise train face",
        description="Train the face embedding network on the .mat face sets (+ person/*.jpg trees), "
        "calibrate the unknown threshold on held-out identities, write a bundle with int8.",
        epilog="example:\n  nice -n 10 edgewise train face --data $EDGEWISE_DATA --out face.bundle \\\n"
        "      --epochs 90 --threads 1",
    )
    p.add_argument("--data", help="datasets folder with faces/extra (default $EDGEWISE_DATA)")
    p.add_argument("--out", required=True, help="bundle directory")
    p.add_argument("--recalibrate", metavar="BUNDLE",
                   help="no training: copy BUNDLE to --out with its unknown thresholds re-derived (every "
                   "--tta mode x FAR) on the identities it held out of its training")
    p.add_argument("--people", action="append", help="extra person/*.jpg tree (repeatable)")
    p.add_argument("--epochs", type=int, default=90,
                   help="90 is the delivered recipe (about 30 min at 1 thread on a 2-core x86; "
                   "chosen on held-out identities, docs/face.md)")
    p.add_argument("--far", type=float, default=0.001,
                   help="target false-accept rate for the unknown threshold")
    p.add_argument("--holdout", type=int, default=30, help="identities kept out of training for calibration")
    p.add_argument("--width", type=float, default=1.0, help="channel width multiplier")
    p.add_argument("--size", type=int, default=SIZE, help="crop size in pixels (multiple of 16)")
    p.add_argument("--tta", choices=TTA_MODES, default="flip",
                   help="test-time augmentation the bundle asks the edge for: flip = image + mirror "
                   "averaged at enrollment and per live face, enroll = at enrollment only, none")
    p.add_argument("--augmentation", choices=("basic", "strong"), default="strong",
                   help="training augmentation: strong adds blur, noise and stronger geometry/light changes")
    p.add_argument("--detector-model", help="YuNet .onnx used to align the training faces "
                   "(default: DATA/models/face_detection/yunet_n_320_320.onnx)")
    p.add_argument("--threads", type=int, default=2, help="TensorFlow threads")
    p.add_argument("--seed", type=int, default=0, help="random seed (split, weights, augmentation)")
    add_quiet(p)
    a = p.parse_args(argv)
    try:  # everything the data and flags can get wrong, before TensorFlow is imported (seconds)
        data = _checked_args(a)
    except ValueError as e:
        return fail("edgewise train face", e)
    require("tensorflow", "keras", "tf2onnx", what="training")
    try:
        if a.recalibrate:
            rec = recalibrate(a.recalibrate, data, a.out, far=a.far, tta=a.tta,
                              detector_model=a.detector_model, people=a.people, threads=a.threads,
                              seed=a.seed, quiet=a.quiet)
            brief = {"calibration": rec["calibration"], "heldout_images": rec["heldout_images"]}
            print(json.dumps(_plain(brief), indent=2))
            return 0
        m = train_face(data, a.out, epochs=a.epochs, far=a.far, holdout=a.holdout, seed=a.seed,
                       threads=a.threads, detector_model=a.detector_model, people=a.people, width=a.width,
                       size=a.size, tta=a.tta, augmentation=a.augmentation, quiet=a.quiet)
    except ValueError as e:
        return fail("edgewise train face", e)
    print(Path(a.out, "report", "parity.md").read_text())
    keys = ("heldout_rank1", "heldout_rank1_tta", "calibration", "train_seconds")
    print(json.dumps({k: m[k] for k in keys}, indent=2))
    return 0


DEMO_EPOCHS, DEMO_SIZE = 24, 48  # 24: ORL rank-1 0.91 / 24 of 30 recognised, 8: 0.76 / 1 of 15 (measured)
DEMO_ENROLLED = [f"s{k}" for k in range(1, 7)]  # the benchmark's 6-person protocol, on the device path
DEMO_STRANGERS = [f"s{k}" for k in range(7, 13)]
FULL_COMMAND = ("edgewise train face --data $EDGEWISE_DATA --out face.bundle "
                "(90 epochs, about 30 min at 1 thread)")


def demo(out_dir: Path, data: Path | None, quiet: bool) -> dict[str, Any]:
    """Train a short embedding model, benchmark it on ORL, recognize a folder on the edge loop.

    Needs the real face sets: faces made up by a generator would not say anything about
    recognizing people, so without data the demo is skipped (and says so). The edge loop goes
    through ``edgewise enroll`` and ``edgewise run face`` as a user would (6 ORL people enrolled
    from 5 photos, their 5 other photos and 6 strangers' photos as probes), so its counts can be
    checked against the benchmark's 6-person protocol on the same bundle.
    """
    if data is None:
        msg = ("face demo skipped: it needs the public face sets (faces/extra/*.mat and faces/orl); "
               "synthetic faces are not meaningful for recognition. Set EDGEWISE_DATA or pass --data.")
        log(msg, quiet=False)
        return {"skipped": msg}
    import shutil

    from edgewise.benchmarks.face import bench_main
    from edgewise.edge.apps.face import enroll_main, run_main

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    bundle = out_dir / "face.bundle"
    shutil.rmtree(bundle, ignore_errors=True)
    log(f"face demo: a short training ({DEMO_EPOCHS} epochs at {DEMO_SIZE}x{DEMO_SIZE}); the full model: "
        f"{FULL_COMMAND}", quiet=False)
    m = train_face(data, bundle, epochs=DEMO_EPOCHS, size=DEMO_SIZE, quiet=quiet,
                   variants=["tflite_float32", "tflite_int8"])
    yunet = default_yunet(data)
    det = ["--detector-model", str(yunet)] if yunet else []
    rc = bench_main(["--data", str(data), "--bundle", str(bundle), "--out", str(out_dir / "bench"), "--quick",
                     *det])
    if rc != 0:
        raise ValueError(f"face benchmark failed (exit {rc})")
    orl = faces_root(data) / "orl"
    gallery, probes = out_dir / "people.db", out_dir / "probes"
    gallery.unlink(missing_ok=True)
    shutil.rmtree(probes, ignore_errors=True)
    probes.mkdir()
    for s in DEMO_ENROLLED:
        shots = out_dir / "enroll" / s
        shutil.rmtree(shots, ignore_errors=True)
        shots.mkdir(parents=True)
        for i in range(1, 6):
            shutil.copy(orl / s / f"{i}.pgm", shots / f"{i}.pgm")
        if enroll_main(["--gallery", str(gallery), "--bundle", str(bundle), "--name", s,
                        "--images", str(shots), *det]) != 0:
            raise ValueError(f"enrolling {s} failed")
    for s in DEMO_ENROLLED + DEMO_STRANGERS:
        for i in range(6, 11):
            shutil.copy(orl / s / f"{i}.pgm", probes / f"{s}_{i}.pgm")
    events = out_dir / "events.jsonl"
    if run_main(["--bundle", str(bundle), "--gallery", str(gallery), "--source", str(probes),
                 "--jsonl", str(events), "--threads", "2", *det]) != 0:
        raise ValueError("the face edge loop failed")
    ev = [json.loads(line) for line in events.read_text().splitlines()]
    truth = [Path(e["path"]).name.split("_")[0] for e in ev]
    known = [e["person"] == t for e, t in zip(ev, truth, strict=True) if t in DEMO_ENROLLED]
    accepted = [e["person"] not in (None, "unknown") for e, t in zip(ev, truth, strict=True)
                if t not in DEMO_ENROLLED]
    return {"bundle": str(bundle), "heldout_rank1": m["heldout_rank1"], "bench": str(out_dir / "bench"),
            "edge_events": len(ev), "note": f"{DEMO_EPOCHS}-epoch demo model; `edgewise train face` trains "
            "the full model (its default --epochs), the one in docs/face.md",
            "verdict": _demo_verdict(json.loads((out_dir / "bench" / "face_bench.json").read_text()),
                                     known, accepted, m)}


def _demo_verdict(b: dict[str, Any], known: list[bool], accepted: list[bool], m: dict[str, Any]
                  ) -> dict[str, Any]:
    """The figures ``edgewise demo`` judges the face part on (see ``train.demo.verdict_face``)."""
    variant = "tflite_int8"
    own = b["open_set"][f"{variant}, tta {b['tta']}"]
    best = max(b["open_set_classic"], key=lambda k: b["open_set_classic"][k]["rank1"])
    six = b["table"][f"embedding {variant}"]
    return {
        "edge": {"enrolled_people": len(DEMO_ENROLLED), "enrolled_probes": len(known),
                 "recognised": sum(known), "strangers": len(accepted), "strangers_accepted": sum(accepted)},
        "open_set": {"people": own["identities"], "probes": own["probes"], "rank1": own["rank1"],
                     "classic": best, "classic_rank1": b["open_set_classic"][best]["rank1"]},
        "six_person": {"recognised_rate": six["accuracy_with_rejection_probes_only"] * six["enrollment_rate"],
                       "stranger_accept_rate": six["false_accept_rate"], "probes": six["probes"],
                       "strangers": six["strangers"]},
        "heldout": {"rank1": m["heldout_rank1"], "tar_at_threshold": m["calibration"]["tar_at_threshold"]},
        "far_target": b["far_target"], "short": True, "epochs": DEMO_EPOCHS, "full_command": FULL_COMMAND,
    }
