"""Uniswap V4: the singleton PoolManager, where a pool is a ``PoolId`` (keccak of its key).

From traces, ``swap(PoolKey, SwapParams, hookData)`` returns a BalanceDelta (amount0
in the upper 128 bits, amount1 in the lower, signed, from the caller's side: negative
is paid in). The key in the calldata names both currencies; the pool id is the
keccak-256 of the ABI-encoded key, the same id the ``Swap`` event carries, so the
registry learns a pool's currencies from its first swap (or its ``Initialize``).
``modifyLiquidity`` adds or removes liquidity over a tick range.
Currency 0x00..00 is native ether.
"""

from __future__ import annotations

from eth_hash.auto import keccak

from mevwatch.monitor.decode.context import TxContext
from mevwatch.monitor.decode.hexabi import Short, arg, arg_addr, int24, out, signed, signed128, topic_addr
from mevwatch.monitor.types import LiquidityChange, Swap, Trace

PROTOCOL = "uniswap_v4"
SEL_SWAP = "0xf3cd914c"
SEL_MODIFY_LIQUIDITY = "0x5a6bcfda"
TOPIC_SWAP = "0x40e9cecb9f5f1f1c5b9c97dec2917b7ee92e57ba5563708daca94dd84ad7112f"
TOPIC_MODIFY_LIQUIDITY = "0xf208f4912782fd25c7f114ca3723a2d5dd6f3bcc3ac8db5af63baa85f711d5ec"
TOPIC_INITIALIZE = "0xdd466e674ea557f56295e2d0218a125ea4b4f0f6f3307b95f85e6110838d6438"


def pool_id(calldata: str) -> str:
    key = calldata[10 : 10 + 5 * 64]
    if len(key) != 320:
        raise Short("pool key")
    return "0x" + keccak(bytes.fromhex(key)).hex()



def _split_delta(word: int) -> tuple[int, int]:
    return signed128(word >> 128), signed128(word & ((1 << 128) - 1))


def trace_swap(ctx: TxContext, i: int, t: Trace) -> None:
    pid = pool_id(t.input)
    c0, c1 = arg_addr(t.input, 0), arg_addr(t.input, 1)
    ctx.pools.learn(pid, c0, c1)
    zero_for_one = arg(t.input, 5) != 0
    d0, d1 = _split_delta(out(t.output, 0))
    if zero_for_one:
        token_in, token_out, amount_in, amount_out = c0, c1, -d0, d1
    else:
        token_in, token_out, amount_in, amount_out = c1, c0, -d1, d0
    if amount_in <= 0 or amount_out <= 0:
        ctx.stats.malformed_by_selector[SEL_SWAP] += 1
        return
    ctx.add_swap(Swap(
        PROTOCOL, pid, ctx.tx.hash, ctx.tx.position, ctx.order(i), t.from_address, t.from_address,
        token_in, token_out, amount_in, amount_out, ctx.tx.from_address, ctx.tx.to_address,
        trace_address=t.trace_address, payer=t.from_address,
    ))


def trace_modify_liquidity(ctx: TxContext, i: int, t: Trace) -> None:
    pid = pool_id(t.input)
    ctx.pools.learn(pid, arg_addr(t.input, 0), arg_addr(t.input, 1))
    delta = signed(arg(t.input, 7))
    caller_delta = _split_delta(out(t.output, 0)) if len(t.output) >= 66 else (None, None)
    ctx.liquidity.append(LiquidityChange(
        PROTOCOL, "add" if delta > 0 else "remove", pid, t.from_address, t.from_address, ctx.tx.hash,
        ctx.tx.position, ctx.order(i), ctx.tx.from_address, tick_lower=int24(arg(t.input, 5)),
        tick_upper=int24(arg(t.input, 6)), liquidity=abs(delta),
        amount0=abs(caller_delta[0]) if caller_delta[0] is not None else None,
        amount1=abs(caller_delta[1]) if caller_delta[1] is not None else None, trace_address=t.trace_address,
    ))


TRACE_HANDLERS = {SEL_SWAP: trace_swap, SEL_MODIFY_LIQUIDITY: trace_modify_liquidity}


def log_initialize(ctx: TxContext, i: int) -> None:
    log = ctx.logs[i]
    if len(log.topics) == 4:
        ctx.pools.learn(log.topics[1], topic_addr(log.topics[2]), topic_addr(log.topics[3]))


def log_swap(ctx: TxContext, i: int) -> None:
    log = ctx.logs[i]
    if len(log.topics) != 3:
        return
    pid = log.topics[1]
    known = ctx.pools.tokens.get(pid)
    if known is None:
        ctx.stats.malformed_by_selector["v4_unknown_pool"] += 1
        return
    d0, d1 = signed(out(log.data, 0)), signed(out(log.data, 1))
    if d0 < 0:
        token_in, token_out, amount_in, amount_out = known[0], known[1], -d0, d1
    else:
        token_in, token_out, amount_in, amount_out = known[1], known[0], -d1, d0
    sender = topic_addr(log.topics[2])
    ctx.add_swap(Swap(
        PROTOCOL, pid, ctx.tx.hash, ctx.tx.position, ctx.order(log.log_index), sender, sender, token_in,
        token_out, amount_in, amount_out, ctx.tx.from_address, ctx.tx.to_address, log_index=log.log_index,
        payer=sender, sqrt_price_x96=out(log.data, 2), liquidity=out(log.data, 3),
    ))


def log_modify_liquidity(ctx: TxContext, i: int) -> None:
    log = ctx.logs[i]
    if len(log.topics) != 3:
        return
    delta = signed(out(log.data, 2))
    sender = topic_addr(log.topics[2])
    ctx.liquidity.append(LiquidityChange(
        PROTOCOL, "add" if delta > 0 else "remove", log.topics[1], sender, sender, ctx.tx.hash,
        ctx.tx.position, ctx.order(log.log_index), ctx.tx.from_address, tick_lower=int24(out(log.data, 0)),
        tick_upper=int24(out(log.data, 1)), liquidity=abs(delta), log_index=log.log_index,
    ))


LOG_HANDLERS = {TOPIC_SWAP: log_swap, TOPIC_MODIFY_LIQUIDITY: log_modify_liquidity, TOPIC_INITIALIZE: log_initialize}
