"""The daemon under faults, with real services: the lab's pending transactions and blocks go
through a real Kafka broker into `mevwatch run --role detect` (a real process), which writes a
real ClickHouse server, the alerts topic and webhooks. Whatever breaks on the way:

- the block-stage alerts (one partition, so one order) are exactly those of a fault-free run,
  at the same final stages;
- the rows after FINAL are exactly the alerts published on the alerts topic, each at the
  newest stage published there: nothing lost, nothing doubled. (Pending-stage alerts depend on
  how mempool partitions interleave, which Kafka does not fix, so the sinks are compared with
  each other, not with a fault-free run.)"""

from __future__ import annotations

import json
import time
import uuid

import pytest

from harness import Daemon, Feeder, Receiver, baseline, wait_until
from mevwatch.monitor.store.store import open_store

pytestmark = [pytest.mark.kafka, pytest.mark.anvil]
CONF = 3
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def expected_stages(messages) -> dict[str, str]:
    """Block-stage alerts of a fault-free run: alert id -> newest stage."""
    last: dict[str, tuple[int, str]] = {}
    for ev in baseline(messages, CONF):
        if ev.alert.stage == "pending":
            continue
        if ev.alert.alert_id not in last or ev.version >= last[ev.alert.alert_id][0]:
            last[ev.alert.alert_id] = (ev.version, ev.alert.stage)
    return {k: v[1] for k, v in last.items()}


def topic_stages(bootstrap: str) -> tuple[dict[str, str], set[tuple[str, str]]]:
    """From the alerts topic: alert id -> newest stage, and every (alert id, stage) published."""
    from kafka import KafkaConsumer

    c = KafkaConsumer("mevwatch.alerts.v1", bootstrap_servers=bootstrap, group_id=f"check-{uuid.uuid4().hex[:6]}",
                      auto_offset_reset="earliest", enable_auto_commit=False)
    newest: dict[str, tuple[int, str]] = {}
    pairs = set()
    idle = 0
    while idle < 4:
        batch = c.poll(timeout_ms=500)
        idle = 0 if batch else idle + 1
        for msgs in batch.values():
            for m in msgs:
                obj = json.loads(m.value)
                aid, stage, ver = obj["data"]["alert_id"], obj["data"]["stage"], obj["version"]
                assert m.key.decode() == aid
                pairs.add((aid, stage))
                if aid not in newest or ver >= newest[aid][0]:
                    newest[aid] = (ver, stage)
    c.close()
    return {k: v[1] for k, v in newest.items()}, pairs


def check_sinks_agree(store, bootstrap: str, want_blocks: dict[str, str]) -> set[tuple[str, str]]:
    in_db = db_stages(store)
    on_topic, pairs = topic_stages(bootstrap)
    assert store.count("alerts") == len(on_topic) == len(in_db)
    assert in_db == on_topic
    assert {k: v for k, v in in_db.items() if v != "pending"} == want_blocks
    assert store.count("evidence") == len(in_db)
    assert sum(1 for v in in_db.values() if v == "pending") > 10
    return pairs


def db_stages(store) -> dict[str, str]:
    return {r[0]: r[1] for r in store.backend.query("SELECT alert_id, stage FROM alerts FINAL")}


def settle(store, want: dict[str, str], n_blocks: int, daemon: Daemon, timeout: float = 60) -> None:
    def done() -> bool:
        try:
            got = db_stages(store)
            return store.count("blocks") >= n_blocks and {k: v for k, v in got.items() if v != "pending"} == want
        except Exception:  # noqa: BLE001 - server restarting
            return False
    def report() -> str:
        got = db_stages(store)
        diff = {k: (want.get(k), got.get(k)) for k in set(want) | set(got) if want.get(k) != got.get(k)}
        return f"{len(diff)} differ (want, got): {list(diff.items())[:10]}\n{daemon.tail()}"
    wait_until(done, timeout, "every alert in ClickHouse at its final stage", report)


def blocks_in(messages) -> int:
    from mevwatch.monitor.types import Block

    return sum(1 for m in messages if isinstance(m, Block))


def setup(tmp_path, fresh_kafka, clickhouse, lab_messages, webhooks=None):
    db = f"t_{uuid.uuid4().hex[:8]}"
    url = clickhouse.url(db)
    daemon = Daemon(tmp_path, kafka=fresh_kafka.bootstrap, clickhouse=url, confirmations=CONF, webhooks=webhooks)
    store = open_store(url, tmp_path)
    return daemon, store, expected_stages(lab_messages)


def test_daemon_sigkill_mid_run_resumes_without_gap_or_duplicate(tmp_path, fresh_kafka, clickhouse, lab_messages):
    daemon, store, want = setup(tmp_path, fresh_kafka, clickhouse, lab_messages)
    assert len(want) > 30
    daemon.start()
    # paced so the kill lands mid-run even when the daemon is slow to start (model load, group join):
    # 31 blocks take 15 s to arrive, the kill comes after the 8th is processed
    feeder = Feeder(fresh_kafka.bootstrap, lab_messages, block_s=0.5).start()
    wait_until(lambda: store.count("blocks") >= 8, 60, "the daemon to process some blocks", daemon.tail)
    daemon.kill()  # SIGKILL: no drain, no commit
    killed_at = store.count("blocks")
    time.sleep(1)
    daemon.start()
    feeder.join()
    settle(store, want, blocks_in(lab_messages), daemon)
    assert killed_at < blocks_in(lab_messages), "the kill came too late to test anything"
    check_sinks_agree(store, fresh_kafka.bootstrap, want)
    assert daemon.terminate() == 0


def test_kafka_broker_sigkill_and_restart(tmp_path, fresh_kafka, clickhouse, lab_messages):
    daemon, store, want = setup(tmp_path, fresh_kafka, clickhouse, lab_messages)
    daemon.start()
    feeder = Feeder(fresh_kafka.bootstrap, lab_messages).start()
    wait_until(lambda: store.count("blocks") >= 8, 60, "the daemon to process some blocks", daemon.tail)
    fresh_kafka.kill()
    time.sleep(3)
    fresh_kafka.start()
    feeder.join()
    settle(store, want, blocks_in(lab_messages), daemon)
    check_sinks_agree(store, fresh_kafka.bootstrap, want)
    assert daemon.terminate() == 0


def test_clickhouse_stopped_30s_then_catches_up(tmp_path, fresh_kafka, clickhouse, lab_messages):
    daemon, store, want = setup(tmp_path, fresh_kafka, clickhouse, lab_messages)
    daemon.start()
    feeder = Feeder(fresh_kafka.bootstrap, lab_messages, block_s=0.3).start()
    wait_until(lambda: store.count("blocks") >= 5, 60, "the daemon to process some blocks", daemon.tail)
    clickhouse.stop()
    t0 = time.monotonic()
    wait_until(lambda: daemon.get("/readyz")[0] == 503, 30, "readiness to drop while ClickHouse is away", daemon.tail)
    assert daemon.get("/healthz")[0] == 200  # backing off is healthy; not ready
    time.sleep(max(0.0, 30 - (time.monotonic() - t0)))
    clickhouse.start()
    feeder.join()
    settle(store, want, blocks_in(lab_messages), daemon)
    check_sinks_agree(store, fresh_kafka.bootstrap, want)
    assert daemon.get("/readyz")[0] == 200
    assert "store unavailable; holding offsets" in daemon.tail() or "ClickHouse" in daemon.tail()
    assert daemon.terminate() == 0


def test_webhooks_delivered_through_a_flaky_receiver(tmp_path, fresh_kafka, clickhouse, lab_messages):
    rx = Receiver(SECRET, flaky=True)
    daemon, store, want = setup(tmp_path, fresh_kafka, clickhouse, lab_messages,
                                webhooks=[{"url": rx.url, "secrets": [SECRET]}])
    daemon.start()
    Feeder(fresh_kafka.bootstrap, lab_messages, block_s=0.05).start().join()
    settle(store, want, blocks_in(lab_messages), daemon)
    want_events = check_sinks_agree(store, fresh_kafka.bootstrap, want)

    def got() -> set:
        return {(b["data"]["alert_id"], b["data"]["stage"]) for b in rx.verified()}
    wait_until(lambda: got() >= want_events, 120, "every webhook delivered", daemon.tail)
    bodies = rx.verified()  # every signature checked by the reference standardwebhooks library
    assert got() == want_events
    assert len(bodies) == len(want_events)  # one delivery per alert stage: no duplicates
    assert rx.n >= 2 * len(want_events) - 1  # half the attempts failed and were retried
    assert {b["type"] for b in bodies} >= {"mev.sandwich.included", "mev.sandwich.final", "mev.sandwich_attempt.pending"}
    assert daemon.terminate() == 0
