"""Named read queries behind the reports of the command line (``db status``, ``attest status``).

The SQL lives here, next to the store, with ClickHouse ``{name:Type}`` parameters (bound by
the backend, never spliced into the statement); the commands only call these functions and
print what they return.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mevwatch.monitor.store.store import UNATTESTED_FINAL, AlertStore

# the tables ``db status`` counts, in the order it lists them
STATUS_TABLES = ("alerts", "alert_txs", "evidence", "swaps", "pending_txs", "pending_fates", "blocks", "attestations")

UNATTESTED_FINAL_COUNT = UNATTESTED_FINAL.format(what="count()")


@dataclass(frozen=True)
class DbStatus:
    where: str
    pending_migrations: list[int]
    rows: dict[str, int]  # rows (FINAL) per table; empty while migrations are pending
    last_block: int | None  # the last processed canonical block; None while migrations are pending or none yet


@dataclass(frozen=True)
class AttestationStatus:
    batches: list[dict[str, Any]]  # newest first, as AlertStore.attestations returns them
    waiting: int  # final alerts with no proof yet
    waiting_blocks: tuple[int, int] | None  # lowest and highest block of those


@dataclass(frozen=True)
class MigrationResult:
    where: str
    applied: list[int]
    version: int  # the schema version now


def db_status(store: AlertStore) -> DbStatus:
    """Schema state, rows per table and the last processed block (no counts on an outdated schema)."""
    pending = store.pending_migrations()
    if pending:
        return DbStatus(store.where, pending, {}, None)
    return DbStatus(store.where, [], {t: store.count(t) for t in STATUS_TABLES}, store.last_block())


def migrate(store: AlertStore) -> MigrationResult:
    """Apply the missing migrations; what was applied and the version now."""
    applied = store.migrate()
    have = store.applied_migrations()
    return MigrationResult(store.where, applied, max(have) if have else 0)


def unattested_final_count(store: AlertStore) -> int:
    """Final alerts that carry no inclusion proof yet."""
    rows = store.backend.query(UNATTESTED_FINAL_COUNT, {"stage": "final", "first_batch": 0, "since": store.attest_since()})
    return int(rows[0][0]) if rows else 0


def attestation_status(store: AlertStore, limit: int = 20) -> AttestationStatus:
    """The newest ``limit`` attested batches and the final alerts still waiting for one."""
    return AttestationStatus(store.attestations(limit), unattested_final_count(store), store.unattested_final_range())


def user_query(store: AlertStore, sql: str) -> tuple[list[str], list[list[Any]]]:
    """A user's own SQL (``mevwatch db query``), run read-only: column names and rows."""
    return store.backend.read_only(sql)
