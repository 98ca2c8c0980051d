"""edgewise.edge: the runtime that goes on the Raspberry Pi.

Depends on numpy, OpenCV and one inference runtime (LiteRT or ONNX Runtime) only; it never
imports TensorFlow, and heavy imports happen inside the functions that need them.

>>> from edgewise.edge import load_bundle, load_model
>>> bundle = load_bundle("vibration.bundle")        # doctest: +SKIP
>>> model = load_model(bundle, "tflite_int8", threads=2)  # doctest: +SKIP
"""

from __future__ import annotations

from importlib import metadata

try:
    __version__ = metadata.version("edgewise")
except metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

from .backends import Model, load_model, open_model  # noqa: E402
from .bundle import Bundle, BundleError, load_bundle  # noqa: E402

__all__ = ["Bundle", "BundleError", "Model", "__version__", "load_bundle", "load_model", "open_model"]
