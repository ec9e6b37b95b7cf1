"""Money: ETH prices inside a block, attacker profit, gas cost, victim loss.

All token amounts are exact ints; ``eth`` values are floats for display and sorting.
"""

from __future__ import annotations

from mevwatch.monitor.types import ETH_ADDRESS, WETH_ADDRESS, DecodedBlock, Swap

ETH_LIKE = {WETH_ADDRESS, ETH_ADDRESS}
WEI = 10**18


class PriceBook:
    """ETH per token unit, from swaps against WETH/ETH in the same block.

    A pool's reserves after a swap give its mid price; without reserves the swap's
    own execution rate is used. The last observation in the block wins.
    """

    def __init__(self, swaps: list[Swap]):
        self.eth_per_unit: dict[str, float] = {}
        for s in swaps:
            if s.token_in in ETH_LIKE and s.token_out not in ETH_LIKE:
                token, eth_amt, tok_amt = s.token_out, s.amount_in, s.amount_out
                res = (s.reserves_after[0], s.reserves_after[1]) if s.reserves_after else None
            elif s.token_out in ETH_LIKE and s.token_in not in ETH_LIKE:
                token, eth_amt, tok_amt = s.token_in, s.amount_out, s.amount_in
                res = (s.reserves_after[1], s.reserves_after[0]) if s.reserves_after else None
            else:
                continue
            if res and res[0] > 0 and res[1] > 0:
                self.eth_per_unit[token] = res[0] / res[1] / WEI
            elif tok_amt > 0:
                self.eth_per_unit[token] = eth_amt / tok_amt / WEI

    def eth(self, token: str, amount: int) -> float | None:
        if token in ETH_LIKE:
            return amount / WEI
        p = self.eth_per_unit.get(token)
        return amount * p if p is not None else None


def pro_rata_profit(cost_in: int, bought: int, sold: int, received: int) -> int:
    """Gross profit of a round trip priced in the starting token.

    The attacker pays ``cost_in`` X for ``bought`` Y, later sells ``sold`` Y for
    ``received`` X. When bought != sold only part of the position was closed:
    the back-run side estimate scales the cost to what was sold, the front-run side
    estimate scales the revenue to what was bought; the smaller in absolute value
    is taken (this avoids mev-inspect-py's inflated profits, its issue 283).
    """
    if bought == sold or bought == 0 or sold == 0:
        return received - cost_in
    back_side = received - cost_in * sold // bought
    front_side = received * bought // sold - cost_in
    return back_side if abs(back_side) <= abs(front_side) else front_side


def gas_cost(db: DecodedBlock, tx_hashes: list[str]) -> int | None:
    total = 0
    known = False
    by_hash = {tx.hash: tx for tx in db.block.transactions}
    for h in tx_hashes:
        tx = by_hash.get(h)
        if tx is not None and tx.gas_used is not None and tx.effective_gas_price is not None:
            total += tx.gas_used * tx.effective_gas_price
            known = True
    return total if known else None


def v2_amount_out(amount_in: int, reserve_in: int, reserve_out: int, fee_bps: int = 30) -> int:
    """Uniswap V2 getAmountOut with a fee in basis points (30 = 0.3%)."""
    if amount_in <= 0 or reserve_in <= 0 or reserve_out <= 0:
        return 0
    a = amount_in * (10_000 - fee_bps)
    return a * reserve_out // (reserve_in * 10_000 + a)


def v2_victim_losses(pool_swaps: list[Swap], attacker_front: set[int], victims: set[int]) -> dict[int, int] | None:
    """Victim loss per victim swap (keyed by ``order``) in one constant-product pool.

    ``pool_swaps`` are the pool's swaps from the first front-run to the back-run, in
    order. The counterfactual replays every swap except the attacker's front-runs
    from the reserves before the first front-run; each victim's loss is what the
    model pays it there minus what the model pays it at its actual reserves (so a
    fork's different fee cancels out). Returns None when reserves are unknown.
    """
    first = pool_swaps[0]
    if first.reserves_after is None:
        return None
    state = {
        first.token_in: first.reserves_after[0] - first.amount_in,
        first.token_out: first.reserves_after[1] + first.amount_out,
    }
    losses: dict[int, int] = {}
    for s in pool_swaps:
        if s.order in attacker_front:
            continue
        r_in, r_out = state.get(s.token_in), state.get(s.token_out)
        if r_in is None or r_out is None:
            return None
        cf_out = v2_amount_out(s.amount_in, r_in, r_out)
        if s.order in victims:
            if s.reserves_after is not None:
                actual = v2_amount_out(s.amount_in, s.reserves_after[0] - s.amount_in, s.reserves_after[1] + s.amount_out)
            else:
                actual = s.amount_out
            losses[s.order] = max(cf_out - actual, 0)
        state[s.token_in] = r_in + s.amount_in
        state[s.token_out] = r_out - cf_out
    return losses


def argmax_unimodal(f, lo: int, hi: int) -> int:
    """The integer x in [lo, hi] maximising ``f``, for f increasing then decreasing (ternary search)."""
    while hi - lo > 2:
        m1 = lo + (hi - lo) // 3
        m2 = hi - (hi - lo) // 3
        if f(m1) < f(m2):
            lo = m1
        else:
            hi = m2
    return max(range(lo, hi + 1), key=f)
