"""MQTT sink: events to ``edgewise/<device>/<app>/events`` at QoS 1, nothing lost offline.

(The topics and Home Assistant configs are ``mqtt_topics``; this module is the sink's one state
machine, outbox, sender thread and connection, kept together because they share its lock.)

Every event is first committed to a small SQLite outbox and only deleted once the broker has
acknowledged it (PUBACK). While the broker is unreachable the loop keeps running and events
pile up on disk; on reconnect they are sent oldest first. Because the outbox survives a
restart, events of a run that ended while offline (or was killed) are sent by the next run
using the same buffer file. Each payload carries ``seq`` (the outbox row id, never reused) so a
consumer can drop the duplicates that QoS 1 ("at least once") allows and see any gap.

The device's state is the retained ``edgewise/<device>/status``: ``online`` once connected,
``offline`` on a clean exit and, through MQTT's last will, when the process dies or the link
drops without a goodbye (the broker publishes it). With ``ha_discovery`` the sink also
publishes retained Home Assistant discovery configs (``homeassistant/...``: a sensor of the last
event and, for applications that decide an alarm or a FAIL, a problem binary sensor), both
available while the status topic says ``online``, so the device appears in Home Assistant.

Faults do not stop it. The sender thread catches every error (a full disk while deleting
acknowledged rows, a broken link) and retries with exponential backoff, capped, then drains
the outbox once space or the broker is back. A run that starts with the broker away or the
disk (nearly) full starts anyway, with a warning. Broker trouble is logged when it happens:
once when the link is lost or a connection fails, then at most once a minute while it lasts,
and once when it is back. An outbox path SQLite cannot use is refused at construction
(``OutboxPathError``), before anything runs.

>>> sink = MqttSink("broker.local", device="pi-line3", app="inspect")   # doctest: +SKIP
>>> sink.write(Event("inspect", "part", answer="FAIL", score=0.93)); sink.close()  # doctest: +SKIP
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .event import Event
from .jsonenc import dumps
from .mqtt_topics import OFFLINE, ONLINE, ha_discovery_configs, parse_broker, status_topic, topic_for
from .sinks import SinkCounts, WriteHealth, error_text, is_space_error, wire

__all__ = [
    "MqttSink", "OutboxPathError", "check_outbox_path", "parse_broker", "topic_for", "default_buffer_path",
    "status_topic", "ha_discovery_configs", "ONLINE", "OFFLINE",
]

log = logging.getLogger("edgewise.mqtt")


class OutboxPathError(ValueError):
    """The outbox file cannot be used (a folder, no permission, a folder that cannot be made)."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = path, reason


def default_buffer_path(device: str, app: str) -> Path:
    """``$XDG_STATE_HOME/edgewise/mqtt-<device>-<app>.db`` (``~/.local/state`` by default)."""
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "edgewise" / f"mqtt-{device}-{app}.db"


def check_outbox_path(path: str | Path) -> Path:
    """``path`` if SQLite can keep an outbox there (its folder made if missing), else ``OutboxPathError``.

    SQLite also creates ``<file>-wal`` and ``<file>-shm`` beside the file, so the folder must be
    writable, not only the file.
    """
    p = Path(path).expanduser()
    if p.is_dir():
        raise OutboxPathError(p, "is a directory")
    if p.exists() and not p.is_file():
        raise OutboxPathError(p, "is not a regular file")
    parent = p.parent
    for up in (parent, *parent.parents):  # the nearest existing ancestor must be a folder
        if up.exists():
            if not up.is_dir():
                raise OutboxPathError(p, f"{up} is not a folder")
            break
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutboxPathError(p, f"cannot create its folder: {error_text(e)}") from None
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutboxPathError(p, f"folder {parent} is not writable")
    if p.exists() and not os.access(p, os.R_OK | os.W_OK):
        raise OutboxPathError(p, "not readable and writable")
    return p


def _guarded(fn: Callable[..., None]) -> Callable[..., None]:
    """A paho callback that cannot raise: an exception there would end paho's reconnect thread."""

    @functools.wraps(fn)
    def call(*args: Any, **kw: Any) -> None:
        try:
            fn(*args, **kw)
        except Exception:  # noqa: BLE001 - logged; the network thread must live on
            log.exception("MQTT callback %s failed", fn.__name__)

    return call


class MqttSink:
    """Publishes events at QoS 1 through a durable SQLite outbox (see the module docstring).

    ``write`` never touches the network: it commits the event to the outbox and wakes the
    sender thread, so a slow or absent broker never slows the camera loop.
    """

    name = "mqtt"
    BACKOFF = (0.5, 30.0)  # sender retry delay after an error: first, cap (doubles in between)
    LOG_EVERY = 60.0  # while the broker stays away, remind at most this often (seconds)
    LOW_SPACE = 8 << 20  # warn at start when the outbox's disk has less free space than this

    def __init__(
        self,
        host: str,
        port: int = 1883,
        *,
        device: str | None = None,
        app: str = "app",
        buffer_path: str | Path | None = None,
        client_id: str | None = None,
        keepalive: int = 30,
        window: int = 32,
        username: str | None = None,
        password: str | None = None,
        close_timeout: float = 10.0,
        ha_discovery: bool = False,
    ) -> None:
        """``ha_discovery``: also publish retained Home Assistant discovery configs on connect."""
        try:
            import paho.mqtt.client as mqtt
        except ImportError:
            raise ImportError(
                "MQTT needs paho-mqtt>=2: pip install 'edgewise[mqtt]' (or apt install python3-paho-mqtt)"
            ) from None
        self.device = device or socket.gethostname().split(".")[0]
        self.app = app
        self.topic = topic_for(self.device, app)
        self.status_topic = status_topic(self.device)
        self.ha_discovery = ha_discovery
        self.host, self.port = host, int(port)
        self.window = max(1, int(window))
        self.close_timeout = close_timeout
        self.buffer_path = check_outbox_path(buffer_path or default_buffer_path(self.device, app))

        self._lock = threading.Lock()  # guards the db and the bookkeeping below
        self._wake = threading.Condition(self._lock)
        self._outbox_health = WriteHealth(f"MQTT outbox {self.buffer_path}", log)
        self._sender_health = WriteHealth(f"MQTT sender (outbox {self.buffer_path})", log)
        self._last_sent = 0  # highest outbox id handed to the client
        self._mid_to_id: dict[int, int] = {}
        self._early: set[int] = set()  # PUBACKs that arrived before publish() returned
        self._own: set[int] = set()  # message ids of status and discovery messages (not outbox rows)
        self._acked: list[int] = []
        self._connected = False
        self._closing = False
        self._stop = False
        self.published = 0  # acknowledged by the broker during this run
        self.failed = 0  # could not be put in the outbox
        self._pending = 0  # rows in the outbox (kept in step with inserts and deletes)
        self._down_since: float | None = None  # broker unreachable since (monotonic)
        self._down_logged = 0.0
        self._attempts = 0
        self._ready = False
        try:
            self._db = sqlite3.connect(str(self.buffer_path), check_same_thread=False)
            self._setup()
        except sqlite3.Error as e:
            if not is_space_error(e):  # e.g. "file is not a database"
                raise OutboxPathError(self.buffer_path, error_text(e)) from None
            self._outbox_health.failed(e, "starting anyway; events are counted as failed")
        self._warn_low_space()

        cid = client_id or f"edgewise-{self.device}-{app}"
        self._client = mqtt.Client(
            callback_api_version=mqtt.CallbackAPIVersion.VERSION2, client_id=cid, clean_session=True
        )
        if username:
            self._client.username_pw_set(username, password)
        self._client.reconnect_delay_set(min_delay=1, max_delay=10)
        self._client.max_inflight_messages_set(self.window)
        self._client.on_connect = _guarded(self._on_connect)
        self._client.on_connect_fail = _guarded(self._on_connect_fail)
        self._client.on_disconnect = _guarded(self._on_disconnect)
        self._client.on_publish = _guarded(self._on_publish)
        # The broker says "offline" for us when we vanish without a DISCONNECT (kill -9, power cut).
        self._client.will_set(self.status_topic, OFFLINE, qos=1, retain=True)
        self._client.connect_async(self.host, self.port, keepalive=keepalive)
        self._client.loop_start()  # paho's thread connects and reconnects on its own
        self._sender = threading.Thread(target=self._send_loop, name="mqtt-sender", daemon=True)
        self._sender.start()

    def _setup(self) -> None:
        """Create the outbox table (needs a little disk space on a new file)."""
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # WAL: a commit survives a killed process
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, "
            "topic TEXT NOT NULL, json TEXT NOT NULL, ts REAL NOT NULL)"
        )
        self._db.commit()
        self._pending = int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])
        self._ready = True
        if self._pending:
            log.info("MQTT outbox %s holds %d unsent events from before; sending first",
                     self.buffer_path, self._pending)

    def _warn_low_space(self) -> None:
        try:
            free = shutil.disk_usage(self.buffer_path.parent).free
        except OSError:
            return
        if free < self.LOW_SPACE:
            log.warning("MQTT outbox %s: only %.1f MB free on its disk; events that do not fit are "
                        "counted as failed until space is freed", self.buffer_path, free / 1e6)

    # -- paho callbacks (network thread) -------------------------------------------------
    def _on_connect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any = None) -> None:
        if getattr(rc, "is_failure", False):
            self._broker_down(f"refused the connection: {rc}")
            return
        with self._wake:
            self._connected = True
            down, self._down_since, self._attempts = self._down_since, None, 0
            pending = self._pending
            self._wake.notify_all()
        self._announce(client)
        if down is not None:
            log.warning("MQTT broker %s:%d reachable again after %.0f s; sending %d buffered events",
                        self.host, self.port, time.monotonic() - down, pending)
        else:
            log.info("MQTT connected to %s:%d, topic %s", self.host, self.port, self.topic)

    def _announce(self, client: Any) -> None:
        """On every (re)connect: the retained status ``online`` and, when asked, the discovery configs.
        Not counted as events; paho sends them before anything the sender publishes after."""
        if self.ha_discovery:
            from . import __version__

            for topic, config in ha_discovery_configs(self.device, self.app, __version__).items():
                self._publish_own(client, topic, dumps(config))
        self._publish_own(client, self.status_topic, ONLINE)

    def _publish_own(self, client: Any, topic: str, payload: str) -> Any:
        """Publish a retained QoS 1 message of the sink itself; its PUBACK must never be taken for
        an outbox row's."""
        info = client.publish(topic, payload, qos=1, retain=True)
        with self._wake:
            if info.mid in self._early:  # acknowledged before publish() returned
                self._early.discard(info.mid)
            else:
                self._own.add(info.mid)
        return info

    def _on_connect_fail(self, client: Any, userdata: Any) -> None:
        self._broker_down("unreachable")

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any = None) -> None:
        with self._wake:
            was, self._connected = self._connected, False
        if was and not self._closing:
            self._broker_down(f"connection lost ({rc})")

    def _broker_down(self, why: str) -> None:
        """Log broker trouble as it happens: the first time, then at most every ``LOG_EVERY``."""
        if self._closing:
            return
        now = time.monotonic()
        with self._wake:
            first = self._down_since is None
            if first:
                self._down_since = now
            self._attempts += 1
            pending, attempts, since = self._pending, self._attempts, self._down_since or now
        if first:
            self._down_logged = now
            log.warning("MQTT broker %s:%d %s: events wait in %s (%d buffered); retrying",
                        self.host, self.port, why, self.buffer_path, pending)
        elif now - self._down_logged >= self.LOG_EVERY:
            self._down_logged = now
            log.warning("MQTT broker %s:%d still away (%s) after %d attempts in %.0f s; %d events buffered",
                        self.host, self.port, why, attempts, now - since, pending)

    def _on_publish(self, client: Any, userdata: Any, mid: int, rc: Any = None, props: Any = None) -> None:
        with self._wake:
            if mid in self._own:  # a status or discovery message: no outbox row
                self._own.discard(mid)
                return
            rid = self._mid_to_id.pop(mid, None)
            if rid is None:
                self._early.add(mid)
            else:
                self._acked.append(rid)
            self._wake.notify_all()

    # -- sender thread -------------------------------------------------------------------
    def _send_loop(self) -> None:
        """Publish outbox rows in order; any error is logged on the change and retried with backoff."""
        first, cap = self.BACKOFF
        delay = 0.0
        while True:
            try:
                if not self._send_step():
                    return
                if delay:
                    delay = 0.0
                    self._sender_health.recovered()
            except Exception as e:  # noqa: BLE001 - a full disk or a broken link must not end the sender
                self._sender_health.failed(e, f"retrying with backoff (up to {cap:.0f} s); events wait")
                delay = min(cap, max(first, delay * 2))
                with self._wake:
                    if self._stop:
                        return
                    self._wake.wait(timeout=delay)

    def _send_step(self) -> bool:
        """One round: delete acknowledged rows, publish the next ones; False once closed."""
        with self._wake:
            if not self._ready:
                self._setup()
            self._flush_acked()
            if self._stop:
                return False
            room = self.window - len(self._mid_to_id)
            rows: list[tuple[int, str, str]] = []
            if self._connected and room > 0:
                rows = self._db.execute(
                    "SELECT id, topic, json FROM outbox WHERE id > ? ORDER BY id LIMIT ?",
                    (self._last_sent, room),
                ).fetchall()
            if not rows:
                self._wake.wait(timeout=0.5)
                return True
        for rid, topic, body in rows:
            payload = f'{{"seq":{rid},{body[1:]}' if len(body) > 2 else f'{{"seq":{rid}}}'
            info = self._client.publish(topic, payload, qos=1)
            with self._wake:
                # Queued inside paho even when the link just dropped: paho resends it,
                # in order, on reconnect, so the id counts as handed over either way.
                self._last_sent = rid
                if info.mid in self._early:
                    self._early.discard(info.mid)
                    self._acked.append(rid)
                else:
                    self._mid_to_id[info.mid] = rid
        return True

    def _flush_acked(self) -> None:
        """Delete the acknowledged rows (caller holds the lock); they stay listed until that worked."""
        if self._acked and self._ready:
            try:
                self._db.executemany("DELETE FROM outbox WHERE id = ?", [(i,) for i in self._acked])
                self._db.commit()
            except sqlite3.Error:
                self._rollback()
                raise
            self.published += len(self._acked)
            self._pending = max(0, self._pending - len(self._acked))
            self._acked.clear()
            self._wake.notify_all()

    def _rollback(self) -> None:
        try:
            self._db.rollback()
        except sqlite3.Error:
            pass

    # -- sink API ------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._connected

    def pending(self) -> int:
        """Events not yet acknowledged by the broker (still in the outbox)."""
        with self._lock:
            if self._ready and not self._stop:
                try:
                    return int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])
                except sqlite3.Error:
                    pass
            return self._pending

    def counts(self) -> SinkCounts:
        """Acknowledged by the broker this run, refused by the outbox, still waiting in it."""
        return SinkCounts(written=self.published, failed=self.failed, buffered=self._pending)

    def write(self, event: Event | Mapping[str, Any]) -> bool:
        """Commit ``event`` to the outbox (with this sink's ``device`` and ``app`` unless it names them).

        False (counted, logged on the change) when the outbox cannot take it, e.g. a full disk.
        """
        d = wire(event)
        d.setdefault("device", self.device)
        d.setdefault("app", self.app)
        body = dumps(d)
        with self._wake:
            if self._stop:
                raise RuntimeError("MQTT sink is closed")
            try:
                if not self._ready:
                    self._setup()
                self._db.execute(
                    "INSERT INTO outbox (topic, json, ts) VALUES (?, ?, ?)", (self.topic, body, time.time())
                )
                self._db.commit()
            except sqlite3.Error as e:
                self._rollback()
                self.failed += 1
                self._outbox_health.failed(e)
                return False
            self._pending += 1
            self._outbox_health.recovered()
            self._wake.notify_all()
        return True

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until the broker acknowledged everything written so far (or timeout)."""
        deadline = time.monotonic() + (self.close_timeout if timeout is None else timeout)
        with self._wake:
            while time.monotonic() < deadline:
                try:
                    self._flush_acked()
                except sqlite3.Error:
                    pass  # the sender reports it and retries
                if self._ready and self._pending == 0 and not self._acked:
                    return True
                self._wake.wait(timeout=0.2)
        return False

    def close(self) -> None:
        """Send what can be sent within ``close_timeout`` (the broker may be reconnecting right
        now); the rest stays in the outbox for the next run."""
        if self._stop:
            return
        self.flush()
        self._closing = True
        with self._wake:
            self._stop = True
            self._wake.notify_all()
        self._sender.join(timeout=5)
        if self._connected:  # a clean exit says goodbye itself (a DISCONNECT suppresses the will)
            try:
                self._publish_own(self._client, self.status_topic, OFFLINE).wait_for_publish(2.0)
            except (RuntimeError, ValueError) as e:
                log.debug("MQTT status %s not sent: %s", OFFLINE, e)
        self._client.disconnect()
        self._client.loop_stop()
        with self._lock:
            try:
                self._flush_acked()
            except sqlite3.Error as e:
                log.warning("MQTT outbox %s: %d acknowledged events could not be deleted (%s); the next run "
                            "sends them again (same seq)", self.buffer_path, len(self._acked), error_text(e))
            left = self._pending
            self._db.close()
        if left:
            log.warning("MQTT: %d events not acknowledged yet; kept in %s for the next run",
                        left, self.buffer_path)

    def __enter__(self) -> MqttSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
