"""Uniswap V2 and every fork sharing the pair interface (Sushiswap, Shibaswap, ...).

From traces, ``swap(amount0Out, amount1Out, to, data)`` on the pair: the output
amount is in the calldata; the pair's own ``transfer`` child names the output token;
the two ``balanceOf(pair)`` calls at the end of ``swap`` name token0 then token1 and
give the balances (= reserves) after the swap; the input is what reached the pair
since its previous swap in the transaction (including inside a flash-swap callback).
From logs: ``Swap`` + the preceding ``Sync`` (reserves) and the transfers around them.
Liquidity: ``mint(to)`` / ``burn(to)`` calls and ``Mint`` / ``Burn`` events.
KyberSwap DMM pairs have the same ``swap`` call; with traces alone they read as Uniswap V2 (with
reserves that are not their pricing state: they price on amplified virtual reserves), with logs
their own ``Swap`` event names them ``kyber_dmm`` (monitor/decode/kyber.py) and no reserves are kept.
"""

from __future__ import annotations

from mevwatch.monitor.decode.context import TxContext
from mevwatch.monitor.decode.hexabi import arg, arg_addr, out, topic_addr
from mevwatch.monitor.decode.transfers import SEL_TRANSFER
from mevwatch.monitor.types import LiquidityChange, Swap, Trace

PROTOCOL = "uniswap_v2"
SEL_SWAP = "0x022c0d9f"
SEL_MINT = "0x6a627842"
SEL_BURN = "0x89afcb44"
SEL_BALANCE_OF = "0x70a08231"

TOPIC_SWAP = "0xd78ad95fa46c994b6551d0da85fc275fe613ce37657fb8d5e3d130840159d822"
TOPIC_SYNC = "0x1c411e9a96e071241c2f21f7726b17ae89e3cab4c78be50e062b03a9fffbbad1"
TOPIC_MINT = "0x4c209b5fc8ad50758f13e2e1088ba56a560dff690a1c6fef26394f4c03821c4f"
TOPIC_BURN = "0xdccd412f0b1252819cb1fd330b93224ca42612892bb3f4f789976e6d81936496"
# KyberSwap DMM (Classic) pairs share the swap call and add the fee to the event:
# Swap(address indexed sender, uint256 amount0In, uint256 amount1In, uint256 amount0Out, uint256 amount1Out,
#      address indexed to, uint256 feeInPrecision)
TOPIC_DMM_SWAP = "0x606ecd02b3e3b4778f8e97b2e03351de14224efaa5fa64e62200afc9395c2499"
PROTOCOL_DMM = "kyber_dmm"


def _pair_balances(ctx: TxContext, i: int, pool: str) -> list[tuple[str, int]]:
    """(token, balance) of the pair's closing ``balanceOf(pair)`` calls, in call order."""
    found = []
    traces = ctx.traces
    for j in ctx.children(i):
        c = traces[j]
        if c.input[:10] == SEL_BALANCE_OF and c.call_type == "staticcall" and c.input[34:74] == pool[2:]:
            if len(c.output) >= 66:
                found.append((c.to_address, out(c.output, 0)))
    return found[-2:]


def trace_swap(ctx: TxContext, i: int, t: Trace) -> None:
    pool = t.to_address
    a0, a1 = arg(t.input, 0), arg(t.input, 1)
    recipient = arg_addr(t.input, 2)
    if (a0 == 0) == (a1 == 0):
        ctx.stats.malformed_by_selector[SEL_SWAP] += 1  # no output, or both sides out: not a swap we can price
        return
    amount_out = a0 or a1
    balances = _pair_balances(ctx, i, pool)
    pair: tuple[str, str] | None = None
    if len(balances) == 2:
        pair = (balances[0][0], balances[1][0])
        ctx.pools.learn(pool, pair[0], pair[1])
    else:
        pair = ctx.pools.tokens.get(pool)
    token_in_known: str | None = None
    if pair is not None:
        token_out = pair[0] if a0 else pair[1]
        token_in_known = pair[1] if a0 else pair[0]
    else:  # a fork without the closing balanceOf calls: the pair's own transfer names the output
        seen: str | None = None
        for j in ctx.children(i):
            c = ctx.traces[j]
            if c.input[:10] == SEL_TRANSFER and c.from_address == pool:
                seen = c.to_address
        if seen is None:
            ctx.stats.malformed_by_selector[SEL_SWAP] += 1
            return
        token_out = seen
    start = ctx.last_swap_index(pool, i)
    found = ctx.input_from_transfers(pool, start, i, token_out, token_in_known)
    if found is None:
        ctx.stats.malformed_by_selector[SEL_SWAP] += 1
        return
    token_in, amount_in, payer = found
    if token_in_known is not None and token_in != token_in_known:
        ctx.stats.malformed_by_selector[SEL_SWAP] += 1
        return
    reserves = None
    protocol = PROTOCOL
    if ctx.logs and any(lg.address == pool and lg.topics and lg.topics[0] == TOPIC_DMM_SWAP for lg in ctx.logs):
        # a KyberSwap DMM pair (told apart only by its event, when the block has logs): it prices on
        # amplified virtual reserves with a dynamic fee, so its balances are no constant-product state
        protocol = PROTOCOL_DMM
    elif len(balances) == 2:
        bal = dict(balances)
        reserves = (bal[token_in], bal[token_out])
    ctx.add_swap(Swap(
        protocol, pool, ctx.tx.hash, ctx.tx.position, ctx.order(i), t.from_address, recipient,
        token_in, token_out, amount_in, amount_out, ctx.tx.from_address, ctx.tx.to_address,
        trace_address=t.trace_address, payer=payer, reserves_after=reserves,
    ))


def _liquidity_amounts(ctx: TxContext, pool: str, start: int, end: int, incoming: bool) -> tuple[int | None, int | None]:
    tokens = ctx.pools.tokens.get(pool)
    if tokens is None:
        return None, None
    sums = {tokens[0]: 0, tokens[1]: 0}
    for tr in ctx.transfers_between(start, end):
        if tr.token in sums and ((tr.to_address == pool) if incoming else (tr.from_address == pool)):
            sums[tr.token] += tr.amount
    return sums[tokens[0]], sums[tokens[1]]


def trace_mint(ctx: TxContext, i: int, t: Trace) -> None:
    pool = t.to_address
    balances = _pair_balances(ctx, i, pool)
    if len(balances) == 2:
        ctx.pools.learn(pool, balances[0][0], balances[1][0])
    a0, a1 = _liquidity_amounts(ctx, pool, ctx.last_swap_index(pool, i), i, True)
    ctx.liquidity.append(LiquidityChange(
        PROTOCOL, "add", pool, arg_addr(t.input, 0), t.from_address, ctx.tx.hash, ctx.tx.position,
        ctx.order(i), ctx.tx.from_address, liquidity=out(t.output, 0) if len(t.output) >= 66 else None,
        amount0=a0, amount1=a1, trace_address=t.trace_address,
    ))


def trace_burn(ctx: TxContext, i: int, t: Trace) -> None:
    pool = t.to_address
    ctx.liquidity.append(LiquidityChange(
        PROTOCOL, "remove", pool, arg_addr(t.input, 0), t.from_address, ctx.tx.hash, ctx.tx.position,
        ctx.order(i), ctx.tx.from_address, amount0=out(t.output, 0), amount1=out(t.output, 1),
        trace_address=t.trace_address,
    ))


TRACE_HANDLERS = {SEL_SWAP: trace_swap, SEL_MINT: trace_mint, SEL_BURN: trace_burn}


# --- logs ---------------------------------------------------------------------------
def window_tokens(ctx: TxContext, pool: str, start: int, end: int) -> tuple[dict[str, int], dict[str, int], dict[str, str]]:
    """Per token: amount into ``pool``, amount out of it, and the first payer, for logs in [start, end)."""
    inflow: dict[str, int] = {}
    outflow: dict[str, int] = {}
    payer: dict[str, str] = {}
    for tr in ctx.transfers_between(ctx.order(start), ctx.order(end)):
        if tr.to_address == pool and tr.from_address != pool:
            inflow[tr.token] = inflow.get(tr.token, 0) + tr.amount
            payer.setdefault(tr.token, tr.from_address)
        elif tr.from_address == pool and tr.to_address != pool:
            outflow[tr.token] = outflow.get(tr.token, 0) + tr.amount
    return inflow, outflow, payer


def resolve_pair_tokens(ctx: TxContext, pool: str, start: int, end: int, zero_is_in: bool) -> tuple[str, str, str | None] | None:
    """(token_in, token_out, payer) of a pool event in log window [start, end)."""
    inflow, outflow, payer = window_tokens(ctx, pool, start, end)
    known = ctx.pools.tokens.get(pool)
    if known is not None:
        token_in, token_out = (known[0], known[1]) if zero_is_in else (known[1], known[0])
        return token_in, token_out, payer.get(token_in)
    if not inflow or not outflow:
        return None
    token_in = max(inflow, key=inflow.__getitem__)
    token_out = max(outflow, key=outflow.__getitem__)
    if token_in == token_out:
        return None
    if zero_is_in:
        ctx.pools.learn(pool, token_in, token_out)
    else:
        ctx.pools.learn(pool, token_out, token_in)
    return token_in, token_out, payer.get(token_in)


def last_log_index(ctx: TxContext, pool: str, before_log: int) -> int:
    for s in reversed(ctx.swaps):
        if s.pool == pool and s.log_index is not None and s.log_index < before_log:
            return s.log_index + 1
    for lc in reversed(ctx.liquidity):
        if lc.pool == pool and lc.log_index is not None and lc.log_index < before_log:
            return lc.log_index + 1
    return 0


def log_swap(ctx: TxContext, i: int) -> None:
    pair_log_swap(ctx, i, PROTOCOL, True)


def pair_log_swap(ctx: TxContext, i: int, protocol: str, with_reserves: bool) -> None:
    """A pair's ``Swap(sender, amount0In, amount1In, amount0Out, amount1Out, to, ...)`` event;
    with ``with_reserves``, the reserves after it from the ``Sync`` just before it."""
    log = ctx.logs[i]
    if len(log.topics) != 3:
        return
    pool = log.address
    a0in, a1in, a0out, a1out = (out(log.data, k) for k in range(4))
    if (a0out == 0) == (a1out == 0):
        ctx.stats.malformed_by_selector[log.topics[0][:10]] += 1
        return
    zero_is_in = a1out > 0
    start = last_log_index(ctx, pool, log.log_index)
    resolved = resolve_pair_tokens(ctx, pool, start, log.log_index, zero_is_in)
    if resolved is None:
        ctx.stats.malformed_by_selector[log.topics[0][:10]] += 1
        return
    token_in, token_out, payer = resolved
    reserves = None
    if with_reserves and i > 0:
        prev = ctx.logs[i - 1]
        if prev.address == pool and prev.topics and prev.topics[0] == TOPIC_SYNC:
            r0, r1 = out(prev.data, 0), out(prev.data, 1)
            reserves = (r0, r1) if zero_is_in else (r1, r0)
    ctx.add_swap(Swap(
        protocol, pool, ctx.tx.hash, ctx.tx.position, ctx.order(log.log_index), topic_addr(log.topics[1]),
        topic_addr(log.topics[2]), token_in, token_out, a0in if zero_is_in else a1in,
        a1out if zero_is_in else a0out, ctx.tx.from_address, ctx.tx.to_address,
        log_index=log.log_index, payer=payer, reserves_after=reserves,
    ))


def log_mint(ctx: TxContext, i: int) -> None:
    log = ctx.logs[i]
    if len(log.topics) != 2 or len(log.data) != 130:
        return  # V3's Mint has the same name and other fields
    ctx.liquidity.append(LiquidityChange(
        PROTOCOL, "add", log.address, topic_addr(log.topics[1]), topic_addr(log.topics[1]), ctx.tx.hash,
        ctx.tx.position, ctx.order(log.log_index), ctx.tx.from_address,
        amount0=out(log.data, 0), amount1=out(log.data, 1), log_index=log.log_index,
    ))


def log_burn(ctx: TxContext, i: int) -> None:
    log = ctx.logs[i]
    if len(log.topics) != 3:
        return
    ctx.liquidity.append(LiquidityChange(
        PROTOCOL, "remove", log.address, topic_addr(log.topics[2]), topic_addr(log.topics[1]), ctx.tx.hash,
        ctx.tx.position, ctx.order(log.log_index), ctx.tx.from_address,
        amount0=out(log.data, 0), amount1=out(log.data, 1), log_index=log.log_index,
    ))


LOG_HANDLERS = {TOPIC_SWAP: log_swap, TOPIC_MINT: log_mint, TOPIC_BURN: log_burn}
