"""Back-runs: an arbitrage placed right behind the swap that created it.

An arbitrage in transaction k is a back-run when the nearest earlier transaction
that swapped on one of its pools is at most two positions before it, was sent by
someone else, and pushed that pool the other way (the arbitrage sells into the pool
what the target bought). The target is listed with role ``victim`` although a
back-run does not make its swap worse (``victim_loss`` is null); the arbitrage is
reported once, as the back-run.
"""

from __future__ import annotations

from mevwatch.monitor.alerts import Alert, AlertTx
from mevwatch.monitor.detect.common import BlockView
from mevwatch.monitor.types import Swap

MAX_DISTANCE = 2


def as_backrun(view: BlockView, route: list[Swap], arb: Alert) -> Alert | None:
    tx = view.tx_by_hash[route[0].transaction_hash]
    for s in route:
        earlier = [p for p in view.swaps_by_pool[s.pool] if p.transaction_position < tx.position]
        if not earlier:
            continue
        target = earlier[-1]
        if tx.position - target.transaction_position > MAX_DISTANCE or target.tx_from == tx.from_address:
            continue
        if target.token_out != s.token_in or target.token_in != s.token_out:
            continue
        txs = [AlertTx(target.transaction_hash, target.transaction_position, "victim"), AlertTx(tx.hash, tx.position, "backrun")]
        evidence = dict(arb.evidence)
        evidence["target_swap"] = target.as_evidence()
        return Alert(
            kind="backrun", stage="included", chain_id=arb.chain_id, block_number=arb.block_number,
            block_hash=arb.block_hash, txs=txs, attackers=arb.attackers, victims=[target.tx_from],
            pools=arb.pools, tokens=arb.tokens, profit=arb.profit, victim_loss=None,
            gas_cost_wei=arb.gas_cost_wei, evidence=evidence,
        )
    return None
