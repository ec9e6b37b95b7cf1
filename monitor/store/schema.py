"""Versioned migrations of the evidence store.

Every statement runs unchanged on chDB (ClickHouse 25+) and on Debian's
``clickhouse-server`` (18.16): only long-standing types (String, UInt*, Float64,
DateTime, Array, Nullable) and ``ReplacingMergeTree(version) ORDER BY``. 256-bit
amounts are decimal strings, as on the bus. Applied versions are recorded in
``schema_migrations``; ``mevwatch db migrate`` applies the missing ones in order.

Versions (``version`` columns) make the newest state of a row win under ``FINAL``:
- alerts, alert_txs, evidence: ``block event << 3 | stage order`` where the block event
  is 1 + the position of the block (or revert) record that caused the transition, and
  stage order is pending 1, included 2, final 3, retracted 4. Pending alerts have
  version 1. A re-delivered record yields the same version and the same row, so
  replays after a crash collapse; an alert re-included after a reorg gets a newer one.
  (The in-process bus restarts at offset 0 in a new process; there the block events
  continue after the highest version stored.)
- blocks: the same block event; ``canonical = 0`` rows mark reverted blocks.
- evidence rows of attested alerts: the final version + 2 (stage order 5), carrying the
  inclusion proof and the batch id; a replayed final event (version + 0) cannot undo them.
- attestations: one row per batch on chain (version 1).

Alerts and evidence (migration 6) are partitioned by the month of ``alert_time`` and sorted by
``(toDate(alert_time), alert_id)``; ``alert_time`` is one value per alert id (AlertStore.write), so
every version of an alert lands in one partition and ``FINAL`` still collapses them (docs/store.md,
"At scale").

Columns added by a later migration (``ALTER TABLE ... ADD COLUMN``, one column per statement: the
form both servers accept) read as their defaults in rows written before it.
"""

from __future__ import annotations

from dataclasses import dataclass

ENGINE = "ReplacingMergeTree(version)"


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "alerts, evidence, swaps, pending transactions, blocks", (
        f"""CREATE TABLE IF NOT EXISTS alerts (
            alert_id String, version UInt64, stage String, kind String, chain_id UInt64,
            block_number Nullable(UInt64), block_hash String, detector String, score Float64, model_hash String,
            attackers Array(String), victims Array(String), pools Array(String), tokens Array(String),
            profit_token String, profit_amount String, profit_eth Nullable(Float64),
            victim_loss_token String, victim_loss_amount String, victim_loss_eth Nullable(Float64),
            gas_cost_wei String, first_seen_ns UInt64, updated_at DateTime
        ) ENGINE = {ENGINE} ORDER BY alert_id""",
        f"""CREATE TABLE IF NOT EXISTS alert_txs (
            alert_id String, tx_hash String, role String, position Int64, version UInt64
        ) ENGINE = {ENGINE} ORDER BY (alert_id, tx_hash, role)""",
        f"""CREATE TABLE IF NOT EXISTS evidence (
            alert_id String, version UInt64, stage String, evidence String, record String,
            proof String, batch_id Int64
        ) ENGINE = {ENGINE} ORDER BY alert_id""",
        f"""CREATE TABLE IF NOT EXISTS swaps (
            block_number UInt64, block_hash String, block_time DateTime, tx_hash String, tx_position UInt32,
            ord UInt64, protocol String, pool String, sender String, recipient String, tx_from String,
            token_in String, token_out String, amount_in String, amount_out String, version UInt64
        ) ENGINE = {ENGINE} ORDER BY (block_number, block_hash, ord)""",
        f"""CREATE TABLE IF NOT EXISTS pending_txs (
            hash String, chain_id UInt64, from_address String, to_address String, nonce UInt64,
            first_seen_ns UInt64, source_node String, replaces String, version UInt64
        ) ENGINE = {ENGINE} ORDER BY hash""",
        f"""CREATE TABLE IF NOT EXISTS pending_fates (
            hash String, fate String, block_number Nullable(UInt64), latency_ms Nullable(Float64),
            replaced_by String, version UInt64
        ) ENGINE = {ENGINE} ORDER BY hash""",
        f"""CREATE TABLE IF NOT EXISTS blocks (
            block_number UInt64, block_hash String, parent_hash String, block_time DateTime, tx_count UInt32,
            canonical UInt8, processed_at DateTime, version UInt64
        ) ENGINE = {ENGINE} ORDER BY (block_number, block_hash)""",
    )),
    Migration(2, "attestation batches", (
        f"""CREATE TABLE IF NOT EXISTS attestations (
            batch_id UInt64, root String, contract String, attest_chain_id UInt64, tx_hash String,
            attest_block Nullable(UInt64), gas_used Nullable(UInt64), attester String, from_block UInt64, to_block UInt64,
            alert_count UInt32, model_hash String, uri String, attested_at DateTime, version UInt64
        ) ENGINE = {ENGINE} ORDER BY (contract, batch_id)""",
    )),
    Migration(3, "decode coverage per block; order-flow labels of alerts and their transactions", (
        # added columns take their defaults in rows written before: coverage unknown, order flow not labelled
        "ALTER TABLE blocks ADD COLUMN swap_calls_decoded UInt32 DEFAULT 0",
        "ALTER TABLE blocks ADD COLUMN swap_calls_undecoded UInt32 DEFAULT 0",
        "ALTER TABLE blocks ADD COLUMN decode_coverage Nullable(Float64)",
        "ALTER TABLE alerts ADD COLUMN order_flow String DEFAULT ''",
        "ALTER TABLE alert_txs ADD COLUMN mempool String DEFAULT ''",
        "ALTER TABLE alert_txs ADD COLUMN lead_ms Nullable(Int64)",
    )),
    Migration(4, "USD values of profit and victim loss (docs/alerts.md, Amounts)", (
        # null in rows written before: no USD value was computed then
        "ALTER TABLE alerts ADD COLUMN profit_usd Nullable(Float64)",
        "ALTER TABLE alerts ADD COLUMN victim_loss_usd Nullable(Float64)",
    )),
    Migration(5, "chain id on block and swap rows (docs/operations.md, Several chains)", (
        # 0 in rows written before: the chain was the deployment's (alerts and pending rows carried it already)
        "ALTER TABLE blocks ADD COLUMN chain_id UInt64 DEFAULT 0",
        "ALTER TABLE swaps ADD COLUMN chain_id UInt64 DEFAULT 0",
    )),
)

MIGRATIONS_TABLE = """CREATE TABLE IF NOT EXISTS schema_migrations (
    version UInt32, name String, applied_at DateTime
) ENGINE = MergeTree() ORDER BY version"""


# --- migration 6: the alert's own time, monthly partitions (docs/store.md, "At scale") ------------------
# Every row of one alert id (pending, included, final, retracted, and the proof rows in ``evidence``)
# carries the same ``alert_time``: its block's time (first inclusion), or its first sight in the mempool
# (AlertStore.write), so all versions of an alert share one partition and sort key, and ``FINAL`` still
# keeps exactly one row per alert.
_ALERT_COLUMNS = """alert_id String, version UInt64, stage String, kind String, chain_id UInt64,
    block_number Nullable(UInt64), block_hash String, detector String, score Float64, model_hash String,
    attackers Array(String), victims Array(String), pools Array(String), tokens Array(String),
    profit_token String, profit_amount String, profit_eth Nullable(Float64),
    victim_loss_token String, victim_loss_amount String, victim_loss_eth Nullable(Float64),
    gas_cost_wei String, first_seen_ns UInt64, updated_at DateTime, order_flow String,
    profit_usd Nullable(Float64), victim_loss_usd Nullable(Float64), alert_time DateTime"""
_ALERT_NAMES = ("alert_id, version, stage, kind, chain_id, block_number, block_hash, detector, score, model_hash, "
                "attackers, victims, pools, tokens, profit_token, profit_amount, profit_eth, victim_loss_token, "
                "victim_loss_amount, victim_loss_eth, gas_cost_wei, first_seen_ns, updated_at, order_flow, profit_usd, "
                "victim_loss_usd")
_EVIDENCE_NAMES = "alert_id, version, stage, evidence, record, proof, batch_id"
PARTITION = "PARTITION BY toYYYYMM(alert_time)"
# the day leads the sort key: a filter on alert_time is a filter on the key, so ClickHouse prunes partitions
# and reads only the days asked for, under FINAL too (it does not push filters on other columns below
# FINAL); within a day the key is the alert id, so a lookup of ids in a time window uses the index
SORT = "(toDate(alert_time), alert_id)"
# the time of each existing alert: the block time of (any of) its blocks, else its first sight in the
# mempool, else when it was written; the smallest over its rows, so one per alert id
_EXISTING_TIMES = (
    "SELECT alert_id, toDateTime(min(if(bfound = 1, bt, if(first_seen_ns > 0, intDiv(first_seen_ns, 1000000000), "
    "toUInt64(updated_at))))) AS alert_time "
    "FROM (SELECT alert_id, block_hash, first_seen_ns, updated_at FROM alerts) AS a "
    "ANY LEFT JOIN (SELECT block_hash, max(toUInt64(block_time)) AS bt, toUInt8(1) AS bfound FROM blocks "
    "WHERE canonical = 1 GROUP BY block_hash) AS b USING block_hash GROUP BY alert_id")

MIGRATIONS = MIGRATIONS + (
    Migration(6, "alert_time on alert and evidence rows, monthly partitions by it (docs/store.md, At scale)", (
        "DROP TABLE IF EXISTS alerts_v6",
        "DROP TABLE IF EXISTS evidence_v6",
        f"CREATE TABLE alerts_v6 ({_ALERT_COLUMNS}) ENGINE = {ENGINE} {PARTITION} ORDER BY {SORT}",
        f"""CREATE TABLE evidence_v6 (
            alert_id String, version UInt64, stage String, evidence String, record String,
            proof String, batch_id Int64, alert_time DateTime
        ) ENGINE = {ENGINE} {PARTITION} ORDER BY {SORT}""",
        f"INSERT INTO alerts_v6 ({_ALERT_NAMES}, alert_time) SELECT {_ALERT_NAMES}, alert_time "
        f"FROM alerts AS a ANY LEFT JOIN ({_EXISTING_TIMES}) AS t USING alert_id",
        # evidence rows of an alert with no alert row (a write cut between the two) take 1970-01-01
        f"INSERT INTO evidence_v6 ({_EVIDENCE_NAMES}, alert_time) SELECT {_EVIDENCE_NAMES}, alert_time "
        f"FROM evidence AS e ANY LEFT JOIN ({_EXISTING_TIMES}) AS t USING alert_id",
        "RENAME TABLE alerts TO alerts_v5, alerts_v6 TO alerts",
        "RENAME TABLE evidence TO evidence_v5, evidence_v6 TO evidence",
        "DROP TABLE alerts_v5",
        "DROP TABLE evidence_v5",
    )),
)
