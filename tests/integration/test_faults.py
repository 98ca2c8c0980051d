"""Faults with real parts: kill -9, a real Mosquitto stopped and restarted, a real full disk.

A small writer process opens the sinks the way ``edgewise run`` does (``make_sinks`` from typed
settings: JSON lines, SQLite, MQTT with its outbox) and writes one synthetic classify event per
step, printing ``i ok_jsonl ok_sqlite ok_mqtt`` once every sink's ``write`` has returned. A
printed ``1`` is a commitment: that event must be found at its destination afterwards, whatever
happens to the process, the broker or the disk. MQTT payloads carry ``seq`` (the outbox row
id): the subscriber must see every seq from 1 to the last one, so a lost event shows as a gap.
Each test states produced / received / lost in its assertion messages and prints them.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from test_mqtt import MOSQUITTO, Broker, Subscriber  # tests/integration is on sys.path under pytest

pytestmark = pytest.mark.skipif(
    MOSQUITTO is None, reason="mosquitto not installed (apt install mosquitto; see .ci/system-deps)"
)

DEVICE = "pi-fault"
TOPIC = f"edgewise/{DEVICE}/classify/events"

WRITER = textwrap.dedent('''
    """Writes synthetic classify events through the sinks `edgewise run` builds."""
    import json, logging, sys, time
    from edgewise.edge.apps.run import make_sinks
    from edgewise.edge.apps.settings import SinkSettings
    from edgewise.edge.event import Event
    from edgewise.edge.sinks import sink_counts

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    cfg = json.loads(sys.argv[1])
    sinks = make_sinks(SinkSettings(
        jsonl=cfg.get("jsonl"), sqlite=cfg.get("sqlite"),
        mqtt_host="127.0.0.1" if cfg.get("port") else None, mqtt_port=cfg.get("port") or 1883,
        mqtt_buffer=cfg.get("outbox"), device_id=cfg["device"]), "classify")
    for s in sinks:
        if s.name == "mqtt":
            s.close_timeout = cfg.get("close_timeout", 30.0)
    print("START", " ".join(s.name for s in sinks), flush=True)
    i, end = cfg["start"], (cfg["start"] + cfg["count"]) if cfg.get("count") else None
    while end is None or i < end:
        extra = {"i": i, "pad": "x" * cfg.get("pad", 0)}
        e = Event("classify", "frame", answer=str(i % 10), score=0.9, extra=extra)
        oks = [int(bool(s.write(e))) for s in sinks]
        print(i, *oks, flush=True)
        i += 1
        time.sleep(cfg.get("interval", 0.002))
    for s in sinks:
        s.close()
    print("COUNTS", json.dumps(sink_counts(sinks)), flush=True)
''')


@dataclass
class Writer:
    """One writer process; its stdout is a file so a kill -9 leaves what it had printed."""

    tmp: Path
    cfg: dict
    n: int = 0
    proc: subprocess.Popen | None = None
    out: Path = field(init=False)
    err: Path = field(init=False)

    def start(self, **over: object) -> Writer:
        Writer.n += 1
        script = self.tmp / "writer.py"
        script.write_text(WRITER)
        self.out, self.err = self.tmp / f"writer{Writer.n}.out", self.tmp / f"writer{Writer.n}.err"
        cfg = {**self.cfg, **over}
        with open(self.out, "w") as o, open(self.err, "w") as e:
            self.proc = subprocess.Popen([sys.executable, str(script), json.dumps(cfg)], stdout=o, stderr=e)
        return self

    def lines(self) -> list[list[int]]:
        """The whole ``i ok...`` lines printed so far (a line cut by kill -9 is not a commitment)."""
        text = self.out.read_text() if self.out.exists() else ""
        rows = []
        for ln in text.split("\n")[:-1]:
            parts = ln.split()
            if parts and parts[0].isdigit():
                rows.append([int(p) for p in parts])
        return rows

    def wait_lines(self, n: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while len(self.lines()) < n:
            assert self.proc is not None and self.proc.poll() is None, self.stderr()
            assert time.monotonic() < deadline, f"writer printed {len(self.lines())} of {n} lines"
            time.sleep(0.01)

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def finish(self, timeout: float = 120) -> dict:
        assert self.proc is not None
        rc = self.proc.wait(timeout)
        assert rc == 0, f"writer exited {rc}: {self.stderr()[-2000:]}"
        last = self.out.read_text().strip().splitlines()[-1]
        assert last.startswith("COUNTS "), last
        return json.loads(last[len("COUNTS "):])

    def stderr(self) -> str:
        return self.err.read_text() if self.err.exists() else ""


def jsonl_lines(path: Path) -> list[dict]:
    """Every line as JSON: each must be whole and the file must end with a newline."""
    data = path.read_bytes()
    assert not data or data.endswith(b"\n"), f"torn last line in {path}: {data[-80:]!r}"
    return [json.loads(ln) for ln in data.decode().splitlines()]


def jsonl_is(path: Path) -> list[int]:
    """The ``i`` of every line (see ``jsonl_lines``)."""
    return [d["i"] for d in jsonl_lines(path)]


def sqlite_events(path: Path) -> list[dict]:
    db = sqlite3.connect(str(path))
    try:
        return [json.loads(r[0]) for r in db.execute("SELECT json FROM events ORDER BY id")]
    finally:
        db.close()


def sqlite_is(path: Path) -> list[int]:
    return [d["i"] for d in sqlite_events(path)]


def outbox_rows(path: Path) -> int:
    db = sqlite3.connect(str(path))
    try:
        return int(db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])
    finally:
        db.close()


def last_seq(outbox: Path) -> int:
    """The highest seq the outbox ever handed out (AUTOINCREMENT keeps it even for deleted rows)."""
    db = sqlite3.connect(str(outbox))
    try:
        return int(db.execute("SELECT seq FROM sqlite_sequence WHERE name='outbox'").fetchone()[0])
    finally:
        db.close()


def first_arrivals(sub: Subscriber, key: str = "i") -> dict[int, int]:
    """seq -> ``key`` (the writer's i, a run's frame) of every message got (QoS 1 duplicates folded)."""
    return {m["seq"]: m[key] for m in list(sub.messages)}


def wait_seqs(sub: Subscriber, n: int, timeout: float = 60, key: str = "i") -> dict[int, int]:
    sub.wait_for(set(range(1, n + 1)), timeout=timeout)
    return first_arrivals(sub, key)


# -- kill -9 ---------------------------------------------------------------------------------------

def test_kill_9_during_jsonl_sqlite_and_mqtt_writes_loses_no_committed_event(broker: Broker, tmp_path: Path):
    """Five kill -9s at random moments of a writing loop, then a clean run that drains the outbox."""
    rng = random.Random(15)
    sub = Subscriber(broker.port, TOPIC)
    w = Writer(tmp_path, {"jsonl": str(tmp_path / "e.jsonl"), "sqlite": str(tmp_path / "e.db"),
                          "port": broker.port, "outbox": str(tmp_path / "outbox.db"), "device": DEVICE,
                          "interval": 0.001})
    committed: set[int] = set()
    start, kills = 0, 5
    for _ in range(kills):
        w.start(start=start)
        w.wait_lines(rng.randint(50, 400))
        time.sleep(rng.random() * 0.05)  # land the kill anywhere inside a write
        w.kill9()
        rows = w.lines()
        committed |= {r[0] for r in rows if all(r[1:])}
        jsonl_is(tmp_path / "e.jsonl")  # a kill -9 never leaves a torn line
        start = rows[-1][0] + 1
    w.start(start=start, count=200)
    counts = w.finish()
    committed |= {r[0] for r in w.lines() if all(r[1:])}
    produced = start + 200

    in_jsonl, in_sqlite = jsonl_is(tmp_path / "e.jsonl"), sqlite_is(tmp_path / "e.db")
    max_seq = last_seq(tmp_path / "outbox.db")
    got = wait_seqs(sub, max_seq)
    sub.close()
    lost_seq = sorted(set(range(1, max_seq + 1)) - set(got))
    report = {
        "kills": kills, "produced": produced, "committed": len(committed),
        "written_twice": {"jsonl": len(in_jsonl) - len(set(in_jsonl)),
                          "sqlite": len(in_sqlite) - len(set(in_sqlite))},
        "jsonl": {"lines": len(in_jsonl), "lost": len(committed - set(in_jsonl))},
        "sqlite": {"rows": len(in_sqlite), "lost": len(committed - set(in_sqlite))},
        "mqtt": {"seqs": max_seq, "received": len(got), "lost_seq": len(lost_seq),
                 "lost": len(committed - set(got.values())),
                 "left_in_outbox": outbox_rows(tmp_path / "outbox.db")},
    }
    print("kill -9 x5:", json.dumps(report))
    assert committed <= set(in_jsonl), f"JSON lines lost committed events: {report}"
    assert committed <= set(in_sqlite), f"SQLite lost committed events: {report}"
    assert not lost_seq, f"MQTT seqs never received: {lost_seq[:20]}; {report}"
    assert committed <= set(got.values()), f"MQTT lost committed events: {report}"
    # nothing but the at most one in-flight event per kill may be written twice; no i is skipped
    for name, seen in (("jsonl", in_jsonl), ("sqlite", in_sqlite), ("mqtt", list(got.values()))):
        assert set(seen) == set(range(max(seen) + 1)), f"{name}: a gap in i; {report}"
        assert len(seen) - len(set(seen)) <= kills, f"{name}: more duplicates than kills; {report}"
    assert report["mqtt"]["left_in_outbox"] == 0 and counts["mqtt"]["buffered"] == 0, report


# -- the broker goes away --------------------------------------------------------------------------

def test_broker_stopped_and_restarted_during_a_run_is_logged_as_it_happens_and_loses_nothing(
    broker: Broker, tmp_path: Path
):
    sub = Subscriber(broker.port, TOPIC)
    w = Writer(tmp_path, {"jsonl": None, "port": broker.port, "outbox": str(tmp_path / "outbox.db"),
                          "device": DEVICE, "interval": 0.01}).start(start=0, count=300)
    w.wait_lines(60)
    broker.stop()
    w.wait_lines(140)
    while_down = w.stderr()
    pending_while_down = outbox_rows(tmp_path / "outbox.db")
    broker.start()
    counts = w.finish()
    got = wait_seqs(sub, 300)
    sub.close()
    lost = sorted(set(range(1, 301)) - set(got))
    report = {"produced": 300, "received": len(got), "lost": len(lost),
              "buffered_while_down": pending_while_down, "counts": counts["mqtt"]}
    print("broker restart:", json.dumps(report))
    assert "connection lost" in while_down, f"broker loss not logged while it lasted: {while_down[-1000:]}"
    assert pending_while_down > 0, report
    assert "reachable again" in w.stderr(), w.stderr()[-1000:]
    assert not lost, f"lost seqs {lost[:20]}; {report}"
    assert sorted(got.values()) == list(range(300)), report
    assert counts["mqtt"] == {"written": 300, "failed": 0, "buffered": 0}, report


def test_writer_killed_while_the_broker_is_down_sends_everything_after_restart(tmp_path: Path):
    (tmp_path / "broker").mkdir()
    b = Broker(tmp_path / "broker")
    b.start()
    try:
        sub = Subscriber(b.port, TOPIC)
        outbox = tmp_path / "outbox.db"
        w = Writer(tmp_path, {"jsonl": None, "port": b.port, "outbox": str(outbox), "device": DEVICE,
                              "interval": 0.005}).start(start=0)
        w.wait_lines(50)
        b.stop()
        w.wait_lines(250)
        w.kill9()
        rows = w.lines()
        committed = {r[0] for r in rows if r[1]}
        stranded = outbox_rows(outbox)
        b.start()  # the broker comes back; the device restarts its service
        w.start(start=rows[-1][0] + 1, count=20)
        counts = w.finish()
        committed |= {r[0] for r in w.lines() if r[1]}
        max_seq = last_seq(outbox)
        got = wait_seqs(sub, max_seq)
        sub.close()
    finally:
        b.stop()
    lost_seq = sorted(set(range(1, max_seq + 1)) - set(got))
    report = {"produced": rows[-1][0] + 21, "committed": len(committed), "stranded_at_kill": stranded,
              "received": len(got), "lost": len(committed - set(got.values())), "lost_seq": len(lost_seq),
              "left_in_outbox": outbox_rows(outbox)}
    print("killed while broker down:", json.dumps(report))
    assert stranded > 100, f"the kill should strand events in the outbox: {report}"
    assert not lost_seq and committed <= set(got.values()), report
    assert report["left_in_outbox"] == 0 and counts["mqtt"]["buffered"] == 0, report


# -- disk full ---------------------------------------------------------------------------------------

@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MB tmpfs: a disk that really fills up (ENOSPC from the kernel, SQLITE_FULL from SQLite)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mnt = tmp_path / "small"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m,mode=0755", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_outbox_on_a_read_only_disk_is_refused_in_one_line_naming_the_flag(small_disk: Path):
    """Root may write anywhere except on a read-only filesystem: the permission case as root."""
    from edgewise.edge.apps.run import make_sinks
    from edgewise.edge.apps.settings import SinkSettings

    (small_disk / "state").mkdir()
    r = subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot remount read-only: {r.stderr.strip()}")
    box = small_disk / "state" / "outbox.db"
    with pytest.raises(ValueError, match=rf"^--mqtt-buffer {box}: folder {box.parent} is not writable$"):
        make_sinks(SinkSettings(jsonl=None, mqtt_host="127.0.0.1", mqtt_buffer=str(box), device_id=DEVICE),
                   "classify")


def fill(disk: Path) -> Path:
    """Fill ``disk`` to the last byte with one file; deleting it frees the space."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o644)
    block = b"\0" * 65536
    try:
        while True:
            try:
                os.write(fd, block)
            except OSError:
                break
        for size in (4096, 512, 1):  # the last partial blocks too
            while True:
                try:
                    if os.write(fd, block[:size]) == 0:
                        break
                except OSError:
                    break
    finally:
        os.close(fd)
    return filler


def _warnings_of(stderr: str, what: str) -> list[str]:
    return [ln for ln in stderr.splitlines()
            if what in ln and ("cannot write" in ln or "writing again" in ln)]


def test_disk_full_then_freed_keeps_what_was_recorded_and_drains_the_outbox(
    broker: Broker, small_disk: Path, tmp_path: Path
):
    sub = Subscriber(broker.port, TOPIC)
    w = Writer(tmp_path, {"jsonl": str(small_disk / "e.jsonl"), "sqlite": str(small_disk / "e.db"),
                          "port": broker.port, "outbox": str(small_disk / "outbox.db"), "device": DEVICE,
                          "interval": 0.005, "pad": 300}).start(start=0, count=900)
    w.wait_lines(200)
    filler = fill(small_disk)
    n_full = len(w.lines())
    deadline = time.monotonic() + 30
    while not any(0 in r[1:] for r in w.lines()[n_full:]):  # the writer sees the full disk
        assert time.monotonic() < deadline and w.proc.poll() is None, w.stderr()[-2000:]
        time.sleep(0.02)
    w.wait_lines(len(w.lines()) + 150)  # the loop goes on while the disk is full
    before_free = w.lines()
    filler.unlink()
    counts = w.finish()
    rows = w.lines()
    stderr = w.stderr()
    ok = {k: {r[0] for r in rows if r[1 + j]} for j, k in enumerate(("jsonl", "sqlite", "mqtt"))}
    failed_while_full = {k: sum(1 for r in before_free[n_full:] if not r[1 + j])
                         for j, k in enumerate(("jsonl", "sqlite", "mqtt"))}
    in_jsonl, in_sqlite = jsonl_is(small_disk / "e.jsonl"), sqlite_is(small_disk / "e.db")
    max_seq = last_seq(small_disk / "outbox.db")
    got = wait_seqs(sub, max_seq)
    sub.close()
    lost_seq = sorted(set(range(1, max_seq + 1)) - set(got))
    report = {
        "produced": 900, "failed_while_full": failed_while_full,
        "jsonl": {"written": len(in_jsonl), "lost": len(ok["jsonl"] - set(in_jsonl)), **counts["jsonl"]},
        "sqlite": {"rows": len(in_sqlite), "lost": len(ok["sqlite"] - set(in_sqlite)), **counts["sqlite"]},
        "mqtt": {"seqs": max_seq, "received": len(got), "lost_seq": len(lost_seq),
                 "lost": len(ok["mqtt"] - set(got.values())), **counts["mqtt"],
                 "left_in_outbox": outbox_rows(small_disk / "outbox.db")},
    }
    print("disk full:", json.dumps(report))
    assert all(v > 0 for v in failed_while_full.values()), f"the disk never filled for a sink: {report}"
    assert sorted(in_jsonl) == sorted(ok["jsonl"]), f"JSON lines differ from the writes reported: {report}"
    assert sorted(in_sqlite) == sorted(ok["sqlite"]), f"SQLite differs from the writes reported: {report}"
    assert not lost_seq and set(got.values()) == ok["mqtt"], report
    for k in ("jsonl", "sqlite", "mqtt"):
        assert counts[k]["written"] + counts[k]["failed"] == 900, f"{k} counts do not add up: {report}"
        assert counts[k]["failed"] == 900 - len(ok[k]), report
    assert all(all(r[1:]) for r in rows[-50:]), f"not writing again once space was freed: {report}"
    assert report["mqtt"]["left_in_outbox"] == 0 and counts["mqtt"]["buffered"] == 0, report
    for what in ("JSON lines", "SQLite event log", "MQTT outbox"):  # one warning per change, not per event
        msgs = _warnings_of(stderr, what)
        assert len(msgs) == 2 and "cannot write" in msgs[0] and "writing again" in msgs[1], (what, msgs)


def test_broker_back_while_the_disk_is_full_keeps_the_sender_alive_and_drains_once_freed(
    broker: Broker, small_disk: Path, tmp_path: Path
):
    """The acknowledged rows cannot be deleted from a full disk: the sender retries instead of dying."""
    sub = Subscriber(broker.port, TOPIC)
    outbox = small_disk / "outbox.db"
    w = Writer(tmp_path, {"jsonl": None, "port": broker.port, "outbox": str(outbox), "device": DEVICE,
                          "interval": 0.005}).start(start=0, count=700)
    w.wait_lines(50)
    broker.stop()
    w.wait_lines(250)  # ~200 events wait in the outbox
    filler = fill(small_disk)
    w.wait_lines(300)
    broker.start()  # PUBACKs arrive; deleting the acknowledged rows needs space there is not
    deadline = time.monotonic() + 30
    while "MQTT sender" not in w.stderr():
        assert time.monotonic() < deadline, f"the sender never hit the full disk: {w.stderr()[-2000:]}"
        assert w.proc is not None and w.proc.poll() is None, w.stderr()[-2000:]
        time.sleep(0.05)
    stuck = outbox_rows(outbox)
    w.wait_lines(len(w.lines()) + 50)  # the loop goes on
    filler.unlink()
    counts = w.finish()
    ok = {r[0] for r in w.lines() if r[1]}
    max_seq = last_seq(outbox)
    got = wait_seqs(sub, max_seq)
    sub.close()
    lost_seq = sorted(set(range(1, max_seq + 1)) - set(got))
    report = {"produced": 700, "outboxed": len(ok), "failed": counts["mqtt"]["failed"],
              "stuck_while_full": stuck, "received": len(got), "lost_seq": len(lost_seq),
              "lost": len(ok - set(got.values())), "left_in_outbox": outbox_rows(outbox)}
    print("broker back on a full disk:", json.dumps(report))
    assert stuck > 0, report
    sender_log = w.stderr().split("MQTT sender", 1)[1]
    assert "writing again" in sender_log, w.stderr()[-2000:]
    assert not lost_seq and ok == set(got.values()), report
    assert report["left_in_outbox"] == 0 and counts["mqtt"]["buffered"] == 0, report


def test_run_starting_on_a_full_disk_with_the_broker_away_starts_and_delivers_once_both_return(
    small_disk: Path, tmp_path: Path
):
    (tmp_path / "broker").mkdir()
    b = Broker(tmp_path / "broker")
    b.start()
    sub = Subscriber(b.port, TOPIC)  # a persistent session: the broker queues for it while it is away
    b.stop()  # the broker is away when the device boots
    filler = fill(small_disk)
    w = Writer(tmp_path, {"jsonl": str(small_disk / "e.jsonl"), "sqlite": str(small_disk / "e.db"),
                          "port": b.port, "outbox": str(small_disk / "outbox.db"), "device": DEVICE,
                          "interval": 0.01}).start(start=0, count=400)
    try:
        w.wait_lines(100)
        at_start = w.stderr()
        filler.unlink()
        w.wait_lines(200)
        b.start()
        counts = w.finish()
        rows = w.lines()
        ok_mqtt = {r[0] for r in rows if r[3]}
        got = wait_seqs(sub, len(ok_mqtt))
        sub.close()
    finally:
        b.stop()
    report = {"produced": 400, "mqtt_ok": len(ok_mqtt), "received": len(got),
              "lost": len(ok_mqtt - set(got.values())), "counts": counts}
    print("start on a full disk, broker away:", json.dumps(report))
    assert "only 0.0 MB free" in at_start and "starting anyway" in at_start, at_start[-2000:]
    assert "unreachable" in at_start, at_start[-2000:]
    assert counts["mqtt"]["failed"] > 0 and counts["mqtt"]["written"] == len(ok_mqtt), report
    assert sorted(got) == list(range(1, len(ok_mqtt) + 1)), report
    assert set(got.values()) == ok_mqtt, report


# -- the real command ------------------------------------------------------------------------------

def test_edgewise_run_classify_killed_while_the_broker_is_down_sends_everything_after_restart(
    digits_bundle: Path, tmp_path: Path
):
    """`edgewise run classify` on a looping synthetic digits video, killed -9 with the broker away;
    the service restarts once the broker is back and the next run sends the stranded events first."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "edge"))
    from test_pipeline_loop import write_digit_video

    video = write_digit_video(tmp_path / "digits.mp4", frames=30)
    (tmp_path / "broker").mkdir()
    b = Broker(tmp_path / "broker")
    b.start()
    sub = Subscriber(b.port, TOPIC)  # persistent session: queued for while it reconnects
    b.stop()
    outbox, events, db = tmp_path / "outbox.db", tmp_path / "e.jsonl", tmp_path / "e.db"
    cmd = [sys.executable, "-m", "edgewise.edge.cli", "run", "classify", "--bundle", str(digits_bundle),
           "--source", str(video), "--threads", "1", "--jsonl", str(events), "--sqlite", str(db),
           "--mqtt", f"127.0.0.1:{b.port}", "--device-id", DEVICE, "--mqtt-buffer", str(outbox)]
    try:
        with open(tmp_path / "run1.err", "w") as err:
            p = subprocess.Popen([*cmd, "--loop"], stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.monotonic() + 120
        while not events.exists() or events.read_bytes().count(b"\n") < 100:
            assert p.poll() is None, (tmp_path / "run1.err").read_text()[-2000:]
            assert time.monotonic() < deadline, "the first run wrote fewer than 100 events"
            time.sleep(0.05)
        os.kill(p.pid, signal.SIGKILL)
        p.wait(10)
        stranded, events_1 = outbox_rows(outbox), len(jsonl_lines(events))
        b.start()
        r = subprocess.run([*cmd, "--max-frames", "20", "--stats", str(tmp_path / "stats.json")],
                           capture_output=True, text=True, timeout=180)
        assert r.returncode == 0, r.stderr[-2000:]
        max_seq = last_seq(outbox)
        got = wait_seqs(sub, max_seq, key="frame")
        sub.close()
    finally:
        b.stop()
    lost_seq = sorted(set(range(1, max_seq + 1)) - set(got))
    in_jsonl, in_sqlite = jsonl_lines(events), sqlite_events(db)
    report = {"run1_events_before_kill": events_1, "stranded_in_outbox": stranded, "run2_frames": 20,
              "outboxed": max_seq, "received": len(got), "lost_seq": len(lost_seq),
              "jsonl_lines": len(in_jsonl), "sqlite_rows": len(in_sqlite),
              "left_in_outbox": outbox_rows(outbox)}
    print("edgewise run classify, kill -9 while the broker is down:", json.dumps(report))
    assert "unreachable" in (tmp_path / "run1.err").read_text(), "broker absence not logged during run 1"
    assert stranded >= 100 - 1, report  # at most the event in flight at the kill is not yet outboxed
    assert not lost_seq and max_seq >= stranded + 20, report
    assert report["left_in_outbox"] == 0, report
    # each sink kept every event it had when the process was killed (at most the one in flight differs)
    assert abs(len(in_jsonl) - len(in_sqlite)) <= 1 and abs(len(in_sqlite) - max_seq) <= 1, report
    assert all(m["label"] in [str(d) for d in range(10)] for m in sub.messages), report
    sinks = json.loads((tmp_path / "stats.json").read_text())["sinks"]  # the second run's own summary
    assert sinks["jsonl"] == sinks["sqlite"] == {"written": 20, "failed": 0, "buffered": 0}, sinks
    # MQTT's written: acknowledged during this run, the stranded backlog of the killed run included
    assert sinks["mqtt"] == {"written": max_seq, "failed": 0, "buffered": 0}, (sinks, report)
    assert "sinks: jsonl written=20 failed=0 buffered=0; sqlite written=20" in r.stderr, r.stderr[-1000:]
