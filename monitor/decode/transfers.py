"""ERC-20 transfers and WETH deposit/withdraw, from traces and from logs.

The chain's wrapped native token (``TxContext.wrapped``: WETH on mainnet, monitor/chains.py)
``deposit`` is recorded as a transfer from the zero address to the depositor and
``withdraw`` as a transfer to the zero address, which is what the token's balance does.
ERC-20 ``transfer``/``transferFrom`` calls (selectors below) are decoded inline by
``BlockDecoder`` (``monitor.decode._erc20``), not through a trace handler.
"""

from __future__ import annotations

from mevwatch.monitor.decode.context import TxContext
from mevwatch.monitor.decode.hexabi import arg, out, topic_addr
from mevwatch.monitor.types import ZERO_ADDRESS, Trace, Transfer

SEL_TRANSFER = "0xa9059cbb"
SEL_TRANSFER_FROM = "0x23b872dd"
SEL_DEPOSIT = "0xd0e30db0"
SEL_WITHDRAW = "0x2e1a7d4d"

TOPIC_TRANSFER = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
TOPIC_DEPOSIT = "0xe1fffcc4923d04b559f4d29a8bfc6cda04eb5b0d3c460751c2402c5c5cc9109c"
TOPIC_WITHDRAWAL = "0x7fcf532c15f0a6db0bd6d0e038bea71d30d808c7d98cb3bf7268a95bf5081b65"

def _emit(ctx: TxContext, i: int, t: Trace, frm: str, to: str, amount: int) -> None:
    ctx.add_transfer(
        Transfer(t.to_address, frm, to, amount, ctx.tx.hash, ctx.tx.position, ctx.order(i), i, t.from_address)
    )


def trace_deposit(ctx: TxContext, i: int, t: Trace) -> None:
    if t.to_address == ctx.wrapped and t.value:
        _emit(ctx, i, t, ZERO_ADDRESS, t.from_address, t.value)


def trace_withdraw(ctx: TxContext, i: int, t: Trace) -> None:
    if t.to_address == ctx.wrapped:
        _emit(ctx, i, t, t.from_address, ZERO_ADDRESS, arg(t.input, 0))


TRANSFER_TRACE_HANDLERS = {
    SEL_DEPOSIT: trace_deposit,
    SEL_WITHDRAW: trace_withdraw,
}


def log_transfer(ctx: TxContext, i: int) -> None:
    log = ctx.logs[i]
    if len(log.topics) != 3:  # ERC-721 has the id as a fourth topic
        return
    ctx.add_transfer(
        Transfer(log.address, topic_addr(log.topics[1]), topic_addr(log.topics[2]), out(log.data, 0),
                 ctx.tx.hash, ctx.tx.position, ctx.order(log.log_index))
    )


def log_deposit(ctx: TxContext, i: int) -> None:
    log = ctx.logs[i]
    if log.address == ctx.wrapped and len(log.topics) == 2:
        ctx.add_transfer(Transfer(log.address, ZERO_ADDRESS, topic_addr(log.topics[1]), out(log.data, 0),
                                  ctx.tx.hash, ctx.tx.position, ctx.order(log.log_index)))


def log_withdrawal(ctx: TxContext, i: int) -> None:
    log = ctx.logs[i]
    if log.address == ctx.wrapped and len(log.topics) == 2:
        ctx.add_transfer(Transfer(log.address, topic_addr(log.topics[1]), ZERO_ADDRESS, out(log.data, 0),
                                  ctx.tx.hash, ctx.tx.position, ctx.order(log.log_index)))


TRANSFER_LOG_HANDLERS = {
    TOPIC_TRANSFER: log_transfer,
    TOPIC_DEPOSIT: log_deposit,
    TOPIC_WITHDRAWAL: log_withdrawal,
}
