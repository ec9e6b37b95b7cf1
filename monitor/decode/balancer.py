"""Balancer V1 pools and Balancer V2 (the Vault).

V1: ``swapExactAmountIn`` / ``swapExactAmountOut`` on the pool, amounts in calldata
and return data. V2: every swap, single or batch, reaches the pool as ``onSwap``
from the Vault with the whole SwapRequest (kind, tokens, given amount, from, to) and
returns the calculated amount; both pool interfaces (minimal-info and general) are
decoded. Logs: the Vault's ``Swap(poolId, tokenIn, tokenOut, amountIn, amountOut)``;
the pool address is the first 20 bytes of the pool id.
"""

from __future__ import annotations

from mevwatch.monitor.decode.context import TxContext
from mevwatch.monitor.decode.hexabi import arg, arg_addr, arg_addr_at, arg_at, out, topic_addr
from mevwatch.monitor.types import Swap, Trace

SEL_V1_EXACT_IN = "0x8201aa3f"
SEL_V1_EXACT_OUT = "0x7c5e9ea4"
SEL_V2_ONSWAP_MINIMAL = "0x9d2c110c"
SEL_V2_ONSWAP_GENERAL = "0x01ec954a"
TOPIC_V2_SWAP = "0x2170c741c41531aec20e7c107c24eecfdd15e69c9bb0a8dd37b1840b9e0b207b"


def trace_v1_exact_in(ctx: TxContext, i: int, t: Trace) -> None:
    ctx.add_swap(Swap(
        "balancer_v1", t.to_address, ctx.tx.hash, ctx.tx.position, ctx.order(i), t.from_address, t.from_address,
        arg_addr(t.input, 0), arg_addr(t.input, 2), arg(t.input, 1), out(t.output, 0),
        ctx.tx.from_address, ctx.tx.to_address, trace_address=t.trace_address, payer=t.from_address,
    ))


def trace_v1_exact_out(ctx: TxContext, i: int, t: Trace) -> None:
    ctx.add_swap(Swap(
        "balancer_v1", t.to_address, ctx.tx.hash, ctx.tx.position, ctx.order(i), t.from_address, t.from_address,
        arg_addr(t.input, 0), arg_addr(t.input, 2), out(t.output, 0), arg(t.input, 3),
        ctx.tx.from_address, ctx.tx.to_address, trace_address=t.trace_address, payer=t.from_address,
    ))


def _v2_onswap(ctx: TxContext, i: int, t: Trace, balances: tuple[int, int] | None) -> None:
    req = arg(t.input, 0)
    kind = arg_at(t.input, req)
    token_in, token_out = arg_addr_at(t.input, req + 32), arg_addr_at(t.input, req + 64)
    given = arg_at(t.input, req + 96)
    frm, to = arg_addr_at(t.input, req + 192), arg_addr_at(t.input, req + 224)
    calculated = out(t.output, 0)
    amount_in, amount_out = (given, calculated) if kind == 0 else (calculated, given)
    reserves = (balances[0] + amount_in, balances[1] - amount_out) if balances and balances[1] >= amount_out else None
    ctx.add_swap(Swap(
        "balancer_v2", t.to_address, ctx.tx.hash, ctx.tx.position, ctx.order(i), frm, to,
        token_in, token_out, amount_in, amount_out, ctx.tx.from_address, ctx.tx.to_address,
        trace_address=t.trace_address, payer=frm, reserves_after=reserves,
    ))


def trace_v2_minimal(ctx: TxContext, i: int, t: Trace) -> None:
    _v2_onswap(ctx, i, t, (arg(t.input, 1), arg(t.input, 2)))


def trace_v2_general(ctx: TxContext, i: int, t: Trace) -> None:
    _v2_onswap(ctx, i, t, None)


TRACE_HANDLERS = {
    SEL_V1_EXACT_IN: trace_v1_exact_in,
    SEL_V1_EXACT_OUT: trace_v1_exact_out,
    SEL_V2_ONSWAP_MINIMAL: trace_v2_minimal,
    SEL_V2_ONSWAP_GENERAL: trace_v2_general,
}


def log_v2_swap(ctx: TxContext, i: int) -> None:
    log = ctx.logs[i]
    if len(log.topics) != 4:
        return
    pool = "0x" + log.topics[1][2:42]
    ctx.add_swap(Swap(
        "balancer_v2", pool, ctx.tx.hash, ctx.tx.position, ctx.order(log.log_index), log.address, log.address,
        topic_addr(log.topics[2]), topic_addr(log.topics[3]), out(log.data, 0), out(log.data, 1),
        ctx.tx.from_address, ctx.tx.to_address, log_index=log.log_index,
    ))


LOG_HANDLERS = {TOPIC_V2_SWAP: log_v2_swap}
