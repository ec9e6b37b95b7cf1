"""Run a NodeSource in a background thread and collect what it emits."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

from mevwatch.monitor.types import Block
from mevwatch.monitor.types import PendingTx, RevertEvent
from mevwatch.streams.node import NodeSource


class Collector:
    def __init__(self, url: str, **kw):
        self.source = NodeSource(url, reconnect_max_s=1.0, **kw)
        self.messages: list = []
        self.dead: list = []
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._loop: asyncio.AbstractEventLoop | None = None

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._task = self._loop.create_task(self.source.run(self.messages.append, lambda *a: self.dead.append(a)))
        try:
            self._loop.run_until_complete(self._task)
        except (asyncio.CancelledError, Exception):  # noqa: BLE001
            pass

    def __enter__(self) -> Collector:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.source.stop()
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._task.cancel)
        self._thread.join(10)

    def wait_for(self, pred, timeout: float = 20.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred(self.messages):
                return self.messages
            time.sleep(0.05)
        raise AssertionError(f"timed out; got {self.summary()}")

    def blocks(self) -> list[Block]:
        return [m for m in self.messages if isinstance(m, Block)]

    def pending(self) -> list[PendingTx]:
        return [m for m in self.messages if isinstance(m, PendingTx)]

    def reverts(self) -> list[RevertEvent]:
        return [m for m in self.messages if isinstance(m, RevertEvent)]

    def summary(self) -> list[str]:
        out = []
        for m in self.messages:
            if isinstance(m, Block):
                out.append(f"B{m.number}")
            elif isinstance(m, RevertEvent):
                out.append(f"R{m.block_number}")
            else:
                out.append("P")
        return out


class CuttableProxy:
    """A TCP proxy on 127.0.0.1 whose connections can be cut, to drop a client's socket for real."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.accepting = True
        self.conns: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.accepting:
                client.close()
                continue
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            with self._lock:
                self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self) -> None:
        self.accepting = False
        with self._lock:
            for s in self.conns:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                    s.close()
                except OSError:
                    pass
            self.conns.clear()

    def restore(self) -> None:
        self.accepting = True

    def close(self) -> None:
        self.cut()
        self.listener.close()
