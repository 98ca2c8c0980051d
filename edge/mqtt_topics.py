"""Where edgewise speaks on an MQTT broker: the broker address, the topics, and Home Assistant.

Kept apart from the sink (``edge.mqtt``) because these are the contract other systems read,
a plant's historian or Home Assistant, and need no paho: ``edgewise run`` checks a broker
address and a device id with them before anything connects.

- ``edgewise/<device>/<app>/events``: every event, QoS 1;
- ``edgewise/<device>/status``: ``online`` / ``offline``, retained, ``offline`` also as last will;
- ``homeassistant/...``: retained discovery configs (``ha_discovery_configs``).
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["parse_broker", "topic_for", "status_topic", "ha_discovery_configs", "ONLINE", "OFFLINE",
           "HA_PREFIX"]

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
    if not 0 < int(port or 1883) < 65536:
        raise ValueError(f"MQTT broker '{spec}': port {port} is outside 1-65535")
    return host, int(port or 1883)


def topic_for(device: str, app: str) -> str:
    """The one topic an application on a device publishes to."""
    for what, v in (("device id", device), ("app", app)):
        if not _TOPIC_PART.match(v):
            raise ValueError(f"MQTT {what} '{v}': use letters, digits, '.', '_' or '-' only")
    return f"edgewise/{device}/{app}/events"


ONLINE, OFFLINE = "online", "offline"  # the status payloads (Home Assistant's defaults)
HA_PREFIX = "homeassistant"  # Home Assistant's default discovery prefix
# Applications whose answer is an alarm state: the problem binary sensor's template (None: no sensor).
_HA_PROBLEM = {
    "inspect": "value_json.decision == 'FAIL'",
    "vibration": "value_json.alarm",
}


def status_topic(device: str) -> str:
    """The retained ``online`` / ``offline`` topic of a device (its last will says ``offline``)."""
    if not _TOPIC_PART.match(device):
        raise ValueError(f"MQTT device id '{device}': use letters, digits, '.', '_' or '-' only")
    return f"edgewise/{device}/status"


def ha_discovery_configs(device: str, app: str, version: str = "") -> dict[str, dict[str, Any]]:
    """Home Assistant MQTT discovery: config topic -> config, for ``app`` on ``device``.

    A sensor shows the last event's answer (its other fields as attributes); applications that
    decide an alarm or a FAIL also get a binary sensor of class ``problem``. Both are available
    while ``status_topic(device)`` says ``online``. An input drift event (same topic) leaves
    their state as it was.
    """
    from .event import answer_key

    events, status = topic_for(device, app), status_topic(device)
    node = "edgewise_" + re.sub(r"[^A-Za-z0-9_-]", "_", device)  # HA ids: [A-Za-z0-9_-]
    common: dict[str, Any] = {
        "state_topic": events,
        "availability_topic": status, "payload_available": ONLINE, "payload_not_available": OFFLINE,
        "device": {"identifiers": [node], "name": device, "manufacturer": "edgewise",
                   "model": "edgewise runtime", **({"sw_version": version} if version else {})},
        "origin": {"name": "edgewise", **({"sw_version": version} if version else {})},
    }
    key = answer_key(app)
    configs = {
        f"{HA_PREFIX}/sensor/{node}/{app}_event/config": {
            **common, "name": f"{app} last event", "unique_id": f"{node}_{app}_event",
            "value_template": f"{{{{ this.state if value_json.kind == 'drift' else value_json.{key} }}}}",
            "json_attributes_topic": events, "icon": "mdi:eye-check",
        },
    }
    problem = _HA_PROBLEM.get(app)
    if problem is not None:
        configs[f"{HA_PREFIX}/binary_sensor/{node}/{app}_problem/config"] = {
            **common, "name": f"{app} alarm", "unique_id": f"{node}_{app}_problem", "device_class": "problem",
            "payload_on": "ON", "payload_off": "OFF",
            "value_template": ("{% if value_json.kind == 'drift' %}{{ 'ON' if this.state == 'on' else "
                               f"'OFF' }}}}{{% elif {problem} %}}ON{{% else %}}OFF{{% endif %}}"),
        }
    return configs
