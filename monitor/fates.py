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
        if not self.pending:  # nothing pending can be mined or replaced (replays of block files)
            self.by_nonce.clear()
            return out
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


class PendingAlerts:
    """Open pending-stage alerts (``exposed_swap``, ``sandwich_attempt``) by the transactions they
    name. One whose transaction was replaced or dropped, or that is still unresolved ``ttl_s`` of
    chain time after it was raised, never landed: :meth:`on_block` returns it to be retracted. One
    whose transactions were all included is resolved and forgotten. At most ``cap`` are tracked
    (the oldest are forgotten first), so the state stays bounded whatever the mempool does."""

    def __init__(self, ttl_s: float = 3600.0, cap: int = 100_000):
        from mevwatch.monitor.alerts import Alert

        self.ttl_ns = int(ttl_s * 1e9)
        self.cap = cap
        self.open: dict[str, tuple[Alert, int, set[str]]] = {}  # id -> (alert, raised at ns, txs not yet included)
        self.by_tx: dict[str, set[str]] = {}

    def __len__(self) -> int:
        return len(self.open)

    def add(self, alert, seen_ns: int) -> None:
        if alert.stage != "pending" or alert.alert_id in self.open:
            return
        txs = {t.hash for t in alert.txs}
        self.open[alert.alert_id] = (alert, seen_ns, txs)
        for h in txs:
            self.by_tx.setdefault(h, set()).add(alert.alert_id)
        while len(self.open) > self.cap:
            self._drop(next(iter(self.open)))

    def on_block(self, fates: list[Fate], block_time_s: int) -> list:
        """Alerts that never landed, given this block's fates and its timestamp (chain time)."""
        out = []
        for f in fates:
            for aid in list(self.by_tx.get(f.hash, ())):
                entry = self.open.get(aid)
                if entry is None:
                    continue
                if f.fate == "included":
                    entry[2].discard(f.hash)
                    if not entry[2]:
                        self._drop(aid)  # landed (the block rules say what it became)
                else:  # replaced or dropped: the attack as seen cannot land any more
                    out.append(entry[0])
                    self._drop(aid)
        horizon = block_time_s * 1_000_000_000 - self.ttl_ns
        for aid, (alert, seen_ns, _txs) in list(self.open.items()):
            if seen_ns < horizon:
                out.append(alert)
                self._drop(aid)
        return out

    def _drop(self, aid: str) -> None:
        entry = self.open.pop(aid, None)
        if entry is None:
            return
        for h in {t.hash for t in entry[0].txs}:
            ids = self.by_tx.get(h)
            if ids is not None:
                ids.discard(aid)
                if not ids:
                    del self.by_tx[h]


# --- order flow: was each alert transaction in our mempool before its block? ----------------------
BEFORE, AFTER, NEVER, UNKNOWN = "before", "after", "never", "unknown"
PUBLIC, PRIVATE, PARTLY_PRIVATE = "public", "private", "partly_private"
_NS_PER_MS = 1_000_000


class OrderFlow:
    """Labels the transactions of included alerts by what our mempool saw of them:

    - ``before``: first seen pending before the block's timestamp; ``lead_ms`` is by how long;
    - ``after``: first seen only at or after the block's timestamp (``lead_ms`` negative), or only
      once the block was processed (relabelled when the alert becomes final);
    - ``never``: not seen pending at all: private order flow (a builder's or relay's);
    - ``unknown``: no mempool to ask (a replay of files without pending transactions, or a block
      older than the first pending transaction this engine saw).

    An alert's ``order_flow`` sums up its attack legs (every role but ``victim``): ``public`` (all
    seen before), ``private`` (none), ``partly_private``, or ``unknown``. Deterministic in the
    message sequence, so a replay of a recording labels as the live run did."""

    def __init__(self, cap: int = 100_000):
        self.since_ns: int | None = None  # first sight of any pending transaction: the mempool exists from here
        self.cap = cap
        # included alert txs labelled never -> (their block's time in ns, first sight after it, once seen)
        self.unseen: dict[str, tuple[int, int | None]] = {}

    def on_pending(self, p: PendingTx) -> None:
        if self.since_ns is None or p.first_seen_ns < self.since_ns:
            self.since_ns = p.first_seen_ns
        entry = self.unseen.get(p.hash)
        if entry is not None and entry[1] is None:
            self.unseen[p.hash] = (entry[0], p.first_seen_ns)

    def label(self, alert, pending: dict[str, PendingTx], block_time_s: int) -> None:
        """Label an included alert's transactions (``pending``: first sights of the transactions
        still pending when its block arrived)."""
        ts_ns = block_time_s * 1_000_000_000
        known = self.since_ns is not None and ts_ns >= self.since_ns
        for t in alert.txs:
            p = pending.get(t.hash)
            if p is not None:
                t.lead_ms = (ts_ns - p.first_seen_ns) // _NS_PER_MS
                t.mempool = BEFORE if p.first_seen_ns < ts_ns else AFTER
            else:
                t.lead_ms = None
                t.mempool = NEVER if known else UNKNOWN
                if known:
                    self.unseen[t.hash] = (ts_ns, None)
        while len(self.unseen) > self.cap:
            del self.unseen[next(iter(self.unseen))]
        alert.order_flow = summarise(alert.txs)

    def relabel(self, alert) -> None:
        """A final alert: transactions first seen pending only after their block was processed are
        ``after``, no longer ``never``; they are forgotten here."""
        changed = False
        for t in alert.txs:
            if t.hash not in self.unseen:
                continue
            ts_ns, seen = self.unseen.pop(t.hash)
            if seen is not None and t.mempool == NEVER:
                t.mempool = AFTER
                t.lead_ms = (ts_ns - seen) // _NS_PER_MS
                changed = True
        if changed:
            alert.order_flow = summarise(alert.txs)


def summarise(txs) -> str | None:
    """An alert's order flow from its attack legs (its victims when it has nothing else)."""
    legs = [t.mempool for t in txs if t.role != "victim"] or [t.mempool for t in txs]
    if not legs or any(m is None for m in legs):
        return None
    if UNKNOWN in legs:
        return UNKNOWN
    public = sum(1 for m in legs if m == BEFORE)
    return PUBLIC if public == len(legs) else PRIVATE if public == 0 else PARTLY_PRIVATE
