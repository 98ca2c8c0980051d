"""edgewise.converters: Keras -> TFLite / ONNX variants, parity checks, bundle packing.

Workstation side (imports TensorFlow lazily, inside the functions that convert).

>>> from edgewise.converters import ConversionSpec, build_bundle
>>> spec = ConversionSpec(name="digits", task="classification", app="generic")  # doctest: +SKIP
>>> build_bundle(keras_model, "digits.bundle", spec, calib_x=x[:200], eval_x=xv, eval_y=yv)  # doctest: +SKIP
"""

from .package import ALL_VARIANTS, ConversionSpec, build_bundle

__all__ = ["ALL_VARIANTS", "ConversionSpec", "build_bundle"]
