"""The first-boot script: the card's payload installed as ``edgewise deploy`` installs a release.

It runs as root (cloud-init ``runcmd`` on Trixie, ``edgewise-firstboot.service`` on Bookworm),
offline, and every step first looks whether it is already done, so a second run changes
nothing; once ``current`` points at another release (``edgewise deploy`` updated the device)
it does nothing at all:

1. copy ``release/`` into ``BASE/releases/.incoming-ID``, check ``MANIFEST.sha256`` there and
   rename it to ``releases/ID`` (deploy's layout, ``release.py``);
2. create the ``--system-site-packages`` venv and install the wheel with its dependencies from
   the payload's wheelhouse (``pip --no-index --find-links``; deploy's ``venv_recipe`` with the
   numpy pin the wheelhouse was resolved against), once per release;
3. switch ``current`` with deploy's ``switch_script``; hand ``BASE`` to the user;
4. install the unit (deploy's ``render_unit``) when it differs, enable it, start it when it is
   not running.

Every step is logged to the journal (``logger -t edgewise-firstboot``) and to stdout (which
cloud-init and systemd also send to the journal). ``EDGEWISE_UNIT_DIR`` and
``EDGEWISE_SYSTEMCTL`` replace ``/etc/systemd/system`` and ``systemctl`` where there is no
systemd (a test in an emulated root).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from ..release import switch_script
from ..systemd import unit_name
from ..venv import venv_recipe

__all__ = ["FirstBoot", "firstboot_sh", "TAG", "STAMP"]

TAG = "edgewise-firstboot"
STAMP = ".edgewise-release"  # in the venv: the release whose wheel it holds


@dataclass(frozen=True)
class FirstBoot:
    """What the script installs: the payload's release, for ``user`` under ``base``."""

    app: str
    release: str
    base: str
    user: str
    numpy_pin: str | None  # "numpy==X" the wheelhouse was resolved against, or None
    extras: str = "pi"
    no_deps: bool = False


def firstboot_sh(fb: FirstBoot) -> str:
    q = shlex.quote
    unit = unit_name(fb.app)
    recipe = venv_recipe('"$BASE/venv"', '"$BASE/releases/$RELEASE/wheel/"*.whl',
                         [fb.numpy_pin] if fb.numpy_pin else [], python="python3",
                         extras=fb.extras, no_deps=fb.no_deps)
    return f"""#!/bin/sh
# edgewise first boot (written by edgewise image): install the payload beside this script,
# offline. Safe to run again: each step is skipped when it is already done.
set -eu
PAYLOAD=$(cd "$(dirname "$0")" && pwd -P)
RELEASE={q(fb.release)}
UNIT={q(unit)}
OWNER={q(fb.user)}
BASE={q(fb.base)}
UNIT_DIR=${{EDGEWISE_UNIT_DIR:-/etc/systemd/system}}
SYSTEMCTL=${{EDGEWISE_SYSTEMCTL:-systemctl}}
log() {{ echo "{TAG}: $*"; logger -t {TAG} -- "$*" 2>/dev/null || true; }}
trap 'rc=$?; [ "$rc" = 0 ] || log "FAILED (exit $rc): run this script again, or see journalctl -t {TAG}"' EXIT
log "release $RELEASE of $UNIT into $BASE (payload $PAYLOAD)"
if ! id -u "$OWNER" >/dev/null 2>&1; then log "user $OWNER does not exist"; exit 1; fi
CUR=$(readlink "$BASE/current" 2>/dev/null || true)
if [ -n "$CUR" ] && [ "$CUR" != "releases/$RELEASE" ]; then
  log "current is $CUR, not this card's release: the device was updated since; nothing to do"
  exit 0
fi
mkdir -p "$BASE/releases"

# 1. the release, checked against its manifest where it lands
if [ -d "$BASE/releases/$RELEASE" ]; then
  log "1/4 release already installed"
else
  INC="$BASE/releases/.incoming-$RELEASE"
  rm -rf "$INC"
  cp -R "$PAYLOAD/release" "$INC"
  (cd "$INC" && sha256sum -c --quiet --strict MANIFEST.sha256)
  mv -T "$INC" "$BASE/releases/$RELEASE"
  log "1/4 release copied, every file's sha256 checked"
fi

# 2. the venv, from the payload's wheels only
if [ "$(cat "$BASE/venv/{STAMP}" 2>/dev/null || true)" = "$RELEASE" ]; then
  log "2/4 venv already holds this release's wheel"
else
  log "2/4 installing the wheel and its dependencies offline (a few minutes on a Pi)"
  export PIP_NO_INDEX=1 PIP_FIND_LINKS="$PAYLOAD/wheels" PIP_NO_CACHE_DIR=1
  (
{recipe.rstrip()}
  )
  echo "$RELEASE" >"$BASE/venv/{STAMP}"
  log "2/4 venv ready: $("$BASE/venv/bin/python" -m pip --version 2>/dev/null | cut -d' ' -f1-2)"
fi

# 3. current -> releases/ID (one rename), BASE belongs to the user
if [ "$(readlink "$BASE/current" 2>/dev/null || true)" = "releases/$RELEASE" ]; then
  log "3/4 current already points at $RELEASE"
else
  (
{switch_script('"$BASE"', '"releases/$RELEASE"')}
  ) >/dev/null
  log "3/4 current -> releases/$RELEASE"
fi
if [ "$(stat -c %U "$BASE")" != "$OWNER" ] || [ -n "$(find "$BASE" ! -user "$OWNER" -print -quit)" ]; then
  chown -R "$OWNER": "$BASE"
fi

# 4. the service
mkdir -p "$UNIT_DIR"
if cmp -s "$PAYLOAD/$UNIT" "$UNIT_DIR/$UNIT"; then
  log "4/4 unit $UNIT unchanged"
else
  cp "$PAYLOAD/$UNIT" "$UNIT_DIR/$UNIT"
  $SYSTEMCTL daemon-reload
  log "4/4 unit $UNIT installed"
fi
$SYSTEMCTL enable "$UNIT" >/dev/null 2>&1
if $SYSTEMCTL is-active "$UNIT" >/dev/null 2>&1; then
  log "$UNIT already running"
else
  $SYSTEMCTL start "$UNIT"
  log "$UNIT started"
fi
"""
