"""Helpers for the daemon's tests: the fault-free baseline, a paced Kafka feeder, the daemon as a
real subprocess, and a webhook receiver."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import yaml

from mevwatch.monitor.alerts import AlertEvent
from mevwatch.monitor.pipeline import DetectWorker
from mevwatch.monitor.sinks.base import SinkChain
from services import free_port
from mevwatch.streams import bus as busmod
from mevwatch.monitor.types import PendingTx
from mevwatch.streams.ingest import publish

REPO = Path(__file__).resolve().parents[2]


def baseline(messages: list, confirmations: int) -> list[AlertEvent]:
    """The stage events of a fault-free run: the same pipeline on the in-process bus, no sinks."""
    bus = busmod.InProcessBus()
    for m in messages:
        publish(bus, m)
    return DetectWorker(bus, SinkChain([]), chain_id=31337, confirmations=confirmations).drain()


class Feeder:
    """Publishes messages to the broker at a pace (a block every ``block_s``), surviving broker restarts."""

    def __init__(self, bootstrap: str, messages: list, block_s: float = 0.15):
        self.bus = busmod.KafkaBus(bootstrap)
        self.messages, self.block_s = messages, block_s
        self.sent = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.error: BaseException | None = None

    def start(self) -> Feeder:
        self.thread.start()
        return self

    def _run(self) -> None:
        try:
            for m in self.messages:
                publish(self.bus, m)
                self.sent += 1
                if not isinstance(m, PendingTx):
                    self.bus.flush(120)
                    time.sleep(self.block_s)
            self.bus.flush(120)
        except BaseException as exc:  # noqa: BLE001
            self.error = exc

    def join(self, timeout: float = 180) -> None:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "feeder did not finish"
        assert self.error is None, repr(self.error)
        self.bus.close()


class Daemon:
    """``mevwatch run --role detect`` as a real process (killable, restartable)."""

    def __init__(self, tmp: Path, *, kafka: str | None, clickhouse: str | None, confirmations: int, webhooks: list[dict] | None = None,
                 role: str = "detect", rpc: str | None = None, group: str = "mevwatch", extra: dict | None = None,
                 env: dict | None = None):
        self.tmp = tmp
        self.health_port = free_port()
        cfg = {"chain_id": 31337, "data_dir": str(tmp / "data"), "kafka": {"bootstrap": kafka, "group_id": group},
               "clickhouse": {"url": clickhouse, "data_dir": str(tmp / "data" / "chdb")}, "node": {"confirmations": confirmations},
               "health_port": self.health_port, "webhooks": webhooks or [],
               "webhook_delivery": {"allow_private": True, "backoff_base_s": 0.05, "backoff_max_s": 1.0, "max_attempts": 50}}
        cfg.update(extra or {})
        self.env = env or {}
        self.config = tmp / f"mevwatch-{uuid.uuid4().hex[:6]}.yaml"
        self.config.write_text(yaml.safe_dump(cfg))
        self.role, self.rpc = role, rpc
        self.proc: subprocess.Popen | None = None
        self.log = tmp / "daemon.log"

    def start(self) -> Daemon:
        cmd = [sys.executable, "-m", "mevwatch.monitor.cli", "--config", str(self.config), "run", "--role", self.role]
        if self.rpc:
            cmd += ["--rpc", self.rpc]
        env = dict(os.environ, PYTHONPATH=str(REPO), **self.env)
        with open(self.log, "ab") as fh:
            self.proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=REPO, env=env)
        return self

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def terminate(self, timeout: float = 60) -> int:
        assert self.proc is not None
        self.proc.terminate()
        return self.proc.wait(timeout)

    def tail(self) -> str:
        return self.log.read_text()[-4000:] if self.log.exists() else ""

    def get(self, path: str) -> tuple[int, dict]:
        import urllib.error
        import urllib.request

        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}{path}", timeout=5) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())
        except (urllib.error.URLError, OSError):
            return 0, {}  # not listening (yet, or any more)


def start_on_lab(daemon: Daemon, lab, rpc, ready=None) -> int:
    """Set up the lab's market, start the daemon, mine one block and wait until the daemon
    follows the node (``ready()``, default /readyz); returns the block number before that block."""
    lab.setup()
    daemon.start()
    start = int(rpc("eth_blockNumber"), 16)
    wait_until(lambda: daemon.get("/healthz")[0] == 200, 60, "the daemon's health endpoint", daemon.tail)
    rpc("evm_mine")
    wait_until(ready or (lambda: daemon.get("/readyz")[0] == 200), 60, "the daemon to follow the node", daemon.tail)
    return start


def wait_until(cond, timeout: float, what: str, tail=lambda: "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}\n{tail()}")


class Receiver:
    """A webhook receiver on 127.0.0.1 (aiohttp) answering 500 to every other request when ``flaky``."""

    def __init__(self, secret: str, *, flaky: bool = False):
        self.secret, self.flaky = secret, flaky
        self.requests: list[tuple[dict, bytes]] = []
        self.port = free_port()
        self.n = 0
        self._loop = None
        self._ready = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()
        self._ready.wait(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def _serve(self) -> None:
        import asyncio

        from aiohttp import web

        async def hook(request: web.Request) -> web.Response:
            body = await request.read()
            self.n += 1
            if self.flaky and self.n % 2 == 1:
                return web.Response(status=500, text="try again")
            self.requests.append(({k.lower(): v for k, v in request.headers.items()}, body))
            return web.Response(status=204)

        async def main() -> None:
            app = web.Application()
            app.router.add_post("/hook", hook)
            runner = web.AppRunner(app)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", self.port).start()
            self._ready.set()
            while True:
                await asyncio.sleep(3600)

        asyncio.run(main())

    def verified(self) -> list[dict]:
        """Bodies whose Standard Webhooks signature the reference library accepts (raises otherwise)."""
        from standardwebhooks import Webhook

        wh = Webhook(self.secret)
        return [wh.verify(body, headers) for headers, body in self.requests]
