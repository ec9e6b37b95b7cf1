"""Processes that start together (detect members, attest, replay shards, an Indexed Job's pods)
migrate one store once: a lock table that only one `CREATE TABLE` can make; the others wait for
it and find nothing left to do. A stale lock (its holder died mid-migration) is taken over."""

from __future__ import annotations

import threading
import time
import uuid

from mevwatch.monitor.store.schema import MIGRATIONS
from mevwatch.monitor.store.store import MIGRATION_LOCK, open_store


def test_three_processes_starting_together_migrate_once(clickhouse, tmp_path):
    url = clickhouse.url(f"lock_{uuid.uuid4().hex[:8]}")
    errors: list[BaseException] = []
    applied: list[list[int]] = []

    def start() -> None:
        try:
            store = open_store(url, tmp_path, migrate=False)
            applied.append(store.migrate())
            store.close()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not errors, errors
    assert sorted(len(a) for a in applied) == [0, 0, len(MIGRATIONS)]  # one migrated, the others waited
    store = open_store(url, tmp_path, migrate=False)
    try:
        versions = [int(r[0]) for r in store.backend.query("SELECT version FROM schema_migrations")]
        assert sorted(versions) == [m.version for m in MIGRATIONS]  # each applied once
        assert not store.backend.query(f"EXISTS TABLE {MIGRATION_LOCK}")[0][0]  # released
    finally:
        store.close()


def test_a_stale_lock_is_taken_over(clickhouse, tmp_path):
    url = clickhouse.url(f"stale_{uuid.uuid4().hex[:8]}")
    store = open_store(url, tmp_path, migrate=False)
    try:
        store.backend.execute(f"CREATE TABLE {MIGRATION_LOCK} (holder String, since DateTime) ENGINE = MergeTree() ORDER BY since")
        store.backend.insert(MIGRATION_LOCK, ("holder", "since"), [("gone:1", int(time.time()) - 7 * 3600)])
        assert store.migrate() == [m.version for m in MIGRATIONS]
        assert store.pending_migrations() == []
    finally:
        store.close()
