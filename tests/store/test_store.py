"""The evidence store on embedded chDB and on a real ClickHouse server: migrations, stage
collapse under FINAL, hostile strings stored verbatim."""

from __future__ import annotations

import uuid

import pytest

from mevwatch.monitor.alerts import Alert, AlertEvent, AlertTx, Amount, with_stage
from mevwatch.monitor.lifecycle import event_end, version_of
from mevwatch.monitor.store.schema import MIGRATIONS
from mevwatch.monitor.store.store import StoreBatch, open_store

EVIL = "'); DROP TABLE alerts; --\\' \"{x:String}\" %(s)s \n"


def alert(n: int = 1) -> Alert:
    return Alert(kind="sandwich", stage="included", chain_id=1, block_number=100 + n, block_hash=f"0x{n:02x}",
                 txs=[AlertTx(f"0x{n}1", 0, "frontrun"), AlertTx(f"0x{n}2", 1, "victim"), AlertTx(f"0x{n}3", 2, "backrun")],
                 attackers=["0xa"], victims=["0xv"], pools=["0xp"], tokens=[EVIL], profit=Amount(EVIL, 2**255 + 1, 0.25),
                 victim_loss=Amount("0xt", 5, None), gas_cost_wei=21000, evidence={"symbol": EVIL, "n": n})


def exercise(store) -> None:
    assert store.migrate() == []  # open_store migrated; a second run is a no-op
    assert store.applied_migrations() == [m.version for m in MIGRATIONS]
    a, b = alert(1), alert(2)
    store.write_alerts([AlertEvent(a, version_of(10, "included")), AlertEvent(b, version_of(11, "included"))])
    store.write_alerts([AlertEvent(with_stage(a, "final"), version_of(40, "final"))])
    store.write_alerts([AlertEvent(a, version_of(10, "included"))])  # a replay after a crash
    assert store.count("alerts") == 2
    assert store.alert_versions()[a.alert_id] == (version_of(40, "final"), "final")
    back = store.alert(a.alert_id)
    assert back is not None and back.tokens == [EVIL] and back.evidence["symbol"] == EVIL
    assert back.profit is not None and back.profit.amount == 2**255 + 1 and back.profit.token == EVIL
    assert store.backend.query("SELECT count() FROM alerts FINAL WHERE profit_token = {t:String}", {"t": EVIL}) == [[2]]
    assert store.count("alert_txs") == 6
    # a restart reads only the alerts it follows: open ones, and those finalised after the checkpoint
    assert [x.alert_id for x in store.open_alerts(event_end(version_of(40, "included")))] == [b.alert_id]
    assert {x.alert_id for x in store.open_alerts(version_of(39, "included"))} == {a.alert_id, b.alert_id}
    history = [AlertEvent(with_stage(alert(n), "final"), version_of(n, "final")) for n in range(3, 2003)]
    store.write_alerts(history)  # two thousand settled alerts are history: never loaded
    assert [x.alert_id for x in store.open_alerts(event_end(version_of(2100, "included")))] == [b.alert_id]
    batch = StoreBatch()
    batch.add_revert(101, "0x01", version_of(12, "retracted"))
    store.write(batch)
    assert store.recent_blocks()[-1] == (101, "0x01", False)


def test_store_on_chdb(tmp_path):
    store = open_store(None, tmp_path / "chdb")
    try:
        exercise(store)
    finally:
        store.close()


@pytest.mark.kafka  # needs the services installed by scripts/services/install.sh
def test_store_on_clickhouse_server(clickhouse, tmp_path):
    store = open_store(clickhouse.url(f"s_{uuid.uuid4().hex[:8]}"), tmp_path)
    try:
        exercise(store)
    finally:
        store.close()


def test_unreachable_server_is_a_retriable_store_error(tmp_path):
    from mevwatch.monitor.errors import StoreError
    from services import free_port

    with pytest.raises(StoreError) as e:
        open_store(f"clickhouse://127.0.0.1:{free_port()}/x", tmp_path)
    assert e.value.retriable
