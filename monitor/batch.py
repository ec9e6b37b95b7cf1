"""The unit of work of every sink: the alert events, decoded swaps, pending transactions, their
fates and the processed-block checkpoints that one engine step produced (monitor/engine.py).

Rows are plain tuples in the column order of monitor/store/store.py's tables, so a batch can be
built in a replay worker process and written by the parent.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from mevwatch.monitor.alerts import AlertEvent
from mevwatch.monitor.types import DecodedBlock
from mevwatch.monitor.types import PendingTx
from mevwatch.monitor.fates import Fate

FATE_VERSION = {"included": 2, "replaced": 1, "dropped": 1}


@dataclass
class Batch:
    alerts: list[AlertEvent] = field(default_factory=list)
    swaps: list[tuple] = field(default_factory=list)
    pending: list[tuple] = field(default_factory=list)
    fates: list[tuple] = field(default_factory=list)
    blocks: list[tuple] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.alerts) + len(self.swaps) + len(self.pending) + len(self.fates) + len(self.blocks)

    def extend(self, other: Batch) -> None:
        """Append ``other``'s rows after this batch's (its events stay in their order)."""
        self.alerts += other.alerts
        self.swaps += other.swaps
        self.pending += other.pending
        self.fates += other.fates
        self.blocks += other.blocks

    def add_block(self, db: DecodedBlock, version: int) -> None:
        b = db.block
        now = int(time.time())
        decoded, undecoded = db.stats.swap_calls()
        self.blocks.append((b.number, b.hash or "", b.parent_hash or "", b.timestamp, len(b.transactions), 1, now, version,
                            decoded, undecoded, db.stats.coverage(), b.chain_id))
        for s in db.swaps:
            self.swaps.append((b.number, b.hash or "", b.timestamp, s.transaction_hash, s.transaction_position, s.order,
                               s.protocol, s.pool, s.sender, s.recipient, s.tx_from, s.token_in, s.token_out,
                               f"{s.amount_in}", f"{s.amount_out}", version, b.chain_id))

    def add_revert(self, block_number: int, block_hash: str, version: int, chain_id: int = 0) -> None:
        self.blocks.append((block_number, block_hash, "", 0, 0, 0, int(time.time()), version, 0, 0, None, chain_id))

    def add_pending(self, p: PendingTx) -> None:
        self.pending.append((p.hash, p.chain_id, p.from_address, p.to_address or "", p.nonce, p.first_seen_ns,
                             p.source_node, p.replaces or "", 1))

    def add_fate(self, f: Fate) -> None:
        self.fates.append((f.hash, f.fate, f.block_number, f.latency_ns / 1e6 if f.latency_ns is not None else None,
                           f.by or "", FATE_VERSION.get(f.fate, 1)))
