"""A pretrained face embedder -> a face bundle for ``enroll``, ``run face``, ``bench face`` and ``verify``.

The bundle is the one a training writes (``app: face``, ``task: embedding``, unknown thresholds
for every test-time-augmentation mode and false-accept rate, a parity table, an evaluation set),
plus what a foreign network needs said: its colour order, normalisation and landmark template.
The thresholds come from the identities the user gives, embedded by the float source model
with the trainer's own calibration routine (``edge.apps.face.calibrate``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgewise.edge.apps.face.calibrate import FARS, by_tta, calibrate_modes, pair_auc
from edgewise.edge.apps.face.embed import TTA_MODES, face_input, l2n
from edgewise.edge.evaluate import Decider
from edgewise.edge.jsonenc import to_plain
from edgewise.edge.progress import log
from edgewise.edge.spec import Normalization

from ..package import ALL_VARIANTS, ConversionSpec, build_bundle
from .calib import N_ENROLL, CalibFaces, read_identities
from .source import SourceModel, open_source
from .spec import FaceInput, FaceInputRequest, resolve

__all__ = ["FaceConversion", "convert_face_embedder"]


@dataclass
class FaceConversion:
    """What ``convert_face_embedder`` made: the bundle, its parity rows and calibration, what it left out."""

    path: Path
    parity: list[dict[str, Any]]
    face: FaceInput
    calibration: dict[str, Any]
    variants: list[str]
    not_made: str

    @property
    def flagged(self) -> list[str]:
        return [r["variant"] for r in self.parity if r.get("flagged")]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _pick_variants(src: SourceModel, wanted: list[str] | None) -> tuple[list[str], str]:
    have, why = src.variants()
    if not wanted:
        return have, why
    bad = [v for v in wanted if v not in ALL_VARIANTS]
    if bad:
        raise ValueError(f"unknown variants {bad}; valid: {', '.join(ALL_VARIANTS)}")
    missing = [v for v in wanted if v not in have]
    if missing:
        raise ValueError(f"a {src.kind} source gives {', '.join(have)}, not {', '.join(missing)}"
                         + (f" ({why})" if why else ""))
    return [v for v in have if v in wanted], why


def _calibrate(src: SourceModel, x: np.ndarray, faces: CalibFaces, far: float, fars: tuple[float, ...],
               tta: str, seed: int, quiet: bool) -> dict[str, Any]:
    """Unknown thresholds for every TTA mode x FAR on the calibration identities (float source)."""
    e = l2n(src.predict(x))
    e_mirror = l2n(src.predict(np.ascontiguousarray(x[:, :, ::-1])))
    fars = tuple(sorted({*fars, far}, reverse=True))
    modes = calibrate_modes(e, e_mirror, faces.y, faces.names, fars, seed)
    chosen = modes[tta][f"{far:g}"]
    auc = float(pair_auc(e, x, faces.y))
    for f in fars:
        c = modes[tta][f"{f:g}"]
        if c["impostor_pairs"] * f < 1:
            log(f"warning: FAR {f:g} rests on {c['impostor_pairs']} impostor pairs (fewer than 1/FAR): its "
                "threshold is just above the most similar impostor pair; more calibration people make it "
                "a measured rate", quiet=quiet)
    log(f"calibration: {len(faces.names)} people, {len(faces)} faces; pair AUROC {auc:.4f}, rank-1 "
        f"(tta {tta}) {modes[tta]['rank1']:.3f}; unknown threshold {chosen['unknown']:.4f} at FAR {far:g} "
        f"(TAR {chosen['tar_at_threshold']:.3f} over {chosen['genuine_pairs']} genuine pairs)", quiet=quiet)
    if auc < 0.9:
        log(f"warning: pair AUROC {auc:.3f} on the calibration faces is low for a face embedder: check "
            "--color, --normalization/--mean/--std and --template against how the network was trained",
            quiet=quiet)
    return {"modes": modes, "chosen": chosen, "pair_auroc": auc}


def _report(face: FaceInput, faces: CalibFaces, cal: dict[str, Any], not_made: str, source: str
            ) -> bytes:
    """report/face_embedding.md: the input contract, the calibration people and every threshold."""
    lines = [
        f"# Pretrained face embedder: {source}", "",
        f"Input: {face.size}x{face.size}, {face.channels} channel(s), colour {face.color}, source layout "
        f"{face.source_layout} (the bundle takes NHWC), normalisation {face.normalization}, landmark "
        f"template {face.template_name} {[[round(x, 2), round(y, 2)] for x, y in face.template]}.", "",
        f"Calibration: {len(faces.names)} people, {len(faces)} face crops ({faces.how}); "
        f"{len(faces.skipped)} photos or people skipped. Templates of {N_ENROLL} photos, 10 random "
        f"enrollment draws pooled. Pair AUROC (all pairs, float source) {cal['pair_auroc']:.4f}.", "",
        "| tta | FAR target | threshold | FAR measured | TAR | impostor pairs | genuine pairs | rank-1 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for mode, table in cal["modes"].items():
        for k, c in table.items():
            if k == "rank1":
                continue
            lines.append(f"| {mode} | {k} | {c['unknown']:.4f} | {c['far_measured']:.5f} | "
                         f"{c['tar_at_threshold']:.3f} | {c['impostor_pairs']} | {c['genuine_pairs']} | "
                         f"{table['rank1']:.3f} |")
    lines += ["", "Parity: report/parity.md (reference: the source model in float; its 'keras' column is "
              "the source's outputs). Quantization and parity both use the calibration crops."]
    if not_made:
        lines += ["", f"Not made: {not_made}."]
    return ("\n".join(lines) + "\n").encode()


def convert_face_embedder(model: str | Path, out: str | Path, request: FaceInputRequest, *,
                          calib: str | Path, aligned: bool = False, detector_model: str | Path | None = None,
                          far: float = 0.001, fars: tuple[float, ...] = FARS, tta: str = "flip",
                          variants: list[str] | None = None, threads: int = 2, name: str | None = None,
                          zip_path: str | Path | None = None, seed: int = 0, quiet: bool = False
                          ) -> FaceConversion:
    """Wrap the embedder file ``model`` into a face bundle at ``out``, calibrated on ``calib/person/*``."""
    if tta not in TTA_MODES:
        raise ValueError(f"unknown --tta {tta!r}; valid: {', '.join(TTA_MODES)}")
    if not 0 < far < 1:
        raise ValueError(f"--far {far}: a false-accept rate between 0 and 1")
    if Path(out).exists():
        raise ValueError(f"{out}: already exists; choose a new --out")
    path = Path(model)
    src = open_source(path)
    try:
        face = resolve(request, src.input_shape)
    except ValueError as e:
        raise ValueError(f"{path.name}: {e}") from None
    src.adapt(face)
    src.check_output()
    names, not_made = _pick_variants(src, variants)
    if not_made:
        log(f"note: {not_made}", quiet=quiet)
    faces = read_identities(calib, face, aligned=aligned, detector_model=detector_model, quiet=quiet)
    norm = Normalization.from_json(face.normalization)
    x = face_input(faces.crops, face.size, face.channels, face.color, norm)
    cal = _calibrate(src, x, faces, far, fars, tta, seed, quiet)
    thr = cal["chosen"]
    crop: dict[str, Any] = {"size": face.size, "fallback": "box / centre crop"}
    if face.template_name == "arcface":
        crop["landmarks"] = "arcface-112 scaled"
    else:
        crop.update(landmarks="custom", template=[list(p) for p in face.template])
    spec = ConversionSpec(
        name=name or path.stem,
        task="embedding",
        app="face",
        input=face.bundle_input(),
        output={"meaning": "face embedding (pretrained, brought by the user); matched by cosine similarity "
                "after L2 normalisation", "kind": "embedding"},
        thresholds={"unknown": thr["unknown"], "far_target": far, "tta": tta,
                    "unknown_by_tta": by_tta(cal["modes"])},
        config={
            "crop": crop,
            "matching": "cosine similarity to each person's mean template",
            "tta": tta,
            "source": {"file": path.name, "format": src.kind, "precision": src.precision,
                       "layout": face.source_layout, "sha256": _sha256(path)},
            "calibration_people": len(faces.names),  # a count: the folder names may be real names
            "seed": seed,
        },
        metrics={"calibration": thr, "calibration_by_tta": to_plain(cal["modes"]),
                 "calibration_pair_auroc": cal["pair_auroc"], "calibration_people": len(faces.names),
                 "calibration_images": len(faces), "calibration_skipped": len(faces.skipped),
                 **({"variants_not_made": not_made} if not_made else {})},
        decider=Decider(kind="none", metric_fn=pair_auc, metric_name="pair_auroc"),
    )
    rng = np.random.default_rng(seed)
    q = x[rng.permutation(len(x))]  # int8 calibration samples from every person, not the first few

    def report(parity: list[dict[str, Any]]) -> tuple[dict[str, bytes], dict[str, Any]]:
        return {"report/face_embedding.md": _report(face, faces, cal, not_made, path.name)}, {}

    keras_model = getattr(src, "model", None) if src.kind == "keras" else None
    res = build_bundle(keras_model if keras_model is not None else src, out, spec, calib_x=q, eval_x=x,
                       eval_y=faces.y, variants=names, threads=threads, zip_path=zip_path, quiet=quiet,
                       report=report, convert=src.converter())
    return FaceConversion(path=res.path, parity=res.parity, face=face, calibration=thr, variants=names,
                          not_made=not_made)
