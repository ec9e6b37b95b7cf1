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
from mevwatch.monitor.errors import StoreError
from mevwatch.monitor.log import get_logger
from mevwatch.monitor.store.backend import Backend, open_backend
from mevwatch.monitor.store.schema import MIGRATIONS, MIGRATIONS_TABLE

log = get_logger("mevwatch.store")

ALERT_COLS = ("alert_id", "version", "stage", "kind", "chain_id", "block_number", "block_hash", "detector", "score",
              "model_hash", "attackers", "victims", "pools", "tokens", "profit_token", "profit_amount", "profit_eth",
              "victim_loss_token", "victim_loss_amount", "victim_loss_eth", "gas_cost_wei", "first_seen_ns", "updated_at",
              "order_flow", "profit_usd", "victim_loss_usd", "alert_time")
TX_COLS = ("alert_id", "tx_hash", "role", "position", "version", "mempool", "lead_ms")
EVIDENCE_COLS = ("alert_id", "version", "stage", "evidence", "record", "proof", "batch_id", "alert_time")
SWAP_COLS = ("block_number", "block_hash", "block_time", "tx_hash", "tx_position", "ord", "protocol", "pool", "sender",
             "recipient", "tx_from", "token_in", "token_out", "amount_in", "amount_out", "version", "chain_id")
PENDING_COLS = ("hash", "chain_id", "from_address", "to_address", "nonce", "first_seen_ns", "source_node", "replaces", "version")
FATE_COLS = ("hash", "fate", "block_number", "latency_ms", "replaced_by", "version")
ATTEST_COLS = ("batch_id", "root", "contract", "attest_chain_id", "tx_hash", "attest_block", "gas_used", "attester",
               "from_block", "to_block", "alert_count", "model_hash", "uri", "attested_at", "version")
BLOCK_COLS = ("block_number", "block_hash", "parent_hash", "block_time", "tx_count", "canonical", "processed_at", "version",
              "swap_calls_decoded", "swap_calls_undecoded", "decode_coverage", "chain_id")


# restart and attestation read only alerts this much older than their window's block time (docs/store.md):
# an alert's time is its first inclusion's block time, so it lags its final or re-included block by at most this
TIME_MARGIN_S = 86_400
MIGRATION_LOCK = "schema_migration_lock"  # exists while one process migrates (AlertStore.migrate)
MIGRATION_LOCK_STALE_S = 6 * 3600  # a lock this old belongs to a process that died mid-migration
PENDING_KEEP_S = 7 * 86_400  # pending transactions and their fates are deleted after this (expire_pending)


def _ids_param(ids: list[str] | set[str]) -> dict[str, str]:
    return {"ids": ",".join(sorted(set(ids)))}


# final alerts without a proof, among those from time {since} on (AlertStore.attest_since: after the highest
# block a batch covers): both sides read only the partitions from there (``{what}``: what to compute of them)
UNATTESTED_FINAL = (
    "SELECT {what} FROM alerts FINAL WHERE alert_time >= toDateTime({{since:UInt32}}) AND stage = {{stage:String}} "
    "AND alert_id NOT IN (SELECT alert_id FROM evidence WHERE alert_time >= toDateTime({{since:UInt32}}) "
    "AND batch_id >= {{first_batch:Int64}})"
)


# the lowest of the newest ``n`` heights (by the blocks' sort key: the range is read, not the history)
_NEWEST = "(SELECT greatest(max(block_number), {n}) - {n} FROM blocks)"


# ``alert_id`` in a set: today's ClickHouse uses ``has(constant array, key)`` with each partition's primary
# index (a few ms at millions of alerts; ``IN (SELECT arrayJoin(...))`` took 10x longer); 18.16 scans
_IN_IDS = "has(splitByChar(',', {ids:String}), alert_id)"


def alert_rows(ev: AlertEvent, now: int, alert_time: int = 0) -> tuple[tuple, list[tuple], tuple]:
    """The alert, transaction and evidence rows of ``ev``; ``alert_time`` (seconds): the alert's time,
    the same in every row of its id (AlertStore.write)."""
    a = ev.alert
    p, loss = a.profit, a.victim_loss
    row = (a.alert_id, ev.version, a.stage, a.kind, a.chain_id, a.block_number, a.block_hash or "", a.detector,
           float(a.score), a.model_hash or "", a.attackers, a.victims, a.pools, a.tokens,
           p.token if p else "", f"{p.amount}" if p else "", p.eth if p else None,
           loss.token if loss else "", f"{loss.amount}" if loss else "", loss.eth if loss else None,
           f"{a.gas_cost_wei}" if a.gas_cost_wei is not None else "", ev.first_seen_ns, now, a.order_flow or "",
           p.usd if p else None, loss.usd if loss else None, alert_time)
    txs = [(a.alert_id, t.hash, t.role, t.position if t.position is not None else -1, ev.version, t.mempool or "", t.lead_ms)
           for t in a.txs]
    record = a.to_jsonl().decode().rstrip("\n")
    evidence = (a.alert_id, ev.version, a.stage, orjson.dumps(a.evidence, option=orjson.OPT_SORT_KEYS).decode(), record, "", -1, alert_time)
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
        """Apply the missing migrations in order; return the versions applied now. Processes that start
        together (detect members, attest, replay shards) never migrate at once: the first takes a lock
        (a table only one ``CREATE TABLE`` can make, :data:`MIGRATION_LOCK`), the others wait for it to
        finish, then find nothing left to do. A lock older than MIGRATION_LOCK_STALE_S (its holder died
        mid-migration) is taken over, with a warning."""
        if not self.pending_migrations():
            return []
        if not self._lock_migrations():
            return []  # another process migrated while this one waited
        try:
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
        finally:
            self.backend.execute(f"DROP TABLE IF EXISTS {MIGRATION_LOCK}")

    def _lock_migrations(self) -> bool:
        """Take the migration lock (True), or wait until another holder finished them all (False)."""
        import os
        import socket

        waited = time.monotonic()
        told = 0.0
        while True:
            try:
                self.backend.execute(f"CREATE TABLE {MIGRATION_LOCK} (holder String, since DateTime) ENGINE = MergeTree() ORDER BY since")
            except StoreError as exc:
                if "already exists" not in str(exc).lower():
                    raise
            else:
                self.backend.insert(MIGRATION_LOCK, ("holder", "since"), [(f"{socket.gethostname()}:{os.getpid()}", int(time.time()))])
                return True
            if not self.pending_migrations():
                return False
            try:
                rows = self.backend.query(f"SELECT min(toUInt32(since)), count() FROM {MIGRATION_LOCK}")
            except StoreError:  # released (dropped) since: try to take it
                time.sleep(0.2)
                continue
            since = int(rows[0][0]) if rows and int(rows[0][1]) else None
            if since is not None and time.time() - since > MIGRATION_LOCK_STALE_S:
                log.warning("taking over a stale migration lock (its holder stopped mid-migration?)", since=since)
                self.backend.execute(f"DROP TABLE IF EXISTS {MIGRATION_LOCK}")
                continue
            if time.monotonic() - told > 30:
                told = time.monotonic()
                log.info("another process is migrating the store; waiting", waited_s=round(time.monotonic() - waited))
            time.sleep(1.0)

    def pending_migrations(self) -> list[int]:
        done = set(self.applied_migrations())
        return [m.version for m in MIGRATIONS if m.version not in done]

    # --- writes -----------------------------------------------------------------------------------
    def write(self, batch: StoreBatch, block_times: dict[str, int] | None = None) -> None:
        """Insert a batch, table by table. Raises StoreError (``retriable`` when the server is away).
        ``block_times``: block hash -> timestamp of the blocks of this batch's alerts when ``batch``
        does not carry the block rows itself (StoreSink: the checkpoint sink writes them later)."""
        now = int(time.time())
        rows, txs, evidence = [], [], []
        ref = self._reference_times(batch, now, block_times)
        stored = self._stored(list(ref), min(ref.values(), default=now) - TIME_MARGIN_S)
        for ev in batch.alerts:
            if ev.alert.stage != "pending" and stored.get(ev.alert.alert_id, (0, False))[1]:
                # attested: final for good, and its proof row must stay the newest
                log.warning("alert already attested; new stage row ignored", alert_id=ev.alert.alert_id,
                            stage=ev.alert.stage, version=ev.version)
                continue
            aid = ev.alert.alert_id
            r, t, e = alert_rows(ev, now, stored[aid][0] if aid in stored else ref[aid])
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

    def _stored(self, alert_ids: list[str], since: int) -> dict[str, tuple[int, bool]]:
        """Of ``alert_ids``, those with rows from time ``since`` on: their ``alert_time`` and whether
        they carry an inclusion proof (an evidence row of a batch). Reads the days from ``since`` on."""
        if not alert_ids:
            return {}
        rows = self.backend.query(
            "SELECT alert_id, toUInt32(min(alert_time)), max(batch_id) FROM evidence WHERE alert_time >= toDateTime({since:UInt32}) "
            f"AND {_IN_IDS} GROUP BY alert_id", {**_ids_param(alert_ids), "since": max(0, since)})
        return {r[0]: (int(r[1]), int(r[2]) >= 0) for r in rows}

    def _reference_times(self, batch: StoreBatch, now: int, block_times: dict[str, int] | None) -> dict[str, int]:
        """Each alert's time from its own row (docs/store.md, "The alert's time"): its block's time
        (block-stage alerts: every stage row names the block of its inclusion), else its first sight
        in the mempool, else now. An alert with rows stored keeps their time instead (a re-inclusion
        in another block after a reorg), found among the rows from the earliest of these less
        TIME_MARGIN_S."""
        bt = dict(block_times or {})
        bt.update({r[1]: int(r[3]) for r in batch.blocks if r[5]})  # canonical block rows of this batch
        missing = {ev.alert.block_number for ev in batch.alerts
                   if ev.alert.block_hash and ev.alert.block_number is not None and ev.alert.block_hash not in bt}
        if missing:  # blocks of earlier batches (final and retracted stages): their checkpoint rows, by the key
            rows = self.backend.query(
                "SELECT block_hash, toUInt32(max(block_time)) FROM blocks WHERE block_number IN "
                "(SELECT toUInt64(arrayJoin(splitByChar(',', {ns:String})))) AND canonical = 1 GROUP BY block_hash",
                {"ns": ",".join(f"{n}" for n in sorted(n for n in missing if n is not None))})
            bt.update({r[0]: int(r[1]) for r in rows})
        out: dict[str, int] = {}
        for ev in batch.alerts:
            a = ev.alert
            if a.alert_id not in out:
                if a.block_hash and a.block_hash in bt:
                    out[a.alert_id] = bt[a.block_hash]
                else:
                    out[a.alert_id] = ev.first_seen_ns // 1_000_000_000 if ev.first_seen_ns > 0 else now
        return out

    def expire_pending(self, keep_s: int = PENDING_KEEP_S, now_ns: int | None = None) -> None:
        """Delete pending transactions first seen more than ``keep_s`` ago, and their fates: an
        ``ALTER TABLE ... DELETE`` (a mutation, run by the server in the background), since 18.16 has
        no ``TTL``. StoreSink calls it every EXPIRE_EVERY_S."""
        cutoff = (now_ns if now_ns is not None else time.time_ns()) - keep_s * 1_000_000_000
        old = f"SELECT hash FROM pending_txs WHERE first_seen_ns < {int(cutoff)}"
        # ALTER takes no query parameters on 18.16: the cutoff is an integer formatted here
        self.backend.execute(f"ALTER TABLE pending_fates DELETE WHERE hash IN ({old})")
        self.backend.execute(f"ALTER TABLE pending_txs DELETE WHERE first_seen_ns < {int(cutoff)}")

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
        if alert_ids is None:
            rows = self.backend.query("SELECT alert_id, version, stage FROM alerts FINAL")
        else:
            rows = self.backend.query(f"SELECT alert_id, version, stage FROM alerts FINAL WHERE {_IN_IDS}", _ids_param(alert_ids))
        return {r[0]: (int(r[1]), r[2]) for r in rows}

    def count(self, table: str, *, final: bool = True, where: str = "") -> int:
        from mevwatch.monitor.store.backend import _ident

        sql = f"SELECT count() FROM {_ident(table, 'table')}{' FINAL' if final else ''}{' WHERE ' + where if where else ''}"
        return int(self.backend.query(sql)[0][0])

    def recent_blocks(self, n: int = 128) -> list[tuple[int, str, bool]]:
        """The newest ``n`` processed block heights: (number, hash, canonical), oldest first. Reads the
        newest heights by the sort key (block_number), never the history."""
        rows = self.backend.query(
            "SELECT block_number, block_hash, canonical FROM blocks FINAL WHERE block_number >= "
            f"{_NEWEST.format(n='{n:UInt64}')} ORDER BY block_number DESC, version DESC LIMIT {int(n)}", {"n": 4 * int(n)})
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
        would not fit in memory at millions of alerts), and reads only the partitions of the
        finality window: alerts no older than the newest processed block's time less TIME_MARGIN_S."""
        p = {"v": since_version, "since": self.recent_time()}
        rows = self.backend.query(
            # argMax, not FINAL: the filter on the key's alert_id then comes before reading the records
            "SELECT argMax(record, version) FROM evidence WHERE alert_time >= toDateTime({since:UInt32}) AND alert_id IN "
            "(SELECT alert_id FROM alerts FINAL WHERE alert_time >= toDateTime({since:UInt32}) AND (stage = 'included' "
            "OR (version > {v:UInt64} AND stage IN ('final', 'retracted')))) GROUP BY alert_id", p)
        return [alert_from_json(orjson.loads(r[0])) for r in rows]

    def recent_time(self) -> int:
        """The newest processed block's time less TIME_MARGIN_S (0: no block yet, or blocks without time)."""
        rows = self.backend.query(f"SELECT toUInt32(max(block_time)) FROM blocks WHERE block_number >= {_NEWEST.format(n=64)}")
        newest = int(rows[0][0] or 0) if rows else 0
        return max(0, newest - TIME_MARGIN_S)

    def time_of_block(self, number: int) -> int:
        """The time of the processed blocks at ``number`` (the smallest up to 64 heights above) less
        TIME_MARGIN_S: no alert of a block at or above ``number`` is older. 0 when none is stored."""
        rows = self.backend.query(
            "SELECT toUInt32(min(block_time)), count() FROM blocks WHERE block_number >= {n:UInt64} "
            "AND block_number <= {n:UInt64} + 64 AND canonical = 1", {"n": number})
        if not rows or not int(rows[0][1]):
            return 0
        return max(0, int(rows[0][0]) - TIME_MARGIN_S)

    def last_block(self) -> int | None:
        """The newest canonical processed block: looked for among the newest heights first (by the sort key)."""
        for window in (f"WHERE block_number >= {_NEWEST.format(n=1024)} AND canonical = 1",
                       "WHERE canonical = 1"):
            rows = self.backend.query(f"SELECT max(block_number), count() FROM blocks FINAL {window}")
            if rows and int(rows[0][1]):
                return int(rows[0][0])
        return None

    # --- attestation ------------------------------------------------------------------------------
    def final_alerts(self, from_block: int, to_block: int) -> list[tuple[Alert, int]]:
        """Final alerts of blocks ``from_block..to_block`` with their final versions, by alert id."""
        # alerts of blocks from ``from_block`` on are no older than that block's time (less a margin)
        where = ("alert_time >= toDateTime({since:UInt32}) AND stage = 'final' AND block_number >= {f:UInt64} "
                 "AND block_number <= {t:UInt64}")
        p = {"f": from_block, "t": to_block, "since": self.time_of_block(from_block)}
        versions = {r[0]: int(r[1]) for r in self.backend.query(f"SELECT alert_id, version FROM alerts FINAL WHERE {where}", p)}
        if not versions:
            return []
        # the records of those ids (argMax: the ids filter the key before the records are read)
        rows = self.backend.query(
            f"SELECT alert_id, argMax(record, version) FROM evidence WHERE alert_time >= toDateTime({{since:UInt32}}) AND {_IN_IDS} "
            "GROUP BY alert_id", {"since": p["since"], **_ids_param(list(versions))})
        out = []
        for aid, rec in rows:
            a = alert_from_json(orjson.loads(rec))
            if a.stage == "final" and aid in versions:
                out.append((a, versions[aid]))
        return sorted(out, key=lambda x: x[0].alert_id)

    def attest_since(self) -> int:
        """Where final alerts without a proof can be: no older than the block after the highest block
        any stored batch covers (less TIME_MARGIN_S); 0 (all time) before the first batch. Batches are
        cut by block range in order, so the history below it is attested."""
        rows = self.backend.query("SELECT max(to_block), count() FROM attestations FINAL")
        if not rows or not int(rows[0][1]):
            return 0
        return self.time_of_block(int(rows[0][0]) + 1)

    def unattested_final_range(self, since: int | None = None) -> tuple[int, int] | None:
        """Lowest and highest block of final alerts that carry no proof yet (among alerts from time
        ``since`` on; None: from :meth:`attest_since`)."""
        p = {"stage": "final", "first_batch": 0, "since": self.attest_since() if since is None else since}
        rows = self.backend.query(UNATTESTED_FINAL.format(what="min(block_number), max(block_number), count()"), p)
        if not rows or not int(rows[0][2]):
            return None
        return int(rows[0][0]), int(rows[0][1])

    def write_proofs(self, items: list[tuple[Alert, int, str, int]], batch_row: tuple) -> None:
        """Store each alert's inclusion proof (alert, final version, proof JSON, batch id) and the batch."""
        now = int(time.time())
        ref = self._reference_times(StoreBatch(alerts=[AlertEvent(a, v) for a, v, _p, _b in items]), now, None)
        stored = self._stored([a.alert_id for a, _v, _p, _b in items], min(ref.values(), default=now) - TIME_MARGIN_S)
        ev = []
        for a, version, proof, batch_id in items:
            t = stored[a.alert_id][0] if a.alert_id in stored else ref[a.alert_id]
            _row, _txs, e = alert_rows(AlertEvent(a, version), now, t)
            ev.append((*e[:1], proof_version(version), *e[2:5], proof, batch_id, e[7]))
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
