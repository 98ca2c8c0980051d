"""Runs on the device, in the venv a deploy just filled: load the bundle, run one inference.

``python -m edgewise.edge.device.smoke BUNDLE [--variant V]`` prints one JSON line; a deploy
switches ``current`` only after it succeeded. It imports the edge runtime only.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time

__all__ = ["smoke_main"]


def smoke_main(argv: list[str]) -> int:
    """Load the bundle (checksums again), run one zero input, print JSON; 1 on non-finite output."""
    import numpy as np

    from .. import __version__
    from ..backends import load_model
    from ..bundle import load_bundle
    from ..jsonenc import dumps

    p = argparse.ArgumentParser(prog="python -m edgewise.edge.device.smoke",
                                description="deploy smoke test: load a bundle and run one inference")
    p.add_argument("bundle")
    p.add_argument("--variant")
    a = p.parse_args(argv)
    b = load_bundle(a.bundle)
    v = b.variant(a.variant)
    model = load_model(b, v.name, threads=1)
    shape = [d if isinstance(d, int) and d > 0 else 1 for d in b.spec.input.shape]
    x = np.zeros(shape, np.float32)
    t0 = time.perf_counter()
    y = np.asarray(model.predict(x))
    ms = (time.perf_counter() - t0) * 1e3
    model.close()
    if not np.all(np.isfinite(y)):
        print(f"smoke test: {v.name} produced non-finite output", file=sys.stderr)
        return 1
    print(dumps({"ok": True, "bundle": b.name, "variant": v.name, "ms": round(ms, 2),
                      "edgewise": __version__, "python": sys.version.split()[0]}))
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    try:
        sys.exit(smoke_main(sys.argv[1:]))
    except (ValueError, RuntimeError, OSError) as e:
        print(f"smoke test: {e}", file=sys.stderr)
        sys.exit(1)
