"""Resumable replay checkpoints in the evidence store (``mevwatch replay --rpc ... --checkpoint NAME``).

One row per (name, shard, chain, block range): ``done_below``, the first block not yet settled in
the store: every block below it was written with its alerts final. A run given the same name,
shard and range starts there; a new name (the Helm chart passes the Job's name, which changes with
its pod template) starts from the beginning. Blocks at and above ``done_below`` are replayed again
on resume: their rows are the same rows with the same versions, so they collapse under ``FINAL``.

The table is the replay tool's own and is created on first use (``CREATE TABLE IF NOT EXISTS``):
a store that never ran a checkpointed replay has none. ``version = done_below``, so the newest
progress wins and an old row can never move a shard back.
"""

from __future__ import annotations

import time

from mevwatch.monitor.store.store import AlertStore

TABLE = """CREATE TABLE IF NOT EXISTS replay_progress (
    name String, shard String, chain_id UInt64, first_block UInt64, last_block UInt64,
    done_below UInt64, updated_at DateTime, version UInt64
) ENGINE = ReplacingMergeTree(version) ORDER BY (name, shard, chain_id, first_block, last_block)"""
COLUMNS = ("name", "shard", "chain_id", "first_block", "last_block", "done_below", "updated_at", "version")
MAX_NAME = 200


class ReplayProgress:
    """The checkpoint of one shard's block range ``first..last`` under ``name``."""

    def __init__(self, store: AlertStore, name: str, shard: str, chain_id: int, first: int, last: int):
        if not name or len(name) > MAX_NAME or not name.isprintable():
            raise ValueError(f"--checkpoint must be a printable name of 1 to {MAX_NAME} characters")
        self.store, self.name, self.shard, self.chain_id, self.first, self.last = store, name, shard, chain_id, first, last
        store.backend.execute(TABLE)

    def resume_from(self) -> int:
        """The first block to replay: ``first``, or where an earlier run of this checkpoint stopped
        (``last + 1`` when it finished)."""
        rows = self.store.backend.query(
            "SELECT max(done_below) FROM replay_progress WHERE name = {name:String} AND shard = {shard:String} "
            "AND chain_id = {chain:UInt64} AND first_block = {first:UInt64} AND last_block = {last:UInt64}",
            {"name": self.name, "shard": self.shard, "chain": self.chain_id, "first": self.first, "last": self.last})
        done = int(rows[0][0]) if rows and rows[0][0] is not None else 0
        return min(max(self.first, done), self.last + 1)

    def record(self, done_below: int) -> None:
        """Every block below ``done_below`` is in the store with its alerts final."""
        row = (self.name, self.shard, self.chain_id, self.first, self.last, done_below, int(time.time()), done_below)
        self.store.backend.insert("replay_progress", COLUMNS, [row])
