"""`mevwatch ingest` end to end: real anvil -> real Kafka, through a broker SIGKILL and restart."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from conftest import Rpc

from services import Anvil, Kafka
from mevwatch.monitor.types import Block
from mevwatch.streams import bus as busmod
from mevwatch.streams.consume import decode_records
from mevwatch.monitor.types import PendingTx

pytestmark = [pytest.mark.kafka, pytest.mark.anvil]


def start_ingest(ws: str, bootstrap: str, log: Path) -> subprocess.Popen:
    exe = Path(sys.executable).with_name("mevwatch")
    return subprocess.Popen([str(exe), "--log-format", "json", "ingest", "--rpc", ws, "--kafka", bootstrap],
                            stdout=open(log, "wb"), stderr=subprocess.STDOUT)


def consume_all(bootstrap: str, want_blocks: set[int], timeout: float = 90) -> tuple[list, list]:
    b = busmod.KafkaBus(bootstrap, create_topics=False)
    c = b.consumer([busmod.BLOCKS, busmod.MEMPOOL], f"t-{uuid.uuid4().hex[:6]}")
    msgs = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msgs += [m for _, m in decode_records(c.poll(timeout_ms=500), b)]
        if want_blocks <= {m.number for m in msgs if isinstance(m, Block)}:
            break
    c.close()
    b.close()
    return [m for m in msgs if isinstance(m, Block)], [m for m in msgs if isinstance(m, PendingTx)]


@pytest.fixture
def pipeline(tmp_path):
    """Own broker (so it can be killed), own anvil, and `mevwatch ingest` between them."""
    kafka = Kafka(tmp_path / "kafka", fsync_each=True).start()
    anvil = Anvil(tmp_path / "anvil").start()
    proc = start_ingest(anvil.ws_url, kafka.bootstrap, tmp_path / "ingest.log")
    time.sleep(3)
    yield kafka, anvil, Rpc(anvil.http_url), proc
    proc.terminate()
    proc.wait(20)
    anvil.stop()
    kafka.stop()


def test_ingest_publishes_mempool_and_blocks(pipeline):
    kafka, anvil, rpc, _proc = pipeline
    me = rpc("eth_accounts")[1]
    sent = [rpc("eth_sendTransaction", {"from": me, "to": me, "value": hex(i + 1)}) for i in range(5)]
    time.sleep(1)
    rpc("evm_mine")
    blocks, pending = consume_all(kafka.bootstrap, {1})
    assert {p.hash for p in pending} >= set(sent)
    for p in pending:
        assert p.first_seen_ns > 0 and p.from_address == me.lower() and p.source_node == anvil.ws_url
    mined = next(b for b in blocks if b.number == 1)
    assert [t.hash for t in mined.transactions] == sent
    assert all(t.gas_used == 21000 for t in mined.transactions)


def test_broker_sigkill_mid_stream_loses_no_block(pipeline, tmp_path):
    kafka, anvil, rpc, proc = pipeline
    for _ in range(5):
        rpc("evm_mine")
        time.sleep(0.2)
    kafka.kill()  # SIGKILL, as a crash
    for _ in range(5):
        rpc("evm_mine")  # mined while the broker is down
        time.sleep(0.2)
    kafka.start()  # same port, same log dir
    for _ in range(5):
        rpc("evm_mine")
        time.sleep(0.2)
    head = int(rpc("eth_blockNumber"), 16)
    blocks, _ = consume_all(kafka.bootstrap, set(range(1, head + 1)), timeout=180)
    numbers = sorted({b.number for b in blocks})
    assert proc.poll() is None, (tmp_path / "ingest.log").read_text()[-2000:]
    assert numbers[-1] == head == 15
    assert set(range(1, head + 1)) <= set(numbers), f"gap: {sorted(set(range(1, head + 1)) - set(numbers))}"
    # at-least-once: a duplicate is allowed, a different block at the same height is not
    by_number = {}
    for b in blocks:
        assert by_number.setdefault(b.number, b.hash) == b.hash
