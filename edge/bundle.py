"""Model bundles: a directory (or one ``.zip``) of model variants plus ``bundle.json``.

The bundle is the contract between workstation and device: everything the runtime needs to
feed a model and read its answer (input shape, layout, colour order, normalization,
quantization, labels, thresholds, app settings) travels with the files, and every file is
pinned by size and sha256 so a truncated copy or a tampered model is refused before it runs.
Every path the bundle names is resolved and must stay inside it (symlinks included). A
``.zip`` is unpacked into a private folder that is removed when the process exits
(``edge.bundlezip``), within a size limit checked before anything is written.

>>> b = load_bundle("demo.bundle")                   # doctest: +SKIP
>>> b.variant("tflite_int8").file, b.spec.thresholds.for_variant("tflite_int8")  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .bundlezip import PREFIX, extract_zip, remove_extracted, unpack_limit_bytes
from .jsonenc import dumps
from .spec import (
    BACKENDS,
    MAX_JSON_BYTES,
    PRECISIONS,
    SCHEMA_VERSION,
    BundleError,
    BundleSpec,
    Variant,
    parse_json,
)

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
# Top-level files that sit beside bundle.json without a checksum entry: the detached
# signature covers bundle.json (and through it every checksum), so it cannot list itself.
UNLISTED = ("bundle.sig", "signature.json")
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
    source: Path | None = None  # the .zip it was unpacked from (``path`` is then a private folder)

    def close(self) -> None:
        """Remove the folder a zipped bundle was unpacked into (also done at process exit)."""
        if self.source is not None:
            remove_extracted(self.path)

    def __enter__(self) -> Bundle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

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
        """The path of a file of the bundle; one that resolves outside it is refused."""
        p = self.path / rel
        if not p.resolve().is_relative_to(self.path.resolve()):
            raise BundleError(f"{self.path}: '{rel}' points outside the bundle")
        return p

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


def _read(root: Path, where: str | None = None) -> tuple[dict[str, Any], BundleSpec]:
    """The parsed ``bundle.json`` of ``root`` and its validated spec. The file is size-capped
    and must itself lie inside ``root``; every failure is one ``BundleError`` line."""
    meta_path = root / BUNDLE_JSON
    where = where or str(meta_path)
    if not meta_path.is_file():
        raise BundleError(f"{where}: missing; is '{root}' a bundle?")
    if not meta_path.resolve().is_relative_to(root.resolve()):
        raise BundleError(f"{where}: points outside the bundle")
    try:
        size = meta_path.stat().st_size
        if size > MAX_JSON_BYTES:
            raise BundleError(f"{where}: {size} bytes is more than the {MAX_JSON_BYTES >> 20} MB a "
                              f"bundle.json may have")
        data = meta_path.read_bytes()
    except OSError as e:
        raise BundleError(f"{where}: cannot read ({e.strerror or e})") from None
    meta = parse_json(data, where)
    return meta, BundleSpec.from_json(meta, where)


def _read_meta(root: Path) -> dict[str, Any]:
    """The parsed ``bundle.json`` of ``root``, validated (``BundleSpec.from_json``)."""
    return _read(root)[0]


def _sha256_upto(path: Path, size: int) -> tuple[int, str]:
    """(bytes read, sha256) of at most ``size + 1`` bytes: a file that grows while it is read
    is caught as too large, and never read to its end."""
    h = hashlib.sha256()
    n = 0
    with open(path, "rb") as f:
        while n <= size and (chunk := f.read(min(1 << 20, size + 1 - n))):
            h.update(chunk)
            n += len(chunk)
    return n, h.hexdigest()


def verify_files(root: Path, meta: dict[str, Any], *, shown: str | None = None) -> list[dict[str, Any]]:
    """Check containment, size and sha256 of every listed file; raise on the first problem.

    ``shown``: how messages name the bundle (a zip's path instead of its private folder)."""
    base = root.resolve()
    shown = shown if shown is not None else f"{root}/"
    results = []
    for rel, info in meta["files"].items():
        p = root / rel
        if not p.resolve().is_relative_to(base):
            raise BundleError(f"{shown}{BUNDLE_JSON}: files['{rel}'] points outside the bundle")
        if not p.is_file():
            raise BundleError(f"{shown}{rel}: listed in bundle.json but missing")
        declared = info.get("size")
        size = p.stat().st_size
        if size == declared:
            size, digest = _sha256_upto(p, declared)
        if size != declared:
            raise BundleError(
                f"{shown}{rel}: size {size} bytes, bundle.json says {declared} "
                f"({'truncated' if size < declared else 'larger than declared'} or replaced)"
            )
        if digest != info.get("sha256"):
            raise BundleError(f"{shown}{rel}: sha256 mismatch (file was modified or tampered)")
        results.append({"file": rel, "size": size, "sha256": digest, "ok": True})
    return results


def load_bundle(path: str | Path, verify: bool = True,
                trusted_keys: list[str | Path] | tuple[str | Path, ...] | None = None, *,
                max_unpacked_mb: float | None = None) -> Bundle:
    """Load a bundle directory or ``.zip``; with ``verify`` every checksum is checked.

    Every path in bundle.json must resolve inside the bundle, checked or not. A ``.zip`` is
    unpacked into a private folder removed at exit (``Bundle.close()`` removes it sooner);
    ``max_unpacked_mb`` caps its unpacked size (None: ``$EDGEWISE_MAX_UNPACKED_MB``, else
    2048 MiB), checked from the zip's directory before anything is written.

    A signature (``bundle.sig``) is always checked, ``verify`` or not. ``trusted_keys``: public
    keys the bundle must be signed by (None: the process's ``--trusted-key`` /
    ``EDGEWISE_TRUSTED_KEYS``; empty: none required).
    """
    path = Path(path)
    if not path.exists():
        raise BundleError(f"{path}: no such bundle")
    if path.is_dir():
        return _load_dir(path, verify, trusted_keys)
    if path.name == BUNDLE_JSON:
        raise BundleError(f"{path}: give the bundle folder ({path.parent}), not its bundle.json")
    root = extract_zip(path, unpack_limit_bytes(max_unpacked_mb))
    try:
        shown = f"{path}:" if root.name.startswith(PREFIX) else f"{path}:{root.name}/"
        bundle = _load_dir(root, verify, trusted_keys, shown=shown)
    except BaseException:
        remove_extracted(root)
        raise
    bundle.source = path
    return bundle


def _load_dir(root: Path, verify: bool, trusted_keys: Any, *, shown: str | None = None) -> Bundle:
    """Load an unpacked bundle folder (``shown``: how messages name it)."""
    meta, spec = _read(root, None if shown is None else f"{shown}{BUNDLE_JSON}")
    if verify:
        verify_files(root, meta, shown=shown)
    from .signing import check_signature  # lazy: cryptography only when a signature or key is there

    check_signature(root, meta, trusted_keys, shown=shown)
    return Bundle(path=root, meta=meta, spec=spec)


def _spec(meta: dict[str, Any], where: str) -> BundleSpec:
    """The typed spec (every file it names is covered by a checksum entry: ``BundleSpec``)."""
    return BundleSpec.from_json(meta, where)


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
            rel = p.relative_to(self.root).as_posix()
            if p.is_file() and p.name != BUNDLE_JSON and rel not in UNLISTED:
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
