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
           "switch_script", "probe_script", "verify_script", "install_script", "smoke_script", "link_script",
           "prune_names", "unpack_script", "prune_script"]

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


def probe_script(remote_dir: str) -> str:
    """Create the release folder and print its absolute path, the login user and the machine
    (three lines): the first step of a deploy and of the fleet playbook's facts."""
    return (f'BASE={base_expr(remote_dir)}\nmkdir -p "$BASE/releases"\n'
            'cd "$BASE" && pwd -P && id -un && uname -m')


def unpack_script(base: str, release_id: str, tar: str = "-") -> str:
    """Unpack the release tar (``-``: stdin, as deploy streams it; else a file on the device, which
    is removed) into a fresh ``releases/.incoming-ID``."""
    inc = f"{base}/releases/.incoming-{shlex.quote(release_id)}"
    script = f"rm -rf {inc} && mkdir -p {inc} && tar -xf {tar} -C {inc}"
    return script if tar == "-" else f"{script} && rm -f {tar}"


def prune_script(base: str, names: list[str]) -> str:
    """Remove the named releases (``prune_names``)."""
    return " ".join(["cd", f"{base}/releases", "&&", "rm", "-rf", "--", *map(shlex.quote, names)])


def verify_script(base: str, release_id: str) -> str:
    """Check every file of ``releases/.incoming-ID`` against its manifest *on the device*, then
    rename it to ``releases/ID`` (``base``: a shell word)."""
    inc = f"{base}/releases/.incoming-{shlex.quote(release_id)}"
    return (f"cd {inc} && sha256sum -c --quiet --strict MANIFEST.sha256\n"
            f"mv -T {inc} {base}/releases/{shlex.quote(release_id)}")


def install_script(base: str, release: str, cfg: DeployConfig, pin: str | None) -> str:
    """Install ``release``'s wheel (``releases/ID``) into ``BASE/venv`` pinned to the device's numpy
    (``pin``: ``numpy==X`` from ``numpy_constraint``, or None), by ``venv_recipe``."""
    return venv_recipe(f"{base}/venv", f"{base}/{shlex.quote(release)}/wheel/*.whl", [pin] if pin else [],
                       python=cfg.python, pip_args=cfg.pip_args, extras=cfg.extras, no_deps=cfg.no_deps)


def smoke_script(base: str, release: str, variant: str | None, keys: bool) -> str:
    """The new venv loads ``release``'s bundle (checksums; with ``keys`` its signature against the
    release's trusted keys, as the service will) and runs one inference; prints one JSON line."""
    v = f" --variant {shlex.quote(variant)}" if variant else ""
    rq = f"{base}/{shlex.quote(release)}"
    env = f"EDGEWISE_TRUSTED_KEYS={rq}/{TRUSTED_KEYS_DIR} " if keys else ""
    return f"{env}{base}/venv/bin/python -m {SMOKE_MODULE} {rq}/bundle{v}"


def link_script(base: str, name: str, target: str | None) -> str:
    """Point ``BASE/name`` at ``target`` with one rename, or remove it (``target`` None or '')."""
    if not target:
        return f"rm -f {base}/{name}"
    return f"cd {base} && ln -sfn {shlex.quote(target)} .{name}.new && mv -T .{name}.new {name}"


def prune_names(listing: str, keep: int, protect: set[str]) -> list[str]:
    """The releases to remove from an ``ls -1 releases`` listing: all but the newest ``keep``,
    never one in ``protect`` (``releases/ID``) nor an ``.incoming-`` upload."""
    names = sorted(n for n in listing.split() if not n.startswith("."))
    return [n for n in names[:-keep] if f"releases/{n}" not in protect] if keep > 0 else []


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
        out = self.r.run("connect", probe_script(self.cfg.remote_dir))
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
        self.r.run("upload", unpack_script(self.q, rel.id), data=rel.tar_bytes())
        self.r.run("verify checksums", verify_script(self.q, rel.id))

    def install(self, release: str) -> None:
        """Create the venv once, then install the release's wheel into it, pinned to the
        device's own numpy (``venv_recipe``)."""
        c = self.cfg
        probe = self.r.run("probe numpy", f"{shlex.quote(c.python)} -c {shlex.quote(NUMPY_PROBE)} "
                                          "2>/dev/null || true")
        pin = numpy_constraint(probe)
        log.info("%s: %s", self.r.host.label, f"pip constraint {pin} (the device's numpy)" if pin
                 else "no system numpy on the device: no numpy constraint")
        self.r.run("install wheel", install_script(self.q, release, c, pin))

    def smoke(self, release: str, keys: bool = False) -> dict[str, Any]:
        """The new venv loads the release's bundle (checksums again; with ``keys`` its signature
        against the release's trusted keys, as the service will) and runs one inference."""
        out = self.r.run("smoke test", smoke_script(self.q, release, self.cfg.variant, keys))
        try:
            return json.loads(out.strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise DeployError(f"smoke test: unexpected output {last_line(out)!r}") from None

    def switch(self, release: str) -> str:
        """Point ``current`` at ``release`` with one rename; the old target becomes ``previous``."""
        out = self.r.run("switch current", switch_script(self.q, shlex.quote(release)))
        return out.strip()

    def set_link(self, name: str, target: str) -> None:
        self.r.run(f"set {name}", link_script(self.q, name, target))

    def clear_link(self, name: str) -> None:
        self.r.run(f"reset {name}", link_script(self.q, name, None))

    def prune(self, keep: int, protect: set[str]) -> None:
        """Remove all but the newest ``keep`` releases, never one in ``protect``."""
        out = self.r.run("list releases", f"ls -1 {self.q}/releases")
        old = prune_names(out, keep, protect)
        if old:
            self.r.run("prune", prune_script(self.q, old))
