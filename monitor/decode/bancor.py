"""Bancor network: ``convertByPath(path, amount, minReturn, beneficiary, affiliate, fee)``.

The path alternates tokens and converter anchors: [token_in, anchor, token, anchor,
..., token_out]. A one-hop conversion's pool is its anchor; a longer one is recorded
as one swap on the network contract (the per-hop amounts are not in the call).
"""

from __future__ import annotations

from mevwatch.monitor.decode.context import TxContext
from mevwatch.monitor.decode.hexabi import address_array, arg, arg_addr, out
from mevwatch.monitor.types import ZERO_ADDRESS, Swap, Trace

PROTOCOL = "bancor"
SEL_CONVERT_BY_PATH = "0xb77d239b"


def trace_convert(ctx: TxContext, i: int, t: Trace) -> None:
    path = address_array(t.input, 0)
    if len(path) < 3 or len(path) % 2 == 0:
        ctx.stats.malformed_by_selector[SEL_CONVERT_BY_PATH] += 1
        return
    beneficiary = arg_addr(t.input, 3)
    pool = path[1] if len(path) == 3 else t.to_address
    ctx.add_swap(Swap(
        PROTOCOL, pool, ctx.tx.hash, ctx.tx.position, ctx.order(i), t.from_address,
        t.from_address if beneficiary == ZERO_ADDRESS else beneficiary, path[0], path[-1],
        arg(t.input, 1), out(t.output, 0), ctx.tx.from_address, ctx.tx.to_address,
        trace_address=t.trace_address, payer=t.from_address,
    ))


TRACE_HANDLERS = {SEL_CONVERT_BY_PATH: trace_convert}
