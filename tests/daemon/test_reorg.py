"""A reorg on anvil, end to end: `mevwatch run` follows the node through Kafka; the lab's
sandwiches land; the chain is rolled back under them and grows again, either past the old head
or to exactly its height (a different block at every processed height). Every sink is read raw
(ClickHouse with merges stopped, every topic message, every webhook delivery):

- every alert of an orphaned block is retracted exactly once, under one version, in every sink,
  and no other alert is retracted;
- with a reorg deeper than ``node.confirmations`` (3), the alerts final before it stay final (no
  retraction, no second final), the open ones are retracted, and the log warns;
- the daemon is SIGKILLed right after the reorg and restarted, the chain grows on: nothing is
  retracted again or re-raised, and each ``(alert, stage)`` still has one version everywhere."""

from __future__ import annotations

import uuid
from collections import Counter

import pytest

from harness import Daemon, Receiver, merged_parts, raw_alert_rows, start_on_lab, stop_merges, topic_events, wait_until
from services import Anvil
from mevwatch.monitor.store.store import open_store
from mevwatch.sim.runner import Lab
from conftest import Rpc

pytestmark = [pytest.mark.kafka, pytest.mark.anvil]
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def one_version_each(events, where: str) -> None:
    versions: dict[tuple[str, str], set[int]] = {}
    for aid, stage, ver in events:
        versions.setdefault((aid, stage), set()).add(ver)
    bad = {k: v for k, v in versions.items() if len(v) > 1}
    assert not bad, f"{where}: {len(bad)} (alert, stage) under several versions, e.g. {list(bad.items())[:3]}"


# the two ways a chain regrows, and a reorg deeper than finality (past the old head, with 3
# confirmations); past the old head with no alert final is the first's regrowth with the second's stages
@pytest.mark.parametrize("regrow, conf", [("same_height", 64), ("past_old_head", 3)])
def test_reorg_retracts_each_orphaned_alert_once_in_every_sink(tmp_path, fresh_kafka, clickhouse, regrow, conf):
    node = Anvil(tmp_path / "anvil", chain_id=31337).start()
    rx = Receiver(SECRET)
    url = clickhouse.url(f"r_{uuid.uuid4().hex[:8]}")
    store = open_store(url, tmp_path)
    stop_merges(store)
    daemon = Daemon(tmp_path, kafka=fresh_kafka.bootstrap, clickhouse=url, confirmations=conf, role="all", rpc=node.ws_url,
                    webhooks=[{"url": rx.url, "secrets": [SECRET]}], extra={"gnn": {"enabled": False}})
    rpc = Rpc(node.http_url)
    try:
        lab = Lab(node.http_url, node.ws_url, seed=3)
        start = start_on_lab(daemon, lab, rpc, lambda: store.count("blocks") >= 1)
        snap = rpc("evm_snapshot")
        lab.run(8)
        head = int(rpc("eth_blockNumber"), 16)
        wait_until(lambda: store.last_block() == head, 60, "every lab block processed", daemon.tail)
        before = raw_alert_rows(store)
        # with 3 confirmations the reorg is deeper than finality: the alerts final before it stay final
        final_before = {a for a, s, _v in before if s == "final"}
        assert bool(final_before) == (conf < 8), f"{len(final_before)} alerts final before the reorg"
        orphaned = {a for a, s, _v in before if s == "included"} - final_before
        rows = store.backend.query("SELECT DISTINCT alert_id, block_number FROM alerts WHERE stage = 'included'")
        assert all(start < int(n) <= head for _a, n in rows)
        assert sum(1 for r in store.backend.query("SELECT DISTINCT alert_id FROM alerts WHERE kind = 'sandwich' AND stage = 'included'")) >= 2, \
            "the lab landed too few sandwiches to test a reorg"
        assert not [e for e in before if e[1] == "retracted"]

        rpc("evm_revert", snap)  # the lab's blocks leave the chain ...
        grow = head - int(rpc("eth_blockNumber"), 16) + (2 if regrow == "past_old_head" else 0)
        for _ in range(grow):
            rpc("evm_mine")  # ... and an empty chain grows again
        new_head = int(rpc("eth_blockNumber"), 16)

        def retracted(events) -> Counter:
            return Counter(a for a, s, _v in events if s == "retracted")
        wait_until(lambda: set(retracted(raw_alert_rows(store))) >= orphaned and store.last_block() == new_head, 60,
                   "retractions in ClickHouse", daemon.tail)
        if final_before:  # the operator hears that finality did not hold
            wait_until(lambda: "reorg deeper than node.confirmations" in daemon.log.read_text(), 30, "the deep-reorg warning",
                       daemon.tail)
        wait_until(lambda: set(retracted(e for e, _w in rx.events())) >= orphaned, 30, "retraction webhooks", daemon.tail)
        canonical = store.backend.query("SELECT count() FROM blocks FINAL WHERE canonical = 0")
        assert int(canonical[0][0]) >= head - start - 1  # the orphaned blocks are marked

        # no fault yet: exactly one retraction row, message and delivery per orphaned alert, no other
        for where, events in (("ClickHouse rows", raw_alert_rows(store)), ("alerts topic", topic_events(fresh_kafka.bootstrap)),
                              ("webhook deliveries", [e for e, _w in rx.events()])):
            assert retracted(events) == Counter({a: 1 for a in orphaned}), where
            one_version_each(events, where)

        # a restart right after the reorg (SIGKILL: no drain, no commit), and the chain grows on
        daemon.kill()
        daemon.start()
        # started (not ready: readiness waits for the node's first message, which the mining below makes)
        wait_until(lambda: daemon.get("/startupz")[0] == 200, 90, "the daemon back", daemon.tail)
        for _ in range(3):
            rpc("evm_mine")
        wait_until(lambda: store.last_block() == new_head + 3, 60, "the blocks after the restart", daemon.tail)
        assert daemon.terminate() == 0, daemon.tail()
        n = len(rx.requests)
        raw, topic, hooks = raw_alert_rows(store), topic_events(fresh_kafka.bootstrap), [e for e, _w in rx.events()]
        assert len(rx.requests) == n, "webhooks delivered after the daemon stopped"
        assert merged_parts(store) == 0
        for where, events in (("ClickHouse rows", raw), ("alerts topic", topic), ("webhook deliveries", hooks)):
            one_version_each(events, where)
            assert set(retracted(events)) == orphaned, where  # no other alert retracted, none re-raised
            assert {(a, s) for a, s, _v in events if s != "pending"} == {(a, s) for a, s, _v in before if s != "pending"} | {
                (a, "retracted") for a in orphaned}, where
        assert retracted(hooks) == Counter({a: 1 for a in orphaned}), "a retraction webhook delivered twice"
        assert Counter(hooks) == Counter(set(hooks)), "a webhook delivered twice"
    finally:
        if daemon.proc and daemon.proc.poll() is None:
            daemon.kill()
        node.stop()
        store.close()
