"""Arbitrage: a cycle of swaps inside one transaction, over at least two different pools,
that leaves the attacker with more than it started with.

Cycles are found in the transaction's token-flow graph (each swap an edge from its input to
its output token), not by following the swaps in recorded order: with nested flash swaps
(each swap's callback performs the next swap before the outer one settles) the frames and the
events come in an order other than the trade's, and the loop must still close. The search
prefers, at each step, the swap whose input equals the previous swap's output exactly (the
amounts chain), then the nearest one after it in recorded order (wrapping round), and tries
the others when a branch does not close; each swap is used in at most one cycle.

Profit is the attacker's net flow over every leg, in every token: a flash-swap cycle repays
its first token exactly and keeps the profit in a middle token, so measuring only the first
swap's input token would report 0. The reported profit is the token worth most in ETH (the
route's start token on a tie or without prices); ``profit.by_token`` holds every token's net and
``profit.eth`` the ETH value of them all (docs/alerts.md, "Amounts"). A cycle whose nets are worth nothing or less (or that loses an unpriced token)
is no arbitrage. The route is reported in trade order, starting at the profit token.

Swaps a token contract makes for itself inside its own transfer (``Swap.actor``) are not the
transaction sender's and never join its cycles. A sandwich leg is not an arbitrage (its
transactions are skipped), and a wash (buying and selling back on the same pool) is not one.
"""

from __future__ import annotations

from mevwatch.monitor.alerts import Alert, AlertTx
from mevwatch.monitor.detect.common import BlockView
from mevwatch.monitor.money import PriceBook, gas_cost
from mevwatch.monitor.types import Swap

MAX_LEGS = 8  # longest cycle searched
SEARCH_BUDGET = 4096  # extension steps per start swap (bounds pathological transactions)


class _Search:
    """Depth-first search for one closed route from a start swap over the unused swaps."""

    def __init__(self, swaps: list[Swap], by_token_in: dict[str, list[int]], used: list[bool]):
        self.swaps = swaps
        self.by_token_in = by_token_in
        self.used = used
        self.steps = 0

    def candidates(self, path: list[int]) -> list[int]:
        swaps, n = self.swaps, len(self.swaps)
        last = path[-1]
        prev = swaps[last]
        found: list[tuple[int, int, int]] = []
        for j in self.by_token_in.get(prev.token_out, []):
            if self.used[j] or j in path:
                continue
            chained = 0 if swaps[j].amount_in == prev.amount_out else 1
            found.append((chained, (j - last) % n, j))
        found.sort()
        return [j for _, _, j in found]

    def run(self, path: list[int]) -> list[int] | None:
        swaps = self.swaps
        start_token = swaps[path[0]].token_in
        for j in self.candidates(path):
            self.steps += 1
            if self.steps > SEARCH_BUDGET:
                return None
            route = path + [j]
            if swaps[j].token_out == start_token:
                if len({swaps[k].pool for k in route}) >= 2:
                    return route
                continue  # a wash on one pool closes nothing
            if len(route) < MAX_LEGS:
                got = self.run(route)
                if got is not None:
                    return got
        return None


def find_cycles(swaps: list[Swap]) -> list[list[Swap]]:
    """Closed token routes among ``swaps`` (one transaction's, one actor's), independent of their
    order; each swap is used at most once. Routes are in trade order from the start swap."""
    used = [False] * len(swaps)
    by_token_in: dict[str, list[int]] = {}
    for i, s in enumerate(swaps):
        by_token_in.setdefault(s.token_in, []).append(i)
    cycles: list[list[Swap]] = []
    for i in range(len(swaps)):
        if used[i]:
            continue
        route = _Search(swaps, by_token_in, used).run([i])
        if route is None:
            continue
        for k in route:
            used[k] = True
        cycles.append([swaps[k] for k in route])
    return cycles


def net_flows(route: list[Swap]) -> dict[str, int]:
    """The attacker's net amount per token over the route's legs (out minus in)."""
    net: dict[str, int] = {}
    for s in route:
        net[s.token_in] = net.get(s.token_in, 0) - s.amount_in
        net[s.token_out] = net.get(s.token_out, 0) + s.amount_out
    return net


def profit_token(route: list[Swap], net: dict[str, int], prices: PriceBook) -> str | None:
    """The token the cycle's profit is reported in; None when the cycle is not profitable."""
    total_eth = 0.0
    best: tuple[float, int, int] | None = None
    best_token: str | None = None
    start = route[0].token_in
    for tok, amount in net.items():
        eth = prices.eth(tok, amount)
        if amount < 0 and eth is None:
            return None  # loses a token we cannot value: no provable profit
        if eth is not None:
            total_eth += eth
        if amount > 0:
            key = (eth if eth is not None else -1.0, 1 if tok == start else 0, amount)
            if best is None or key > best:
                best, best_token = key, tok
    if best_token is None or total_eth < 0 or (total_eth == 0 and any(a < 0 for a in net.values())):
        return None
    return best_token


def rotate_to(route: list[Swap], token: str) -> list[Swap]:
    """The same cycle, starting at the first leg that spends ``token``."""
    for k, s in enumerate(route):
        if s.token_in == token:
            return route[k:] + route[:k]
    return route


def arbitrage_alert(view: BlockView, tx_hash: str, route: list[Swap]) -> Alert | None:
    net = net_flows(route)
    token = profit_token(route, net, view.prices)
    if token is None:
        return None
    route = rotate_to(route, token)
    tx = view.tx_by_hash[tx_hash]
    attackers = [a for a in dict.fromkeys([tx.from_address, tx.to_address or ""]) if a and not view.is_infrastructure(a)]
    return Alert(
        kind="arbitrage", stage="included", chain_id=view.block.chain_id, block_number=view.block.number,
        block_hash=view.block.hash, txs=[AlertTx(tx_hash, tx.position, "arbitrage")], attackers=attackers,
        victims=[], pools=[s.pool for s in route], tokens=list(dict.fromkeys(s.token_in for s in route)),
        profit=view.prices.amount(net, token), victim_loss=None,
        gas_cost_wei=gas_cost(view.db, [tx_hash]),
        evidence={"route": [s.as_evidence() for s in route], "valuation": view.prices.valuation(),
                  "miner_payments_wei": f"{view.db.miner_payments.get(tx_hash, 0)}"},
    )


def detect(view: BlockView, skip_txs: set[str]) -> list[tuple[list[Swap], Alert]]:
    found: list[tuple[list[Swap], Alert]] = []
    for tx_hash, swaps in view.swaps_by_tx.items():
        if tx_hash in skip_txs or len(swaps) < 2:
            continue
        by_actor: dict[str, list[Swap]] = {}
        for s in swaps:
            by_actor.setdefault(s.actor, []).append(s)
        for group in by_actor.values():
            if len(group) < 2:
                continue
            for route in find_cycles(group):
                alert = arbitrage_alert(view, tx_hash, route)
                if alert is not None:
                    found.append((rotate_to(route, alert.profit.token if alert.profit else ""), alert))
    return found
