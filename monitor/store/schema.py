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
