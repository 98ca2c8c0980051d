"""Applications: each configures the shared pipeline's preprocess / infer / postprocess.

``classify`` (generic image classifier), ``vibration``, ``inspect`` and ``face``, each on the
``base.BundleApp``. ``edgewise run APP`` parses its flags into ``settings.RunSettings`` once and
hands them to ``run.run_app``, the one loop every application shares.
"""
