"""``train face --recalibrate``: re-derive an existing bundle's unknown thresholds without retraining."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgewise.edge.apps.face import TTA_MODES, YuNetDetector
from edgewise.edge.jsonenc import to_plain
from edgewise.edge.progress import log

from ..data.faces import FaceSet, load_training_faces
from .asnorm import COHORT_FILE, asnorm_entry, asnorm_modes, cohort_templates, npy_bytes
from .calibrate import FARS, by_tta, calibrate_modes
from .prep import faces_root, prepare, yunet_path
from .scoring import fusion_entry

__all__ = ["recalibrate"]


def _heldout_faces(data: str | Path, people: list[str | Path] | None, held: list[str], bundle: str | Path
                   ) -> FaceSet:
    """The face sets' images of exactly the ``held`` identities, labels 0..len(held)-1 in that order."""
    faces = load_training_faces(faces_root(data), people)
    keep = [k for k, n in enumerate(faces.names) if n in held]
    if len(keep) != len(held):
        raise ValueError(f"{len(held) - len(keep)} held-out identities of {bundle} are missing from {data}")
    sub = faces.subset(np.flatnonzero(np.isin(faces.labels, keep)))
    remap = {k: i for i, k in enumerate(keep)}
    return FaceSet(sub.images, np.array([remap[k] for k in sub.labels]), [faces.names[k] for k in keep],
                   sub.sources)


def _trained_faces(data: str | Path, people: list[str | Path] | None, held: list[str], sets: list[str] | None
                   ) -> FaceSet:
    """Images of every identity the bundle trained on (its sets, minus ``held``): the AS-norm cohort."""
    faces = load_training_faces(faces_root(data), people, sets)
    return faces.subset(np.flatnonzero(~np.isin(np.array(faces.names)[faces.labels], held)))


def _copy_target(bundle: str | Path, out: str | Path) -> Path:
    """``out`` as a fresh copy of ``bundle`` (or ``bundle`` itself, recalibrated in place)."""
    import shutil

    out = Path(out)
    if out.resolve() != Path(bundle).resolve():
        if out.exists():
            raise ValueError(f"{out}: already exists; choose a new --out for the recalibrated bundle")
        shutil.copytree(bundle, out)
    return out


def recalibrate(bundle: str | Path, data: str | Path, out: str | Path, *, far: float = 0.001,
                tta: str = "flip", fars: tuple[float, ...] = FARS,
                detector_model: str | Path | None = None,
                people: list[str | Path] | None = None, variant: str = "tflite_float32", threads: int = 1,
                seed: int = 0, score: str = "fused", quiet: bool = False) -> dict[str, Any]:
    """Re-derive a bundle's unknown thresholds (every TTA mode x FAR) without retraining.

    Uses exactly the identities the bundle lists as held out of its training
    (``config.heldout_identities``), embedded by the bundle's own ``variant`` through the edge
    code, so an older bundle gets the per-mode threshold table of current trainings. The copy
    at ``out`` is re-sealed; the model files are untouched.
    """
    from edgewise.edge.apps.face import FaceEmbedder
    from edgewise.edge.bundle import load_bundle, reopen

    src = load_bundle(bundle)
    held = list(src.spec.config.get("heldout_identities") or [])
    if not held:
        raise ValueError(f"{bundle}: bundle.json lists no heldout_identities; cannot recalibrate")
    if tta not in TTA_MODES:
        raise ValueError(f"unknown --tta {tta!r}; valid: {', '.join(TTA_MODES)}")
    yunet = yunet_path(detector_model, data)
    out = _copy_target(bundle, out)
    ho = prepare(_heldout_faces(data, people, held, bundle), YuNetDetector(yunet), src.spec.input.hwc[0],
                 quiet=quiet)
    emb = FaceEmbedder(src, variant, threads)
    e, e_mirror = emb.embed(ho.x), emb.embed(np.ascontiguousarray(ho.x[:, :, ::-1]))
    fars = tuple(sorted({*fars, far}, reverse=True))
    modes = calibrate_modes(e, e_mirror, ho.y, ho.names, fars, seed)
    thr = modes[tta][f"{far:g}"]
    # the cohort for AS-norm: every identity the bundle trained on, embedded by the same variant
    trained = prepare(_trained_faces(data, people, held, src.spec.config.get("train_sets")),
                      YuNetDetector(yunet), src.spec.input.hwc[0], quiet=quiet)
    cohort = cohort_templates(emb.embed(trained.x), emb.embed(np.ascontiguousarray(trained.x[:, :, ::-1])),
                              trained.y)
    asn = asnorm_modes(e, e_mirror, ho.y, ho.names, cohort, fars, seed)
    fusion = fusion_entry(e, e_mirror, ho.x, ho.y, ho.names, cohort, fars, seed)
    w = reopen(out)
    w.add_bytes(COHORT_FILE, npy_bytes(cohort))
    w.meta["thresholds"].update(unknown=thr["unknown"], far_target=far, tta=tta, unknown_by_tta=by_tta(modes),
                                score=score, as_norm=asnorm_entry(asn), fusion=fusion)
    w.meta["config"]["tta"] = tta
    rec = {"variant": variant, "heldout_identities": len(held), "heldout_images": int(len(ho.x)),
           "calibration": thr, "calibration_by_tta": modes, "cohort_identities": int(len(cohort)),
           "asnorm_calibration": asn[tta][f"{far:g}"], "score": score}
    w.meta.setdefault("metrics", {})["recalibration"] = to_plain(rec)
    w.finish()
    log(f"recalibrated {out}: tta {tta}, unknown threshold {thr['unknown']:.4f} at FAR {far:g} "
        f"(held-out rank-1 with tta {modes[tta]['rank1']:.3f})", quiet=quiet)
    return rec
