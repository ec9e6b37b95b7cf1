"""Real local webhook receivers for the tests: an aiohttp app or a raw asyncio server, each on its own
loop in a daemon thread on 127.0.0.1, stopped with the test."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable

from services import free_port


class Served:
    """Runs ``start(loop) -> awaitable`` on a fresh loop in a thread; ``stop()`` ends the loop."""

    def __init__(self) -> None:
        self.port = free_port()
        self.loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._done = asyncio.Event()
        self._thread: threading.Thread | None = None

    async def _serve(self) -> Callable[[], Awaitable[None]]:
        raise NotImplementedError

    def start(self) -> Served:
        def run() -> None:
            async def main() -> None:
                self.loop = asyncio.get_running_loop()
                self._done = asyncio.Event()
                cleanup = await self._serve()
                self._ready.set()
                await self._done.wait()
                await cleanup()
            asyncio.run(main())

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        assert self._ready.wait(10), "receiver did not start"
        return self

    def stop(self) -> None:
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self._done.set)
        if self._thread is not None:
            self._thread.join(10)

    def url(self, path: str = "/h") -> str:
        return f"http://127.0.0.1:{self.port}{path}"


class AiohttpReceiver(Served):
    """An aiohttp app answering POST ``path`` with ``handler(request)``."""

    def __init__(self, handler, path: str = "/h") -> None:
        super().__init__()
        self.handler, self.path = handler, path

    async def _serve(self):
        from aiohttp import web

        app = web.Application()
        app.router.add_post(self.path, self.handler)
        runner = web.AppRunner(app, shutdown_timeout=0.5)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port).start()
        return runner.cleanup


class EndlessBodyReceiver(Served):
    """A raw HTTP/1.1 server: reads each request, answers ``status`` with a declared ``declared`` byte
    body, then writes ``chunk`` bytes every ``pause`` seconds until the client goes away. Records, per
    connection, the bytes of body it managed to hand to the kernel and when it saw the client leave."""

    def __init__(self, status: int = 200, declared: int = 2 << 30, chunk: int = 64 * 1024, pause: float = 0.005) -> None:
        super().__init__()
        self.status, self.declared, self.chunk, self.pause = status, declared, chunk, pause
        self.requests = 0
        self.sent: list[int] = []  # per closed connection
        self.closed_at: list[float] = []

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sent = 0
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            await reader.readexactly(length)
            self.requests += 1
            writer.write(f"HTTP/1.1 {self.status} Whatever\r\nContent-Type: application/octet-stream\r\n"
                         f"Content-Length: {self.declared}\r\n\r\n".encode())
            block = b"\x1b[2J" + b"z" * (self.chunk - 4)  # an escape sequence too: it must never reach a log or terminal
            while sent < self.declared and not reader.at_eof():
                writer.write(block)
                await writer.drain()
                sent += len(block)
                await asyncio.sleep(self.pause)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.sent.append(sent)
            self.closed_at.append(time.monotonic())
            writer.close()

    async def _serve(self):
        server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

        async def cleanup() -> None:
            server.close()

        return cleanup
