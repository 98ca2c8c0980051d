"""``InspectApp``: PASS/FAIL per part, the inspection application the runner drives.

preprocess tiles the part (``tiling``), infer scores every tile (``scoring``), postprocess
compares the part's score with the bundle's threshold and, for a FAIL, pulses the reject
gate (``reject``) and saves an annotated image (``overlay``). Everything that decides what
a score means (tiling, memory bank, threshold, logit or distance) is read from the bundle's
spec; the operator options only say where to look, what to keep and how to signal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ...bundle import Bundle
from ...event import Event
from ...pipeline import Frame
from ..base import BundleApp, Options
from .overlay import overlay
from .reject import open_reject_pin
from .scoring import NearestGood, image_score, score_tiles, sigmoid
from .tiling import TileConfig, parse_roi, prepare_part

__all__ = ["InspectApp", "InspectOptions"]

Part = tuple[np.ndarray, np.ndarray, list[tuple[int, int]]]  # grey image, tiles or scores, positions


@dataclass(frozen=True)
class InspectOptions(Options):
    """Operator settings of ``edgewise run inspect`` (each field is the flag of the same name).

    Checked when built, so a bad value is refused before a model is loaded; the messages name
    the flag because that is where an operator fixes it.
    """

    roi: str | None = field(default=None, metadata={"help": "region of interest x,y,w,h in source pixels",
                                                    "metavar": "X,Y,W,H"})
    save_fails: str | Path | None = field(default=None,
                                          metadata={"help": "folder for annotated images of FAIL parts"})
    gpio_pin: int | None = field(default=None,
                                 metadata={"help": "BCM pin pulsed once per FAIL part (gpiozero)"})
    pulse: float = field(default=0.2, metadata={"help": "reject pulse length in seconds"})

    def __post_init__(self) -> None:
        parse_roi(self.roi)
        if self.pulse <= 0:
            raise ValueError(f"--pulse {self.pulse}: must be positive (seconds)")

    @property
    def roi_box(self) -> tuple[int, int, int, int] | None:
        """The region of interest as (x, y, w, h), or None for the whole image."""
        return parse_roi(self.roi)


class InspectApp(BundleApp):
    """PASS/FAIL per part: tiles -> model -> image score (max or top-k mean of the tile
    scores) vs the bundle's threshold for the variant.

    ``options`` (``InspectOptions``) or, for a caller in code, the same names as keywords
    (``InspectApp(bundle, save_fails="fails/")``). ``reject`` is any object with
    ``blink(on_time, off_time, n, background)`` (a gpiozero ``DigitalOutputDevice``) pulsed
    once per FAIL part; without it, ``options.gpio_pin`` opens one. The app owns the gate and
    closes it with the model.
    """

    name = "inspect"
    bundle_apps = ("inspect",)
    uses_threshold = True
    Options = InspectOptions

    def __init__(self, bundle: Bundle, *args: Any, reject: Any = None, **kwargs: Any) -> None:
        # the gate first: a pin that cannot be driven is reported before the bundle is read
        opts = kwargs.get("options")
        pin = kwargs.get("gpio_pin", getattr(opts, "gpio_pin", None))
        self.reject = reject if reject is not None or pin is None else open_reject_pin(pin)
        super().__init__(bundle, *args, **kwargs)

    def configure(self) -> None:
        opts = self.options
        assert isinstance(opts, InspectOptions)
        self.cfg = TileConfig.from_config(self.spec.config, where=str(self.bundle.path))
        self.head = NearestGood.from_bundle(self.bundle, self.variant)
        self.roi = opts.roi_box
        self.logits = self.spec.output.kind == "logit"
        self.pulse_s = opts.pulse
        self.save_fails = Path(opts.save_fails) if opts.save_fails else None
        if self.save_fails:
            self.save_fails.mkdir(parents=True, exist_ok=True)
        self.fails = 0
        self.operating_point = self.spec.thresholds.operating_point

    def operating_point_line(self) -> str | None:
        """The recall the bundle's threshold guarantees and what it costs, as stored by training
        (one line for the operator), or None for a bundle without one. Says so when this run's
        threshold is not the one the figures belong to."""
        op = self.operating_point
        if op is None:
            return None
        src = f"{op.source}, {op.folds} folds" if op.folds else op.source
        prec = "-" if op.precision is None else f"{op.precision:.3f}"
        line = (f"inspect: operating point ({src}, {op.variant}): threshold {op.threshold:.4f} caught "
                f"{op.caught}/{op.defects} defects, recall {op.recall:.3f}, {op.confidence:.0%} lower bound "
                f"{op.recall_lower:.3f} (target {op.min_recall:g} {'met' if op.reached else 'NOT met'}); "
                f"costs precision {prec}, false rejects {op.false_reject_rate:.3f} of "
                f"{op.good} good parts")
        thr = self.threshold
        if thr is not None and abs(thr - op.threshold) > 1e-9 * max(1.0, abs(op.threshold)):
            line += f"; this run decides at {thr:.4f}, so the bound does not apply to it"
        return line

    def preprocess(self, frame: Frame) -> Part:
        return prepare_part(frame.data, self.cfg, self.roi)

    def infer(self, x: Part) -> Part:
        gray, tiles, pos = x
        return gray, score_tiles(self.model, tiles, head=self.head), pos

    def postprocess(self, frame: Frame, y: Part) -> Event:
        gray, scores, pos = y
        score = image_score(scores, self.cfg.top_k)
        worst = int(np.argmax(scores))
        thr = float(self.threshold)  # type: ignore[arg-type]  # uses_threshold: never None here
        fail = score >= thr
        extra: dict[str, Any] = {
            **({"probability": round(float(sigmoid(score)), 5)} if self.logits else {}),
            "threshold": round(thr, 5),
            "tiles": len(pos),
            "worst_tile": self._worst_tile(scores, pos),  # the tile that decided (top_k 1) or led
            "worst_tile_score": round(float(scores[worst]), 5),
            "variant": self.variant,
        }
        if fail:
            self.fails += 1
            if self.reject is not None:
                self.reject.blink(on_time=self.pulse_s, off_time=0.0, n=1, background=True)
                extra["reject_signal"] = True
            if self.save_fails:
                extra["saved"] = str(self._save(frame, gray, scores, pos, score))
        return Event(app=self.name, kind="part", answer="FAIL" if fail else "PASS", score=round(score, 5),
                     extra=extra, path=frame.meta.get("path"))

    def _worst_tile(self, scores: np.ndarray, pos: list[tuple[int, int]]) -> list[int]:
        """The highest-scoring tile as x, y, w, h in the source image's pixels: where to look
        on the part (tiles live in scaled, cropped pixels)."""
        ty, tx = pos[int(np.argmax(scores))]
        inv = 1.0 / self.cfg.scale
        ox, oy = (self.roi[0], self.roi[1]) if self.roi else (0, 0)
        side = round(self.cfg.tile * inv)
        return [round(ox + tx * inv), round(oy + ty * inv), side, side]

    def _save(
        self, frame: Frame, gray: np.ndarray, scores: np.ndarray, pos: list[tuple[int, int]], score: float
    ) -> Path:
        """The annotated FAIL image (heat map, failing tiles boxed), named after the frame."""
        import cv2

        stem = Path(frame.meta["path"]).stem if frame.meta.get("path") else "frame"
        path = Path(self.save_fails or ".") / f"{frame.index:06d}_{stem}_FAIL.png"
        label = f"FAIL {score:.3f} >= thr {float(self.threshold or 0.0):.3f}"
        img = overlay(gray, scores, pos, self.cfg.tile, self.threshold, label, logits=self.logits)
        if not cv2.imwrite(str(path), img):
            raise OSError(f"{path}: could not write the annotated FAIL image")
        return path

    def close(self) -> None:
        super().close()
        if getattr(self, "reject", None) is not None:
            self.reject.close()
