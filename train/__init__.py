"""edgewise.train: workstation-side training (TensorFlow/Keras), loaders and reports.

Modules import TensorFlow inside the functions that need it, so ``edgewise --help`` and the
loaders stay fast.
"""
