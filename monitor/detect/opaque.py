"""Pending-stage rule: ``sandwich_attempt`` from two calls no decoder understands.

A sandwich bot's legs need not be readable: a bot contract's own calldata (a route across
pools, packed arguments) decodes to no swap. What the legs cannot hide is their ordering
around the victim. This rule looks only at structure:

- two pending calls F and B whose calldata decodes to no swap (``decode_pending`` returns
  nothing; a call to a contract, not a plain transfer), F seen before B,
- from one sender (B's nonce after F's), or to one contract (the same bot driven by another
  account),
- and a pending swap V by someone else (neither F's nor B's sender), seen before F, with
  ``priority fee(F) > priority fee(V) > priority fee(B)``: F is ordered before V, B after it.

It raises ``sandwich_attempt`` (stage ``pending``) naming F as front-run, every such V (in
arrival order, at most ``MAX_VICTIMS``) as victims, B as back-run. No pool is named (the legs'
calldata is opaque); ``tokens`` are the victims' paths.

A contract that many accounts call at once is a public one (an aggregator, a game), not one
attacker's: calls to a contract with more than ``PUBLIC_SENDERS`` distinct senders among the
live opaque calls are only paired by sender, never by contract.

Known limits: an honest account that sends two opaque calls around someone's pending swap
(the first with a higher tip than the swap, the second with a lower one) is reported; a JIT
liquidity fill whose add and remove are opaque calls is reported as an attempt too (in the
mempool it has a sandwich's shape).
"""

from __future__ import annotations

from dataclasses import dataclass

from mevwatch.monitor.alerts import Alert, AlertTx
from mevwatch.monitor.decode.pending import pending_intents
from mevwatch.monitor.detect.pending import priority_fee, report_once
from mevwatch.monitor.types import DecodedBlock, PendingTx

MAX_VICTIMS = 8
PUBLIC_SENDERS = 4
MAX_FRONTS = 64  # earlier calls of one attacker looked at per new call (the most recent)


@dataclass(slots=True)
class _Seen:
    tx: PendingTx
    seq: int
    tokens: tuple[str, ...] = ()


def _seq(s: _Seen) -> int:
    return s.seq


def _newest(calls: dict[str, _Seen] | None) -> dict[str, _Seen]:
    """The newest MAX_FRONTS of an index's calls (kept in arrival order), by hash."""
    if not calls:
        return {}
    if len(calls) <= MAX_FRONTS:
        return dict(calls)
    out: dict[str, _Seen] = {}
    for h in reversed(calls):
        out[h] = calls[h]
        if len(out) == MAX_FRONTS:
            break
    return out


class OpaqueSandwichWatcher:
    """Follows pending swaps (possible victims) and opaque calls (possible legs)."""

    def __init__(self, chain_id: int = 1):
        self.chain_id = chain_id
        self.base_fee: int | None = None
        self._seq = 0
        self.swaps: dict[str, _Seen] = {}  # hash -> a pending call that decodes to a swap (arrival order)
        self.opaque: dict[str, _Seen] = {}  # hash -> a pending call that decodes to nothing
        self.by_from: dict[str, dict[str, _Seen]] = {}
        self.by_to: dict[str, dict[str, _Seen]] = {}
        self.to_senders: dict[str, dict[str, int]] = {}  # contract -> its live opaque calls per sender
        self.reported: dict[str, None] = {}

    # --- state ----------------------------------------------------------------------------
    def observe_block(self, db: DecodedBlock) -> None:
        self.base_fee = db.block.base_fee_per_gas
        if self.swaps or self.opaque:
            for tx in db.block.transactions:
                self.forget(tx.hash)

    def expire(self, before_ns: int) -> int:
        old = [h for h, s in (*self.swaps.items(), *self.opaque.items()) if s.tx.first_seen_ns < before_ns]
        for h in old:
            self.forget(h)
        return len(old)

    def forget(self, tx_hash: str) -> None:
        self.swaps.pop(tx_hash, None)
        s = self.opaque.pop(tx_hash, None)
        if s is None:
            return
        for index, key in ((self.by_from, s.tx.from_address), (self.by_to, s.tx.to_address or "")):
            group = index.get(key)
            if group is not None:
                group.pop(tx_hash, None)
                if not group:
                    del index[key]
        to = s.tx.to_address or ""
        senders = self.to_senders.get(to)
        if senders is not None:
            senders[s.tx.from_address] -= 1
            if not senders[s.tx.from_address]:
                del senders[s.tx.from_address]
            if not senders:
                del self.to_senders[to]

    # --- pending --------------------------------------------------------------------------
    def on_pending(self, p: PendingTx) -> list[Alert]:
        if p.replaces:
            self.forget(p.replaces)
        if p.to_address is None or len(p.input) < 10:
            return []  # a contract creation or a plain transfer: neither a swap nor a leg
        self._seq += 1
        swaps = pending_intents(p.hash, p.to_address, p.input, p.value)
        if swaps:
            if not any(s.extra.get("direct") for s in swaps):  # a bot's own pair trade is no victim
                tokens = tuple(dict.fromkeys(t for s in swaps for t in s.path))
                self.swaps[p.hash] = _Seen(p, self._seq, tokens)
            return []
        new = _Seen(p, self._seq)
        if p.hash in self.opaque:  # seen again: counted once, and placed last in arrival order
            self.forget(p.hash)
        alerts = self._attempts(new)
        self.opaque[p.hash] = new
        self.by_from.setdefault(p.from_address, {})[p.hash] = new
        self.by_to.setdefault(p.to_address, {})[p.hash] = new
        senders = self.to_senders.setdefault(p.to_address, {})
        senders[p.from_address] = senders.get(p.from_address, 0) + 1
        return alerts

    def _prio(self, s: _Seen) -> int:
        return priority_fee(s.tx, self.base_fee)

    def _attempts(self, back: _Seen) -> list[Alert]:
        """Every earlier opaque call F of the same attacker as ``back`` with victims between them."""
        b = back.tx
        # each index holds its calls in arrival order (on_pending re-inserts a call seen again), so the
        # newest MAX_FRONTS of both together are among the newest MAX_FRONTS of each: only those are sorted
        fronts = _newest(self.by_from.get(b.from_address))
        senders = self.to_senders.get(b.to_address or "", {})
        if len(senders) + (b.from_address not in senders) <= PUBLIC_SENDERS:
            fronts.update(_newest(self.by_to.get(b.to_address or "")))
        alerts: list[Alert] = []
        if not fronts:
            return alerts
        pb = self._prio(back)
        for f in sorted(fronts.values(), key=_seq)[-MAX_FRONTS:]:
            ft = f.tx
            if ft.from_address == b.from_address and ft.nonce >= b.nonce:
                continue  # B would not run after F (or replaces it)
            pf = self._prio(f)
            if pf <= pb + 1:
                continue
            victims = [v for v in self.swaps.values()
                       if v.seq < f.seq and v.tx.from_address not in (ft.from_address, b.from_address)
                       and v.tx.to_address != ft.to_address and pb < self._prio(v) < pf]
            if victims:
                alerts.extend(self._once(self._alert(f, victims[-MAX_VICTIMS:], back)))
        return alerts

    def _alert(self, f: _Seen, victims: list[_Seen], b: _Seen) -> Alert:
        tokens = list(dict.fromkeys(t for v in victims for t in v.tokens))
        return Alert(
            kind="sandwich_attempt", stage="pending", chain_id=self.chain_id, block_number=None, block_hash=None,
            txs=[AlertTx(f.tx.hash, None, "frontrun"), *(AlertTx(v.tx.hash, None, "victim") for v in victims),
                 AlertTx(b.tx.hash, None, "backrun")],
            attackers=sorted({f.tx.from_address, b.tx.from_address}),
            victims=list(dict.fromkeys(v.tx.from_address for v in victims)), pools=[], tokens=tokens,
            profit=None, victim_loss=None, gas_cost_wei=None,
            evidence={
                "rule": "opaque_calls",
                "contract": f.tx.to_address if f.tx.to_address == b.tx.to_address else None,
                "selectors": {"frontrun": f.tx.input[:10], "backrun": b.tx.input[:10]},
                "priority_fees": {"frontrun": str(self._prio(f)), "victims": [str(self._prio(v)) for v in victims],
                                  "backrun": str(self._prio(b))},
                "first_seen_ns": f.tx.first_seen_ns,
            },
        )

    def _once(self, alert: Alert) -> list[Alert]:
        return report_once(self.reported, alert)
