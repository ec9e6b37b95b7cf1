"""Arbitrage: a cycle of swaps inside one transaction that ends in the token it
started with, with more of it, over at least two different pools.

A sandwich leg is not an arbitrage (its transactions are skipped), and a wash
(buying and selling back on the same pool) is not one either.
"""

from __future__ import annotations

from mevwatch.monitor.alerts import Alert, AlertTx, Amount
from mevwatch.monitor.detect.common import BlockView
from mevwatch.monitor.money import gas_cost
from mevwatch.monitor.types import Swap


def find_cycles(swaps: list[Swap]) -> list[list[Swap]]:
    """Closed token routes in execution order; each swap is used at most once."""
    used: set[int] = set()
    cycles = []
    for i, start in enumerate(swaps):
        if i in used:
            continue
        route, idx = [start], [i]
        for j in range(i + 1, len(swaps)):
            if j in used:
                continue
            s = swaps[j]
            if s.token_in == route[-1].token_out:
                route.append(s)
                idx.append(j)
                if s.token_out == start.token_in:
                    break
        if len(route) >= 2 and route[-1].token_out == start.token_in and len({s.pool for s in route}) >= 2:
            cycles.append(route)
            used.update(idx)
    return cycles


def arbitrage_alert(view: BlockView, tx_hash: str, route: list[Swap]) -> Alert | None:
    start, end = route[0], route[-1]
    gross = end.amount_out - start.amount_in
    if gross <= 0:
        return None
    tx = view.tx_by_hash[tx_hash]
    attackers = [a for a in dict.fromkeys([tx.from_address, tx.to_address or ""]) if a and not view.is_infrastructure(a)]
    return Alert(
        kind="arbitrage", stage="included", chain_id=view.block.chain_id, block_number=view.block.number,
        block_hash=view.block.hash, txs=[AlertTx(tx_hash, tx.position, "arbitrage")], attackers=attackers,
        victims=[], pools=[s.pool for s in route], tokens=list(dict.fromkeys(s.token_in for s in route)),
        profit=Amount(start.token_in, gross, view.prices.eth(start.token_in, gross)), victim_loss=None,
        gas_cost_wei=gas_cost(view.db, [tx_hash]),
        evidence={"route": [s.as_evidence() for s in route], "miner_payments_wei": f"{view.db.miner_payments.get(tx_hash, 0)}"},
    )


def detect(view: BlockView, skip_txs: set[str]) -> list[tuple[list[Swap], Alert]]:
    found = []
    for tx_hash, swaps in view.swaps_by_tx.items():
        if tx_hash in skip_txs or len(swaps) < 2:
            continue
        for route in find_cycles(swaps):
            alert = arbitrage_alert(view, tx_hash, route)
            if alert is not None:
                found.append((route, alert))
    return found
