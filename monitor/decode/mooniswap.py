"""1inch Mooniswap pools: ``swap(src, dst, amount, minReturn, referral)`` (V1 and V2) and V2's
``swapFor(src, dst, amount, minReturn, referral, receiver)``.

The pool is the contract called and the sender the call's msg.sender. Tokens come from the
calldata (address(0) is ether, recorded as the ETH placeholder address); the amounts are what
actually moved in the call's subtree, not ``amount``/``minReturn``: the input is what reached
the pool in ``src`` from others (``transferFrom``; for ether the call value less any refund the
pool sent back to the sender), the output is what the pool sent out in ``dst`` (``transfer``;
for ether its plain value calls), and the recipient is whoever received it. The pool's call to
its factory's ``fee()`` and its ``balanceOf`` calls move nothing and are ignored. A call whose
subtree moved nothing in one of its two tokens is counted as malformed.
"""

from __future__ import annotations

from mevwatch.monitor.decode.context import TxContext
from mevwatch.monitor.decode.hexabi import arg, arg_addr
from mevwatch.monitor.types import ETH_ADDRESS, ZERO_ADDRESS, Swap, Trace

PROTOCOL = "mooniswap"
SEL_SWAP = "0xd5bcb9b5"  # swap(address,address,uint256,uint256,address)
SEL_SWAP_FOR = "0xe331d039"  # swapFor(address,address,uint256,uint256,address,address)


def _ether_calls(ctx: TxContext, i: int, frm: str) -> list[Trace]:
    """Plain ether payments (value calls without calldata) made by ``frm`` in the subtree of ``i``."""
    traces = ctx.traces
    found: list[Trace] = []
    for j in range(i + 1, ctx.ends[i]):
        c = traces[j]
        if c.call_type == "call" and c.from_address == frm and c.value and c.input in ("0x", ""):
            found.append(c)
    return found


def trace_swap(ctx: TxContext, i: int, t: Trace) -> None:
    src, dst = arg_addr(t.input, 0), arg_addr(t.input, 1)
    arg(t.input, 4 if t.input[:10] == SEL_SWAP else 5)  # the call's last field must be present
    pool, sender = t.to_address, t.from_address
    amount_in = amount_out = 0
    payer: str | None = None
    recipient = ""
    token_in = ETH_ADDRESS if src == ZERO_ADDRESS else src
    token_out = ETH_ADDRESS if dst == ZERO_ADDRESS else dst
    for tr in ctx.transfers_between(i, ctx.ends[i]):
        if tr.token == src and tr.to_address == pool and tr.from_address != pool:
            amount_in += tr.amount
            if payer is None:
                payer = tr.from_address
        elif tr.token == dst and tr.from_address == pool and tr.to_address != pool:
            amount_out += tr.amount
            if not recipient:
                recipient = tr.to_address
    if src == ZERO_ADDRESS or dst == ZERO_ADDRESS:
        paid = _ether_calls(ctx, i, pool)
        if src == ZERO_ADDRESS:
            amount_in = t.value - sum(c.value for c in paid if c.to_address == sender)
            payer = sender
        else:
            for c in paid:
                amount_out += c.value
                if not recipient:
                    recipient = c.to_address
    if amount_in <= 0 or amount_out <= 0 or token_in == token_out:
        ctx.stats.malformed_by_selector[t.input[:10]] += 1
        return
    ctx.add_swap(Swap(
        PROTOCOL, pool, ctx.tx.hash, ctx.tx.position, ctx.order(i), sender, recipient or sender,
        token_in, token_out, amount_in, amount_out, ctx.tx.from_address, ctx.tx.to_address,
        trace_address=t.trace_address, payer=payer,
    ))


TRACE_HANDLERS = {SEL_SWAP: trace_swap, SEL_SWAP_FOR: trace_swap}
