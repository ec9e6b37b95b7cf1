"""Several chains in one deployment (docs/operations.md, "Several chains"): two local anvil chains
with different chain ids, each followed by its own `mevwatch run` (its chain id, node and
`kafka.topic_prefix`, its own ClickHouse database) through ONE Kafka broker and ONE ClickHouse
server. Each chain's alerts, blocks and swaps land in its own database and on its own topics,
stamped with its chain id, and nothing crosses; a message of the other chain put on a chain's
topic is a dead letter, never detected."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from harness import Daemon, start_on_lab
from services import Anvil
from conftest import Rpc
from mevwatch.monitor.store.store import open_store
from mevwatch.sim.runner import Lab
from mevwatch.streams import bus as busmod
from mevwatch.streams import envelope

pytestmark = [pytest.mark.anvil]
CHAINS = {"a": 31337, "b": 1337}


def _topic_records(bootstrap: str, topic: str) -> list[dict]:
    from kafka import KafkaConsumer

    c = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=f"check-{uuid.uuid4().hex[:6]}",
                      auto_offset_reset="earliest", enable_auto_commit=False)
    out, idle = [], 0
    try:
        while idle < 4:
            batch = c.poll(timeout_ms=500)
            idle = 0 if batch else idle + 1
            for msgs in batch.values():
                out += [json.loads(m.value) for m in msgs]
    finally:
        c.close()
    return out


def test_two_chains_through_one_kafka_and_one_clickhouse(tmp_path, kafka, clickhouse):
    run = uuid.uuid4().hex[:6]
    nodes, daemons, labs, rpcs, heads = {}, {}, {}, {}, {}
    try:
        for name, cid in CHAINS.items():
            nodes[name] = Anvil(tmp_path / f"anvil-{name}", chain_id=cid).start()
            rpcs[name] = Rpc(nodes[name].http_url)
            (tmp_path / name).mkdir()
            daemons[name] = Daemon(tmp_path / name, kafka=kafka.bootstrap, clickhouse=clickhouse.url(f"chain_{name}_{run}"),
                                   confirmations=2, role="all", rpc=nodes[name].ws_url, group=f"g-{name}-{run}",
                                   kafka_settings={"topic_prefix": f"mw{run}.{name}"},
                                   extra={"chain_id": cid, "gnn": {"enabled": False}, "attest": {"enabled": False}})
            labs[name] = Lab(nodes[name].http_url, nodes[name].ws_url, seed=4 if name == "a" else 9)
            start_on_lab(daemons[name], labs[name], rpcs[name])
        for name in CHAINS:
            labs[name].run(5)
        # chain b's newest block, put on chain a's blocks topic: a dead letter there, not a block of a
        b_head = rpcs["b"]("eth_getBlockByNumber", "latest", True)
        stray = envelope.encode(_block_of(b_head, CHAINS["b"]))
        intruder = busmod.KafkaBus(kafka.bootstrap, topic_prefix=f"mw{run}.a")
        intruder.produce(busmod.BLOCKS, b"stray", stray)
        intruder.flush(30)
        intruder.close()
        for name in CHAINS:
            rpcs[name]("evm_mine")
            rpcs[name]("evm_mine")
        time.sleep(4)
        for name in CHAINS:
            heads[name] = int(rpcs[name]("eth_blockNumber"), 16)
            assert daemons[name].terminate() == 0, daemons[name].tail()
        hashes = {name: {rpcs[name]("eth_getBlockByNumber", hex(n), False)["hash"] for n in range(1, heads[name] + 1)}
                  for name in CHAINS}
    finally:
        for d in daemons.values():
            if d.proc and d.proc.poll() is None:
                d.kill()
        for node in nodes.values():
            node.stop()

    for name, cid in CHAINS.items():
        store = open_store(clickhouse.url(f"chain_{name}_{run}"), tmp_path / "unused")
        try:
            kinds = {r[0]: int(r[1]) for r in store.backend.query("SELECT kind, count() FROM alerts FINAL GROUP BY kind")}
            assert kinds.get("sandwich", 0) >= 1, (name, kinds)
            assert {int(r[0]) for r in store.backend.query("SELECT DISTINCT chain_id FROM alerts")} == {cid}
            assert {int(r[0]) for r in store.backend.query("SELECT DISTINCT chain_id FROM blocks")} == {cid}
            assert {int(r[0]) for r in store.backend.query("SELECT DISTINCT chain_id FROM swaps")} == {cid}
            stored = {r[0] for r in store.backend.query("SELECT block_hash FROM blocks FINAL WHERE canonical = 1")}
            assert stored <= hashes[name] and not stored & hashes["b" if name == "a" else "a"], name
        finally:
            store.close()
        alerts = _topic_records(kafka.bootstrap, f"mw{run}.{name}.alerts.v1")
        assert alerts and {a["data"]["chain_id"] for a in alerts} == {cid}, name
    dead = _topic_records(kafka.bootstrap, f"mw{run}.a.deadletter.v1")
    assert any(f"a message of chain {CHAINS['b']}" in d["reason"] for d in dead), dead
    assert not _topic_records(kafka.bootstrap, f"mw{run}.b.deadletter.v1")


def _block_of(raw: dict, chain_id: int):
    from mevwatch.monitor.types import Block, Transaction

    txs = [Transaction(t["hash"], int(t["transactionIndex"], 16), t["from"], t.get("to"), t["input"], int(t["value"], 16))
           for t in raw["transactions"]]
    return Block(int(raw["number"], 16), raw["hash"], raw["parentHash"], int(raw["timestamp"], 16), raw["miner"],
                 int(raw["baseFeePerGas"], 16), txs, chain_id)

