"""Shared fixtures. Real data comes from ../shared/data (or $MEVWATCH_DATA)."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pytest

from mevwatch.monitor.decode import BlockDecoder
from mevwatch.monitor.types import Block, DecodedBlock
from mevwatch.streams.mevinspect import parse_block

REPO = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("MEVWATCH_DATA", REPO.parent / "shared" / "data"))
TRACES = DATA / "mainnet-traces"


@pytest.fixture(scope="session")
def traces_dir() -> Path:
    if not TRACES.is_dir():
        pytest.fail(f"real mainnet blocks not found at {TRACES}; set MEVWATCH_DATA")
    return TRACES


def raw_block(number: int) -> dict:
    with gzip.open(TRACES / f"{number}.json.gz") as fh:
        return json.load(fh)


_cache: dict[int, Block] = {}


@pytest.fixture(scope="session")
def load_block():
    def load(number: int) -> Block:
        if number not in _cache:
            _cache[number] = parse_block(raw_block(number), source=f"{number}.json.gz")
        return _cache[number]

    return load


@pytest.fixture(scope="session")
def decode_block(load_block):
    def decode(number: int) -> DecodedBlock:
        return BlockDecoder().decode(load_block(number))

    return decode


@pytest.fixture(scope="session")
def all_block_numbers(traces_dir) -> list[int]:
    return sorted(int(p.name.split(".")[0]) for p in traces_dir.glob("*.json.gz"))


# --- real services --------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def kafka(tmp_path_factory):
    """A real Kafka 4 broker (KRaft) on 127.0.0.1 for the whole session."""
    from services import Kafka

    k = Kafka(tmp_path_factory.mktemp("kafka")).start()
    yield k
    k.stop()


@pytest.fixture(scope="session")
def clickhouse(tmp_path_factory):
    """Debian's clickhouse-server on 127.0.0.1 for the whole session (tests use their own databases)."""
    from services import ClickHouseServer

    ch = ClickHouseServer(tmp_path_factory.mktemp("clickhouse")).start()
    yield ch
    ch.stop()


@pytest.fixture
def fresh_kafka(tmp_path):
    """A broker of this test's own: fault tests kill it, and stage versions follow blocks-topic offsets."""
    from services import Kafka

    k = Kafka(tmp_path / "kafka", fsync_each=True).start()
    yield k
    k.stop()


@pytest.fixture(scope="session")
def lab_messages(tmp_path_factory) -> list:
    """A real lab run (anvil, contracts, bots): pending transactions and blocks with sandwiches."""
    from mevwatch.sim.export import export
    from mevwatch.streams import envelope

    out = tmp_path_factory.mktemp("lab")
    export(out, blocks=30, seed=5)
    return [envelope.decode(line, source="recording") for line in (out / "recording.jsonl").read_bytes().splitlines()]


@pytest.fixture
def anvil(tmp_path):
    """A fresh anvil node with mining off (tests mine with evm_mine)."""
    from services import Anvil

    a = Anvil(tmp_path / "anvil").start()
    yield a
    a.stop()


class Rpc:
    """Minimal JSON-RPC client for driving anvil from tests."""

    def __init__(self, url: str):
        self.url = url
        self.id = 0

    def __call__(self, method: str, *params):
        import urllib.request

        self.id += 1
        body = json.dumps({"jsonrpc": "2.0", "id": self.id, "method": method, "params": list(params)}).encode()
        req = urllib.request.Request(self.url, data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            resp = json.loads(r.read())
        if "error" in resp:
            raise RuntimeError(f"{method}: {resp['error']}")
        return resp["result"]


@pytest.fixture
def rpc(anvil):
    return Rpc(anvil.http_url)
