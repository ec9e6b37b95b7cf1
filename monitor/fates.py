"""What became of each pending transaction: included, replaced (same sender and nonce), or dropped.

Every hash ever seen for a (sender, nonce) is kept until the nonce is settled.
"""

from __future__ import annotations

from mevwatch.monitor.types import Block, Fate, PendingTx


class FateTracker:
    def __init__(self, ttl_s: float = 3600.0):
        self.ttl_ns = int(ttl_s * 1e9)
        self.by_nonce: dict[tuple[str, int], list[str]] = {}
        self.pending: dict[str, PendingTx] = {}

    def on_pending(self, p: PendingTx) -> str | None:
        """Remember ``p``; return the hash it replaces (same sender and nonce), if any."""
        key = (p.from_address, p.nonce)
        hashes = self.by_nonce.setdefault(key, [])
        if p.hash in hashes:
            return None
        replaced = hashes[-1] if hashes else None
        hashes.append(p.hash)
        self.pending[p.hash] = p
        return replaced

    def hashes_for(self, sender: str, nonce: int) -> list[str]:
        return list(self.by_nonce.get((sender.lower(), nonce), ()))

    def on_block(self, block: Block) -> list[Fate]:
        out: list[Fate] = []
        ts_ns = block.timestamp * 1_000_000_000
        for tx in block.transactions:
            seen = self.pending.pop(tx.hash, None)
            if seen is not None:
                out.append(Fate(tx.hash, "included", block.number, max(0, ts_ns - seen.first_seen_ns)))
            if tx.nonce is None:
                continue
            for h in self.by_nonce.pop((tx.from_address, tx.nonce), []):
                if h != tx.hash and self.pending.pop(h, None) is not None:
                    out.append(Fate(h, "replaced", block.number, None, by=tx.hash))
        return out

    def expire(self, now_ns: int) -> list[Fate]:
        out = []
        for h, p in list(self.pending.items()):
            if now_ns - p.first_seen_ns > self.ttl_ns:
                del self.pending[h]
                hashes = self.by_nonce.get((p.from_address, p.nonce), [])
                if h in hashes:
                    hashes.remove(h)
                out.append(Fate(h, "dropped", None, None))
        return out
