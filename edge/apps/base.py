"""``BundleApp``: what every application shares: its bundle, variant, model, threshold, options.

An application subclasses it and writes the three pipeline stages; everything that gives the
model its meaning (normalization, labels, thresholds, settings) is read from ``self.spec``,
the bundle's typed ``bundle.json``, and nowhere else. Options an operator may change (a
region of interest, a debounce count) are a small dataclass whose fields become the
command's flags, so the flag, its default and its help are written once.

>>> class Echo(BundleApp):
...     name = "echo"
...     def postprocess(self, frame, y):
...         return Event(self.name, "echo", answer=float(y.max()))
>>> with Echo(load_bundle("digits.bundle")) as app:              # doctest: +SKIP
...     Runner(app).run(source)
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from typing import Any, ClassVar

from ..backends import Model, load_model
from ..bundle import Bundle
from ..event import Event
from ..pipeline import Frame
from ..spec import BundleError, BundleSpec

__all__ = ["BundleApp", "Options", "add_option_flags", "options_from", "check_app", "Event"]


def check_app(bundle: Bundle, *apps: str) -> None:
    """Refuse, in one line, a bundle made for another application (a digits bundle given to
    ``run face`` would otherwise fail deep inside, on its first frame)."""
    if apps and bundle.spec.app not in apps:
        wanted = " or ".join(f"'{a}'" for a in apps)
        raise BundleError(f"{bundle.path}: made for the '{bundle.spec.app}' application, not {wanted}")


@dataclasses.dataclass(frozen=True)
class Options:
    """An application's operator settings; subclass with fields (``metadata={"help": ...}``)."""


class BundleApp:
    """Base of every application (see the module docstring).

    ``threshold``: an explicit override, else the bundle's ``thresholds.for_variant(variant)``
    when the app sets ``uses_threshold`` (a threshold-free app leaves it ``None``). ``model``:
    an already open model (tests, benchmarks), else the variant is loaded with ``threads``.
    """

    name: ClassVar[str] = "app"
    bundle_apps: ClassVar[tuple[str, ...]] = ()  # the bundle.json "app" values this app runs (any when empty)
    uses_threshold: ClassVar[bool] = False
    Options: ClassVar[type[Options]] = Options

    def __init__(
        self,
        bundle: Bundle,
        variant: str | None = None,
        threads: int | None = None,
        *,
        threshold: float | None = None,
        options: Options | None = None,
        model: Model | None = None,
        **option_values: Any,
    ) -> None:
        """``option_values``: the option fields as keywords (``App(b, roi="0,0,64,64")``), for
        callers in code; an unknown name is a ``TypeError``."""
        check_app(bundle, *self.bundle_apps)
        self.bundle = bundle
        self.spec: BundleSpec = bundle.spec
        self.variant = bundle.variant(variant).name
        opts = options if options is not None else type(self).Options()
        if not isinstance(opts, type(self).Options):
            raise TypeError(f"options must be {type(self).__name__}.Options, got {type(opts).__name__}")
        self.options = dataclasses.replace(opts, **option_values) if option_values else opts
        self.model: Model | None = None
        try:
            # everything else the app reads from the spec, before the model loads: a bad bundle
            # fails fast and leaves nothing open
            self.configure()
            if threshold is not None:
                self.threshold: float | None = float(threshold)
            elif self.uses_threshold:
                self.threshold = self.spec.thresholds.for_variant(self.variant)
            else:
                self.threshold = None
            self.model = model if model is not None else load_model(bundle, self.variant, threads=threads)
            self.ready()
        except BaseException:
            self.close()
            raise

    def configure(self) -> None:
        """Read the app's settings from ``self.spec`` and ``self.options`` (before the model loads)."""

    def ready(self) -> None:
        """Finish set-up that needs the threshold or the model (after both are known)."""

    # -- the pipeline stages (``preprocess`` and ``infer`` have common defaults) --------------
    def preprocess(self, frame: Frame) -> Any:
        """Raw frame -> model input, normalized as the bundle says."""
        return self.spec.input.normalization.apply(frame.data)[None]

    def infer(self, x: Any) -> Any:
        """One sample's output (the batch of one unwrapped)."""
        return self.model.predict(x)[0]

    def postprocess(self, frame: Frame, y: Any) -> Event | None:
        raise NotImplementedError(f"{type(self).__name__} must turn model outputs into an Event")

    # -- lifetime -------------------------------------------------------------------------------
    def close(self) -> None:
        """Release the model (interpreter, session); the app is unusable afterwards."""
        close = getattr(getattr(self, "model", None), "close", None)
        if callable(close):
            close()

    def __enter__(self) -> BundleApp:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def add_option_flags(parser: argparse.ArgumentParser, options: type[Options]) -> None:
    """One ``--flag`` per field of ``options`` (``roi_size`` -> ``--roi-size``), typed and with
    the field's default and ``help``; a ``bool`` field is an on/off switch."""
    hints = typing.get_type_hints(options)
    for f in dataclasses.fields(options):
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not dataclasses.MISSING else None
        help_ = f.metadata.get("help", "")
        typ = _scalar(hints[f.name])
        if typ is bool:
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=default,
                                help=help_)
        else:
            parser.add_argument(flag, dest=f.name, type=typ, default=default, help=help_,
                                choices=f.metadata.get("choices"), metavar=f.metadata.get("metavar"))


def options_from(args: argparse.Namespace, options: type[Options]) -> Options:
    """The typed options parsed by ``add_option_flags`` (the namespace stops here)."""
    return options(**{f.name: getattr(args, f.name) for f in dataclasses.fields(options)})


def _scalar(t: Any) -> type:
    """``int | None`` -> ``int``: the type argparse converts a flag's text with."""
    args = [a for a in typing.get_args(t) if a is not type(None)]
    t = args[0] if args else t
    if t not in (int, float, str, bool):
        raise TypeError(f"option type {t!r} has no flag form (use int, float, str or bool)")
    return t
