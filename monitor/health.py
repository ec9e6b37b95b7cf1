"""``/healthz``, ``/readyz`` and ``/metrics`` on a small HTTP server in a background thread.

- ``/healthz``: 200 while the main loop has made progress (or backed off on purpose)
  within the last 60 s; 503 otherwise (restart me).
- ``/readyz``: 200 when the store, the bus and (for ingest) the node are reachable;
  503 with the reason otherwise (stop sending me traffic, page someone).
- ``/metrics``: Prometheus text format from prometheus-client's default registry.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson


@dataclass
class Health:
    """What /healthz and /readyz report; updated by the pipeline."""

    beat: float = field(default_factory=time.monotonic)
    store_ok: bool = True
    bus_ok: bool = True
    node_ok: bool | None = None  # None: this process does not ingest
    last_error: str | None = None

    def alive(self, max_silence_s: float = 60.0) -> bool:
        return time.monotonic() - self.beat < max_silence_s

    def ready(self) -> bool:
        return self.store_ok and self.bus_ok and self.node_ok is not False


def serve(health: Health, host: str, port: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            path = self.path.split("?", 1)[0]
            if path == "/healthz":
                ok = health.alive()
                self._send(200 if ok else 503, {"status": "ok" if ok else "stalled"})
            elif path == "/readyz":
                ok = health.ready()
                self._send(200 if ok else 503, {"status": "ready" if ok else "not ready", "store": health.store_ok,
                                                "bus": health.bus_ok, "node": health.node_ok,
                                                "last_error": None if ok else health.last_error})
            elif path == "/metrics":
                from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

                body = generate_latest()
                self.send_response(200)
                self.send_header("Content-Type", CONTENT_TYPE_LATEST)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            else:
                self._send(404, {"error": "not found"})

        def _send(self, code: int, obj: dict) -> None:
            body = orjson.dumps(obj)
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args) -> None:  # noqa: A002 - quiet
            return

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="health", daemon=True).start()
    return server
