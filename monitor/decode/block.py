"""Decode blocks into swaps, transfers and liquidity changes (the package exports :class:`BlockDecoder`).

:class:`BlockDecoder` walks each transaction's call traces (when the block has them)
or its receipts' event logs, dispatching on the 4-byte selector or the event topic
to one module per protocol family. Reverted call frames and everything under them
are dropped and counted. A known selector whose fields cannot be read is counted in
``stats.malformed_by_selector``; a call that moved two different tokens in and out
of its callee without being decoded is counted in ``stats.undecoded_by_selector`` (from logs: an
account that received one token and sent another with no decoded swap naming it);
``stats.coverage()`` is the share of swap-like calls the decoders explained.
Nothing here raises on bad chain data.
"""

from __future__ import annotations

from collections.abc import Callable

from mevwatch.monitor.decode import (
    balancer,
    bancor,
    curve,
    dodo,
    kyber,
    lending,
    mooniswap,
    transfers,
    uniswap_v2,
    uniswap_v3,
    uniswap_v4,
    zerox,
)
from mevwatch.monitor.decode.context import PoolRegistry, TxContext
from mevwatch.monitor.decode.hexabi import Short
from mevwatch.monitor.types import ORDER_STRIDE, WETH_ADDRESS, ZERO_ADDRESS, Block, DecodedBlock, DecodeStats, Trace, Transaction, Transfer

TraceHandler = Callable[[TxContext, int, Trace], None]
LogHandler = Callable[[TxContext, int], None]
TRACE_HANDLERS: dict[str, TraceHandler] = {}
LOG_HANDLERS: dict[str, LogHandler] = {}
for _module in (uniswap_v2, uniswap_v3, uniswap_v4, balancer, curve, zerox, bancor, mooniswap, dodo, kyber):
    TRACE_HANDLERS.update(_module.TRACE_HANDLERS)
    LOG_HANDLERS.update(getattr(_module, "LOG_HANDLERS", {}))
TRANSFER_TRACE_HANDLERS: dict[str, TraceHandler] = dict(transfers.TRANSFER_TRACE_HANDLERS)
TRANSFER_TRACE_HANDLERS.update(lending.TRACE_HANDLERS)  # inline, like transfers: they only mark the transaction
# a contract delegatecalling itself with other calldata runs another of its own functions (0x v2/v3
# fill loops): those frames are decoded too; any other delegatecall repeats its caller's input
SELF_DELEGATE_HANDLERS: dict[str, TraceHandler] = dict(zerox.SELF_DELEGATE_HANDLERS)
ASSET_PROXY_SELECTORS = frozenset({zerox.ASSET_PROXY_TRANSFER_FROM})
TRANSFER_LOG_HANDLERS: dict[str, LogHandler] = dict(transfers.TRANSFER_LOG_HANDLERS)
TRANSFER_LOG_HANDLERS.update(lending.LOG_HANDLERS)

_DECODE_ERRORS = (Short, ValueError, IndexError, KeyError, TypeError, OverflowError)
_SEL_TRANSFER = transfers.SEL_TRANSFER
_SEL_TRANSFER_FROM = transfers.SEL_TRANSFER_FROM
_FALSE_WORD = "0" * 64


def _erc20(t: Trace, sel: str, j: int, tx_hash: str, pos: int, base: int, stats: DecodeStats) -> Transfer | None:
    """An ERC-20 ``transfer``/``transferFrom`` call as a Transfer (None if it moved nothing)."""
    o = t.output
    if len(o) >= 66 and o[2:66] == _FALSE_WORD:
        return None  # returned false: nothing moved
    inp = t.input
    if sel == _SEL_TRANSFER:
        frm, to, amt = t.from_address, "0x" + inp[34:74], inp[74:138]
    else:
        frm, to, amt = "0x" + inp[34:74], "0x" + inp[98:138], inp[138:202]
    if len(amt) != 64 or len(to) != 42:
        stats.malformed_by_selector[sel] += 1
        return None
    return Transfer(t.to_address, frm, to, int(amt, 16), tx_hash, pos, base + j, j, t.from_address)

__all__ = ["BlockDecoder", "PoolRegistry"]


class BlockDecoder:
    """Decodes blocks one after another; remembers pool tokens across blocks."""

    def __init__(self, pools: PoolRegistry | None = None, native_wrapper: str = WETH_ADDRESS):
        self.pools = pools or PoolRegistry()
        self.native_wrapper = native_wrapper  # the chain's wrapped native token (monitor/chains.py)

    def decode(self, block: Block) -> DecodedBlock:
        stats = DecodeStats()
        swaps, xfers, liq = [], [], []
        payments: dict[str, int] = {}
        lending_txs: list[str] = []
        use_traces = block.has_traces
        miner = block.miner
        for tx in block.transactions:
            stats.transactions += 1
            if use_traces and tx.success and len(tx.traces) == 1:
                # a single call (68% of mainnet transactions): no tree, no context needed
                t = tx.traces[0]
                if t.call_type != "call":
                    continue
                if t.value and miner is not None and t.to_address == miner:
                    payments[tx.hash] = payments.get(tx.hash, 0) + t.value
                sel = t.input[:10]
                if sel == _SEL_TRANSFER or sel == _SEL_TRANSFER_FROM:
                    tr = _erc20(t, sel, 0, tx.hash, tx.position, tx.position * ORDER_STRIDE, stats)
                    if tr is not None:
                        xfers.append(tr)
                    continue
                if sel not in TRACE_HANDLERS and sel not in TRANSFER_TRACE_HANDLERS:
                    continue
            ctx = TxContext(tx, stats, self.pools, miner, self.native_wrapper)
            if use_traces:
                self._decode_traces(ctx, tx, stats, payments)
            else:
                self._decode_logs(ctx, tx, stats)
            swaps.extend(ctx.swaps)
            xfers.extend(ctx.transfers)
            liq.extend(ctx.liquidity)
            if ctx.lending:
                lending_txs.append(tx.hash)
        return DecodedBlock(block, swaps, xfers, liq, payments, stats, "traces" if use_traces else "logs", lending_txs,
                            self.native_wrapper)

    def _decode_traces(self, ctx: TxContext, tx: Transaction, stats: DecodeStats, payments: dict[str, int]) -> None:
        """One pass over the traces: drop reverted subtrees, index the tree, decode transfers,
        queue the protocol handlers (which need the transfers of the whole transaction)."""
        if not tx.success:
            stats.reverted_calls += sum(1 for t in tx.traces if t.type == "call")
            return
        kept: list[Trace] = []
        ends: list[int] = []
        parents: list[int] = []
        stack: list[tuple[int, int]] = []  # (index in kept, depth)
        skip: tuple[int, ...] | None = None
        n_skip = 0
        miner = ctx.miner
        pending: list[tuple[int, Trace, TraceHandler, str]] = []
        transfer_handlers, trace_handlers = TRANSFER_TRACE_HANDLERS, TRACE_HANDLERS
        ctx.traces, ctx.ends, ctx.parents = kept, ends, parents
        xfers, xfer_idx = ctx.transfers, ctx._transfer_idx
        tx_hash, pos, base = tx.hash, tx.position, tx.position * ORDER_STRIDE
        for t in tx.traces:
            ta = t.trace_address
            if skip is not None:
                if ta[:n_skip] == skip:
                    if t.type == "call":
                        stats.reverted_calls += 1
                    continue
                skip = None
            if t.error:
                if t.type == "call":
                    stats.reverted_calls += 1
                skip, n_skip = ta, len(ta)
                continue
            if t.type != "call" and t.type != "create":
                continue
            depth = len(ta)
            j = len(kept)
            while stack and stack[-1][1] >= depth:
                ends[stack.pop()[0]] = j
            parents.append(stack[-1][0] if stack else -1)
            stack.append((j, depth))
            kept.append(t)
            ends.append(-1)
            if t.call_type != "call":
                if t.call_type == "delegatecall" and t.from_address == t.to_address:
                    h = SELF_DELEGATE_HANDLERS.get(t.input[:10])
                    if h is not None:
                        pending.append((j, t, h, t.input[:10]))
                continue
            if t.value and t.to_address == miner:
                payments[tx.hash] = payments.get(tx.hash, 0) + t.value
            sel = t.input[:10]
            # ERC-20 transfers are most of all decoded calls: no handler dispatch for them
            if sel == _SEL_TRANSFER or sel == _SEL_TRANSFER_FROM:
                tr = _erc20(t, sel, j, tx_hash, pos, base, stats)
                if tr is not None:
                    xfers.append(tr)
                    xfer_idx.append(j)
                continue
            h = transfer_handlers.get(sel)
            if h is not None:
                try:
                    h(ctx, j, t)
                except _DECODE_ERRORS:
                    stats.malformed_by_selector[sel] += 1
                continue
            h = trace_handlers.get(sel)
            if h is not None:
                pending.append((j, t, h, sel))
        n = len(kept)
        for j, _ in stack:
            ends[j] = n
        if not pending:
            if ctx.transfers:
                self._count_undecoded(ctx, set())
            return
        decoded = set()
        for i, t, h, sel in pending:
            before = len(ctx.swaps) + len(ctx.liquidity)
            try:
                h(ctx, i, t)
            except _DECODE_ERRORS:
                stats.malformed_by_selector[sel] += 1
            if len(ctx.swaps) + len(ctx.liquidity) > before:
                decoded.add(i)
        self._count_undecoded(ctx, decoded)

    @staticmethod
    def _call_frame(traces: list[Trace], parents: list[int], k: int) -> int:
        """The call that frame ``k`` runs in (a delegatecall runs in its enclosing call's context)."""
        while traces[k].call_type == "delegatecall" and parents[k] >= 0:
            k = parents[k]
        return k

    @staticmethod
    def _count_undecoded(ctx: TxContext, decoded: set[int]) -> None:
        """Count calls that traded one token for another, yet nothing was decoded there.

        A pool-like call: its callee received one token and sent another. A proxy-settled call
        (0x v2/v3: the exchange has its asset proxy move the tokens between maker and taker, so the
        exchange itself holds nothing): the call's sender received one token and sent another
        through an asset proxy (``ASSET_PROXY_SELECTORS``) that the call invoked."""
        if not ctx.transfers:
            return
        traces, parents = ctx.traces, ctx.parents
        flows: dict[int, tuple[set[str], set[str]]] = {}  # frame -> tokens its callee received, sent
        taker_flows: dict[int, tuple[set[str], set[str]]] = {}  # frame -> tokens its sender received, sent
        for tr in ctx.transfers:
            p = parents[tr.trace_index] if tr.trace_index >= 0 else -1
            if p < 0:
                continue
            callee = traces[p].to_address
            if tr.from_address == callee:
                flows.setdefault(p, (set(), set()))[1].add(tr.token)
            elif tr.to_address == callee:
                flows.setdefault(p, (set(), set()))[0].add(tr.token)
            elif tr.from_address != ZERO_ADDRESS and tr.to_address != ZERO_ADDRESS:
                # moved by a third contract (an asset proxy) that the trade's call invoked: 0x v2/v3
                # exchange -> ERC-20 proxy -> token.transferFrom(maker <-> taker). The trade is the
                # call that invoked the mover, for that call's sender (the taker)
                m = BlockDecoder._call_frame(traces, parents, p)
                if traces[m].input[:10] not in ASSET_PROXY_SELECTORS or parents[m] < 0:
                    continue  # only asset proxies: a lending pool or vault moving tokens is no trade
                f = BlockDecoder._call_frame(traces, parents, parents[m])
                taker = traces[f].from_address
                if tr.to_address == taker:
                    taker_flows.setdefault(f, (set(), set()))[0].add(tr.token)
                elif tr.from_address == taker:
                    taker_flows.setdefault(f, (set(), set()))[1].add(tr.token)
        if not flows and not taker_flows:
            return
        covered = set()
        for i in decoded:
            while i >= 0 and i not in covered:
                covered.add(i)
                i = parents[i]
        counted: set[int] = set()
        for frames in (flows, taker_flows):
            for p, (received, sent) in frames.items():
                if p in counted or p in covered or not received or not sent or received == sent:
                    continue
                # a decoded swap below it means an aggregator or router: already covered
                if any(j in decoded for j in range(p + 1, ctx.ends[p])):
                    continue
                counted.add(p)
                t = traces[p]
                ctx.stats.undecoded_by_selector[t.input[:10] if len(t.input) >= 10 else "0x"] += 1

    @staticmethod
    def _count_undecoded_logs(ctx: TxContext) -> None:
        """The undecoded counter without call frames (receipts and logs only): an account that
        received one set of tokens and sent another in the transaction, that is not its sender and
        that no decoded swap or liquidity change names (as pool, sender, recipient or payer), traded
        through something no decoder read (a pool of an unsupported venue). Counted once per such
        account, under the selector of the transaction's call (logs carry no inner call's)."""
        xfers = ctx.transfers
        if len(xfers) < 2:
            return
        received: dict[str, set[str]] = {}
        sent: dict[str, set[str]] = {}
        for tr in xfers:
            if tr.from_address == ZERO_ADDRESS or tr.to_address == ZERO_ADDRESS:
                continue  # minted or burnt (LP shares, wrapped ether): no counterparty traded
            if tr.token == tr.to_address or tr.token == tr.from_address:
                continue  # a pool's own shares pulled or pushed (Balancer V1 single-sided joins, exits): liquidity
            received.setdefault(tr.to_address, set()).add(tr.token)
            sent.setdefault(tr.from_address, set()).add(tr.token)
        named = {ctx.tx.from_address}
        for s in ctx.swaps:
            named.update((s.pool, s.sender, s.recipient))
            if s.payer is not None:
                named.add(s.payer)
        for lc in ctx.liquidity:
            named.update((lc.pool, lc.owner, lc.sender))
        n = 0
        for addr, got in received.items():
            gave = sent.get(addr)
            if gave and got != gave and addr not in named:
                n += 1
        if n:
            inp = ctx.tx.input
            ctx.stats.undecoded_by_selector[inp[:10] if len(inp) >= 10 else "0x"] += n

    def _decode_logs(self, ctx: TxContext, tx: Transaction, stats: DecodeStats) -> None:
        if not tx.success:
            return
        logs = tx.logs
        for i, log in enumerate(logs):
            if not log.topics:
                continue
            t0 = log.topics[0]
            h = TRANSFER_LOG_HANDLERS.get(t0)
            if h is not None:
                try:
                    h(ctx, i)
                except _DECODE_ERRORS:
                    stats.malformed_by_selector[t0[:10]] += 1
        for i, log in enumerate(logs):
            if not log.topics:
                continue
            h = LOG_HANDLERS.get(log.topics[0])
            if h is not None:
                try:
                    h(ctx, i)
                except _DECODE_ERRORS:
                    stats.malformed_by_selector[log.topics[0][:10]] += 1
        if len(ctx.transfers) > 1:
            self._count_undecoded_logs(ctx)
