"""What mevwatch keeps in ClickHouse, and how it reads it back.

One :class:`AlertStore` over either backend. Writes come in batches (one per polled
bus batch): :meth:`AlertStore.write` inserts alerts, their transactions and evidence,
decoded swaps, pending transactions, their fates and processed blocks. All tables
are ReplacingMergeTree, so writing the same batch twice (a retry, a replay after a
crash) leaves the same rows after ``FINAL``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson

from mevwatch.monitor.alerts import Alert, AlertEvent, alert_from_json
from mevwatch.monitor.batch import Batch as StoreBatch  # noqa: F401 - the unit every sink writes
from mevwatch.monitor.lifecycle import proof_version
from mevwatch.monitor.log import get_logger
from mevwatch.monitor.store.backend import Backend, open_backend
from mevwatch.monitor.store.schema import MIGRATIONS, MIGRATIONS_TABLE

log = get_logger("mevwatch.store")

ALERT_COLS = ("alert_id", "version", "stage", "kind", "chain_id", "block_number", "block_hash", "detector", "score",
              "model_hash", "attackers", "victims", "pools", "tokens", "profit_token", "profit_amount", "profit_eth",
              "victim_loss_token", "victim_loss_amount", "victim_loss_eth", "gas_cost_wei", "first_seen_ns", "updated_at",
              "order_flow", "profit_usd", "victim_loss_usd")
TX_COLS = ("alert_id", "tx_hash", "role", "position", "version", "mempool", "lead_ms")
EVIDENCE_COLS = ("alert_id", "version", "stage", "evidence", "record", "proof", "batch_id")
SWAP_COLS = ("block_number", "block_hash", "block_time", "tx_hash", "tx_position", "ord", "protocol", "pool", "sender",
             "recipient", "tx_from", "token_in", "token_out", "amount_in", "amount_out", "version", "chain_id")
PENDING_COLS = ("hash", "chain_id", "from_address", "to_address", "nonce", "first_seen_ns", "source_node", "replaces", "version")
FATE_COLS = ("hash", "fate", "block_number", "latency_ms", "replaced_by", "version")
ATTEST_COLS = ("batch_id", "root", "contract", "attest_chain_id", "tx_hash", "attest_block", "gas_used", "attester",
               "from_block", "to_block", "alert_count", "model_hash", "uri", "attested_at", "version")
BLOCK_COLS = ("block_number", "block_hash", "parent_hash", "block_time", "tx_count", "canonical", "processed_at", "version",
              "swap_calls_decoded", "swap_calls_undecoded", "decode_coverage", "chain_id")


def alert_rows(ev: AlertEvent, now: int) -> tuple[tuple, list[tuple], tuple]:
    a = ev.alert
    p, loss = a.profit, a.victim_loss
    row = (a.alert_id, ev.version, a.stage, a.kind, a.chain_id, a.block_number, a.block_hash or "", a.detector,
           float(a.score), a.model_hash or "", a.attackers, a.victims, a.pools, a.tokens,
           p.token if p else "", f"{p.amount}" if p else "", p.eth if p else None,
           loss.token if loss else "", f"{loss.amount}" if loss else "", loss.eth if loss else None,
           f"{a.gas_cost_wei}" if a.gas_cost_wei is not None else "", ev.first_seen_ns, now, a.order_flow or "",
           p.usd if p else None, loss.usd if loss else None)
    txs = [(a.alert_id, t.hash, t.role, t.position if t.position is not None else -1, ev.version, t.mempool or "", t.lead_ms)
           for t in a.txs]
    record = a.to_jsonl().decode().rstrip("\n")
    evidence = (a.alert_id, ev.version, a.stage, orjson.dumps(a.evidence, option=orjson.OPT_SORT_KEYS).decode(), record, "", -1)
    return row, txs, evidence


class AlertStore:
    def __init__(self, backend: Backend):
        self.backend = backend

    @property
    def where(self) -> str:
        b = self.backend
        return getattr(b, "where", None) or f"chDB {getattr(b, 'path', '')} database {b.database}"

    # --- schema -------------------------------------------------------------------------------
    def applied_migrations(self) -> list[int]:
        self.backend.execute(MIGRATIONS_TABLE)
        return sorted(int(r[0]) for r in self.backend.query("SELECT version FROM schema_migrations"))

    def migrate(self) -> list[int]:
        """Apply the missing migrations in order; return the versions applied now."""
        done = set(self.applied_migrations())
        applied = []
        for m in MIGRATIONS:
            if m.version in done:
                continue
            for stmt in m.statements:
                self.backend.execute(stmt)
            self.backend.insert("schema_migrations", ("version", "name", "applied_at"), [(m.version, m.name, int(time.time()))])
            log.info("migration applied", version=m.version, name=m.name)
            applied.append(m.version)
        return applied

    def pending_migrations(self) -> list[int]:
        done = set(self.applied_migrations())
        return [m.version for m in MIGRATIONS if m.version not in done]

    # --- writes -----------------------------------------------------------------------------------
    def write(self, batch: StoreBatch) -> None:
        """Insert a batch, table by table. Raises StoreError (``retriable`` when the server is away)."""
        now = int(time.time())
        rows, txs, evidence = [], [], []
        proven = self._proven([ev.alert.alert_id for ev in batch.alerts if ev.alert.stage != "pending"])
        for ev in batch.alerts:
            if ev.alert.alert_id in proven:  # attested: final for good, and its proof row must stay the newest
                log.warning("alert already attested; new stage row ignored", alert_id=ev.alert.alert_id,
                            stage=ev.alert.stage, version=ev.version)
                continue
            r, t, e = alert_rows(ev, now)
            rows.append(r)
            txs += t
            evidence.append(e)
        b = self.backend
        # evidence and transactions before the alert row: a reader never sees an alert without them
        b.insert("evidence", EVIDENCE_COLS, evidence)
        b.insert("alert_txs", TX_COLS, txs)
        b.insert("alerts", ALERT_COLS, rows)
        b.insert("swaps", SWAP_COLS, batch.swaps)
        b.insert("pending_txs", PENDING_COLS, batch.pending)
        b.insert("pending_fates", FATE_COLS, batch.fates)
        b.insert("blocks", BLOCK_COLS, batch.blocks)  # last: the checkpoint follows the data

    def _proven(self, alert_ids: list[str]) -> set[str]:
        """Those of ``alert_ids`` with a stored inclusion proof (an evidence row of a batch)."""
        if not alert_ids:
            return set()
        rows = self.backend.query("SELECT DISTINCT alert_id FROM evidence WHERE batch_id >= 0 AND has(splitByChar(',', {ids:String}), alert_id)",
                                  {"ids": ",".join(sorted(set(alert_ids)))})
        return {r[0] for r in rows}

    def write_alerts(self, events: list[AlertEvent]) -> None:
        self.write(StoreBatch(alerts=events))

    # --- reads ------------------------------------------------------------------------------------
    def alert(self, alert_id: str) -> Alert | None:
        rows = self.backend.query("SELECT record FROM evidence FINAL WHERE alert_id = {id:String}", {"id": alert_id})
        return alert_from_json(orjson.loads(rows[0][0])) if rows else None

    def alerts(self, *, stage: str | None = None, limit: int = 1_000_000) -> list[Alert]:
        if stage is None:
            rows = self.backend.query(f"SELECT record FROM evidence FINAL ORDER BY alert_id LIMIT {int(limit)}")
        else:
            rows = self.backend.query(f"SELECT record FROM evidence FINAL WHERE stage = {{stage:String}} ORDER BY alert_id LIMIT {int(limit)}",
                                      {"stage": stage})
        return [alert_from_json(orjson.loads(r[0])) for r in rows]

    def alert_versions(self, alert_ids: list[str] | None = None) -> dict[str, tuple[int, str]]:
        rows = self.backend.query("SELECT alert_id, version, stage FROM alerts FINAL")
        return {r[0]: (int(r[1]), r[2]) for r in rows if alert_ids is None or r[0] in alert_ids}

    def count(self, table: str, *, final: bool = True, where: str = "") -> int:
        from mevwatch.monitor.store.backend import _ident

        sql = f"SELECT count() FROM {_ident(table, 'table')}{' FINAL' if final else ''}{' WHERE ' + where if where else ''}"
        return int(self.backend.query(sql)[0][0])

    def recent_blocks(self, n: int = 128) -> list[tuple[int, str, bool]]:
        """The newest ``n`` processed block heights: (number, hash, canonical), oldest first."""
        rows = self.backend.query(
            f"SELECT block_number, block_hash, canonical FROM blocks FINAL ORDER BY block_number DESC, version DESC LIMIT {int(n)}")
        return sorted(((int(r[0]), r[1], bool(int(r[2]))) for r in rows), key=lambda x: x[0])

    def checkpoint_version(self) -> int:
        """The newest processed-block checkpoint's version (0: none yet)."""
        rows = self.backend.query("SELECT max(version) FROM blocks")
        return int(rows[0][0] or 0) if rows else 0

    def max_alert_version(self) -> int:
        rows = self.backend.query("SELECT max(version) FROM alerts")
        return int(rows[0][0] or 0) if rows else 0

    def open_alerts(self, since_version: int) -> list[Alert]:
        """Alerts still awaiting finality, and those finalised or retracted after ``since_version``
        (their block's checkpoint was not written yet: the block will be processed again). Selected
        in ClickHouse: a restart loads only the alerts it has to follow, never the history (which
        would not fit in memory at millions of alerts)."""
        rows = self.backend.query(
            "SELECT record FROM evidence FINAL WHERE alert_id IN (SELECT alert_id FROM alerts FINAL WHERE stage = 'included' "
            "OR (version > {v:UInt64} AND stage IN ('final', 'retracted')))", {"v": since_version})
        return [alert_from_json(orjson.loads(r[0])) for r in rows]

    def last_block(self) -> int | None:
        rows = self.backend.query("SELECT max(block_number), count() FROM blocks FINAL WHERE canonical = 1")
        return int(rows[0][0]) if rows and int(rows[0][1]) else None

    # --- attestation ------------------------------------------------------------------------------
    def final_alerts(self, from_block: int, to_block: int) -> list[tuple[Alert, int]]:
        """Final alerts of blocks ``from_block..to_block`` with their final versions, by alert id."""
        where = ("stage = 'final' AND block_number >= {f:UInt64} AND block_number <= {t:UInt64}")
        p = {"f": from_block, "t": to_block}
        versions = {r[0]: int(r[1]) for r in self.backend.query(f"SELECT alert_id, version FROM alerts FINAL WHERE {where}", p)}
        if not versions:
            return []
        rows = self.backend.query(
            f"SELECT alert_id, record FROM evidence FINAL WHERE alert_id IN (SELECT alert_id FROM alerts FINAL WHERE {where})", p)
        out = []
        for aid, rec in rows:
            a = alert_from_json(orjson.loads(rec))
            if a.stage == "final" and aid in versions:
                out.append((a, versions[aid]))
        return sorted(out, key=lambda x: x[0].alert_id)

    def unattested_final_range(self) -> tuple[int, int] | None:
        """Lowest and highest block of final alerts that carry no proof yet."""
        rows = self.backend.query(
            "SELECT min(block_number), max(block_number), count() FROM alerts FINAL WHERE stage = 'final' "
            "AND alert_id NOT IN (SELECT alert_id FROM evidence FINAL WHERE batch_id >= 0)")
        if not rows or not int(rows[0][2]):
            return None
        return int(rows[0][0]), int(rows[0][1])

    def write_proofs(self, items: list[tuple[Alert, int, str, int]], batch_row: tuple) -> None:
        """Store each alert's inclusion proof (alert, final version, proof JSON, batch id) and the batch."""
        now = int(time.time())
        ev = []
        for a, version, proof, batch_id in items:
            _row, _txs, e = alert_rows(AlertEvent(a, version), now)
            ev.append((*e[:1], proof_version(version), *e[2:5], proof, batch_id))
        self.backend.insert("evidence", EVIDENCE_COLS, ev)
        self.backend.insert("attestations", ATTEST_COLS, [batch_row])

    def proof_counts(self, contract: str) -> dict[int, int]:
        """Stored proofs per batch id of the registry at ``contract`` (checksummed, as proofs name it)."""
        rows = self.backend.query(
            "SELECT batch_id, count() FROM evidence FINAL WHERE batch_id >= 0 AND proof LIKE {pat:String} GROUP BY batch_id",
            {"pat": f'%"contract":"{contract}"%'})
        return {int(r[0]): int(r[1]) for r in rows}

    def proof(self, alert_id: str) -> tuple[Alert, dict[str, Any] | None] | None:
        """An alert's record and its proof (None when not attested yet); None for an unknown alert."""
        rows = self.backend.query("SELECT record, proof FROM evidence FINAL WHERE alert_id = {id:String}", {"id": alert_id})
        if not rows:
            return None
        rec, proof = rows[0]
        return alert_from_json(orjson.loads(rec)), (orjson.loads(proof) if proof else None)

    def first_attested_alert(self) -> str | None:
        """The smallest id of an alert that carries a proof (an example to verify), or None."""
        rows = self.backend.query("SELECT alert_id FROM evidence FINAL WHERE batch_id >= 0 ORDER BY alert_id LIMIT 1")
        return rows[0][0] if rows else None

    def attestations(self, limit: int = 100) -> list[dict[str, Any]]:
        rows = self.backend.query(f"SELECT {', '.join(ATTEST_COLS)} FROM attestations FINAL ORDER BY batch_id DESC LIMIT {int(limit)}")
        return [dict(zip(ATTEST_COLS, r)) for r in rows]

    def ping(self) -> bool:
        return self.backend.ping()

    def close(self) -> None:
        self.backend.close()


def open_store(url: str | None, data_dir: Path, password: str | None = None, *, migrate: bool = True, secure: bool = False,
               ca_file: Path | str | None = None, verify: bool = True) -> AlertStore:
    """The store at ``url`` (None: embedded chDB under ``data_dir``). ``secure``, ``ca_file``, ``verify``:
    TLS to a server (clickhouse.secure, clickhouse.ca_file, clickhouse.verify)."""
    store = AlertStore(open_backend(url, data_dir, password, secure=secure, ca_file=ca_file, verify=verify))
    if migrate:
        store.migrate()
    return store


def settings_store(settings: Any, *, migrate: bool = True) -> AlertStore:
    """The store of ``settings.clickhouse``: URL or data folder, password and TLS options."""
    ch = settings.clickhouse
    pw = ch.password.get_secret_value() if ch.password is not None else None
    return open_store(ch.url, ch.data_dir, pw, migrate=migrate, secure=getattr(ch, "secure", False),
                      ca_file=getattr(ch, "ca_file", None), verify=getattr(ch, "verify", True))
