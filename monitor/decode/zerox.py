"""0x: Exchange v2 and v3 order fills (settled through the asset proxy) and the v4 Exchange
Proxy's native order fills.

v4 (Exchange Proxy, ``0xdef1c0de...``): ``fillRfqOrder``, ``fillLimitOrder``, ``fillOtcOrder``
(and the ``fillOrKill`` variants). Each order struct is static, so it sits inline at the start of
the arguments with maker token then taker token first; the return data is (takerTokenFilledAmount,
makerTokenFilledAmount), or only the maker amount for ``fillOrKill`` (the taker amount is then the
call's fill-amount argument, which must be filled exactly).

v2 and v3 (Exchange ``0x080bf510...``, ``0x61935cbd...``): ``fillOrder(order, takerAssetFillAmount,
signature)`` (v2 ``0xb4be83d5``, v3 ``0x9b44d556``) and ``fillOrKillOrder``; ``fillOrderNoThrow`` delegatecalls
``fillOrder``, which is decoded there. The
order is dynamic (its asset data are ``bytes``): maker and taker token come from its makerAssetData
and takerAssetData (ERC-20 proxy id ``0xf47261b0`` or ERC-20 bridge ``0xdc1600f3``: the token is the
first word after the id); the return data is FillResults (makerAssetFilledAmount,
takerAssetFilledAmount, fees...). The tokens themselves move through the ERC-20 asset proxy
(``transferFrom(bytes,address,address,uint256)``), maker to taker and taker to maker; the exchange
never holds them. v3's batch and market functions fill each order through a ``delegatecall`` of the
exchange to itself with ``fillOrder`` calldata: those self-delegatecalls are dispatched here too
(``SELF_DELEGATE_HANDLERS``), and the taker is the ``msg.sender`` of the enclosing call.

The taker pays the taker token and receives the maker token; the pool is the exchange.
"""

from __future__ import annotations

from mevwatch.monitor.decode.context import TxContext
from mevwatch.monitor.decode.hexabi import Short, arg, arg_addr, arg_at, out
from mevwatch.monitor.types import Swap, Trace

PROTOCOL = "zerox"
# v4 Exchange Proxy native orders
SEL_FILL_RFQ = "0xaa77476c"
SEL_FILL_LIMIT = "0xf6274f66"
SEL_FILL_OTC = "0xdac748d4"
SEL_FILL_OR_KILL_RFQ = "0x438cdfc5"
SEL_FILL_OR_KILL_LIMIT = "0x9240529c"
# v2 / v3 Exchange
SEL_V2_FILL = "0xb4be83d5"
SEL_V2_FILL_OR_KILL = "0x64a3bc15"
SEL_V3_FILL = "0x9b44d556"
SEL_V3_FILL_OR_KILL = "0xe14b58c4"
ASSET_PROXY_TRANSFER_FROM = "0xa85e59e4"  # transferFrom(bytes assetData, address from, address to, uint256)
ERC20_PROXY_IDS = frozenset({"f47261b0", "dc1600f3"})  # ERC20Token, ERC20Bridge
# word index of the fill amount in fillOrKill calldata: order words + 4 signature words
_FILL_AMOUNT_WORD = {SEL_FILL_OR_KILL_RFQ: 14, SEL_FILL_OR_KILL_LIMIT: 16}


def taker_of(ctx: TxContext, i: int, t: Trace) -> str:
    """``msg.sender`` of the fill: a delegatecall keeps its enclosing call's sender."""
    k = i
    traces, parents = ctx.traces, ctx.parents
    if not traces:
        return t.from_address
    while traces[k].call_type == "delegatecall" and parents[k] >= 0:
        k = parents[k]
    return traces[k].from_address


def _add(ctx: TxContext, i: int, t: Trace, taker: str, taker_token: str, maker_token: str,
         taker_filled: int, maker_filled: int) -> None:
    if not taker_filled or not maker_filled or taker_token == maker_token:
        return
    ctx.add_swap(Swap(
        PROTOCOL, t.to_address, ctx.tx.hash, ctx.tx.position, ctx.order(i), taker, taker,
        taker_token, maker_token, taker_filled, maker_filled, ctx.tx.from_address, ctx.tx.to_address,
        trace_address=t.trace_address, payer=taker,
    ))


def _fill_v4(ctx: TxContext, i: int, t: Trace) -> None:
    maker_token, taker_token = arg_addr(t.input, 0), arg_addr(t.input, 1)
    sel = t.input[:10]
    word = _FILL_AMOUNT_WORD.get(sel)
    if word is not None:
        taker_filled, maker_filled = arg(t.input, word), out(t.output, 0)
    else:
        taker_filled, maker_filled = out(t.output, 0), out(t.output, 1)
    _add(ctx, i, t, taker_of(ctx, i, t), taker_token, maker_token, taker_filled, maker_filled)


def asset_token(data: str, order_off: int, field_word: int) -> str | None:
    """The ERC-20 token of an order's asset data field (``bytes`` at word ``field_word`` of the
    order, its offset relative to the order's start); None for other asset types."""
    rel = arg_at(data, order_off + 32 * field_word)
    start = 10 + 2 * (order_off + rel)
    length = int(data[start : start + 64] or "0", 16)
    body = data[start + 64 : start + 64 + 2 * length]
    if length < 36 or len(body) < 72:
        raise Short("asset data")
    if body[:8] not in ERC20_PROXY_IDS:
        return None
    return "0x" + body[32:72]


def _fill_v2_v3(ctx: TxContext, i: int, t: Trace) -> None:
    inp = t.input
    order_off = arg(inp, 0)
    maker_token, taker_token = asset_token(inp, order_off, 10), asset_token(inp, order_off, 11)
    if maker_token is None or taker_token is None:
        return  # NFTs, multi-asset orders: not a token swap
    maker_filled, taker_filled = out(t.output, 0), out(t.output, 1)
    _add(ctx, i, t, taker_of(ctx, i, t), taker_token, maker_token, taker_filled, maker_filled)


TRACE_HANDLERS = {
    SEL_FILL_RFQ: _fill_v4, SEL_FILL_LIMIT: _fill_v4, SEL_FILL_OTC: _fill_v4,
    SEL_FILL_OR_KILL_RFQ: _fill_v4, SEL_FILL_OR_KILL_LIMIT: _fill_v4,
    SEL_V2_FILL: _fill_v2_v3, SEL_V2_FILL_OR_KILL: _fill_v2_v3,
    SEL_V3_FILL: _fill_v2_v3, SEL_V3_FILL_OR_KILL: _fill_v2_v3,
    # fillOrderNoThrow is not decoded itself: it delegatecalls fillOrder (decoded there)
}
# an exchange delegatecalling itself with fill calldata (v2 fillOrderNoThrow, v3 batch/market fills)
SELF_DELEGATE_HANDLERS = {
    SEL_V2_FILL: _fill_v2_v3, SEL_V3_FILL: _fill_v2_v3,
}
