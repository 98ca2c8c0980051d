"""MQTT sink against a real Mosquitto broker that the test starts on a free loopback port."""

from __future__ import annotations

import getpass
import json
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from edgewise.edge.mqtt import MqttSink, parse_broker, topic_for

MOSQUITTO = shutil.which("mosquitto") or next(
    (p for p in ("/usr/sbin/mosquitto",) if Path(p).exists()), None
)
pytestmark = pytest.mark.skipif(
    MOSQUITTO is None, reason="mosquitto not installed (apt install mosquitto; see .ci/system-deps)"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """A Mosquitto on 127.0.0.1 with persistence, so a graceful restart keeps queued messages."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.conf = root / "mosquitto.conf"
        (root / "data").mkdir(exist_ok=True)
        # `user`: as root, mosquitto would otherwise drop to the 'mosquitto' user, which cannot
        # write its persistence file into this private temp dir (queued messages lost on restart).
        self.conf.write_text(
            f"user {getpass.getuser()}\n"
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
            f"persistence_location {root / 'data'}/\nautosave_interval 1\n"
            f"log_dest file {root / 'mosquitto.log'}\n"
        )
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    logf = self.root / "mosquitto.log"
                    log = logf.read_text() if logf.exists() else ""
                    raise RuntimeError(f"mosquitto exited: {log[-500:]}") from None
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not start listening")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()  # graceful: writes its persistence file
            self.proc.wait(timeout=10)
        self.proc = None


class Subscriber:
    """A persistent-session QoS 1 subscriber that records every payload in arrival order."""

    def __init__(self, port: int, topic: str) -> None:
        import paho.mqtt.client as mqtt

        self.messages: list[dict] = []
        self.topics: set[str] = set()
        self._ready = threading.Event()
        c = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
                        client_id=f"test-sub-{port}", clean_session=False)
        c.reconnect_delay_set(min_delay=1, max_delay=1)

        def on_connect(client, userdata, flags, rc, props=None):
            client.subscribe(topic, qos=1)

        def on_subscribe(client, userdata, mid, rcs, props=None):
            self._ready.set()

        def on_message(client, userdata, msg):
            self.topics.add(msg.topic)
            self.messages.append(json.loads(msg.payload))

        c.on_connect, c.on_subscribe, c.on_message = on_connect, on_subscribe, on_message
        c.connect("127.0.0.1", port, keepalive=5)
        c.loop_start()
        self.client = c
        assert self._ready.wait(10), "subscriber did not subscribe"

    def wait_for(self, seqs: set[int], timeout: float = 20) -> set[int]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = {m["seq"] for m in list(self.messages)}
            if seqs <= got:
                break
            time.sleep(0.05)
        return {m["seq"] for m in list(self.messages)}

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_broker_spec_and_topic_are_validated():
    assert parse_broker("localhost") == ("localhost", 1883)
    assert parse_broker("10.0.0.2:1884") == ("10.0.0.2", 1884)
    assert parse_broker("[::1]:1990") == ("::1", 1990)
    with pytest.raises(ValueError, match="port 'x' is not a number"):
        parse_broker("host:x")
    assert topic_for("pi-line3", "inspect") == "edgewise/pi-line3/inspect/events"
    with pytest.raises(ValueError, match="device id 'a/b'"):
        topic_for("a/b", "inspect")


def test_events_reach_the_per_device_app_topic_at_qos1(broker: Broker, tmp_path: Path):
    sub = Subscriber(broker.port, "edgewise/+/+/events")  # edgewise/<device>/status is the device's state
    sink = MqttSink("127.0.0.1", broker.port, device="pi-test", app="classify",
                    buffer_path=tmp_path / "outbox.db")
    for i in range(20):
        sink.write({"app": "classify", "label": str(i % 10), "i": i})
    assert sink.flush(10)
    sink.close()
    got = sub.wait_for(set(range(1, 21)))
    sub.close()
    assert got == set(range(1, 21))
    assert sub.topics == {"edgewise/pi-test/classify/events"}
    assert [m["i"] for m in sub.messages] == list(range(20))
    assert all(m["device"] == "pi-test" for m in sub.messages)


def test_broker_restart_mid_stream_loses_no_event_and_keeps_order(broker: Broker, tmp_path: Path):
    sub = Subscriber(broker.port, "edgewise/+/classify/events")
    sink = MqttSink("127.0.0.1", broker.port, device="pi-test", app="classify",
                    buffer_path=tmp_path / "outbox.db", keepalive=2)
    n = 0
    for _ in range(30):  # ~0.6 s of events with the broker up
        sink.write({"i": n})
        n += 1
        time.sleep(0.02)
    broker.stop()
    offline_writes = 0
    for _ in range(40):  # ~0.8 s with the broker down: the loop keeps writing
        sink.write({"i": n})
        n += 1
        offline_writes += 1
        time.sleep(0.02)
    assert sink.pending() > 0, "events written while the broker was down must wait in the outbox"
    broker.start()
    for _ in range(30):
        sink.write({"i": n})
        n += 1
        time.sleep(0.02)
    assert sink.flush(30), f"{sink.pending()} events still unacknowledged after reconnect"
    sink.close()
    got = sub.wait_for(set(range(1, n + 1)), timeout=30)
    sub.close()
    missing = set(range(1, n + 1)) - got
    assert not missing, f"lost events (seq): {sorted(missing)[:20]}"
    first_seen: list[int] = []
    for m in sub.messages:  # QoS 1 may duplicate; first arrivals must be in write order
        if m["seq"] not in first_seen:
            first_seen.append(m["seq"])
    assert first_seen == sorted(first_seen)
    assert [m["i"] for m in sorted(sub.messages, key=lambda m: m["seq"])][:1] == [0]


def test_events_written_while_the_broker_is_absent_are_sent_by_the_next_run(tmp_path: Path):
    b = Broker(tmp_path)  # not started yet: the device boots before the broker
    outbox = tmp_path / "outbox.db"
    sink = MqttSink("127.0.0.1", b.port, device="pi-test", app="vibration", buffer_path=outbox,
                    close_timeout=0.5)
    for i in range(5):
        sink.write({"i": i})
    sink.close()
    assert outbox.exists()
    b.start()
    try:
        sub = Subscriber(b.port, "edgewise/pi-test/vibration/events")
        sink2 = MqttSink("127.0.0.1", b.port, device="pi-test", app="vibration", buffer_path=outbox)
        sink2.write({"i": 5})
        assert sink2.flush(10)
        sink2.close()
        got = sub.wait_for(set(range(1, 7)))
        sub.close()
        assert got == set(range(1, 7))
        assert [m["i"] for m in sub.messages] == list(range(6))
    finally:
        b.stop()


def test_edgewise_run_classify_publishes_every_frame_to_mosquitto(
    broker: Broker, digits_bundle: Path, tmp_path: Path
):
    """The done-when path: a real bundle on a real video through the runner into the broker."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "edge"))  # also when run alone
    from test_pipeline_loop import write_digit_video

    video = write_digit_video(tmp_path / "digits.mp4", frames=30)
    sub = Subscriber(broker.port, "edgewise/pi-e2e/classify/events")
    stats = tmp_path / "stats.json"
    r = subprocess.run(
        [sys.executable, "-m", "edgewise.edge.cli", "run", "classify", "--bundle", str(digits_bundle),
         "--source", str(video), "--threads", "2", "--jsonl", "", "--mqtt", f"127.0.0.1:{broker.port}",
         "--device-id", "pi-e2e", "--mqtt-buffer", str(tmp_path / "outbox.db"), "--stats", str(stats)],
        capture_output=True, text=True, timeout=120,
    )
    assert r.returncode == 0, r.stderr
    got = sub.wait_for(set(range(1, 31)))
    sub.close()
    assert got == set(range(1, 31))
    assert json.loads(stats.read_text())["events"] == 30
    labels = [m["label"] for m in sorted(sub.messages, key=lambda m: m["seq"])]
    assert len(labels) == 30 and all(lab in [str(d) for d in range(10)] for lab in labels)


def test_edgewise_run_refuses_an_unusable_mqtt_buffer_in_one_line(digits_bundle: Path, tmp_path: Path):
    """Refused before the loop starts, naming the flag: no traceback, no event written anywhere."""
    import cv2
    import numpy as np

    (tmp_path / "imgs").mkdir()
    cv2.imwrite(str(tmp_path / "imgs" / "0.png"), np.zeros((8, 8), np.uint8))
    (tmp_path / "box").mkdir()
    r = subprocess.run(
        [sys.executable, "-m", "edgewise.edge.cli", "run", "classify", "--bundle", str(digits_bundle),
         "--source", str(tmp_path / "imgs"), "--jsonl", str(tmp_path / "e.jsonl"),
         "--mqtt", f"127.0.0.1:{free_port()}", "--mqtt-buffer", str(tmp_path / "box")],
        capture_output=True, text=True, timeout=120,
    )
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    want = f"edgewise run classify: error: --mqtt-buffer {tmp_path / 'box'}: is a directory"
    assert lines[-1] == want, lines
    assert "Traceback" not in r.stderr
