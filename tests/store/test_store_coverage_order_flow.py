"""Schema 3 on chDB and on a real ClickHouse server: decode coverage per block and order-flow labels
of alerts, written by the sinks' batch, and the migration of a store made before them (old rows
read as the defaults)."""

from __future__ import annotations

import time
import uuid

import pytest

from mevwatch.monitor.alerts import Alert, AlertEvent, AlertTx
from mevwatch.monitor.batch import Batch
from mevwatch.monitor.decode import BlockDecoder
from mevwatch.monitor.lifecycle import version_of
from mevwatch.monitor.store.schema import MIGRATIONS
from mevwatch.monitor.store.store import AlertStore, open_store

OLD_BLOCK = ("block_number", "block_hash", "parent_hash", "block_time", "tx_count", "canonical", "processed_at", "version")
OLD_ALERT = ("alert_id", "version", "stage", "kind", "chain_id", "block_number", "block_hash", "detector", "score",
             "model_hash", "attackers", "victims", "pools", "tokens", "profit_token", "profit_amount", "profit_eth",
             "victim_loss_token", "victim_loss_amount", "victim_loss_eth", "gas_cost_wei", "first_seen_ns", "updated_at")


def _at_schema_2(store: AlertStore) -> None:
    """The store as a release before schema 3 left it, with a block, an alert and its transaction."""
    store.applied_migrations()  # creates schema_migrations
    for m in MIGRATIONS:
        if m.version <= 2:
            for stmt in m.statements:
                store.backend.execute(stmt)
            store.backend.insert("schema_migrations", ("version", "name", "applied_at"), [(m.version, m.name, int(time.time()))])
    store.backend.insert("blocks", OLD_BLOCK, [(7, "0x07", "0x06", 0, 3, 1, int(time.time()), 64)])
    store.backend.insert("alerts", OLD_ALERT, [("0xold", 66, "included", "sandwich", 1, 7, "0x07", "rules", 1.0, "", [], [], [],
                                                [], "", "", None, "", "", None, "", 0, int(time.time()))])
    store.backend.insert("alert_txs", ("alert_id", "tx_hash", "role", "position", "version"), [("0xold", "0xf1", "frontrun", 0, 66)])


def exercise(store: AlertStore, load_block) -> None:
    _at_schema_2(store)
    assert store.pending_migrations() == [m.version for m in MIGRATIONS if m.version > 2]
    assert 3 in store.migrate()
    q = store.backend.query
    assert q("SELECT swap_calls_decoded, swap_calls_undecoded, decode_coverage FROM blocks FINAL WHERE block_number = 7") == [[0, 0, None]]
    assert q("SELECT order_flow FROM alerts FINAL WHERE alert_id = '0xold'") == [[""]]
    assert q("SELECT mempool, lead_ms FROM alert_txs FINAL WHERE alert_id = '0xold'") == [["", None]]

    # new rows: a real block's decode counters, an alert with labelled transactions
    decoded = BlockDecoder().decode(load_block(13666326))
    n_dec, n_undec = decoded.stats.swap_calls()
    assert n_dec > 0
    alert = Alert(kind="sandwich", stage="included", chain_id=1, block_number=13666326, block_hash=decoded.block.hash,
                  txs=[AlertTx("0xa1", 0, "frontrun", "before", 1500), AlertTx("0xa2", 1, "victim", "before", 800),
                       AlertTx("0xa3", 2, "backrun", "never")],
                  attackers=[], victims=[], pools=[], tokens=[], profit=None, victim_loss=None, gas_cost_wei=None,
                  evidence={}, order_flow="partly_private")
    batch = Batch(alerts=[AlertEvent(alert, version_of(1, "included"))])
    batch.add_block(decoded, version_of(1, "included"))
    store.write(batch)
    rows = q("SELECT swap_calls_decoded, swap_calls_undecoded, decode_coverage FROM blocks FINAL WHERE block_number = 13666326")
    assert rows == [[n_dec, n_undec, decoded.stats.coverage()]]
    assert q("SELECT order_flow FROM alerts FINAL WHERE alert_id = {a:String}", {"a": alert.alert_id}) == [["partly_private"]]
    txs = q("SELECT tx_hash, mempool, lead_ms FROM alert_txs FINAL WHERE alert_id = {a:String} ORDER BY tx_hash", {"a": alert.alert_id})
    assert [list(r) for r in txs] == [["0xa1", "before", 1500], ["0xa2", "before", 800], ["0xa3", "never", None]]
    back = store.alert(alert.alert_id)
    assert back is not None and back.order_flow == "partly_private" and back.txs[0].lead_ms == 1500


def test_schema_3_on_chdb(tmp_path, load_block):
    store = open_store(None, tmp_path / "chdb", migrate=False)
    try:
        exercise(store, load_block)
    finally:
        store.close()


@pytest.mark.kafka  # needs the services installed by scripts/services/install.sh
def test_schema_3_on_clickhouse_server(clickhouse, tmp_path, load_block):
    store = open_store(clickhouse.url(f"m3_{uuid.uuid4().hex[:8]}"), tmp_path, migrate=False)
    try:
        exercise(store, load_block)
    finally:
        store.close()
