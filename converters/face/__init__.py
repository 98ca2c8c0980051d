"""``edgewise convert --task face-embedding``: wrap a pretrained face embedder into a face bundle.

- ``spec``: the input contract (size, colour, layout, normalisation, landmark template) from
  flags or YAML, completed from and checked against the model's input tensor;
- ``source``: the ONNX / TFLite / Keras file, adapted to NHWC crops, its float reference and
  the variants its format allows;
- ``calib``: the user's identities (``person/*.jpg``) as the crops the device makes;
- ``build``: calibrate the unknown thresholds, convert, check parity, seal the bundle;
- ``cli``: the command's flags.
"""

from __future__ import annotations

from .build import FaceConversion, convert_face_embedder
from .spec import FaceInput, FaceInputRequest

__all__ = ["FaceConversion", "FaceInput", "FaceInputRequest", "convert_face_embedder"]
