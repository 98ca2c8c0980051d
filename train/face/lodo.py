"""Leave-one-dataset-out: how the face recipe generalises to a collection it never saw.

For each ``.mat`` collection in turn: train on the other three (some of their identities held
out to calibrate every method's thresholds), then measure on the left-out collection and on ORL:
open-set rank-1, TAR at FAR 1 %, and the share of impostor pairs each stored threshold accepts
against the FAR it was calibrated for. Every training seed repeats the whole round, so each
figure comes as mean +- sd over seeds. Embeddings come from the Keras float32 network with flip
averaging (no conversion: the campaign measures the recipe, the bundle's parity table measures
the conversion). Results are rewritten after every training, so a long campaign stopped early
keeps what it finished.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from edgewise.edge.apps.face import YuNetDetector, l2n
from edgewise.edge.apps.face.lbp import lbp_vectors
from edgewise.edge.jsonenc import dumps
from edgewise.edge.progress import log

from ..data.faces import load_mat_faces, load_orl
from .fit import train_embedding
from .prep import FaceData, faces_root, prepare, split_identities, to_input, yunet_path
from .scoring import METHODS, FaceViews, calibrate_methods, evaluate_methods

__all__ = ["aligned_collections", "join", "views", "identity_templates", "lodo", "lodo_markdown"]

FARS = (0.01, 0.001)


def aligned_collections(data: str | Path, size: int, detector_model: str | Path | None = None,
                        cache: Path | None = None, quiet: bool = False) -> dict[str, FaceData]:
    """Every ``.mat`` collection and ORL, aligned by the edge code; cached in ``cache`` (npz) when given."""
    root = faces_root(data)
    if cache is not None and cache.is_file():
        z = np.load(cache, allow_pickle=False)
        sets = [str(k) for k in z["sets"]]
        return {s: FaceData(z[f"{s}_x"], z[f"{s}_y"], [str(n) for n in z[f"{s}_names"]],
                            [str(h) for h in z[f"{s}_how"]]) for s in sets}
    det = YuNetDetector(yunet_path(detector_model, data))
    mats = sorted((root / "extra").glob("*.mat"))
    out = {m.stem: prepare(load_mat_faces(m), det, size, quiet=quiet) for m in mats}
    if len(out) < 2:
        raise ValueError(f"{root / 'extra'}: leave-one-dataset-out needs at least two .mat collections")
    if (root / "orl").is_dir():
        out["ORL"] = prepare(load_orl(root / "orl"), det, size, quiet=quiet)
        out["ORL"].names = [f"ORL/{n}" for n in out["ORL"].names]
    if cache is not None:
        arrays: dict[str, Any] = {"sets": np.array(list(out))}
        for s, d in out.items():
            arrays.update({f"{s}_x": d.x, f"{s}_y": d.y, f"{s}_names": np.array(d.names),
                           f"{s}_how": np.array(d.how)})
        np.savez_compressed(cache, **arrays)
    return out


def join(parts: list[FaceData]) -> FaceData:
    """Several collections as one, labels offset so identities never collide."""
    xs, ys, names, how = [], [], [], []
    for p in parts:
        xs.append(p.x)
        ys.append(p.y + len(names))
        names += p.names
        how += p.how
    return FaceData(np.concatenate(xs), np.concatenate(ys), names, how)


def _embed(net: Any, x: np.ndarray) -> np.ndarray:
    """Flip-averaged unit embeddings of uint8 crops, the bundle's default ``tta``."""
    e = net.predict(to_input(x), verbose=0, batch_size=256)
    m = net.predict(to_input(x[:, :, ::-1]), verbose=0, batch_size=256)
    return l2n(l2n(e) + l2n(m))


def views(net: Any, d: FaceData) -> FaceViews:
    """A face set as every method sees it (flip-averaged embeddings, LBP vectors)."""
    return FaceViews(_embed(net, d.x), lbp_vectors(d.x), d.y, d.names)


def identity_templates(emb: np.ndarray, y: np.ndarray) -> np.ndarray:
    """One unit mean embedding per identity: the cohort of people nobody will enroll."""
    return l2n(np.stack([emb[y == k].mean(0) for k in np.unique(y)]))


def _one_fold(sets: dict[str, FaceData], held: str, *, seed: int, epochs: int, threads: int, holdout: int,
              augmentation: str, quiet: bool) -> dict[str, Any]:
    t0 = time.monotonic()
    pool = join([d for s, d in sets.items() if s not in (held, "ORL")])
    tr, cal = split_identities(pool, holdout, seed)
    net, hist = train_embedding(tr, cal, epochs=epochs, seed=seed, threads=threads, augmentation=augmentation,
                                quiet=quiet)
    cohort = identity_templates(_embed(net, tr.x), tr.y)
    thresholds, fusion = calibrate_methods(views(net, cal), cohort, FARS, seed)
    tests = {"held-out collection": sets[held], **({"ORL": sets["ORL"]} if "ORL" in sets else {})}
    res = {name: evaluate_methods(views(net, d), cohort, fusion, thresholds, seed)
           for name, d in tests.items()}
    import keras

    keras.backend.clear_session()
    return {"held_out": held, "seed": seed, "train_identities": len(tr.names), "train_images": int(len(tr.x)),
            "calibration_identities": len(cal.names), "heldout_rank1_last_epoch": hist["val_rank1"][-1],
            "thresholds": {m: {f: c["unknown"] for f, c in t.items()} for m, t in thresholds.items()},
            "fusion": fusion, "results": res, "seconds": round(time.monotonic() - t0, 1)}


def lodo(data: str | Path, out: str | Path, *, epochs: int, seeds: list[int], size: int = 64,
         threads: int = 1, holdout: int = 30, augmentation: str = "strong",
         detector_model: str | Path | None = None, only: list[str] | None = None,
         quiet: bool = False) -> dict[str, Any]:
    """The whole campaign, seed by seed (so a stopped run has whole rounds); writes lodo.json / lodo.md."""

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sets = aligned_collections(data, size, detector_model, out / f"aligned_{size}.npz", quiet=quiet)
    folds = [s for s in sets if s != "ORL" and (only is None or s in only)]
    unknown = sorted(set(only or []) - set(folds))
    if unknown:
        raise ValueError(f"--only {' '.join(unknown)}: no such collection; "
                         f"have {', '.join(s for s in sets if s != 'ORL')}")
    if not seeds:
        raise ValueError("--seeds: give at least one seed")
    result: dict[str, Any] = {"recipe": {"epochs": epochs, "size": size, "augmentation": augmentation,
                                         "seeds": seeds, "threads": threads, "holdout": holdout,
                                         "embedding": "Keras float32, flip averaging"},
                              "collections": {s: {"identities": len(d.names), "images": int(len(d.x))}
                                              for s, d in sets.items()},
                              "runs": []}
    for seed in seeds:
        for held in folds:
            log(f"LODO: hold out {held}, seed {seed}, {epochs} epochs", quiet=quiet)
            result["runs"].append(_one_fold(sets, held, seed=seed, epochs=epochs, threads=threads,
                                            holdout=holdout, augmentation=augmentation, quiet=quiet))
            (out / "lodo.json").write_text(dumps(result, indent=2))
            (out / "lodo.md").write_text(lodo_markdown(result))
    return result


def _ms(vals: list[float], digits: int = 1) -> str:
    """mean +- sd in percent (sd over seeds; a single seed has none)."""
    a = 100 * np.asarray(vals, dtype=float)
    return f"{a.mean():.{digits}f}" + (f" ± {a.std(ddof=1):.{digits}f}" if len(a) > 1 else "") + " %"


def lodo_markdown(r: dict[str, Any]) -> str:
    """The table: held-out collection x method, on that collection and on ORL, mean +- sd over seeds.

    FAR columns: the share of impostor pairs (probe, another person's 5-photo template) that the
    threshold stored for a 0.1 % FAR accepts on a collection the network never saw.
    """
    rec = r["recipe"]
    lines = [f"Leave-one-dataset-out: {rec['epochs']} epochs, {rec['size']}x{rec['size']}, augmentation "
             f"{rec['augmentation']}, {rec['embedding']}; mean ± sd over the seeds in the last column.",
             "",
             "| held out | method | rank-1 | TAR at FAR 1 % | FAR at the 0.1 % threshold (target 0.1 %) "
             "| ORL rank-1 | ORL TAR at FAR 1 % | ORL FAR at the 0.1 % threshold | seeds |",
             "|---|---|---|---|---|---|---|---|---|"]
    held = list(dict.fromkeys(run["held_out"] for run in r["runs"]))
    for h in held:
        runs = [run for run in r["runs"] if run["held_out"] == h]
        for m in METHODS:
            cells = [h, m]
            for test in ("held-out collection", "ORL"):
                rows = [run["results"][test][m] for run in runs if test in run["results"]]
                if not rows:
                    cells += ["—"] * 3
                    continue
                cells += [_ms([x["rank1"] for x in rows]), _ms([x["tar_at_far_0.01"] for x in rows]),
                          _ms([x["far_at_0.001"] for x in rows], 2)]
            lines.append("| " + " | ".join(cells) + f" | {len(runs)} |")
    return "\n".join(lines) + "\n"
