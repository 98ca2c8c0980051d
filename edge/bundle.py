"""Model bundles: a directory (or one ``.zip``) of model variants plus ``bundle.json``.

The bundle is the contract between workstation and device: everything the runtime needs to
feed a model and read its answer (input shape, layout, colour order, normalization,
quantization, labels, thresholds, app settings) travels with the files, and every file is
pinned by size and sha256 so a truncated copy or a tampered model is refused before it runs.

>>> b = load_bundle("demo.bundle")                   # doctest: +SKIP
>>> b.variant("tflite_int8").file, b.spec.thresholds.for_variant("tflite_int8")  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .jsonenc import dumps
from .spec import BACKENDS, PRECISIONS, SCHEMA_VERSION, BundleError, BundleSpec, Variant

__all__ = [
    "SCHEMA_VERSION",
    "BACKENDS",
    "PRECISIONS",
    "Bundle",
    "BundleError",
    "BundleSpec",
    "Variant",
    "BundleWriter",
    "load_bundle",
    "sha256_file",
]

BUNDLE_JSON = "bundle.json"
# The order in which a device picks a variant when none is named: smallest, fastest first.
PREFERRED_VARIANTS = (
    "tflite_int8",
    "onnx_int8",
    "tflite_dynamic",
    "tflite_float16",
    "tflite_float32",
    "onnx_float32",
)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class Bundle:
    """A loaded, verified bundle: ``spec`` is its typed ``bundle.json``, ``meta`` the raw one.

    Read the model's contract from ``spec`` (``spec.input.normalization``,
    ``spec.thresholds.for_variant(v)``, ``spec.config``). ``input``, ``output``,
    ``thresholds``, ``config`` and ``metrics`` below are the old raw-dict accessors, kept
    while callers move to ``spec``.
    """

    path: Path
    meta: dict[str, Any]
    spec: BundleSpec

    @property
    def variants(self) -> dict[str, Variant]:
        return self.spec.variants

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def task(self) -> str:
        return self.spec.task

    @property
    def app(self) -> str:
        return self.spec.app

    @property
    def labels(self) -> list[str]:
        return list(self.spec.labels)

    @property
    def input(self) -> dict[str, Any]:
        """Old accessor: the raw ``input`` object (use ``spec.input``)."""
        return self.meta["input"]

    @property
    def output(self) -> dict[str, Any]:
        """Old accessor: the raw ``output`` object (use ``spec.output``)."""
        return self.meta["output"]

    @property
    def thresholds(self) -> dict[str, Any]:
        """Old accessor: the raw ``thresholds`` object (use ``spec.thresholds``)."""
        return dict(self.meta.get("thresholds", {}))

    @property
    def config(self) -> dict[str, Any]:
        """Old accessor: application settings (use ``spec.config``)."""
        return dict(self.meta.get("config", {}))

    @property
    def metrics(self) -> dict[str, Any]:
        """Old accessor: what training and conversion measured (use ``spec.metrics``)."""
        return dict(self.meta.get("metrics", {}))

    def file(self, rel: str) -> Path:
        return self.path / rel

    def variant(self, name: str | None = None) -> Variant:
        """The named variant, or the preferred one present (int8 first)."""
        if name is None:
            for cand in PREFERRED_VARIANTS:
                if cand in self.variants:
                    return self.variants[cand]
            return next(iter(self.variants.values()))
        if name not in self.variants:
            raise BundleError(
                f"{self.path}: no variant '{name}'; available: {', '.join(self.variants)}"
            )
        return self.variants[name]


def _extract_zip(path: Path) -> Path:
    """Unpack a zipped bundle into a private temporary directory, refusing path escapes."""
    dest = Path(tempfile.mkdtemp(prefix="edgewise-bundle-"))
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                target = (dest / info.filename).resolve()
                if not str(target).startswith(str(dest.resolve())):
                    raise BundleError(f"{path}: zip member '{info.filename}' escapes the bundle")
            zf.extractall(dest)
    except zipfile.BadZipFile as e:
        shutil.rmtree(dest, ignore_errors=True)
        raise BundleError(f"{path}: not a valid zip file ({e})") from None
    # Accept both a zip of the directory's contents and a zip of the directory itself.
    if not (dest / BUNDLE_JSON).exists():
        subdirs = [p for p in dest.iterdir() if p.is_dir()]
        if len(subdirs) == 1 and (subdirs[0] / BUNDLE_JSON).exists():
            return subdirs[0]
    return dest


def _read_meta(root: Path) -> dict[str, Any]:
    """The parsed ``bundle.json`` of ``root``, validated (``BundleSpec.from_json``)."""
    meta_path = root / BUNDLE_JSON
    if not meta_path.exists():
        raise BundleError(f"{meta_path}: missing; is '{root}' a bundle?")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BundleError(f"{meta_path}: malformed JSON ({e})") from None
    BundleSpec.from_json(meta, str(meta_path))
    return meta


def verify_files(root: Path, meta: dict[str, Any]) -> list[dict[str, Any]]:
    """Check size and sha256 of every listed file; raise on the first problem."""
    results = []
    for rel, info in meta["files"].items():
        p = (root / rel).resolve()
        if not str(p).startswith(str(root.resolve())):
            raise BundleError(f"{root / BUNDLE_JSON}: file entry '{rel}' points outside the bundle")
        if not p.is_file():
            raise BundleError(f"{root / rel}: listed in bundle.json but missing")
        size = p.stat().st_size
        if size != info.get("size"):
            raise BundleError(
                f"{root / rel}: size {size} bytes, bundle.json says {info.get('size')} "
                f"(truncated or replaced)"
            )
        digest = sha256_file(p)
        if digest != info.get("sha256"):
            raise BundleError(f"{root / rel}: sha256 mismatch (file was modified or tampered)")
        results.append({"file": rel, "size": size, "sha256": digest, "ok": True})
    return results


def load_bundle(path: str | Path, verify: bool = True) -> Bundle:
    """Load a bundle directory or ``.zip``; with ``verify`` every checksum is checked."""
    path = Path(path)
    if not path.exists():
        raise BundleError(f"{path}: no such bundle")
    root = _extract_zip(path) if path.is_file() else path
    meta = _read_meta(root)
    spec = _spec(meta, str(root / BUNDLE_JSON))
    if verify:
        verify_files(root, meta)
    return Bundle(path=root, meta=meta, spec=spec)


def _spec(meta: dict[str, Any], where: str) -> BundleSpec:
    """The typed spec, with every variant's file covered by a checksum entry."""
    spec = BundleSpec.from_json(meta, where)
    for name, v in spec.variants.items():
        if v.file not in spec.files:
            raise BundleError(f"{where}: variant '{name}' file '{v.file}' has no checksum entry")
    return spec


class BundleWriter:
    """Collects files and metadata, then writes ``bundle.json`` with checksums last.

    >>> w = BundleWriter("out.bundle", name="demo", task="classification", app="generic")  # doctest: +SKIP
    >>> w.add_bytes("model_float32.tflite", data)                  # doctest: +SKIP
    >>> w.finish()                                                 # doctest: +SKIP
    """

    def __init__(self, root: str | Path, *, name: str, task: str, app: str) -> None:
        from . import __version__

        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.meta: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "name": name,
            "task": task,
            "app": app,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "edgewise_version": __version__,
            "input": {},
            "output": {},
            "labels": [],
            "thresholds": {},
            "config": {},
            "metrics": {},
            "variants": {},
            "files": {},
        }

    def add_bytes(self, rel: str, data: bytes) -> Path:
        p = self.root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        return p

    def add_file(self, rel: str, src: str | Path) -> Path:
        p = self.root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if Path(src).resolve() != p.resolve():
            shutil.copyfile(src, p)
        return p

    def add_variant(self, variant: Variant) -> None:
        self.meta["variants"][variant.name] = variant.to_json()

    def finish(self, zip_path: str | Path | None = None) -> Path:
        """Checksum every file under the root (``report/`` included) and write bundle.json.

        The metadata is validated first (``BundleSpec``): a bundle that would not load on the
        device is never sealed.
        """
        files = {}
        for p in sorted(self.root.rglob("*")):
            if p.is_file() and p.name != BUNDLE_JSON:
                rel = p.relative_to(self.root).as_posix()
                files[rel] = {"sha256": sha256_file(p), "size": p.stat().st_size}
        self.meta["files"] = files
        text = dumps(self.meta, indent=2)
        _spec(json.loads(text), str(self.root / BUNDLE_JSON))
        (self.root / BUNDLE_JSON).write_text(text)
        if zip_path is not None:
            pack_zip(self.root, zip_path)
        return self.root


def pack_zip(root: str | Path, zip_path: str | Path) -> Path:
    """Zip a bundle directory's contents (bundle.json at the zip's top level)."""
    root, zip_path = Path(root), Path(zip_path)
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(root.rglob("*")):
            if p.is_file():
                zf.write(p, p.relative_to(root).as_posix())
    return zip_path


def reopen(root: str | Path) -> BundleWriter:
    """A writer over an existing bundle, to add reports or metrics and re-seal the checksums."""
    root = Path(root)
    meta = _read_meta(root)
    w = BundleWriter.__new__(BundleWriter)
    w.root = root
    w.meta = meta
    return w
