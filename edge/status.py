"""Optional local status page: live stats as JSON and an annotated MJPEG preview of the loop.

Bound to 127.0.0.1 by default, so it is reachable from the device itself or through an SSH
tunnel (``ssh -L 8080:localhost:8080 pi@raspberrypi.local``), never from the plant network
unless ``--status-host 0.0.0.0`` says so. It costs the loop nothing while nobody watches:
the runner only keeps a reference to its latest frame and event; JPEG encoding happens in the
server's thread, per viewer, at ``preview_fps`` at most.

Endpoints: ``/`` (page), ``/stats.json``, ``/stream.mjpg``, ``/snapshot.jpg``, and ``/metrics``
for Prometheus (``edge.metrics``; each server has its own registry). A fleet's Prometheus scrapes
``/metrics`` through the same address, so serving it beyond the device takes ``--status-host``.

>>> server = StatusServer(runner, port=8080); server.start()   # doctest: +SKIP
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

from .evaluate import percentiles
from .event import Event
from .jsonenc import dumps

__all__ = ["StatusServer", "annotate", "live_stats"]

log = logging.getLogger("edgewise.status")
_BOUNDARY = "edgewise-frame"
_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>edgewise %(app)s</title>
<style>body{font-family:sans-serif;margin:1em;background:#111;color:#eee}img{max-width:100%%}
pre{background:#222;padding:.5em}</style></head><body><h2>edgewise %(app)s</h2>
<img src="stream.mjpg" alt="live preview"><pre id="s">loading...</pre><script>
async function tick(){try{const r=await fetch('stats.json');
document.getElementById('s').textContent=JSON.stringify(await r.json(),null,1)}catch(e){}}
setInterval(tick,1000);tick();</script></body></html>"""


def _text_lines(event: Event | None) -> list[str]:
    """The answer and score under the app's own names (``person=ann similarity=0.82``)."""
    if event is None:
        return []
    parts = [f"{event.answer_key}={event.answer}"]
    if event.score is not None:
        parts.append(f"{event.score_key}={event.score:.4g}")
    lines = [" ".join(parts)]
    lat = event.latency_ms.get("end_to_end")
    if lat is not None:
        lines.append(f"end-to-end {lat:.1f} ms")
    return lines


def annotate(
    frame: Any, event: Event | Mapping[str, Any] | None, app: Any = None, fps: float | None = None
) -> np.ndarray:
    """A BGR image of the frame with the event drawn on it (the app's own ``annotate`` first)."""
    import cv2

    event = None if event is None else Event.coerce(event)
    custom = getattr(app, "annotate", None)
    if callable(custom):
        img = custom(frame, event)
    else:
        img = frame.meta.get("main") if isinstance(frame.meta.get("main"), np.ndarray) else frame.data
    img = np.asarray(img)
    if img.ndim == 1 or (img.ndim == 2 and min(img.shape) <= 8):  # a signal window: draw a trace
        sig = img.reshape(img.shape[0], -1)[:, 0].astype(np.float32)
        canvas = np.zeros((240, 640, 3), np.uint8)
        if sig.size > 1 and np.isfinite(sig).all():
            span = float(sig.max() - sig.min()) or 1.0
            xs = np.linspace(0, 639, sig.size)
            ys = 220 - (sig - sig.min()) / span * 180
            pts = np.stack([xs, ys], 1).astype(np.int32).reshape(-1, 1, 2)
            cv2.polylines(canvas, [pts], False, (80, 220, 80), 1)
        img = canvas
    elif img.dtype != np.uint8:
        lo, hi = float(np.nanmin(img)), float(np.nanmax(img))
        img = ((img - lo) / ((hi - lo) or 1.0) * 255).clip(0, 255).astype(np.uint8)
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    elif img.shape[2] == 4:
        img = img[..., :3]
    img = np.ascontiguousarray(img.copy())
    lines = _text_lines(event)
    if fps is not None:
        lines.append(f"frame {frame.index}  {fps:.1f} fps")
    scale = max(0.4, img.shape[1] / 900)
    for i, text in enumerate(lines):
        y = int(24 * scale * (i + 1)) + 4
        cv2.putText(img, text, (8, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(img, text, (8, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 255, 255), 1, cv2.LINE_AA)
    return img


def live_stats(runner: Any, recent: int = 300) -> dict[str, Any]:
    """A snapshot of a running ``Runner``: counters, FPS and latency over the last frames."""
    stats = runner.stats
    out: dict[str, Any] = {"app": getattr(runner.app, "name", "?"), "running": stats is not None}
    if stats is None:
        return out
    now = time.monotonic()
    uptime = now - (runner.t_start or now)
    e2e = stats.times["end_to_end"].recent(recent)
    out.update(
        uptime_s=round(uptime, 1), frames=stats.frames, events=stats.events, errors=stats.errors,
        errors_by_kind=dict(stats.errors_by_kind),
        dropped=int(getattr(getattr(runner, "_source", None), "dropped", stats.dropped) or 0),
        fps=round(stats.frames / uptime, 2) if uptime > 0 else 0.0,
        end_to_end=percentiles(e2e),
        inference=percentiles(stats.times["inference"].recent(recent)),
        last_event=None if runner.last_event is None else runner.last_event.to_dict(),
    )
    return out


class StatusServer:
    """HTTP status page for one ``Runner`` (see the module docstring)."""

    def __init__(self, runner: Any, host: str = "127.0.0.1", port: int = 8080, *, preview_fps: float = 10.0,
                 jpeg_quality: int = 75, metrics: bool = True) -> None:
        """``metrics``: serve ``/metrics`` (needs ``prometheus_client``; without it ``/metrics``
        answers 501 and the rest of the page works)."""
        self.runner = runner
        self.metrics: Any = None
        self._want_metrics = metrics
        self.host = host
        self.port = port
        self.preview_fps = preview_fps
        self.jpeg_quality = jpeg_quality
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    def jpeg(self) -> bytes | None:
        import cv2

        frame, event = self.runner.last_frame, self.runner.last_event
        if frame is None:
            return None
        st = self.runner.stats
        fps = None
        if st is not None and self.runner.t_start:
            fps = st.frames / max(1e-6, time.monotonic() - self.runner.t_start)
        img = annotate(frame, event, self.runner.app, fps)
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
        return buf.tobytes() if ok else None

    def start(self) -> StatusServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, fmt: str, *args: Any) -> None:
                log.debug("status %s: " + fmt, self.client_address[0], *args)

            def _send(self, code: int, ctype: str, body: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                path = self.path.split("?", 1)[0]
                if path in ("/", "/index.html"):
                    app = getattr(server.runner.app, "name", "?")
                    self._send(200, "text/html; charset=utf-8", (_PAGE % {"app": app}).encode())
                elif path == "/stats.json":
                    body = dumps(live_stats(server.runner)).encode()
                    self._send(200, "application/json", body)
                elif path == "/snapshot.jpg":
                    jpg = server.jpeg()
                    if jpg is None:
                        self._send(503, "text/plain", b"no frame yet\n")
                    else:
                        self._send(200, "image/jpeg", jpg)
                elif path == "/stream.mjpg":
                    self._stream()
                elif path == "/metrics":
                    if server.metrics is None:
                        self._send(501, "text/plain", b"metrics off: prometheus_client is not installed\n")
                    else:
                        body, ctype = server.metrics.exposition()
                        self._send(200, ctype, body)
                else:
                    self._send(404, "text/plain", b"not found\n")

            def _stream(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={_BOUNDARY}")
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                period = 1.0 / max(0.1, server.preview_fps)
                last_id = None
                try:
                    while not server._stopping.is_set():
                        frame = server.runner.last_frame
                        if frame is not None and id(frame) != last_id:
                            last_id = id(frame)
                            jpg = server.jpeg()
                            if jpg:
                                self.wfile.write(
                                    f"--{_BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                                    f"Content-Length: {len(jpg)}\r\n\r\n".encode() + jpg + b"\r\n"
                                )
                                self.wfile.flush()
                        time.sleep(period)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the viewer went away

        try:
            self._httpd = ThreadingHTTPServer((self.host, self.port), Handler)
        except OSError as e:
            where = f"{self.host}:{self.port}"
            raise ValueError(f"status page: cannot listen on {where} ({e.strerror})") from None
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        if self._want_metrics and self.metrics is None:
            self._attach_metrics()
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="status-http", daemon=True)
        self._thread.start()
        return self

    def _attach_metrics(self) -> None:
        """Count the runner's frames and events into this server's own registry (one line without
        ``prometheus_client``)."""
        from .metrics import RunMetrics

        try:
            self.metrics = RunMetrics(self.runner)
        except ImportError as e:
            log.warning("status page: /metrics off: %s", e)
            return
        observers = getattr(self.runner, "observers", None)
        if observers is not None:
            observers.append(self.metrics)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def stop(self) -> None:
        self._stopping.set()
        observers = getattr(self.runner, "observers", None)
        if self.metrics is not None and observers is not None and self.metrics in observers:
            observers.remove(self.metrics)
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
