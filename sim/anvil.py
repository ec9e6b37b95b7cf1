"""A local anvil node for the simulation lab (``mevwatch demo``, ``mevwatch sim export``).

anvil comes from the npm package @foundry-rs/anvil, installed by
``scripts/services/install.sh --anvil-only`` (``scripts/setup.sh`` runs it) under
``$MEVWATCH_SERVICES`` (default ``~/.cache/mevwatch/services``). :class:`Anvil` runs it
on 127.0.0.1 with its data in a folder of the caller's choosing. ``start`` waits until
the node answers; ``stop`` ends it (SIGTERM, then SIGKILL); ``kill`` is SIGKILL, for
fault tests. Starting a running node is a no-op; every failure is a
:class:`~monitor.errors.ServiceError` that names the log file to read.

:class:`LocalProcess` is the base of this launcher and of the test harness's Kafka,
ClickHouse and Prometheus launchers (``tests/services.py``).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from mevwatch.monitor.errors import ServiceError

SERVICES = Path(os.environ.get("MEVWATCH_SERVICES", Path.home() / ".cache" / "mevwatch" / "services"))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


class LocalProcess:
    """A service process in its own session, logging to ``data_dir/<name>.log``."""

    name = "service"

    def __init__(self, data_dir: Path):
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.data_dir / f"{self.name}.log"
        self.proc: subprocess.Popen | None = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _spawn(self, cmd: list[str]) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child owns it
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True, cwd=self.data_dir)
        log.close()

    def _wait(self, ready: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise ServiceError(f"{self.name} exited with code {self.proc.returncode}; see {self.log_path}")
            if ready():
                return
            time.sleep(0.2)
        raise ServiceError(f"{self.name} not ready after {timeout:.0f} s; see {self.log_path}")

    def stop(self, timeout: float = 20.0) -> None:
        if not self.running:
            return
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.running:
            assert self.proc is not None
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


class Anvil(LocalProcess):
    """anvil from the npm package @foundry-rs/anvil; a real node with a real mempool."""

    name = "anvil"

    def __init__(self, data_dir: Path, port: int | None = None, *, block_time: float | None = None,
                 chain_id: int = 31337, extra: list[str] | None = None, accounts: int = 12, mnemonic_seed: int | None = None):
        """``mnemonic_seed``: dev accounts from a mnemonic derived from this seed (lab v2: fresh
        accounts, hence fresh contract addresses, per seed); None: anvil's well-known accounts."""
        super().__init__(data_dir)
        self.accounts, self.mnemonic_seed = accounts, mnemonic_seed
        self.port = port or free_port()
        self.block_time = block_time
        self.chain_id = chain_id
        self.extra = extra or []
        self.state_file = self.data_dir / "state.json"

    @staticmethod
    def binary() -> Path:
        base = SERVICES / "anvil" / "node_modules" / "@foundry-rs"
        for cand in (base / "anvil-linux-amd64" / "bin" / "anvil", base / "anvil-linux-arm64" / "bin" / "anvil"):
            if cand.exists():
                return cand
        raise ServiceError(f"anvil is not installed under {base}; run scripts/services/install.sh --anvil-only")

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0, *, keep_state: bool = False) -> Anvil:
        if self.running:
            return self
        cmd = [str(self.binary()), "--host", "127.0.0.1", "--port", str(self.port), "--chain-id", str(self.chain_id),
               "--order", "fees", "--silent", "--accounts", str(self.accounts)]
        if self.mnemonic_seed is not None:
            cmd += ["--mnemonic-seed-unsafe", str(self.mnemonic_seed)]
        if self.block_time is None:
            cmd.append("--no-mining")
        else:
            cmd += ["--block-time", str(self.block_time)]
        if keep_state:
            cmd += ["--state", str(self.state_file)]
        self._spawn(cmd + self.extra)
        self._wait(self._ready, timeout)
        return self

    def _ready(self) -> bool:
        if not port_open(self.port):
            return False
        try:
            req = urllib.request.Request(self.http_url, data=json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}).encode(),
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=2) as r:
                return "result" in json.loads(r.read())
        except OSError:
            return False
