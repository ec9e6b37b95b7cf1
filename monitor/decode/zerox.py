"""0x Exchange Proxy: RFQ and limit order fills (``fillRfqOrder``, ``fillLimitOrder``).

The order struct is static, so it sits inline at the start of the arguments; the
return data is (takerTokenFilledAmount, makerTokenFilledAmount). The taker (caller)
pays the taker token and receives the maker token; the pool is the exchange proxy
and the maker is kept in the evidence as the swap's recipient counterpart.
"""

from __future__ import annotations

from mevwatch.monitor.decode.context import TxContext
from mevwatch.monitor.decode.hexabi import arg_addr, out
from mevwatch.monitor.types import Swap, Trace

PROTOCOL = "zerox"
SEL_FILL_RFQ = "0xaa77476c"
SEL_FILL_LIMIT = "0xf6274f66"


def _fill(ctx: TxContext, i: int, t: Trace) -> None:
    maker_token, taker_token = arg_addr(t.input, 0), arg_addr(t.input, 1)
    taker_filled, maker_filled = out(t.output, 0), out(t.output, 1)
    if not taker_filled or not maker_filled:
        return
    ctx.add_swap(Swap(
        PROTOCOL, t.to_address, ctx.tx.hash, ctx.tx.position, ctx.order(i), t.from_address, t.from_address,
        taker_token, maker_token, taker_filled, maker_filled, ctx.tx.from_address, ctx.tx.to_address,
        trace_address=t.trace_address, payer=t.from_address,
    ))


TRACE_HANDLERS = {SEL_FILL_RFQ: _fill, SEL_FILL_LIMIT: _fill}
