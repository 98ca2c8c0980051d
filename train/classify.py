"""The foundation demo model: a tiny CNN on scikit-learn's bundled 8x8 digits (real data).

The digits (1,797 handwritten digits, UCI) ship inside scikit-learn, so this runs with no
download and no dataset folder. It exercises the whole path (train -> convert -> bench ->
run) in seconds and is the small real model the foundation tests train.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgewise.converters import ConversionSpec, build_bundle
from edgewise.converters.package import BuildResult
from edgewise.edge.drift import image_reference
from edgewise.edge.evaluate import Decider

from .keras_utils import EpochProgress, tf_setup

__all__ = ["load_digits_split", "build_model", "train_digits", "export_images", "train_main"]


def load_digits_split(seed: int = 0) -> dict[str, np.ndarray]:
    """Stratified 60/20/20 split of the digits, as (n, 8, 8, 1) float32 in [0, 1]."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[..., None]
    y = d.target.astype(np.int64)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.4, stratify=y, random_state=seed)
    xva, xte, yva, yte = train_test_split(xte, yte, test_size=0.5, stratify=yte, random_state=seed)
    return {"x_train": xtr, "y_train": ytr, "x_val": xva, "y_val": yva, "x_test": xte, "y_test": yte}


def build_model(keras: Any) -> Any:
    inp = keras.Input((8, 8, 1), name="image")
    h = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(inp)
    h = keras.layers.MaxPooling2D()(h)
    h = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    out = keras.layers.Dense(10, activation="softmax", name="probs")(h)
    return keras.Model(inp, out, name="digits_cnn")


def train_digits(
    out: str | Path,
    *,
    epochs: int = 40,
    seed: int = 0,
    variants: list[str] | None = None,
    quiet: bool = False,
) -> tuple[Any, BuildResult]:
    """Train, convert every variant, write the bundle; returns (keras model, build result)."""
    keras = tf_setup(seed)
    d = load_digits_split(seed)
    model = build_model(keras)
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    hist = model.fit(
        d["x_train"], d["y_train"], validation_data=(d["x_val"], d["y_val"]),
        epochs=epochs, batch_size=64, verbose=0,
        callbacks=[EpochProgress(epochs, quiet=quiet, desc="digits")],
    )
    acc = float((model.predict(d["x_test"], verbose=0).argmax(-1) == d["y_test"]).mean())
    spec = ConversionSpec(
        name="digits-cnn",
        task="classification",
        app="generic",
        input={"layout": "NHWC", "color": "gray", "normalization": {"scale": 1 / 16, "offset": 0}},
        output={"meaning": "class probabilities (softmax)", "kind": "probabilities"},
        labels=[str(i) for i in range(10)],
        config={"dataset": "scikit-learn digits (UCI, 8x8)", "split": "60/20/20", "seed": seed,
                # input drift reference (edge.drift): training digits as the PNGs export_images writes
                "drift": image_reference([np.clip(x[..., 0] * 16, 0, 255).astype(np.uint8)
                                          for x in d["x_train"]], channels=1)},
        metrics={
            "keras_test_accuracy": acc,
            "history": {k: [float(v) for v in vs] for k, vs in hist.history.items()},
        },
        decider=Decider(kind="argmax"),
    )
    result = build_bundle(
        model, out, spec, calib_x=d["x_train"], eval_x=d["x_test"], eval_y=d["y_test"],
        variants=variants, quiet=quiet,
    )
    return model, result


def export_images(x: np.ndarray, folder: str | Path, limit: int = 100) -> Path:
    """Write digits as PNG files (0-255 grey), so the edge loop can read them like a camera."""
    import cv2

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(x[:limit]):
        cv2.imwrite(str(folder / f"{i:04d}.png"), np.clip(img[..., 0] * 16, 0, 255).astype(np.uint8))
    return folder


def train_main(argv: list[str]) -> int:
    from edgewise.edge.cliargs import Parser, add_quiet, require

    p = Parser(
        prog="edgewise train classify",
        description="Train the small digits CNN (scikit-learn's bundled 8x8 digits, real data) "
        "and write a bundle with all six variants.",
        epilog="example:\n  edgewise train classify --out digits.bundle --epochs 40",
    )
    p.add_argument("--out", required=True, help="bundle directory")
    p.add_argument("--epochs", type=int, default=40, help="training epochs")
    p.add_argument("--seed", type=int, default=0, help="random seed (weights, shuffling)")
    add_quiet(p)
    a = p.parse_args(argv)
    if a.epochs < 1:
        p.error(f"--epochs {a.epochs}: must be at least 1")
    require("tensorflow", "keras", "tf2onnx", "sklearn", what="training")
    _, res = train_digits(a.out, epochs=a.epochs, seed=a.seed, quiet=a.quiet)
    print((res.path / "report" / "parity.md").read_text())
    return 0
