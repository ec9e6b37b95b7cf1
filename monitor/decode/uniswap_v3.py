"""Uniswap V3 (and forks sharing the pool interface).

From traces, ``swap(recipient, zeroForOne, amountSpecified, sqrtPriceLimitX96, data)``
returns the signed pool deltas (amount0, amount1): positive = into the pool. The
pool's ``transfer`` child names the output token, its ``balanceOf(pool)`` child the
input token. Calldata that is not 32-byte aligned still decodes (mev-inspect-py
drops such swaps). Logs: ``Swap`` with sqrtPriceX96 and liquidity after the swap.
Liquidity: ``mint``/``burn``/``collect`` calls and events, with tick range and owner.
"""

from __future__ import annotations

from mevwatch.monitor.decode.context import TxContext
from mevwatch.monitor.decode.hexabi import arg, arg_addr, int24, out, signed, topic_addr
from mevwatch.monitor.decode.transfers import SEL_TRANSFER
from mevwatch.monitor.decode.uniswap_v2 import SEL_BALANCE_OF, last_log_index, resolve_pair_tokens
from mevwatch.monitor.types import LiquidityChange, Swap, Trace

PROTOCOL = "uniswap_v3"
SEL_SWAP = "0x128acb08"
SEL_MINT = "0x3c8a7d8d"
SEL_BURN = "0xa34123a7"
SEL_COLLECT = "0x4f1eb3d8"

TOPIC_SWAP = "0xc42079f94a6350d7e6235f29174924f928cc2ac818eb64fed8004e115fbcca67"
TOPIC_MINT = "0x7a53080ba414158be7ec69b987b5fb7d07dee101fe85488f0853ae16239d0bde"
TOPIC_BURN = "0x0c396cd989a39f4459b5fa1aed6a9a8dcdbc45908acfd67e028cd568da98982c"
TOPIC_COLLECT = "0x70935338e69775456a85ddef226c395fb668b63fa0115f5f20610b388e6ca9c0"



def trace_swap(ctx: TxContext, i: int, t: Trace) -> None:
    d0, d1 = signed(out(t.output, 0)), signed(out(t.output, 1))
    swap_from_deltas(ctx, i, t, PROTOCOL, arg_addr(t.input, 0), arg(t.input, 1) != 0, d0, d1)


def swap_from_deltas(ctx: TxContext, i: int, t: Trace, protocol: str, recipient: str, zero_for_one: bool,
                     d0: int, d1: int) -> None:
    """A concentrated-liquidity pool's swap from its signed deltas (positive: into the pool); the
    pool's ``transfer`` child names the output token, its ``balanceOf(pool)`` child the input."""
    pool = t.to_address
    token_in = token_out = None
    traces = ctx.traces
    for j in ctx.children(i):
        c = traces[j]
        sel = c.input[:10]
        if sel == SEL_TRANSFER and c.from_address == pool and token_out is None:
            token_out = c.to_address
        elif sel == SEL_BALANCE_OF and c.call_type == "staticcall" and c.input[34:74] == pool[2:]:
            token_in = c.to_address
    known = ctx.pools.tokens.get(pool)
    if known is not None:
        token_in, token_out = (known[0], known[1]) if zero_for_one else (known[1], known[0])
    elif token_in and token_out:
        ctx.pools.learn(pool, *((token_in, token_out) if zero_for_one else (token_out, token_in)))
    if token_in is None or token_out is None:
        ctx.stats.malformed_by_selector[t.input[:10]] += 1
        return
    amount_in, amount_out = (d0, -d1) if zero_for_one else (d1, -d0)
    if amount_in <= 0 or amount_out <= 0:
        ctx.stats.malformed_by_selector[t.input[:10]] += 1
        return
    payer = None
    for tr in ctx.transfers_between(i, ctx.ends[i]):
        if tr.to_address == pool and tr.token == token_in:
            payer = tr.from_address
            break
    ctx.add_swap(Swap(
        protocol, pool, ctx.tx.hash, ctx.tx.position, ctx.order(i), t.from_address, recipient,
        token_in, token_out, amount_in, amount_out, ctx.tx.from_address, ctx.tx.to_address,
        trace_address=t.trace_address, payer=payer,
    ))


def trace_mint(ctx: TxContext, i: int, t: Trace) -> None:
    ctx.liquidity.append(LiquidityChange(
        PROTOCOL, "add", t.to_address, arg_addr(t.input, 0), t.from_address, ctx.tx.hash, ctx.tx.position,
        ctx.order(i), ctx.tx.from_address, tick_lower=int24(arg(t.input, 1)), tick_upper=int24(arg(t.input, 2)),
        liquidity=arg(t.input, 3), amount0=out(t.output, 0), amount1=out(t.output, 1), trace_address=t.trace_address,
    ))


def trace_burn(ctx: TxContext, i: int, t: Trace) -> None:
    ctx.liquidity.append(LiquidityChange(
        PROTOCOL, "remove", t.to_address, t.from_address, t.from_address, ctx.tx.hash, ctx.tx.position,
        ctx.order(i), ctx.tx.from_address, tick_lower=int24(arg(t.input, 0)), tick_upper=int24(arg(t.input, 1)),
        liquidity=arg(t.input, 2), amount0=out(t.output, 0), amount1=out(t.output, 1), trace_address=t.trace_address,
    ))


def trace_collect(ctx: TxContext, i: int, t: Trace) -> None:
    ctx.liquidity.append(LiquidityChange(
        PROTOCOL, "collect", t.to_address, t.from_address, t.from_address, ctx.tx.hash, ctx.tx.position,
        ctx.order(i), ctx.tx.from_address, tick_lower=int24(arg(t.input, 1)), tick_upper=int24(arg(t.input, 2)),
        amount0=out(t.output, 0), amount1=out(t.output, 1), trace_address=t.trace_address,
    ))


TRACE_HANDLERS = {SEL_SWAP: trace_swap, SEL_MINT: trace_mint, SEL_BURN: trace_burn, SEL_COLLECT: trace_collect}


def log_swap(ctx: TxContext, i: int) -> None:
    log = ctx.logs[i]
    if len(log.topics) != 3:
        return
    pool = log.address
    d0, d1 = signed(out(log.data, 0)), signed(out(log.data, 1))
    zero_is_in = d0 > 0
    resolved = resolve_pair_tokens(ctx, pool, last_log_index(ctx, pool, log.log_index), log.log_index, zero_is_in)
    if resolved is None:
        ctx.stats.malformed_by_selector[TOPIC_SWAP[:10]] += 1
        return
    token_in, token_out, payer = resolved
    amount_in, amount_out = (d0, -d1) if zero_is_in else (d1, -d0)
    ctx.add_swap(Swap(
        PROTOCOL, pool, ctx.tx.hash, ctx.tx.position, ctx.order(log.log_index), topic_addr(log.topics[1]),
        topic_addr(log.topics[2]), token_in, token_out, amount_in, amount_out, ctx.tx.from_address,
        ctx.tx.to_address, log_index=log.log_index, payer=payer,
        sqrt_price_x96=out(log.data, 2), liquidity=out(log.data, 3),
    ))


def log_mint(ctx: TxContext, i: int) -> None:
    log = ctx.logs[i]
    if len(log.topics) != 4:
        return
    ctx.liquidity.append(LiquidityChange(
        PROTOCOL, "add", log.address, topic_addr(log.topics[1]), out_addr_safe(log.data), ctx.tx.hash,
        ctx.tx.position, ctx.order(log.log_index), ctx.tx.from_address,
        tick_lower=int24(int(log.topics[2], 16)), tick_upper=int24(int(log.topics[3], 16)),
        liquidity=out(log.data, 1), amount0=out(log.data, 2), amount1=out(log.data, 3), log_index=log.log_index,
    ))


def out_addr_safe(data: str) -> str:
    return "0x" + data[26:66]


def log_burn(ctx: TxContext, i: int) -> None:
    log = ctx.logs[i]
    if len(log.topics) != 4:
        return
    owner = topic_addr(log.topics[1])
    ctx.liquidity.append(LiquidityChange(
        PROTOCOL, "remove", log.address, owner, owner, ctx.tx.hash, ctx.tx.position, ctx.order(log.log_index),
        ctx.tx.from_address, tick_lower=int24(int(log.topics[2], 16)), tick_upper=int24(int(log.topics[3], 16)),
        liquidity=out(log.data, 0), amount0=out(log.data, 1), amount1=out(log.data, 2), log_index=log.log_index,
    ))


def log_collect(ctx: TxContext, i: int) -> None:
    log = ctx.logs[i]
    if len(log.topics) != 4:
        return
    owner = topic_addr(log.topics[1])
    ctx.liquidity.append(LiquidityChange(
        PROTOCOL, "collect", log.address, owner, owner, ctx.tx.hash, ctx.tx.position, ctx.order(log.log_index),
        ctx.tx.from_address, tick_lower=int24(int(log.topics[2], 16)), tick_upper=int24(int(log.topics[3], 16)),
        amount0=out(log.data, 1), amount1=out(log.data, 2), log_index=log.log_index,
    ))


LOG_HANDLERS = {TOPIC_SWAP: log_swap, TOPIC_MINT: log_mint, TOPIC_BURN: log_burn, TOPIC_COLLECT: log_collect}
