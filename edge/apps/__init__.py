"""Applications: each configures the shared pipeline's preprocess / infer / postprocess.

``classify`` (generic image classifier), ``vibration``, ``inspect`` and ``face``. Shared
command-line plumbing for ``edgewise run APP`` lives in ``common``.
"""
