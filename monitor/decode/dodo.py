"""DODO proactive-market-maker pools: V1 (classic pools) and V2 (DVM, DPP, DSP and the gas-saving pool).

V1, ``sellBaseToken(amount, minReceiveQuote, data)`` / ``buyBaseToken(amount, maxPayQuote, data)``:
the pool pays its caller first, may call it back, then pulls the caller's payment with
``transferFrom`` and pays the maintainer's fee (in the output token) to the maintainer, all inside
the call. The output is what the pool paid its caller; the input what reached the pool in the
other token inside the call.

V2, ``sellBase(to)`` / ``sellQuote(to)``: like a Uniswap V2 pair, the input is sent to the pool
before the call (since its previous swap in the transaction); the pool pays ``to`` and then the
maintainer. ``flashLoan(baseAmount, quoteAmount, assetTo, data)``, which bots use to trade, pays
``assetTo`` first and settles after the callback: the swap is the call's net flow, the token the
pool took in on balance against the one it paid ``assetTo`` on balance (a loan repaid in the same
token is no swap and is skipped).

The maintainer's fee is never part of the swap's output: only what the recipient received counts.

Logs: V2's ``DODOSwap(fromToken, toToken, fromAmount, toAmount, trader, receiver)`` and V1's
``SellBaseToken(seller, payBase, receiveQuote)`` / ``BuyBaseToken(buyer, receiveBase, payQuote)``,
each taken only when the transaction's transfers back it (since its previous swap the pool received
at least the input amount in the input token and paid out at least the output amount in the output
token): an event alone is cheap to forge.
"""

from __future__ import annotations

from mevwatch.monitor.decode.context import TxContext
from mevwatch.monitor.decode.hexabi import arg, arg_addr, out, topic_addr
from mevwatch.monitor.decode.uniswap_v2 import window_tokens, last_log_index
from mevwatch.monitor.types import Swap, Trace

PROTOCOL_V1 = "dodo_v1"
PROTOCOL_V2 = "dodo_v2"
SEL_V1_SELL_BASE = "0x8dae7333"  # sellBaseToken(uint256,uint256,bytes)
SEL_V1_BUY_BASE = "0xe67ce706"  # buyBaseToken(uint256,uint256,bytes)
SEL_V2_SELL_BASE = "0xbd6015b4"  # sellBase(address)
SEL_V2_SELL_QUOTE = "0xdd93f59a"  # sellQuote(address)
SEL_V2_FLASH_LOAN = "0xd0a494e4"  # flashLoan(uint256,uint256,address,bytes)
TOPIC_DODO_SWAP = "0xc2c0245e056d5fb095f04cd6373bc770802ebd1e6c918eb78fdef843cdb37b0f"
TOPIC_V1_SELL_BASE = "0xd8648b6ac54162763c86fd54bf2005af8ecd2f9cb273a5775921fd7f91e17b2d"
TOPIC_V1_BUY_BASE = "0xe93ad76094f247c0dafc1c61adc2187de1ac2738f7a3b49cb20b2263420251a3"


def _paid(ctx: TxContext, pool: str, to: str, start: int, end: int) -> tuple[str, int] | None:
    """The token the pool paid ``to`` in trace window [start, end) and how much (the first such
    token; other tokens paid to ``to`` are not this swap's output)."""
    token: str | None = None
    amount = 0
    for tr in ctx.transfers_between(start, end):
        if tr.from_address == pool and tr.to_address == to and tr.token != pool:
            if token is None:
                token = tr.token
            if tr.token == token:
                amount += tr.amount
    return (token, amount) if token is not None and amount > 0 else None


def _add(ctx: TxContext, protocol: str, i: int, t: Trace, recipient: str, token_in: str, amount_in: int,
         token_out: str, amount_out: int, payer: str | None) -> None:
    if amount_in <= 0 or amount_out <= 0 or token_in == token_out:
        ctx.stats.malformed_by_selector[t.input[:10]] += 1
        return
    ctx.add_swap(Swap(
        protocol, t.to_address, ctx.tx.hash, ctx.tx.position, ctx.order(i), t.from_address, recipient,
        token_in, token_out, amount_in, amount_out, ctx.tx.from_address, ctx.tx.to_address,
        trace_address=t.trace_address, payer=payer,
    ))


def _paid_for_input(ctx: TxContext, i: int, t: Trace, protocol: str, recipient: str, start: int) -> None:
    """The swap in which the pool paid ``recipient`` inside the call, for what reached it from ``start``."""
    pool = t.to_address
    paid = _paid(ctx, pool, recipient, i, ctx.ends[i])
    found = ctx.input_from_transfers(pool, start, i, paid[0]) if paid is not None else None
    if paid is None or found is None:
        ctx.stats.malformed_by_selector[t.input[:10]] += 1
        return
    token_in, amount_in, payer = found
    _add(ctx, protocol, i, t, recipient, token_in, amount_in, paid[0], paid[1], payer)


def trace_v1_trade(ctx: TxContext, i: int, t: Trace) -> None:
    arg(t.input, 1)  # both amounts present
    _paid_for_input(ctx, i, t, PROTOCOL_V1, t.from_address, i)  # paid and pulled inside the call


def trace_v2_sell(ctx: TxContext, i: int, t: Trace) -> None:
    to = arg_addr(t.input, 0)
    _paid_for_input(ctx, i, t, PROTOCOL_V2, to, ctx.last_swap_index(t.to_address, i))  # sent before the call


def trace_v2_flash_loan(ctx: TxContext, i: int, t: Trace) -> None:
    pool, asset_to = t.to_address, arg_addr(t.input, 2)
    net: dict[str, int] = {}  # token -> into the pool minus paid to asset_to, over the call
    payer: dict[str, str] = {}
    for tr in ctx.transfers_between(i, ctx.ends[i]):
        if tr.token == pool:
            continue
        if tr.to_address == pool and tr.from_address != pool:
            net[tr.token] = net.get(tr.token, 0) + tr.amount
            payer.setdefault(tr.token, tr.from_address)
        elif tr.from_address == pool and tr.to_address == asset_to:
            net[tr.token] = net.get(tr.token, 0) - tr.amount
    ins = [k for k, v in net.items() if v > 0]
    outs = [k for k, v in net.items() if v < 0]
    if not ins and not outs:
        return  # nothing moved, or a loan repaid in kind: no swap
    if len(ins) != 1 or len(outs) != 1:
        ctx.stats.malformed_by_selector[t.input[:10]] += 1
        return
    token_in, token_out = ins[0], outs[0]
    _add(ctx, PROTOCOL_V2, i, t, asset_to, token_in, net[token_in], token_out, -net[token_out], payer.get(token_in))


TRACE_HANDLERS = {
    SEL_V1_SELL_BASE: trace_v1_trade, SEL_V1_BUY_BASE: trace_v1_trade,
    SEL_V2_SELL_BASE: trace_v2_sell, SEL_V2_SELL_QUOTE: trace_v2_sell, SEL_V2_FLASH_LOAN: trace_v2_flash_loan,
}


# --- logs ---------------------------------------------------------------------------
def _backed(ctx: TxContext, pool: str, log_index: int, token_in: str | None, amount_in: int,
            token_out: str | None, amount_out: int) -> tuple[str, str, str | None] | None:
    """(token_in, token_out, payer) when the transfers since the pool's previous swap back the
    event: the pool received at least ``amount_in`` of ``token_in`` and paid out at least
    ``amount_out`` of ``token_out``. A token the event does not name (V1's) must be the only one
    that moved enough."""
    inflow, outflow, payer = window_tokens(ctx, pool, last_log_index(ctx, pool, log_index), log_index)
    ins = [token_in] if token_in is not None else [t for t, v in inflow.items() if v >= amount_in]
    outs = [token_out] if token_out is not None else [t for t, v in outflow.items() if v >= amount_out]
    if len(ins) != 1 or len(outs) != 1 or ins[0] == outs[0]:
        return None
    if inflow.get(ins[0], 0) < amount_in or outflow.get(outs[0], 0) < amount_out:
        return None  # the event claims more than moved
    return ins[0], outs[0], payer.get(ins[0])


def _log_swap(ctx: TxContext, i: int, protocol: str, sender: str, recipient: str, token_in: str | None,
              amount_in: int, token_out: str | None, amount_out: int) -> None:
    log = ctx.logs[i]
    found = _backed(ctx, log.address, log.log_index, token_in, amount_in, token_out, amount_out)
    if found is None or amount_in <= 0 or amount_out <= 0:
        ctx.stats.malformed_by_selector[log.topics[0][:10]] += 1
        return
    tin, tout, payer = found
    ctx.add_swap(Swap(
        protocol, log.address, ctx.tx.hash, ctx.tx.position, ctx.order(log.log_index), sender, recipient,
        tin, tout, amount_in, amount_out, ctx.tx.from_address, ctx.tx.to_address,
        log_index=log.log_index, payer=payer,
    ))


def _word_addr(data: str, k: int) -> str:
    """The address in word ``k`` of log data (all of DODOSwap's fields are unindexed)."""
    return "0x" + data[2 + 64 * k + 24:2 + 64 * (k + 1)].lower()


def log_dodo_swap(ctx: TxContext, i: int) -> None:
    log = ctx.logs[i]
    if len(log.topics) != 1 or len(log.data) != 2 + 6 * 64:
        return  # another contract's event of the same name
    d = log.data
    _log_swap(ctx, i, PROTOCOL_V2, _word_addr(d, 4), _word_addr(d, 5), _word_addr(d, 0), out(d, 2), _word_addr(d, 1), out(d, 3))


def log_v1_sell_base(ctx: TxContext, i: int) -> None:
    log = ctx.logs[i]
    if len(log.topics) != 2 or len(log.data) != 2 + 2 * 64:
        return
    seller = topic_addr(log.topics[1])
    _log_swap(ctx, i, PROTOCOL_V1, seller, seller, None, out(log.data, 0), None, out(log.data, 1))


def log_v1_buy_base(ctx: TxContext, i: int) -> None:
    log = ctx.logs[i]
    if len(log.topics) != 2 or len(log.data) != 2 + 2 * 64:
        return
    buyer = topic_addr(log.topics[1])
    _log_swap(ctx, i, PROTOCOL_V1, buyer, buyer, None, out(log.data, 1), None, out(log.data, 0))


LOG_HANDLERS = {TOPIC_DODO_SWAP: log_dodo_swap, TOPIC_V1_SELL_BASE: log_v1_sell_base, TOPIC_V1_BUY_BASE: log_v1_buy_base}
