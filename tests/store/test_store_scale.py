"""Schema 6 on chDB and on a real ClickHouse server: the alert's own time (one per alert id, so every
version row of an alert shares its monthly partition and FINAL keeps one row), the migration of a store
with rows in it, the windowed restart and attestation queries, and the expiry of pending rows."""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timezone

import pytest

from mevwatch.monitor.alerts import Alert, AlertEvent, AlertTx, with_stage
from mevwatch.monitor.batch import Batch
from mevwatch.monitor.lifecycle import event_end, version_of
from mevwatch.monitor.store.queries import unattested_final_count
from mevwatch.monitor.store.schema import MIGRATIONS
from mevwatch.monitor.store.store import EVIDENCE_COLS, AlertStore, open_store

JAN31 = int(datetime(2026, 1, 31, 23, 59, 50, tzinfo=timezone.utc).timestamp())  # ten seconds before February
DAY = 86_400
OLD_ALERT = ("alert_id", "version", "stage", "kind", "chain_id", "block_number", "block_hash", "detector", "score",
             "model_hash", "attackers", "victims", "pools", "tokens", "profit_token", "profit_amount", "profit_eth",
             "victim_loss_token", "victim_loss_amount", "victim_loss_eth", "gas_cost_wei", "first_seen_ns", "updated_at",
             "order_flow", "profit_usd", "victim_loss_usd")


def alert(n: int, block: int, stage: str = "included", kind: str = "sandwich", block_hash: str | None = None) -> Alert:
    return Alert(kind=kind, stage=stage, chain_id=1, block_number=block if stage != "pending" else None,
                 block_hash=(block_hash or f"0x{block:x}") if stage != "pending" else None,
                 txs=[AlertTx(f"0x{n}1", 0, "frontrun"), AlertTx(f"0x{n}2", 1, "victim"), AlertTx(f"0x{n}3", 2, "backrun")],
                 attackers=["0xa"], victims=["0xv"], pools=["0xp"], tokens=["0xt"], profit=None, victim_loss=None,
                 gas_cost_wei=None, evidence={"n": n})


def block_row(number: int, ts: int, version: int, block_hash: str | None = None) -> tuple:
    return (number, block_hash or f"0x{number:x}", "", ts, 1, 1, ts, version, 0, 0, None, 1)


def times(store: AlertStore, table: str) -> dict[str, set[int]]:
    """Every alert id's alert_time values over all its rows (not FINAL): one each."""
    rows = store.backend.query(f"SELECT alert_id, toUInt32(alert_time) FROM {table}")
    out: dict[str, set[int]] = {}
    for aid, t in rows:
        out.setdefault(aid, set()).add(int(t))
    return out


def at_schema_5(store: AlertStore) -> None:
    """A store as the release before schema 6 left it, with alerts of two months, a pending alert and a proof."""
    store.applied_migrations()
    for m in MIGRATIONS:
        if m.version <= 5:
            for stmt in m.statements:
                store.backend.execute(stmt)
            store.backend.insert("schema_migrations", ("version", "name", "applied_at"), [(m.version, m.name, int(time.time()))])
    b = store.backend
    b.insert("blocks", ("block_number", "block_hash", "parent_hash", "block_time", "tx_count", "canonical", "processed_at", "version"),
             [(10, "0xa", "", JAN31, 1, 1, 0, 8), (11, "0xb", "", JAN31 + 20, 1, 1, 0, 16)])
    rows, ev = [], []
    for aid, ver, stage, blk, bh, seen in (("0xold1", 10, "included", 10, "0xa", 0), ("0xold1", 27, "final", 10, "0xa", 0),
                                           ("0xold2", 18, "included", 11, "0xb", 0), ("0xpend", 1, "pending", None, "", (JAN31 - 5) * 10**9)):
        rows.append((aid, ver, stage, "sandwich", 1, blk, bh, "rules", 1.0, "", [], [], [], [], "", "", None, "", "", None, "", seen,
                     JAN31 + 99, "", None, None))
        ev.append((aid, ver, stage, "{}", '{"alert_id": "%s"}' % aid, "", -1))
    ev.append(("0xold1", 29, "final", "{}", '{"alert_id": "0xold1"}', '{"proof": 1}', 3))
    b.insert("alerts", OLD_ALERT, rows)
    b.insert("evidence", EVIDENCE_COLS[:-1], ev)


def exercise_migration(store: AlertStore) -> None:
    at_schema_5(store)
    assert store.migrate() == [6]
    assert times(store, "alerts") == {"0xold1": {JAN31}, "0xold2": {JAN31 + 20}, "0xpend": {JAN31 - 5}}
    assert times(store, "evidence") == {"0xold1": {JAN31}, "0xold2": {JAN31 + 20}, "0xpend": {JAN31 - 5}}
    assert store.count("alerts") == 3 and store.count("evidence") == 3
    assert store.backend.query("SELECT stage, batch_id FROM evidence FINAL WHERE alert_id = '0xold1'") == [["final", 3]]
    # an existing alert's next stage keeps its time: one row after FINAL, although February has begun
    old2 = alert(2, 11, block_hash="0xb")
    old2.alert_id = "0xold2"
    store.write(Batch(alerts=[AlertEvent(with_stage(old2, "final"), version_of(40, "final"))],
                      blocks=[block_row(12, JAN31 + 3600, version_of(40, "included"))]))
    assert times(store, "alerts")["0xold2"] == {JAN31 + 20} and store.count("alerts") == 3
    assert store.alert_versions()["0xold2"] == (version_of(40, "final"), "final")


def exercise_times(store: AlertStore) -> None:
    """New alerts: block time from the batch, one time per id across stages, reorgs and month ends."""
    a, p = alert(1, 100), alert(2, 0, "pending", kind="sandwich_attempt")
    seen = (JAN31 - 30) * 10**9
    store.write(Batch(alerts=[AlertEvent(p, 1, seen), AlertEvent(a, version_of(5, "included"))],
                      blocks=[block_row(100, JAN31, version_of(5, "included"))]))
    # the block rows go to the checkpoint sink later: StoreSink passes their times
    b = alert(3, 101)
    store.write(Batch(alerts=[AlertEvent(b, version_of(6, "included"))]), {"0x65": JAN31 + 5})
    # a reorg: block 100 retracted, the same transactions included again in February's block 102
    store.write(Batch(alerts=[AlertEvent(with_stage(a, "retracted"), version_of(7, "retracted"))]))
    again = alert(1, 102, block_hash="0xnew")
    store.write(Batch(alerts=[AlertEvent(again, version_of(8, "included")),
                              AlertEvent(with_stage(p, "retracted"), version_of(8, "retracted"))],
                      blocks=[block_row(102, JAN31 + 30, version_of(8, "included"), "0xnew")]))
    store.write(Batch(alerts=[AlertEvent(with_stage(again, "final"), version_of(9, "final"))]))
    assert times(store, "alerts") == {a.alert_id: {JAN31}, p.alert_id: {JAN31 - 30}, b.alert_id: {JAN31 + 5}}
    assert times(store, "evidence") == times(store, "alerts")
    assert store.count("alerts") == 3 and store.count("evidence") == 3  # one row per alert after FINAL
    assert store.alert_versions()[a.alert_id] == (version_of(9, "final"), "final")
    parts = store.backend.query("SELECT DISTINCT partition FROM system.parts WHERE database = currentDatabase() "
                                "AND table = 'alerts' AND active ORDER BY partition")
    assert [r[0] for r in parts] == ["202601"]
    # proof rows carry the alert's time too
    store.write_proofs([(with_stage(again, "final"), version_of(9, "final"), '{"p": 1}', 0)],
                       (0, "0xr", "0xc", 1, "0xt", 1, 1, "0xa", 100, 102, 1, "0x0", "", JAN31 + 60, 1))
    assert times(store, "evidence")[a.alert_id] == {JAN31}
    # attestation and restart read windows
    assert [x.alert_id for x, _v in store.final_alerts(100, 102)] == [a.alert_id]
    assert store.unattested_final_range(since=0) is None and unattested_final_count(store) == 0
    assert {x.alert_id for x in store.open_alerts(event_end(version_of(9, "included")))} == {b.alert_id}
    # history far older than the newest block's time less the margin is never read on restart
    ancient = alert(4, 50)
    store.write(Batch(alerts=[AlertEvent(ancient, version_of(10, "included"))],
                      blocks=[block_row(50, JAN31 - 90 * DAY, version_of(10, "included"))]))
    assert {x.alert_id for x in store.open_alerts(0)} == {b.alert_id, a.alert_id, p.alert_id}  # not the ancient one
    assert store.last_block() == 102 and [r[0] for r in store.recent_blocks(2)] == [100, 102]


def exercise_expiry(store: AlertStore) -> None:
    now = time.time_ns()
    b = store.backend
    b.insert("pending_txs", ("hash", "chain_id", "from_address", "to_address", "nonce", "first_seen_ns", "source_node", "replaces", "version"),
             [("0xold", 1, "0xf", "0xt", 0, now - 9 * DAY * 10**9, "n", "", 1), ("0xnew", 1, "0xf", "0xt", 1, now, "n", "", 1)])
    b.insert("pending_fates", ("hash", "fate", "block_number", "latency_ms", "replaced_by", "version"),
             [("0xold", "dropped", None, None, "", 1), ("0xnew", "included", 5, 1.0, "", 1)])
    store.expire_pending(7 * DAY, now)
    deadline = time.monotonic() + 30  # mutations run in the background
    while time.monotonic() < deadline and (store.count("pending_txs") != 1 or store.count("pending_fates") != 1):
        time.sleep(0.2)
    assert b.query("SELECT hash FROM pending_txs") == [["0xnew"]]
    assert b.query("SELECT hash FROM pending_fates") == [["0xnew"]]


def run_all(make) -> None:
    for exercise in (exercise_migration, exercise_times, exercise_expiry):
        store = make(exercise is exercise_migration)
        try:
            exercise(store)
        finally:
            store.close()


def test_schema_6_on_chdb(tmp_path):
    n = iter(range(10))
    run_all(lambda old: open_store(None, tmp_path / f"chdb{next(n)}", migrate=not old))


@pytest.mark.kafka  # needs the services installed by scripts/services/install.sh
def test_schema_6_on_clickhouse_server(clickhouse, tmp_path):
    run_all(lambda old: open_store(clickhouse.url(f"s6_{uuid.uuid4().hex[:8]}"), tmp_path, migrate=not old))
