"""``/healthz``, ``/readyz``, ``/startupz`` and ``/metrics`` on a small HTTP server in a background thread.

- ``/healthz`` (liveness): 200 while the main loop has made progress, or backed off on purpose
  (waiting for ClickHouse at start, a sink that is down), within the last 60 s; 503 otherwise
  (restart me). It also says whether start-up has completed.
- ``/startupz`` (start-up): 200 once the role has started (store opened, consumer joined,
  batcher made, node follower started); 503 with the phase it is in (``waiting for
  ClickHouse``, ...) until then. A Kubernetes ``startupProbe`` on it holds the liveness probe
  back while a pod waits for its dependencies.
- ``/readyz`` (readiness): 200 when start-up has completed and every dependency of *this role*
  answers; 503 with the failing checks otherwise. What each role depends on
  (:data:`DEPENDENCIES`): ``ingest`` the node and the bus, ``detect`` the bus and the store,
  ``attest`` the store and the attestation node (``chain``), ``all`` the node, the bus and the
  store (and the attestation node when it attests).
- ``/metrics``: Prometheus text format from prometheus-client's default registry.
- ``POST /query`` (only while the process holds the embedded store): the SQL in the body, one
  SELECT, run read-only on the process's own chDB session (``ChdbBackend.read_only_shared``);
  ``mevwatch db query`` uses it when ``mevwatch run`` holds the store. Answered to loopback
  clients that send the token the daemon wrote to a file only its user can read
  (:func:`mevwatch.monitor.store.endpoint.write`); 404 when not offered.
"""

from __future__ import annotations

import hmac
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import ip_address
from typing import Any

import orjson

from mevwatch.monitor.errors import MevwatchError

STALL_S = 60.0  # /healthz: no heartbeat for this long is a stalled process
QUERY_MAX_BYTES = 64 * 1024  # POST /query: the longest SQL accepted

# role -> the dependencies its readiness waits for (flags ``<name>_ok`` of :class:`Health`)
DEPENDENCIES: dict[str, tuple[str, ...]] = {
    "ingest": ("node", "bus"),
    "detect": ("bus", "store"),
    "attest": ("store", "chain"),
    "all": ("node", "bus", "store"),
}
CHECKS = ("node", "bus", "store", "chain")


@dataclass
class Health:
    """What the endpoints report; updated by the daemon, the pipeline and its sinks.

    Each flag is True (answers), False (failed; ``last_error`` says why) or None (not checked
    yet, or not used by this role). Readiness needs every flag of ``needs`` True and start-up
    completed. ``Health()`` (no role: the demo, benchmarks) needs the store and the bus and
    counts as started."""

    needs: tuple[str, ...] = ("store", "bus")
    role: str | None = None
    beat: float = field(default_factory=time.monotonic)
    store_ok: bool | None = True
    bus_ok: bool | None = True
    node_ok: bool | None = None
    chain_ok: bool | None = None  # the attestation node
    started: bool = True
    phase: str = "running"
    last_error: str | None = None
    # POST /query: SQL -> (column names, rows), and the token a client must send; None: not offered
    query: Callable[[str], tuple[list[str], list[list[Any]]]] | None = None
    query_token: str | None = None

    @classmethod
    def for_role(cls, role: str, *, attest: bool = False, node: bool = True) -> Health:
        """The health of a daemon running ``role``: nothing checked yet, not started.
        ``attest``: role ``all`` attests too; ``node``: role ``all`` follows a node."""
        needs = DEPENDENCIES[role]
        if role == "all":
            needs = tuple(d for d in needs if d != "node" or node) + (("chain",) if attest else ())
        return cls(needs=needs, role=role, store_ok=None, bus_ok=None, node_ok=None, chain_ok=None,
                   started=False, phase="starting")

    def check(self, name: str) -> bool | None:
        return getattr(self, f"{name}_ok")

    def mark(self, name: str, ok: bool, error: str | None = None) -> None:
        setattr(self, f"{name}_ok", ok)
        if error is not None:
            self.last_error = error

    def alive(self, max_silence_s: float = STALL_S) -> bool:
        return time.monotonic() - self.beat < max_silence_s

    def ready(self) -> bool:
        return self.started and all(self.check(d) is True for d in self.needs)

    def waiting(self, phase: str, error: str | None = None) -> None:
        """Start-up is waiting (``phase``), backing off on purpose: that is not being stuck."""
        self.phase = phase
        if error is not None:
            self.last_error = error
        self.beat = time.monotonic()

    def start_done(self) -> None:
        self.started, self.phase = True, "running"
        self.beat = time.monotonic()

    # --- the endpoints' bodies --------------------------------------------------------------------
    def liveness(self) -> tuple[int, dict]:
        ok = self.alive()
        return (200 if ok else 503), {"status": "ok" if ok else "stalled", "started": self.started, "phase": self.phase,
                                      "beat_age_s": round(time.monotonic() - self.beat, 3)}

    def startup(self) -> tuple[int, dict]:
        ok = self.started and self.alive()
        body = {"status": "started" if ok else ("stalled" if self.started else "starting"), "role": self.role,
                "phase": self.phase}
        if not ok:
            body["last_error"] = self.last_error
        return (200 if ok else 503), body

    def readiness(self) -> tuple[int, dict]:
        ok = self.ready()
        body = {"status": "ready" if ok else "not ready", "role": self.role, "started": self.started,
                "checks": {d: self.check(d) for d in self.needs},
                # every flag, as before roles (None: not checked by this role)
                "store": self.store_ok, "bus": self.bus_ok, "node": self.node_ok, "chain": self.chain_ok,
                "last_error": None if ok else self.last_error}
        if not self.started:
            body["phase"] = self.phase
        return (200 if ok else 503), body


def serve(health: Health, host: str, port: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            path = self.path.split("?", 1)[0]
            if path == "/healthz":
                self._send(*health.liveness())
            elif path == "/startupz":
                self._send(*health.startup())
            elif path == "/readyz":
                self._send(*health.readiness())
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

        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            if self.path.split("?", 1)[0] != "/query" or health.query is None or health.query_token is None:
                self._send(404, {"error": "not found"})
                return
            peer = ip_address(self.client_address[0])
            mapped = getattr(peer, "ipv4_mapped", None)  # ::ffff:127.0.0.1 on a dual-stack socket
            if not (peer.is_loopback or (mapped is not None and mapped.is_loopback)):
                self._send(403, {"error": "/query answers loopback clients only"})
                return
            auth = self.headers.get("Authorization", "")
            if not hmac.compare_digest(auth.encode(), f"Bearer {health.query_token}".encode()):
                self._send(401, {"error": "missing or wrong token (the daemon's query endpoint file has it)"})
                return
            try:
                length = int(self.headers.get("Content-Length", "0"))
            except ValueError:
                length = -1
            if not 0 < length <= QUERY_MAX_BYTES:
                self._send(400, {"error": f"the body must be the SQL, 1 to {QUERY_MAX_BYTES} bytes"})
                return
            try:
                sql = self.rfile.read(length).decode()
                names, rows = health.query(sql)
            except UnicodeDecodeError:
                self._send(400, {"error": "the SQL is not UTF-8"})
            except MevwatchError as exc:
                self._send(400, {"error": str(exc)})
            except Exception as exc:  # noqa: BLE001 - a bug answers 500 (and is logged), never a dropped connection
                from mevwatch.monitor.log import get_logger

                get_logger("mevwatch.health").error("POST /query failed", error=repr(exc)[:300])
                self._send(500, {"error": "internal error (see the daemon's log)"})
            else:
                self._send(200, {"columns": names, "rows": rows})

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
