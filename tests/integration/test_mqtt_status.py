"""The device status topic (last will) and Home Assistant discovery against a real Mosquitto."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from test_mqtt import MOSQUITTO, Broker  # the loopback broker of the MQTT sink tests

from edgewise.edge.event import Event
from edgewise.edge.mqtt import MqttSink, status_topic, topic_for

pytestmark = pytest.mark.skipif(
    MOSQUITTO is None, reason="mosquitto not installed (apt install mosquitto; see .ci/system-deps)"
)
pytest.importorskip("paho.mqtt.client", reason="pip install 'edgewise[mqtt]' (paho-mqtt)")


class Watcher:
    """Subscribes to ``topic`` and keeps every message as (topic, payload text, retain flag)."""

    def __init__(self, port: int, topic: str) -> None:
        import paho.mqtt.client as mqtt

        self.messages: list[tuple[str, str, bool]] = []
        self._lock = threading.Lock()
        ready = threading.Event()
        c = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2)

        def on_connect(client, userdata, flags, rc, props=None):
            client.subscribe(topic, qos=1)

        def on_subscribe(client, userdata, mid, rcs, props=None):
            ready.set()

        def on_message(client, userdata, msg):
            with self._lock:
                self.messages.append((msg.topic, msg.payload.decode(), bool(msg.retain)))

        c.on_connect, c.on_subscribe, c.on_message = on_connect, on_subscribe, on_message
        c.connect("127.0.0.1", port, keepalive=5)
        c.loop_start()
        self.client = c
        assert ready.wait(10), "watcher did not subscribe"

    def wait(self, pred, timeout: float = 30) -> list[tuple[str, str, bool]]:
        """The messages once ``pred(messages)`` holds (AssertionError after ``timeout``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                got = list(self.messages)
            if pred(got):
                return got
            time.sleep(0.05)
        raise AssertionError(f"not seen within {timeout} s; got {got}")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def retained(port: int, topic: str, want: int = 1) -> list[tuple[str, str, bool]]:
    """What a newcomer subscribing to ``topic`` is handed at once: the retained messages."""
    w = Watcher(port, topic)
    try:
        return w.wait(lambda m: len(m) >= want, timeout=10)
    finally:
        w.close()


def start_run(digits_bundle: Path, tmp_path: Path, port: int, device: str, *extra: str) -> subprocess.Popen:
    """``edgewise run classify`` on an endless (looping, camera-paced) digits video into the broker."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "edge"))  # also when run alone
    from test_pipeline_loop import write_digit_video

    video = write_digit_video(tmp_path / "digits.mp4", frames=30)
    return subprocess.Popen(
        [sys.executable, "-m", "edgewise.edge.cli", "run", "classify", "--bundle", str(digits_bundle),
         "--source", str(video), "--loop", "--realtime", "--threads", "1", "--jsonl", "",
         "--mqtt", f"127.0.0.1:{port}", "--device-id", device, "--mqtt-buffer", str(tmp_path / "outbox.db"),
         *extra],
        stdout=subprocess.DEVNULL, stderr=(tmp_path / "run.log").open("w"),
    )


def test_status_is_online_while_running_and_offline_after_a_clean_exit_with_retained_discovery(
    broker: Broker, digits_bundle: Path, tmp_path: Path
):
    status = status_topic("pi-status")
    events = Watcher(broker.port, topic_for("pi-status", "classify"))
    run = start_run(digits_bundle, tmp_path, broker.port, "pi-status", "--ha-discovery")
    try:
        events.wait(lambda m: len(m) >= 3)  # the loop is running and publishing
        assert retained(broker.port, status) == [(status, "online", True)]

        configs = retained(broker.port, "homeassistant/#")
        assert len(configs) == 1  # classify decides no alarm: a sensor, no binary sensor
        topic, payload, was_retained = configs[0]
        assert was_retained and topic == "homeassistant/sensor/edgewise_pi-status/classify_event/config"
        config = json.loads(payload)
        assert config["state_topic"] == "edgewise/pi-status/classify/events"
        assert config["availability_topic"] == status
        assert (config["payload_available"], config["payload_not_available"]) == ("online", "offline")
        assert config["unique_id"] == "edgewise_pi-status_classify_event"
        assert "value_json.label" in config["value_template"]  # classify's answer key on the wire
        assert config["device"]["identifiers"] == ["edgewise_pi-status"]
        # what Home Assistant will read from the state topic: an event that has the templated key
        assert "label" in json.loads(events.messages[-1][1])
    finally:
        run.send_signal(signal.SIGTERM)
        rc = run.wait(timeout=30)
        events.close()
    assert rc == 0, (tmp_path / "run.log").read_text()[-2000:]
    assert retained(broker.port, status) == [(status, "offline", True)]


def test_last_will_says_offline_when_the_runner_is_killed(
    broker: Broker, digits_bundle: Path, tmp_path: Path
):
    status = status_topic("pi-kill")
    watch = Watcher(broker.port, status)
    run = start_run(digits_bundle, tmp_path, broker.port, "pi-kill")
    try:
        watch.wait(lambda m: any(p == "online" for _, p, _ in m))
        run.send_signal(signal.SIGKILL)  # no goodbye: only the broker can say it
        run.wait(timeout=10)
        got = watch.wait(lambda m: m[-1][1] == "offline", timeout=20)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
        watch.close()
    assert [p for _, p, _ in got] == ["online", "offline"]
    assert retained(broker.port, status) == [(status, "offline", True)]  # a newcomer sees it too


def test_own_status_and_discovery_messages_never_acknowledge_an_event(broker: Broker, tmp_path: Path):
    """The sink's retained messages share paho's message ids with the outbox rows: every event
    must still be acknowledged by its own PUBACK (all delivered, none deleted early)."""
    watch = Watcher(broker.port, "edgewise/pi-hass/inspect/events")
    sink = MqttSink("127.0.0.1", broker.port, device="pi-hass", app="inspect",
                    buffer_path=tmp_path / "outbox.db", ha_discovery=True)
    try:
        for i in range(20):
            sink.write(Event("inspect", "part", answer="FAIL" if i % 2 else "PASS", score=0.5))
        assert sink.flush(timeout=20)
        assert (sink.published, sink.pending()) == (20, 0)
        got = watch.wait(lambda m: len(m) >= 20)
        assert sorted(json.loads(p)["seq"] for _, p, _ in got) == list(range(1, 21))
        configs = {t: json.loads(p) for t, p, r in retained(broker.port, "homeassistant/#", want=2) if r}
        problem = configs["homeassistant/binary_sensor/edgewise_pi-hass/inspect_problem/config"]
        assert problem["device_class"] == "problem"
        assert "value_json.decision == 'FAIL'" in problem["value_template"]
        assert "homeassistant/sensor/edgewise_pi-hass/inspect_event/config" in configs
    finally:
        sink.close()
        watch.close()
    assert retained(broker.port, status_topic("pi-hass")) == [(status_topic("pi-hass"), "offline", True)]
