"""Per-transaction decoding state shared by the protocol decoders.

A trace handler gets the context and the index of the trace it handles; it may
look at the trace's subtree (``children``/``subtree``), the transfers the
transaction made (``transfers_between``), and append decoded objects.
A log handler gets the context and the index of the log.
"""

from __future__ import annotations

from bisect import bisect_left

from mevwatch.monitor.types import (
    ORDER_STRIDE,
    WETH_ADDRESS,
    DecodeStats,
    LiquidityChange,
    Log,
    Swap,
    Trace,
    Transaction,
    Transfer,
)


_TRANSFER_SELECTORS = frozenset({"0xa9059cbb", "0x23b872dd"})  # ERC-20 transfer, transferFrom


class PoolRegistry:
    """What the decoders have learnt about pools across blocks: their two tokens."""

    __slots__ = ("tokens",)

    def __init__(self) -> None:
        self.tokens: dict[str, tuple[str, str]] = {}

    def learn(self, pool: str, token0: str, token1: str) -> None:
        if token0 and token1 and token0 != token1:
            self.tokens[pool] = (token0, token1)


class TxContext:
    __slots__ = (
        "tx", "traces", "ends", "parents", "logs", "transfers", "_transfer_idx",
        "swaps", "liquidity", "stats", "pools", "handled", "miner", "lending", "wrapped",
    )

    def __init__(self, tx: Transaction, stats: DecodeStats, pools: PoolRegistry, miner: str | None,
                 wrapped: str = WETH_ADDRESS):
        self.tx = tx
        self.traces: list[Trace] = []
        self.ends: list[int] = []
        self.parents: list[int] = []
        self.logs: list[Log] = tx.logs
        self.transfers: list[Transfer] = []
        self._transfer_idx: list[int] = []
        self.swaps: list[Swap] = []
        self.liquidity: list[LiquidityChange] = []
        self.stats = stats
        self.pools = pools
        self.handled: set[int] = set()
        self.miner = miner
        self.lending = False  # a lending protocol's liquidation call or event (monitor/decode/lending.py)
        self.wrapped = wrapped  # the chain's wrapped native token: its deposit/withdraw are transfers

    # --- trace tree -------------------------------------------------------------
    def children(self, i: int) -> list[int]:
        depth = len(self.traces[i].trace_address) + 1
        traces = self.traces
        return [j for j in range(i + 1, self.ends[i]) if len(traces[j].trace_address) == depth]

    def order(self, index: int) -> int:
        return self.tx.position * ORDER_STRIDE + index

    # --- transfers --------------------------------------------------------------
    def add_transfer(self, transfer: Transfer) -> None:
        self.transfers.append(transfer)
        self._transfer_idx.append(transfer.trace_index if transfer.trace_index >= 0 else transfer.order)

    def transfers_between(self, start: int, end: int) -> list[Transfer]:
        """Transfers made by traces (or logs) with index in ``[start, end)``."""
        idx = self._transfer_idx
        lo = bisect_left(idx, start)
        hi = bisect_left(idx, end, lo)
        return self.transfers[lo:hi]

    # --- output -----------------------------------------------------------------
    def add_swap(self, swap: Swap) -> None:
        if not swap.actor:
            swap.actor = self.swap_actor(swap)
        self.swaps.append(swap)
        self.stats.swaps_by_protocol[swap.protocol] += 1

    def swap_actor(self, swap: Swap) -> str:
        """The token contract a swap belongs to when the token makes it inside its own transfer
        (a fee-on-transfer token selling its collected fees), else "" (the transaction's sender).

        With traces: the nearest enclosing ERC-20 ``transfer``/``transferFrom`` call of the swap's
        frame names the token. Without (or besides): a swap paid by its input token's own contract
        is that token's sale of its own balance."""
        if swap.trace_address is not None and self.traces:
            j = swap.order - self.tx.position * ORDER_STRIDE
            traces, parents = self.traces, self.parents
            if 0 <= j < len(parents):
                k = parents[j]
                while k >= 0:
                    t = traces[k]
                    if t.call_type == "call" and t.input[:10] in _TRANSFER_SELECTORS:
                        return t.to_address
                    k = parents[k]
        if swap.payer is not None and swap.payer == swap.token_in:
            return swap.token_in
        return ""

    def last_swap_index(self, pool: str, before: int) -> int:
        """Index (trace or log) just after the previous swap, mint or burn on ``pool`` before ``before``; 0 if none."""
        base = self.tx.position * ORDER_STRIDE
        best = 0
        for s in reversed(self.swaps):
            idx = s.order - base
            if s.pool == pool and idx < before:
                best = idx + 1
                break
        for lc in reversed(self.liquidity):
            idx = lc.order - base
            if lc.pool == pool and idx < before:
                best = max(best, idx + 1)
                break
        return best

    def input_from_transfers(self, pool: str, start: int, at: int, exclude_token: str | None,
                             want_token: str | None = None) -> tuple[str, int, str | None] | None:
        """Token, amount and payer of what reached ``pool`` from others for the call at trace ``at``.

        Counts transfers completed in ``[start, end of at's subtree)``, except the
        pool's own LP token and transfers still in progress around ``at`` (a token whose
        transfer swaps its fees inside it). Several transfers of one token add up; with
        ``want_token`` only that token counts, else the token with the largest total wins.
        """
        totals: dict[str, int] = {}
        payer: dict[str, str] = {}
        ends = self.ends
        # A transfer takes effect when its call returns (the end of its subtree). Those in the
        # window: every transfer made at or after ``start``, plus transfer calls begun before
        # ``start`` that enclose it (its ancestors), which complete inside the window.
        candidates = self.transfers_between(start, ends[at])
        if 0 < start < len(self.parents):
            enclosing = []
            a = self.parents[start]
            while a >= 0:
                enclosing.extend(self.transfers_between(a, a + 1))
                a = self.parents[a]
            if enclosing:
                candidates = enclosing[::-1] + candidates
        for tr in candidates:
            idx = tr.trace_index
            if idx < 0:
                continue
            if tr.to_address != pool or tr.from_address == pool or tr.token == pool or tr.token == exclude_token:
                continue
            if want_token is not None and tr.token != want_token:
                continue
            if idx < at and ends[idx] > at:
                continue  # an ancestor of the swap: its own transfer completes around the swap
            totals[tr.token] = totals.get(tr.token, 0) + tr.amount
            payer.setdefault(tr.token, tr.from_address)
        if not totals:
            return None
        token = max(totals, key=totals.__getitem__)
        return token, totals[token], payer[token]
