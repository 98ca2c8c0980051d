"""MQTT sink: events to ``edgewise/<device>/<app>/events`` at QoS 1, nothing lost offline.

Every event is first committed to a small SQLite outbox and only deleted once the broker has
acknowledged it (PUBACK). While the broker is unreachable the loop keeps running and events
pile up on disk; on reconnect they are sent oldest first. Because the outbox survives a
restart, events of a run that ended while offline are sent by the next run using the same
buffer file. Each payload carries ``seq`` (the outbox row id, never reused) so a consumer can
drop the duplicates that QoS 1 ("at least once") allows.

>>> sink = MqttSink("broker.local", device="pi-line3", app="inspect")   # doctest: +SKIP
>>> sink.write(Event("inspect", "part", answer="FAIL", score=0.93)); sink.close()  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import re
import socket
import sqlite3
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .event import Event
from .jsonenc import dumps
from .sinks import wire

__all__ = ["MqttSink", "parse_broker", "topic_for", "default_buffer_path"]

log = logging.getLogger("edgewise.mqtt")
_TOPIC_PART = re.compile(r"^[A-Za-z0-9._-]+$")


def parse_broker(spec: str) -> tuple[str, int]:
    """``host``, ``host:port`` or ``[v6addr]:port`` -> (host, port); 1883 by default."""
    spec = spec.strip()
    if spec.startswith("["):
        host, _, rest = spec[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif spec.count(":") == 1:
        host, port = spec.split(":")
    else:
        host, port = spec, ""
    if not host:
        raise ValueError(f"MQTT broker '{spec}': expected HOST[:PORT]")
    if port and not port.isdigit():
        raise ValueError(f"MQTT broker '{spec}': port '{port}' is not a number")
    return host, int(port or 1883)


def topic_for(device: str, app: str) -> str:
    """The one topic an application on a device publishes to."""
    for what, v in (("device id", device), ("app", app)):
        if not _TOPIC_PART.match(v):
            raise ValueError(f"MQTT {what} '{v}': use letters, digits, '.', '_' or '-' only")
    return f"edgewise/{device}/{app}/events"


def default_buffer_path(device: str, app: str) -> Path:
    """``$XDG_STATE_HOME/edgewise/mqtt-<device>-<app>.db`` (``~/.local/state`` by default)."""
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "edgewise" / f"mqtt-{device}-{app}.db"


class MqttSink:
    """Publishes events at QoS 1 through a durable SQLite outbox (see the module docstring).

    ``write`` never touches the network: it commits the event to the outbox and wakes the
    sender thread, so a slow or absent broker never slows the camera loop.
    """

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
    ) -> None:
        try:
            import paho.mqtt.client as mqtt
        except ImportError:
            raise ImportError(
                "MQTT needs paho-mqtt>=2: pip install 'edgewise[mqtt]' (or apt install python3-paho-mqtt)"
            ) from None
        self.device = device or socket.gethostname().split(".")[0]
        self.app = app
        self.topic = topic_for(self.device, app)
        self.host, self.port = host, int(port)
        self.window = max(1, int(window))
        self.close_timeout = close_timeout
        self.buffer_path = Path(buffer_path) if buffer_path else default_buffer_path(self.device, app)
        self.buffer_path.parent.mkdir(parents=True, exist_ok=True)

        self._lock = threading.Lock()  # guards the db and the bookkeeping below
        self._wake = threading.Condition(self._lock)
        self._db = sqlite3.connect(str(self.buffer_path), check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, "
            "topic TEXT NOT NULL, json TEXT NOT NULL, ts REAL NOT NULL)"
        )
        self._db.commit()
        self._last_sent = 0  # highest outbox id handed to the client
        self._mid_to_id: dict[int, int] = {}
        self._early: set[int] = set()  # PUBACKs that arrived before publish() returned
        self._acked: list[int] = []
        self._connected = False
        self._closing = False
        self._stop = False
        self.published = 0
        backlog = self.pending()
        if backlog:
            log.info("MQTT outbox %s holds %d unsent events from before; sending first",
                     self.buffer_path, backlog)

        cid = client_id or f"edgewise-{self.device}-{app}"
        self._client = mqtt.Client(
            callback_api_version=mqtt.CallbackAPIVersion.VERSION2, client_id=cid, clean_session=True
        )
        if username:
            self._client.username_pw_set(username, password)
        self._client.reconnect_delay_set(min_delay=1, max_delay=10)
        self._client.max_inflight_messages_set(self.window)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish
        self._client.connect_async(self.host, self.port, keepalive=keepalive)
        self._client.loop_start()  # paho's thread connects and reconnects on its own
        self._sender = threading.Thread(target=self._send_loop, name="mqtt-sender", daemon=True)
        self._sender.start()

    # -- paho callbacks (network thread) -------------------------------------------------
    def _on_connect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any = None) -> None:
        if getattr(rc, "is_failure", False):
            log.error("MQTT broker %s:%d refused the connection: %s", self.host, self.port, rc)
            return
        log.info("MQTT connected to %s:%d, topic %s", self.host, self.port, self.topic)
        with self._wake:
            self._connected = True
            self._wake.notify_all()

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any = None) -> None:
        with self._wake:
            was, self._connected = self._connected, False
        if was and not self._closing:
            log.warning("MQTT broker %s:%d unreachable (%s): buffering events in %s",
                        self.host, self.port, rc, self.buffer_path)

    def _on_publish(self, client: Any, userdata: Any, mid: int, rc: Any = None, props: Any = None) -> None:
        with self._wake:
            rid = self._mid_to_id.pop(mid, None)
            if rid is None:
                self._early.add(mid)
            else:
                self._acked.append(rid)
            self._wake.notify_all()

    # -- sender thread -------------------------------------------------------------------
    def _send_loop(self) -> None:
        while True:
            with self._wake:
                self._flush_acked()
                if self._stop:
                    return
                room = self.window - len(self._mid_to_id)
                rows: list[tuple[int, str, str]] = []
                if self._connected and room > 0:
                    rows = self._db.execute(
                        "SELECT id, topic, json FROM outbox WHERE id > ? ORDER BY id LIMIT ?",
                        (self._last_sent, room),
                    ).fetchall()
                if not rows:
                    self._wake.wait(timeout=0.5)
                    continue
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

    def _flush_acked(self) -> None:
        if self._acked:
            self._db.executemany("DELETE FROM outbox WHERE id = ?", [(i,) for i in self._acked])
            self._db.commit()
            self.published += len(self._acked)
            self._acked.clear()
            self._wake.notify_all()

    # -- sink API ------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._connected

    def pending(self) -> int:
        """Events not yet acknowledged by the broker (still in the outbox)."""
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

    def write(self, event: Event | Mapping[str, Any]) -> None:
        """Commit ``event`` (with this sink's ``device`` and ``app`` unless it names them)."""
        d = wire(event)
        d.setdefault("device", self.device)
        d.setdefault("app", self.app)
        body = dumps(d)
        with self._wake:
            if self._stop:
                raise RuntimeError("MQTT sink is closed")
            self._db.execute(
                "INSERT INTO outbox (topic, json, ts) VALUES (?, ?, ?)", (self.topic, body, time.time())
            )
            self._db.commit()
            self._wake.notify_all()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until the broker acknowledged everything written so far (or timeout)."""
        deadline = time.monotonic() + (self.close_timeout if timeout is None else timeout)
        with self._wake:
            while time.monotonic() < deadline:
                self._flush_acked()
                n = self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
                if n == 0:
                    return True
                self._wake.wait(timeout=0.2)
        return False

    def close(self) -> None:
        """Send what can be sent within ``close_timeout``; the rest stays in the outbox."""
        if self._stop:
            return
        self.flush()
        self._closing = True
        with self._wake:
            self._stop = True
            self._wake.notify_all()
        self._sender.join(timeout=5)
        self._client.disconnect()
        self._client.loop_stop()
        left = self.pending()
        if left:
            log.warning("MQTT: %d events not acknowledged yet; kept in %s for the next run",
                        left, self.buffer_path)
        with self._lock:
            self._db.close()

    def __enter__(self) -> MqttSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
