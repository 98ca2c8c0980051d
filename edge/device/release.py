"""Releases on a device: what is uploaded, how it is checked there, and the ``current`` switch.

Remote layout (``--remote-dir``, default ``~/edgewise``)::

    releases/20261123T061500Z-3f2a9c1d/{bundle/, wheel/edgewise-*.whl, MANIFEST.sha256, release.json,
                                        trusted-keys/NAME.pub (with --trusted-key)}
    current -> releases/...     previous -> releases/...     venv/     edgewise.env (optional)

The trusted public keys travel inside the release (checksummed with it), and the unit points
``EDGEWISE_TRUSTED_KEYS`` at ``current/trusted-keys``: a rollback brings back the keys that
release was deployed with, and a release without keys under that unit fails closed.

A release is uploaded into ``releases/.incoming-ID`` and renamed to ``releases/ID`` only after
every file's sha256 matched *there*; ``current`` moves with one rename (``ln -s`` to a
temporary name, then ``mv -T`` over it), so a device is never half-updated.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
import shlex
import socket
import tarfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..jsonenc import dumps
from .remote import DeployError, Remote, base_expr, last_line
from .venv import NUMPY_PROBE, numpy_constraint, venv_recipe

if TYPE_CHECKING:
    from .deploy import DeployConfig

__all__ = ["Release", "prepare_release", "ReleaseDir", "SMOKE_MODULE", "TRUSTED_KEYS_DIR", "key_names",
           "switch_script"]

log = logging.getLogger("edgewise.deploy")
# What the new venv runs to prove the release loads and infers (edge/device/smoke.py).
SMOKE_MODULE = "edgewise.edge.device.smoke"
# Inside a release: the public keys the device's loaders must find a bundle's signature from.
TRUSTED_KEYS_DIR = "trusted-keys"
_KEY_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")


@dataclass
class Release:
    """What goes to every host: the bundle directory, the wheel, a manifest, release.json."""

    id: str
    bundle_dir: Path
    wheel: Path
    manifest: str
    info: dict[str, Any]
    keys: dict[str, Path] = field(default_factory=dict)  # name on the device -> local .pub file

    def tar_bytes(self) -> bytes:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            tar.add(self.bundle_dir, arcname="bundle")
            tar.add(self.wheel, arcname=f"wheel/{self.wheel.name}")
            for name, path in self.keys.items():
                tar.add(path, arcname=f"{TRUSTED_KEYS_DIR}/{name}")
            for name, text in (("MANIFEST.sha256", self.manifest),
                               ("release.json", dumps(self.info, indent=2) + "\n")):
                data = text.encode()
                ti = tarfile.TarInfo(name)
                ti.size, ti.mtime, ti.mode = len(data), int(time.time()), 0o644
                tar.addfile(ti, io.BytesIO(data))
        return buf.getvalue()


def key_names(paths: list[str | Path]) -> dict[str, Path]:
    """The device-side file name of each trusted public key (``NAME.pub``), refusing in one line a
    file that is not an ed25519 public key (a private key never leaves the workstation) and two
    keys that would land on the same name."""
    from ..signing import load_public_key

    out: dict[str, Path] = {}
    for p in map(Path, paths):
        load_public_key(p)  # KeyFileError (one line) for a missing, private or non-ed25519 key
        name = p.name if p.name.endswith(".pub") else p.name + ".pub"
        if not _KEY_NAME.fullmatch(name):
            raise ValueError(f"--trusted-key {p}: file name {name!r} may hold only letters, digits, '.', "
                             "'_', '-'")
        if name in out:
            raise ValueError(f"--trusted-key {p}: another key is also named {name}")
        out[name] = p
    return out


def prepare_release(bundle: str | Path, wheel: Path, app: str, trusted_keys: list[str | Path] | None = None
                    ) -> Release:
    """Verify the bundle locally (a broken bundle never leaves the workstation) and pin files.

    With ``trusted_keys`` the bundle must also be signed by one of them here, before upload."""
    from ..bundle import load_bundle, sha256_file

    keys = key_names(list(trusted_keys or []))
    # checks every file's size + sha256 (and the signature against the keys), extracts a .zip
    b = load_bundle(bundle, trusted_keys=list(keys.values()) or None)
    lines = []
    for p in sorted(q for q in b.path.rglob("*") if q.is_file() and "__pycache__" not in q.parts):
        lines.append(f"{sha256_file(p)}  bundle/{p.relative_to(b.path).as_posix()}")
    lines.append(f"{sha256_file(wheel)}  wheel/{wheel.name}")
    lines += [f"{sha256_file(p)}  {TRUSTED_KEYS_DIR}/{name}" for name, p in keys.items()]
    digest = hashlib.sha256("\n".join(lines).encode()).hexdigest()
    rid = f"{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}-{digest[:8]}"
    info = {
        "release": rid, "app": app, "bundle": b.name, "bundle_created": b.spec.created,
        "wheel": wheel.name, "deployed_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "deployed_from": socket.gethostname(), "trusted_keys": sorted(keys),
    }
    return Release(rid, b.path, wheel, "\n".join(lines) + "\n", info, keys)


def switch_script(base: str, release: str) -> str:
    """The shell text that points ``BASE/current`` at ``release`` with one rename, keeps the old
    target as ``previous`` and prints it. ``base`` and ``release`` are shell words (already quoted);
    deploy runs it over SSH and the first-boot script of a flashed card runs it locally."""
    return (f"cd {base}\nold=$(readlink current || true)\n"
            f"ln -sfn {release} .current.new && mv -T .current.new current\n"
            f'if [ -n "$old" ] && [ "$old" != {release} ]; then '
            'ln -sfn "$old" .previous.new && mv -T .previous.new previous; fi\necho "$old"')


class ReleaseDir:
    """The release folders of one device; every method is one remote round trip (or a few)."""

    def __init__(self, remote: Remote, cfg: DeployConfig) -> None:
        self.r, self.cfg = remote, cfg
        self.base = ""
        self.user = ""
        self.machine = ""
        self.q = ""

    def probe(self) -> None:
        """Connect, create the release folder, learn its absolute path and the login user."""
        out = self.r.run("connect", f'BASE={base_expr(self.cfg.remote_dir)}\nmkdir -p "$BASE/releases"\n'
                                    'cd "$BASE" && pwd -P && id -un && uname -m')
        self.base, self.user, self.machine = (out.strip().splitlines() + ["", "", ""])[:3]
        if not self.base.startswith("/"):
            raise DeployError(f"connect: unexpected reply {out.strip()!r}")
        self.q = shlex.quote(self.base)

    def link(self, name: str) -> str:
        return self.r.run(f"read {name}", f"readlink {self.q}/{name} || true").strip()

    def has_keys(self, release: str) -> bool:
        """Whether ``release`` (``releases/ID``) was deployed with trusted keys."""
        if not release:
            return False
        d = f"{self.q}/{shlex.quote(release)}/{TRUSTED_KEYS_DIR}"
        return self.r.run("read trusted keys", f"test -d {d} && echo yes || true").strip() == "yes"

    def keys_dir(self) -> str:
        """The value of ``EDGEWISE_TRUSTED_KEYS`` in the unit (a ':'-separated list, so none in it)."""
        if ":" in self.base:
            raise DeployError(f"trusted keys: the release folder {self.base} holds ':', which "
                              "EDGEWISE_TRUSTED_KEYS reads as a separator")
        return f"{self.base}/current/{TRUSTED_KEYS_DIR}"

    def upload(self, rel: Release) -> None:
        inc = f"{self.q}/releases/.incoming-{rel.id}"
        self.r.run("upload", f"rm -rf {inc} && mkdir -p {inc} && tar -xf - -C {inc}", data=rel.tar_bytes())
        self.r.run("verify checksums",
                   f"cd {inc} && sha256sum -c --quiet --strict MANIFEST.sha256\n"
                   f"mv -T {inc} {self.q}/releases/{rel.id}")

    def install(self, release: str) -> None:
        """Create the venv once, then install the release's wheel into it, pinned to the
        device's own numpy (``venv_recipe``)."""
        c = self.cfg
        probe = self.r.run("probe numpy", f"{shlex.quote(c.python)} -c {shlex.quote(NUMPY_PROBE)} "
                                          "2>/dev/null || true")
        pin = numpy_constraint(probe)
        log.info("%s: %s", self.r.host.label, f"pip constraint {pin} (the device's numpy)" if pin
                 else "no system numpy on the device: no numpy constraint")
        self.r.run("install wheel", venv_recipe(
            f"{self.q}/venv", f"{self.q}/{shlex.quote(release)}/wheel/*.whl", [pin] if pin else [],
            python=c.python,
            pip_args=c.pip_args, extras=c.extras, no_deps=c.no_deps))

    def smoke(self, release: str, keys: bool = False) -> dict[str, Any]:
        """The new venv loads the release's bundle (checksums again; with ``keys`` its signature
        against the release's trusted keys, as the service will) and runs one inference."""
        v = f" --variant {shlex.quote(self.cfg.variant)}" if self.cfg.variant else ""
        rq = f"{self.q}/{shlex.quote(release)}"
        env = f"EDGEWISE_TRUSTED_KEYS={rq}/{TRUSTED_KEYS_DIR} " if keys else ""
        out = self.r.run("smoke test", f"{env}{self.q}/venv/bin/python -m {SMOKE_MODULE} {rq}/bundle{v}")
        try:
            return json.loads(out.strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise DeployError(f"smoke test: unexpected output {last_line(out)!r}") from None

    def switch(self, release: str) -> str:
        """Point ``current`` at ``release`` with one rename; the old target becomes ``previous``."""
        out = self.r.run("switch current", switch_script(self.q, shlex.quote(release)))
        return out.strip()

    def set_link(self, name: str, target: str) -> None:
        self.r.run(f"set {name}", f"cd {self.q} && ln -sfn {shlex.quote(target)} .{name}.new && "
                   f"mv -T .{name}.new {name}")

    def clear_link(self, name: str) -> None:
        self.r.run(f"reset {name}", f"rm -f {self.q}/{name}")

    def prune(self, keep: int, protect: set[str]) -> None:
        """Remove all but the newest ``keep`` releases, never one in ``protect``."""
        out = self.r.run("list releases", f"ls -1 {self.q}/releases")
        names = sorted(n for n in out.split() if not n.startswith("."))
        old = [n for n in names[:-keep] if f"releases/{n}" not in protect] if keep > 0 else []
        if old:
            self.r.run("prune", " ".join(["cd", f"{self.q}/releases", "&&", "rm", "-rf", "--",
                                          *map(shlex.quote, old)]))
