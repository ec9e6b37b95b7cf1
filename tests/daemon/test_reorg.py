"""A reorg on anvil, end to end: `mevwatch run` follows the node through Kafka; the lab's
sandwiches land; the chain is rolled back under them and grows past the old head. Every alert
of an orphaned block becomes `retracted` in ClickHouse, on the alerts topic and on webhooks."""

from __future__ import annotations

import json
import uuid

import pytest

from harness import Daemon, Receiver, start_on_lab, wait_until
from services import Anvil
from mevwatch.monitor.store.store import open_store
from mevwatch.sim.runner import Lab
from conftest import Rpc

pytestmark = [pytest.mark.kafka, pytest.mark.anvil]
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def test_reorg_retracts_alerts_in_every_sink(tmp_path, fresh_kafka, clickhouse):
    node = Anvil(tmp_path / "anvil", chain_id=31337).start()
    rx = Receiver(SECRET)
    url = clickhouse.url(f"r_{uuid.uuid4().hex[:8]}")
    daemon = Daemon(tmp_path, kafka=fresh_kafka.bootstrap, clickhouse=url, confirmations=64, role="all", rpc=node.ws_url,
                    webhooks=[{"url": rx.url, "secrets": [SECRET], "kinds": ["sandwich", "arbitrage"]}])
    store = open_store(url, tmp_path)
    rpc = Rpc(node.http_url)
    try:
        lab = Lab(node.http_url, node.ws_url, seed=3)
        start = start_on_lab(daemon, lab, rpc, lambda: store.count("blocks") >= 1)
        snap = rpc("evm_snapshot")
        lab.run(8)
        head = int(rpc("eth_blockNumber"), 16)

        def included() -> dict[str, int]:
            rows = store.backend.query("SELECT alert_id, block_number FROM alerts FINAL WHERE kind = 'sandwich' AND stage = 'included'")
            return {r[0]: int(r[1]) for r in rows}
        wait_until(lambda: store.last_block() == head, 60, "every lab block processed", daemon.tail)
        doomed = included()
        assert len(doomed) >= 2, "the lab landed too few sandwiches to test a reorg"
        assert all(start < n <= head for n in doomed.values())

        rpc("evm_revert", snap)  # the lab's blocks leave the chain ...
        for _ in range(head - int(rpc("eth_blockNumber"), 16) + 2):
            rpc("evm_mine")  # ... and an empty chain grows past the old head

        def stages() -> dict[str, str]:
            rows = store.backend.query("SELECT alert_id, stage FROM alerts FINAL WHERE kind = 'sandwich'")
            return {r[0]: r[1] for r in rows}
        wait_until(lambda: all(stages().get(a) == "retracted" for a in doomed), 60, "retractions in ClickHouse", daemon.tail)
        canonical = store.backend.query("SELECT count() FROM blocks FINAL WHERE canonical = 0")
        assert int(canonical[0][0]) >= 8  # the orphaned blocks are marked

        from kafka import KafkaConsumer

        c = KafkaConsumer("mevwatch.alerts.v1", bootstrap_servers=fresh_kafka.bootstrap, group_id="reorg-check",
                          auto_offset_reset="earliest", enable_auto_commit=False)
        seen: dict[str, list[str]] = {}
        for _ in range(10):
            for msgs in c.poll(timeout_ms=500).values():
                for m in msgs:
                    d = json.loads(m.value)
                    seen.setdefault(d["data"]["alert_id"], []).append(d["type"])
        c.close()
        for a in doomed:
            assert seen[a][0] == "mev.sandwich.included" and seen[a][-1] == "mev.alert.retracted", seen[a]

        def hooks() -> dict[str, set[str]]:
            out: dict[str, set[str]] = {}
            for body in rx.verified():
                out.setdefault(body["data"]["alert_id"], set()).add(body["type"])
            return out
        wait_until(lambda: all("mev.alert.retracted" in hooks().get(a, ()) for a in doomed), 30, "retraction webhooks")
        assert all(hooks()[a] == {"mev.sandwich.included", "mev.alert.retracted"} for a in doomed)
        assert daemon.terminate() == 0
    finally:
        if daemon.proc and daemon.proc.poll() is None:
            daemon.kill()
        node.stop()
