"""A JSON-RPC WebSocket proxy in front of a real node (anvil) that answers chosen requests with
errors: a node without ``trace_block`` (Geth), without traces and full pending transactions (a
hosted provider), with a rate limit, or without ``eth_getBlockReceipts``. Everything else is
relayed to the node unchanged, subscriptions included. Also :class:`RefusingServer`, which refuses
every WebSocket handshake with an HTTP status (a wrong API key).

Test harness only (``from rpc_proxy import FaultProxy``; tests/ is on ``sys.path``).
"""

from __future__ import annotations

import asyncio
import collections
import http
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

UNSUPPORTED = {"code": -32601, "message": "the method {method} does not exist/is not available"}
RATE_LIMITED = {"code": -32005, "message": "rate limit exceeded: too many requests"}


@dataclass
class Rule:
    method: str
    error: dict
    times: int | None  # None: always
    when: Callable[[list], bool]


class _Loop:
    """An asyncio loop in a daemon thread, for a server the test talks to from its own thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro, timeout: float = 10.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        async def drain() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        try:
            self.run(drain())
        except Exception:  # noqa: BLE001 - best effort at teardown
            pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        if not self.thread.is_alive():
            self.loop.close()


class FaultProxy:
    """``FaultProxy(anvil.ws_url).start()``; ``proxy.url`` is what the client connects to."""

    def __init__(self, upstream: str):
        self.upstream = upstream
        self.rules: list[Rule] = []
        self.calls: collections.Counter[str] = collections.Counter()
        self.faults: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()
        self._loop: _Loop | None = None
        self._server: Any = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def fail(self, method: str, error: dict | None = None, *, times: int | None = None,
             when: Callable[[list], bool] = lambda params: True) -> FaultProxy:
        """Answer ``method`` (when ``when(params)``) with ``error`` (default: method not found),
        the first ``times`` times or always."""
        err = dict(error or UNSUPPORTED)
        err["message"] = err["message"].format(method=method)
        with self._lock:
            self.rules.append(Rule(method, err, times, when))
        return self

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()

    def _fault(self, method: str, params: list) -> dict | None:
        with self._lock:
            self.calls[method] += 1
            for r in self.rules:
                if r.method == method and r.when(params) and (r.times is None or r.times > 0):
                    if r.times is not None:
                        r.times -= 1
                    self.faults[method] += 1
                    return r.error
        return None

    async def _handle(self, client) -> None:
        from websockets.asyncio.client import connect

        async with connect(self.upstream, max_size=None) as upstream:
            async def down() -> None:
                async for msg in upstream:
                    await client.send(msg)

            task = asyncio.ensure_future(down())
            try:
                async for raw in client:
                    text = raw.decode() if isinstance(raw, bytes) else raw
                    req = json.loads(text)
                    err = self._fault(req.get("method", ""), req.get("params") or []) if isinstance(req, dict) else None
                    if err is not None:
                        await client.send(json.dumps({"jsonrpc": "2.0", "id": req.get("id"), "error": err}))
                    else:
                        await upstream.send(text)
            except Exception:  # noqa: BLE001 - the client went away
                pass
            finally:
                task.cancel()

    def start(self) -> FaultProxy:
        from websockets.asyncio.server import serve

        self._loop = _Loop()

        async def up():
            return await serve(self._handle, "127.0.0.1", 0, max_size=None)

        self._server = self._loop.run(up())
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        if self._loop is not None and self._server is not None:
            self._server.close()
            try:
                self._loop.run(self._server.wait_closed())
            except Exception:  # noqa: BLE001
                pass
            self._loop.close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class RefusingServer:
    """Refuses every WebSocket handshake with ``status`` (401: a wrong API key)."""

    def __init__(self, status: int = 401):
        self.status = status
        self.port = 0
        self._loop: _Loop | None = None
        self._server: Any = None

    def __enter__(self) -> RefusingServer:
        from websockets.asyncio.server import serve

        def reject(conn, request):
            return conn.respond(http.HTTPStatus(self.status), "invalid project id\n")

        self._loop = _Loop()

        async def up():
            return await serve(lambda ws: None, "127.0.0.1", 0, process_request=reject)

        self._server = self._loop.run(up())
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def __exit__(self, *exc) -> None:
        assert self._loop is not None
        self._server.close()
        try:
            self._loop.run(self._server.wait_closed())
        except Exception:  # noqa: BLE001
            pass
        self._loop.close()
