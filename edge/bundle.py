"""Model bundles: a directory (or one ``.zip``) of model variants plus ``bundle.json``.

The bundle is the contract between workstation and device: everything the runtime needs to
feed a model and read its answer (input shape, layout, colour order, normalization,
quantization, labels, thresholds, app settings) travels with the files, and every file is
pinned by size and sha256 so a truncated copy or a tampered model is refused before it runs.

>>> b = load_bundle("demo.bundle")                   # doctest: +SKIP
>>> b.variant("tflite_int8").file, b.thresholds      # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "SCHEMA_VERSION",
    "BACKENDS",
    "PRECISIONS",
    "Bundle",
    "BundleError",
    "Variant",
    "BundleWriter",
    "load_bundle",
    "sha256_file",
]

SCHEMA_VERSION = 1
BUNDLE_JSON = "bundle.json"
BACKENDS = ("litert", "onnxruntime")
PRECISIONS = ("float32", "float16", "dynamic", "int8")
# The order in which a device picks a variant when none is named: smallest, fastest first.
PREFERRED_VARIANTS = (
    "tflite_int8",
    "onnx_int8",
    "tflite_dynamic",
    "tflite_float16",
    "tflite_float32",
    "onnx_float32",
)
_REQUIRED = {
    "schema_version": int,
    "name": str,
    "task": str,
    "app": str,
    "created": str,
    "edgewise_version": str,
    "input": dict,
    "output": dict,
    "variants": dict,
    "files": dict,
}


class BundleError(ValueError):
    """A bundle that cannot be trusted: missing, truncated or tampered file, bad JSON."""


@dataclass(frozen=True)
class Variant:
    """One converted model inside a bundle, e.g. ``tflite_int8``."""

    name: str
    file: str
    backend: str
    precision: str
    input_quantization: dict[str, Any] | None = None
    output_quantization: dict[str, Any] | None = None
    parity: dict[str, Any] = field(default_factory=dict)
    flagged: bool = False

    @classmethod
    def from_json(cls, name: str, d: dict[str, Any], where: str) -> Variant:
        for key in ("file", "backend", "precision"):
            if not isinstance(d.get(key), str):
                raise BundleError(f"{where}: variant '{name}' lacks string field '{key}'")
        if d["backend"] not in BACKENDS:
            raise BundleError(
                f"{where}: variant '{name}' has backend '{d['backend']}', expected one of {BACKENDS}"
            )
        if d["precision"] not in PRECISIONS:
            raise BundleError(
                f"{where}: variant '{name}' has precision '{d['precision']}', "
                f"expected one of {PRECISIONS}"
            )
        return cls(
            name=name,
            file=d["file"],
            backend=d["backend"],
            precision=d["precision"],
            input_quantization=d.get("input_quantization"),
            output_quantization=d.get("output_quantization"),
            parity=d.get("parity", {}),
            flagged=bool(d.get("flagged", False)),
        )


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class Bundle:
    """A loaded, verified bundle. ``meta`` is the raw ``bundle.json``."""

    path: Path
    meta: dict[str, Any]
    variants: dict[str, Variant]

    @property
    def name(self) -> str:
        return self.meta["name"]

    @property
    def task(self) -> str:
        return self.meta["task"]

    @property
    def app(self) -> str:
        return self.meta["app"]

    @property
    def input(self) -> dict[str, Any]:
        return self.meta["input"]

    @property
    def output(self) -> dict[str, Any]:
        return self.meta["output"]

    @property
    def labels(self) -> list[str]:
        return list(self.meta.get("labels", []))

    @property
    def thresholds(self) -> dict[str, Any]:
        return dict(self.meta.get("thresholds", {}))

    @property
    def config(self) -> dict[str, Any]:
        """Application settings (window length, tile size, ...) shared by training and edge."""
        return dict(self.meta.get("config", {}))

    @property
    def metrics(self) -> dict[str, Any]:
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
    meta_path = root / BUNDLE_JSON
    if not meta_path.exists():
        raise BundleError(f"{meta_path}: missing; is '{root}' a bundle?")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BundleError(f"{meta_path}: malformed JSON ({e})") from None
    if not isinstance(meta, dict):
        raise BundleError(f"{meta_path}: top level must be an object")
    for key, typ in _REQUIRED.items():
        if key not in meta:
            raise BundleError(f"{meta_path}: required field '{key}' is missing")
        if not isinstance(meta[key], typ):
            raise BundleError(f"{meta_path}: field '{key}' must be {typ.__name__}")
    if meta["schema_version"] > SCHEMA_VERSION:
        raise BundleError(
            f"{meta_path}: schema_version {meta['schema_version']} is newer than this edgewise "
            f"understands ({SCHEMA_VERSION}); upgrade edgewise"
        )
    for key in ("shape", "dtype"):
        if key not in meta["input"]:
            raise BundleError(f"{meta_path}: input spec lacks '{key}'")
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
    where = str(root / BUNDLE_JSON)
    variants = {}
    for name, d in meta["variants"].items():
        if not isinstance(d, dict):
            raise BundleError(f"{where}: variant '{name}' must be an object")
        v = Variant.from_json(name, d, where)
        if v.file not in meta["files"]:
            raise BundleError(f"{where}: variant '{name}' file '{v.file}' has no checksum entry")
        variants[name] = v
    if not variants:
        raise BundleError(f"{where}: bundle has no model variants")
    if verify:
        verify_files(root, meta)
    return Bundle(path=root, meta=meta, variants=variants)


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
        d = {
            "file": variant.file,
            "backend": variant.backend,
            "precision": variant.precision,
            "input_quantization": variant.input_quantization,
            "output_quantization": variant.output_quantization,
            "parity": variant.parity,
            "flagged": variant.flagged,
        }
        self.meta["variants"][variant.name] = d

    def finish(self, zip_path: str | Path | None = None) -> Path:
        """Checksum every file under the root (``report/`` included) and write bundle.json."""
        files = {}
        for p in sorted(self.root.rglob("*")):
            if p.is_file() and p.name != BUNDLE_JSON:
                rel = p.relative_to(self.root).as_posix()
                files[rel] = {"sha256": sha256_file(p), "size": p.stat().st_size}
        self.meta["files"] = files
        (self.root / BUNDLE_JSON).write_text(json.dumps(self.meta, indent=2, default=_jsonable))
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


def _jsonable(o: Any) -> Any:
    """numpy scalars and arrays in metadata become plain JSON."""
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def reopen(root: str | Path) -> BundleWriter:
    """A writer over an existing bundle, to add reports or metrics and re-seal the checksums."""
    root = Path(root)
    meta = _read_meta(root)
    w = BundleWriter.__new__(BundleWriter)
    w.root = root
    w.meta = meta
    return w
