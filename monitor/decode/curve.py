"""Curve: ``exchange`` and ``exchange_underlying``, plain (int128 indices) and crypto
(uint256 indices, optional use_eth) pools.

Coin addresses are not in the calldata (only indices), so tokens come from the
transfers the pool makes: the first token that reaches the pool from the caller's
side is the input, the last token the pool sends out is the output; an input paid
in ether (call value) or an output sent as ether is the ETH placeholder address.
The input amount is ``dx``; the output is the return value when the pool returns
one (older pools return nothing) and the output transfer otherwise.
"""

from __future__ import annotations

from mevwatch.monitor.decode.context import TxContext
from mevwatch.monitor.decode.hexabi import arg, out
from mevwatch.monitor.decode.uniswap_v2 import last_log_index, resolve_pair_tokens
from mevwatch.monitor.types import ETH_ADDRESS, Swap, Trace

PROTOCOL = "curve"
SELECTORS = ("0x3df02124", "0xa6417ed6", "0x5b41b908", "0x394747c5", "0x65b2489b")
TOPIC_EXCHANGE = "0x8b3e96f2b889fa771c53c981b40daf005f63f637f1869f707052d15a3dd97140"
TOPIC_EXCHANGE_UNDERLYING = "0xd013ca23e77a65003c2c659c5442c00c805371b7fc1ebd4c206c41d1536bd90b"
TOPIC_EXCHANGE_CRYPTO = "0xb2e76ae99761dc136e598d4a629bb347eccb9532a5f8bbd72e18467c3c34cc98"


def trace_exchange(ctx: TxContext, i: int, t: Trace) -> None:
    pool = t.to_address
    dx = arg(t.input, 2)
    token_in = ETH_ADDRESS if t.value else None
    payer = t.from_address
    token_out = recipient = None
    sent = 0
    for tr in ctx.transfers_between(i, ctx.ends[i]):
        if token_in is None and tr.to_address == pool and tr.from_address != pool:
            token_in, payer = tr.token, tr.from_address
        elif tr.from_address == pool and tr.to_address != pool:
            token_out, recipient, sent = tr.token, tr.to_address, tr.amount
    if token_out is None:  # ether out: a plain value call from the pool
        traces = ctx.traces
        for j in range(i + 1, ctx.ends[i]):
            c = traces[j]
            if c.from_address == pool and c.value and c.call_type == "call" and c.input in ("0x", ""):
                token_out, recipient, sent = ETH_ADDRESS, c.to_address, c.value
    if token_in is None or token_out is None:
        ctx.stats.malformed_by_selector[t.input[:10]] += 1
        return
    amount_out = out(t.output, 0) if len(t.output) >= 66 else sent
    ctx.add_swap(Swap(
        PROTOCOL, pool, ctx.tx.hash, ctx.tx.position, ctx.order(i), t.from_address, recipient or t.from_address,
        token_in, token_out, dx, amount_out, ctx.tx.from_address, ctx.tx.to_address,
        trace_address=t.trace_address, payer=payer,
    ))


TRACE_HANDLERS = {sel: trace_exchange for sel in SELECTORS}


def log_exchange(ctx: TxContext, i: int) -> None:
    log = ctx.logs[i]
    if len(log.topics) != 2:
        return
    pool = log.address
    resolved = resolve_pair_tokens(ctx, pool, last_log_index(ctx, pool, log.log_index), log.log_index, True)
    if resolved is None:
        ctx.stats.malformed_by_selector[TOPIC_EXCHANGE[:10]] += 1
        return
    ctx.pools.tokens.pop(pool, None)  # Curve pools have more than two coins; learn nothing
    token_in, token_out, payer = resolved
    buyer = "0x" + log.topics[1][-40:]
    ctx.add_swap(Swap(
        PROTOCOL, pool, ctx.tx.hash, ctx.tx.position, ctx.order(log.log_index), buyer, buyer, token_in,
        token_out, out(log.data, 1), out(log.data, 3), ctx.tx.from_address, ctx.tx.to_address,
        log_index=log.log_index, payer=payer,
    ))


LOG_HANDLERS = {TOPIC_EXCHANGE: log_exchange, TOPIC_EXCHANGE_UNDERLYING: log_exchange, TOPIC_EXCHANGE_CRYPTO: log_exchange}
