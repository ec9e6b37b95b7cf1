"""Money: ETH prices inside a block, attacker profit, gas cost, victim loss.

All token amounts are exact ints; ``eth`` values are floats for display and sorting.
"""

from __future__ import annotations

from typing import Any, Callable

from mevwatch.monitor.alerts import Amount
from mevwatch.monitor.types import ETH_ADDRESS, WETH_ADDRESS, DecodedBlock, Swap

WEI = 10**18


# Stablecoins whose same-block price against WETH gives the USD value of ether (mainnet addresses,
# decimals), in order of preference. A chain without them (the lab, other chains) values in ETH only.
USD_STABLES: tuple[tuple[str, int], ...] = (
    ("0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48", 6),   # USDC
    ("0xdac17f958d2ee523a2206206994597c13d831ec7", 6),   # USDT
    ("0x6b175474e89094c44da98b954eedeac495271d0f", 18),  # DAI
)
ETH_SOURCE = "swaps against WETH/ETH in the same block (pool reserves after the swap, else its execution rate)"


def _round(x: float) -> float:
    """12 significant digits: the sum of float values carries no binary noise (0.3, not 0.30000000000000004)."""
    return float(f"{x:.12g}")


class PriceBook:
    """ETH per token unit, from swaps against WETH/ETH in the same block; USD per ETH from a
    stablecoin's WETH pool in the same block (:data:`USD_STABLES`), when the block has one.

    A pool's reserves after a swap give its mid price, and the deepest such pool of a token (the
    most WETH after its last swap in the block) sets the token's price: a tiny pool of one's own
    cannot move it. Without reserves the swap's own execution rate is used (the last one in the
    block), and only for tokens no pool with reserves prices.
    """

    def __init__(self, swaps: list[Swap], native_wrapper: str = WETH_ADDRESS):
        eth_like = self.eth_like = {native_wrapper, ETH_ADDRESS}  # the chain's wrapped native token (monitor/chains.py)
        self.eth_per_unit: dict[str, float] = {}
        self.source_pool: dict[str, str] = {}
        depth: dict[str, int] = {}  # token -> WETH reserve of the pool that set its price (0: execution rate)
        for s in swaps:
            if s.token_in in eth_like and s.token_out not in eth_like:
                token, eth_amt, tok_amt = s.token_out, s.amount_in, s.amount_out
                res = (s.reserves_after[0], s.reserves_after[1]) if s.reserves_after else None
            elif s.token_out in eth_like and s.token_in not in eth_like:
                token, eth_amt, tok_amt = s.token_in, s.amount_out, s.amount_in
                res = (s.reserves_after[1], s.reserves_after[0]) if s.reserves_after else None
            else:
                continue
            if res and res[0] > 0 and res[1] > 0:
                if res[0] >= depth.get(token, 0) or self.source_pool.get(token) == s.pool:
                    self.eth_per_unit[token] = res[0] / res[1] / WEI
                    self.source_pool[token] = s.pool
                    depth[token] = res[0]
            elif tok_amt > 0 and depth.get(token, 0) == 0:
                self.eth_per_unit[token] = eth_amt / tok_amt / WEI
                self.source_pool[token] = s.pool
                depth[token] = 0
        self.usd_per_eth: float | None = None
        self.usd_source: dict[str, str] | None = None
        for stable, decimals in USD_STABLES:
            p = self.eth_per_unit.get(stable)
            if p is not None and p > 0:
                self.usd_per_eth = _round(1.0 / (p * 10**decimals))
                self.usd_source = {"token": stable, "pool": self.source_pool[stable]}
                break

    def eth(self, token: str, amount: int) -> float | None:
        if token in self.eth_like:
            return amount / WEI
        p = self.eth_per_unit.get(token)
        return amount * p if p is not None else None

    def amount(self, by_token: dict[str, int], headline: str | None = None) -> Amount:
        """One money rule for every alert (docs/alerts.md, "Amounts"): the per-token breakdown (every
        token with a non-zero amount), the ETH value of their sum (null when any of them has no price
        in this block: never a partial sum), its USD value (null without a same-block stablecoin
        price), and a headline token: ``headline`` or the entry worth the most ETH."""
        return valued(by_token, self.eth, self.usd_per_eth, headline)

    def valuation(self) -> dict[str, Any]:
        """The price sources, for an alert's evidence."""
        return {"eth": ETH_SOURCE, "usd_per_eth": self.usd_per_eth, "usd_source": self.usd_source}


def eth_only(token: str, amount: int, native_wrapper: str = WETH_ADDRESS) -> float | None:
    """The ETH value of ether and the chain's wrapped native token only: pricing without a block (pending alerts)."""
    return amount / WEI if token == native_wrapper or token == ETH_ADDRESS else None


def valued(by_token: dict[str, int], eth_of: Callable[[str, int], float | None], usd_per_eth: float | None = None,
           headline: str | None = None) -> Amount:
    """:meth:`PriceBook.amount` with any pricing function (``eth_of(token, amount)``, None when unknown)."""
    parts = {t: a for t, a in by_token.items() if a != 0}
    total: float | None = 0.0
    best: tuple[float, int] | None = None
    if headline is not None and headline not in parts:
        headline = None  # the headline is always an entry of the breakdown
    best_token = headline
    for t in sorted(parts):
        e = eth_of(t, parts[t])
        if e is None:
            total = None
        elif total is not None:
            total += e
        key = (e if e is not None else float("-inf"), parts[t])
        if headline is None and (best is None or key > best):
            best, best_token = key, t
    if best_token is None:  # nothing moved: a zero amount in the first token given
        best_token = next(iter(by_token), "")
    eth = _round(total) if total is not None else None
    usd = _round(eth * usd_per_eth) if eth is not None and usd_per_eth is not None else None
    return Amount(best_token, parts.get(best_token, 0), eth, usd, parts or {best_token: 0})


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
    """Wei the transactions paid for gas; None (unknown, never a partial sum or 0) when any of them
    lacks its receipt's gas used or price."""
    total = 0
    by_hash = {tx.hash: tx for tx in db.block.transactions}
    for h in tx_hashes:
        tx = by_hash.get(h)
        if tx is None or tx.gas_used is None or tx.effective_gas_price is None:
            return None
        total += tx.gas_used * tx.effective_gas_price
    return total if tx_hashes else None


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


# --- Uniswap V3: exact victim loss inside one tick range ------------------------------------------
Q96 = 1 << 96
V3_FEES = (100, 500, 3000, 10000)  # fee tiers in hundredths of a bip
V3_EXACT = "v3_exact_in_range"


def _div_up(a: int, b: int) -> int:
    return -(-a // b)


def v3_exact_in(sqrt_p: int, liquidity: int, amount_in: int, zero_for_one: bool, fee: int) -> tuple[int, int]:
    """An exact-input swap that stays in one tick range, as V3's SwapMath computes it: the sqrt price
    after it and the amount out (SqrtPriceMath's rounding: the price moves up for token0 in, down for
    token1 in; the output rounds down)."""
    less_fee = amount_in * (1_000_000 - fee) // 1_000_000
    num = liquidity << 96
    if zero_for_one:  # getNextSqrtPriceFromAmount0RoundingUp, getAmount1Delta rounding down
        nxt = _div_up(num * sqrt_p, num + less_fee * sqrt_p)
        return nxt, liquidity * (sqrt_p - nxt) // Q96
    nxt = sqrt_p + (less_fee << 96) // liquidity  # getNextSqrtPriceFromAmount1RoundingDown
    return nxt, num * (nxt - sqrt_p) // nxt // sqrt_p  # getAmount0Delta rounding down


def _v3_pre_price(sqrt_after: int, liquidity: int, amount_in: int, zero_for_one: bool, fee: int) -> int | None:
    """The sqrt price before an exact-input in-range swap, from the price after it (the inverse of
    :func:`v3_exact_in`, up to its rounding)."""
    less_fee = amount_in * (1_000_000 - fee) // 1_000_000
    num = liquidity << 96
    if zero_for_one:  # 1/after = 1/before + less_fee/num
        den = num - less_fee * sqrt_after
        return num * sqrt_after // den if den > 0 else None
    before = sqrt_after - (less_fee << 96) // liquidity
    return before if before > 0 else None


def _close(x: int, y: int) -> bool:
    """Equal up to the rounding of another implementation of the same formulas (1e-12 relative)."""
    return abs(x - y) <= max(2, abs(y) >> 40)


def v3_victim_losses(pool_swaps: list[Swap], attacker_front: set[int], victims: set[int],
                     prior: Swap | None = None) -> tuple[dict[int, int] | None, dict]:
    """Victim loss per victim swap (keyed by ``order``) in one Uniswap V3 pool, exactly, when the swaps
    of the window stay in one tick range: every swap's Swap event carries the pool's sqrt price and
    liquidity after it; the liquidity is the same in all of them; and each swap, re-computed from the
    price before it, gives the recorded output and price (which also identifies the fee tier).

    ``pool_swaps`` are the pool's swaps from the first front-run to the back-run, in order; ``prior``
    the pool's swap before them in the block, whose price is the price before the front-run (else it
    is derived from the front-run's amounts, price and liquidity). The counterfactual replays every
    swap but the attacker's front-runs from that price; a victim's loss is its output there minus its
    output computed at its actual price (so rounding differences of a fork cancel out); the
    counterfactual prices must stay inside the range the recorded prices span.

    Returns (losses, detail): losses None when not exact, with ``detail["reason"]``."""
    if any(s.sqrt_price_x96 is None or s.liquidity is None for s in pool_swaps):
        return None, {"reason": "no pool state: V3 Swap events (receipts) are needed, call traces carry no price"}
    liq = pool_swaps[0].liquidity
    assert liq is not None
    if liq <= 0 or any(s.liquidity != liq for s in pool_swaps):
        return None, {"reason": "liquidity changed inside the sandwich (a tick was crossed or liquidity moved)"}
    first = pool_swaps[0]
    zfo = [s.token_in < s.token_out for s in pool_swaps]  # token0 is the lower address
    use_prior = prior is not None and prior.sqrt_price_x96 is not None and prior.liquidity == liq
    for fee in V3_FEES:
        if use_prior:
            assert prior is not None and prior.sqrt_price_x96 is not None
            start: int | None = prior.sqrt_price_x96
        else:
            assert first.sqrt_price_x96 is not None
            start = _v3_pre_price(first.sqrt_price_x96, liq, first.amount_in, zfo[0], fee)
        if start is None:
            continue
        # every recorded swap re-computed from the recorded price before it
        before: list[int] = []
        p = start
        ok = True
        for s, z in zip(pool_swaps, zfo):
            assert s.sqrt_price_x96 is not None
            nxt, amt = v3_exact_in(p, liq, s.amount_in, z, fee)
            if not (_close(nxt, s.sqrt_price_x96) and _close(amt, s.amount_out)):
                ok = False
                break
            before.append(p)
            p = s.sqrt_price_x96
        if not ok:
            continue
        lo = min([start] + [s.sqrt_price_x96 for s in pool_swaps if s.sqrt_price_x96 is not None])
        hi = max([start] + [s.sqrt_price_x96 for s in pool_swaps if s.sqrt_price_x96 is not None])
        last = max((k for k, s in enumerate(pool_swaps) if s.order in victims), default=-1)
        losses: dict[int, int] = {}
        p = start
        for k in range(last + 1):
            s = pool_swaps[k]
            if s.order in attacker_front:
                continue
            nxt, cf_out = v3_exact_in(p, liq, s.amount_in, zfo[k], fee)
            if not lo <= nxt <= hi:
                return None, {"reason": "the counterfactual leaves the price range the recorded swaps stayed in", "fee": fee}
            if s.order in victims:
                losses[s.order] = max(cf_out - v3_exact_in(before[k], liq, s.amount_in, zfo[k], fee)[1], 0)
            p = nxt
        return losses, {"fee": fee, "liquidity": f"{liq}", "price_before": f"{start}",
                        "price_before_from": "previous_swap" if use_prior else "front_run"}
    return None, {"reason": "the recorded swaps are not reproduced in one tick range at any fee tier (a tick was crossed, "
                            "an exact-output or price-limited swap, or another pool model)"}
