"""Node source: follow an Ethereum node's mempool and chain head over WebSocket (web3.py async).

- Pending transactions: ``eth_subscribe newPendingTransactions`` with full objects
  (a bare hash is fetched), stamped with first-seen time (ns) and the source node,
  and marked when they replace an earlier hash for the same (sender, nonce).
- Blocks: on each ``newHeads`` the :class:`ChainFollower` fetches every block from the
  last one it emitted up to the head with full transactions, ``eth_getBlockReceipts``
  (logs) and, where the node offers them, ``trace_block`` call traces. It detects a
  reorganisation by hash and parent hash, emits a :class:`RevertEvent` for each orphaned
  block (newest first, up to ``max_reorg_depth``; deeper is an error), then the new
  canonical blocks. On a disconnect it reconnects with exponential backoff and jitter
  and backfills every block number it missed, so the block stream has no gaps.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from mevwatch.monitor.errors import NodeError, ReorgTooDeepError
from mevwatch.monitor.log import get_logger
from mevwatch.monitor.types import Block, Log, Trace, Transaction
from mevwatch.monitor.types import Message, PendingTx, RevertEvent
from mevwatch.monitor.fates import FateTracker
from mevwatch.streams.mevinspect import _trace as parse_parity_trace

log = get_logger("mevwatch.node")
Request = Callable[[str, list], Awaitable[Any]]


def _hex(v: Any) -> Any:
    """web3's formatted values (HexBytes, bytes) back to 0x-hex strings; others unchanged."""
    if isinstance(v, (bytes, bytearray)):
        return "0x" + bytes(v).hex()
    if hasattr(v, "to_0x_hex"):
        return v.to_0x_hex()
    return v


def _int(v: Any) -> int | None:
    if v is None:
        return None
    if isinstance(v, int):
        return v
    return int(v, 16) if isinstance(v, str) and v.startswith("0x") else int(v)


def normalize_pending(obj: Any, *, chain_id: int, source_node: str, first_seen_ns: int) -> PendingTx:
    g = obj.get
    to = g("to")
    return PendingTx(
        chain_id=chain_id, hash=_hex(g("hash")).lower(), from_address=str(g("from")).lower(),
        to_address=str(to).lower() if to else None, nonce=_int(g("nonce")) or 0,
        input=(_hex(g("input")) or "0x").lower(), value=_int(g("value")) or 0, gas=_int(g("gas")) or 0,
        gas_price=_int(g("gasPrice")), max_fee_per_gas=_int(g("maxFeePerGas")),
        max_priority_fee_per_gas=_int(g("maxPriorityFeePerGas")), type=_int(g("type")) or 0,
        first_seen_ns=first_seen_ns, source_node=source_node,
    )


async def fetch_block(request: Request, number: int, *, chain_id: int, traces: bool) -> tuple[Block, bool]:
    """Fetch block ``number`` with receipts and (optionally) traces. Returns (block, traces_available)."""
    tag = hex(number)
    raw = await request("eth_getBlockByNumber", [tag, True])
    if raw is None:
        raise NodeError(f"node has no block {number}")
    receipts = await request("eth_getBlockReceipts", [tag]) or []
    by_hash = {r["transactionHash"]: r for r in receipts}
    traces_by_pos: dict[int, list[Trace]] = {}
    if traces:
        try:
            for t in await request("trace_block", [tag]) or []:
                tx_hash, pos, trace = parse_parity_trace(t)
                if tx_hash is not None and pos is not None:
                    traces_by_pos.setdefault(pos, []).append(trace)
        except NodeError:
            traces = False
    base_fee = _int(raw.get("baseFeePerGas"))
    txs = []
    for t in raw["transactions"]:
        r = by_hash.get(t["hash"], {})
        pos = _int(t["transactionIndex"]) or 0
        tr = traces_by_pos.get(pos, [])
        tr.sort(key=lambda x: x.trace_address)
        logs = [Log(lg["address"].lower(), tuple(x.lower() for x in lg["topics"]), lg["data"], _int(lg["logIndex"]) or 0)
                for lg in r.get("logs", [])]
        txs.append(Transaction(
            hash=t["hash"].lower(), position=pos, from_address=t["from"].lower(),
            to_address=t["to"].lower() if t.get("to") else None, input=t.get("input", "0x").lower(),
            value=_int(t.get("value")) or 0, nonce=_int(t.get("nonce")), gas_used=_int(r.get("gasUsed")),
            effective_gas_price=_int(r.get("effectiveGasPrice")),
            max_priority_fee_per_gas=_int(t.get("maxPriorityFeePerGas")),
            success=_int(r.get("status", "0x1")) == 1, traces=tr, logs=logs,
        ))
    block = Block(
        number=_int(raw["number"]) or 0, hash=raw["hash"].lower(), parent_hash=raw["parentHash"].lower(),
        timestamp=_int(raw["timestamp"]) or 0, miner=raw.get("miner", "").lower() or None, base_fee_per_gas=base_fee,
        transactions=txs, chain_id=chain_id, has_traces=traces and bool(traces_by_pos or not txs), has_logs=True,
    )
    return block, traces


class ChainFollower:
    """Turns head notifications into an ordered, gap-free stream of blocks and revert events."""

    def __init__(self, request: Request, *, chain_id: int, traces: bool = True, max_reorg_depth: int = 64,
                 start_block: int | None = None, confirmations: int = 12):
        self.request = request
        self.confirmations = confirmations
        self.chain_id = chain_id
        self.traces = traces
        self.max_reorg_depth = max_reorg_depth
        self.canonical: dict[int, str] = {}  # number -> hash of what we emitted
        self.last: int | None = None if start_block is None else start_block - 1
        self.reorgs = 0

    async def _hash_at(self, number: int) -> str | None:
        raw = await self.request("eth_getBlockByNumber", [hex(number), False])
        return raw["hash"].lower() if raw else None

    async def advance(self, head: int) -> list[Message]:
        """Everything to emit to reach ``head``: reverts for orphaned blocks, then new blocks in order."""
        out: list[Message] = []
        if self.last is None:
            self.last = head - 1
        # 1. find where our chain and the node's agree (walks back only when hashes differ)
        k = min(self.last, head)
        while k in self.canonical and await self._hash_at(k) != self.canonical[k]:
            k -= 1
            if self.last - k > self.max_reorg_depth:
                raise ReorgTooDeepError(f"reorganisation deeper than {self.max_reorg_depth} blocks below {self.last}")
        if k < self.last:
            depth = self.last - k
            self.reorgs += 1
            from mevwatch.monitor import metrics

            metrics.REORGS.inc()
            metrics.REORG_DEPTH.observe(depth)
            for n in range(self.last, k, -1):
                h = self.canonical.pop(n, None)
                if h is not None:
                    out.append(RevertEvent(self.chain_id, n, h, None, depth))
            self.last = k
        # 2. fetch forward, checking each parent
        n = self.last + 1
        while n <= head:
            block, self.traces = await fetch_block(self.request, n, chain_id=self.chain_id, traces=self.traces)
            prev = self.canonical.get(n - 1)
            if prev is not None and block.parent_hash != prev:
                return out + await self.advance(head)  # the chain moved under us: resolve again
            for r in out:
                if isinstance(r, RevertEvent) and r.block_number == n:
                    r.replaced_by = block.hash
            out.append(block)
            self.canonical[n] = block.hash or ""
            self.last = n
            self.canonical.pop(n - self.max_reorg_depth - 1, None)
            n += 1
        return out


class NodeSource:
    """Follows one node. ``run(emit)`` calls ``emit(message)`` for every pending tx, block and revert."""

    def __init__(self, url: str, *, chain_id: int | None = None, traces: bool = True, max_reorg_depth: int = 64,
                 reconnect_max_s: float = 30.0, pending: bool = True, start_block: int | None = None,
                 confirmations: int = 12, on_fate: Callable[[Any], Any] | None = None, pending_ttl_s: float = 3600.0):
        self.url = url
        self.chain_id = chain_id
        self.traces = traces
        self.max_reorg_depth = max_reorg_depth
        self.reconnect_max_s = reconnect_max_s
        self.pending = pending
        self.start_block = start_block
        self.confirmations = confirmations
        self.on_fate = on_fate
        self.fates = FateTracker(pending_ttl_s)
        self.follower: ChainFollower | None = None
        self.reconnects = 0
        self._stop = asyncio.Event()
        self._dead_letter: Callable[[str, str, bytes | None], Any] | None = None

    def stop(self) -> None:
        self._stop.set()

    async def run(self, emit: Callable[[Message], Any],
                  dead_letter: Callable[[str, str, bytes | None], Any] | None = None) -> None:
        """Follow the node until ``stop()``. Bad node payloads go to ``dead_letter(source, reason, raw)``."""
        from web3 import AsyncWeb3, WebSocketProvider

        self._dead_letter = dead_letter

        attempt = 0
        while not self._stop.is_set():
            try:
                async with AsyncWeb3(WebSocketProvider(self.url, max_connection_retries=1)) as w3:
                    attempt = 0
                    await self._session(w3, emit)
            except asyncio.CancelledError:
                raise
            except ReorgTooDeepError:
                raise
            except Exception as exc:  # noqa: BLE001 - any transport failure: reconnect and backfill
                if self._stop.is_set():
                    break
                attempt += 1
                self.reconnects += 1
                from mevwatch.monitor import metrics
                from mevwatch.monitor.retry import policy

                metrics.RECONNECTS.inc()
                backoff = policy("node").capped(self.reconnect_max_s)
                delay = backoff.delay(attempt)
                metrics.RETRIES.labels(backoff.name).inc()
                log.warning("node connection lost; reconnecting", url=self.url, error=repr(exc)[:200], retry_in_s=round(delay, 2))
                try:
                    await asyncio.wait_for(self._stop.wait(), delay)
                except asyncio.TimeoutError:
                    pass

    async def _session(self, w3, emit) -> None:
        async def request(method: str, params: list) -> Any:
            resp = await w3.provider.make_request(method, params)
            if "error" in resp:
                raise NodeError(f"{method} failed: {resp['error']}")
            return resp.get("result")

        if self.chain_id is None:
            self.chain_id = _int(await request("eth_chainId", []))
        if self.follower is None:
            self.follower = ChainFollower(request, chain_id=self.chain_id or 1, traces=self.traces,
                                          max_reorg_depth=self.max_reorg_depth, start_block=self.start_block,
                                          confirmations=self.confirmations)
        else:
            self.follower.request = request
        heads_sub = await w3.eth.subscribe("newHeads")
        pending_sub = await w3.eth.subscribe("newPendingTransactions", True) if self.pending else None
        # catch up (backfill whatever was mined while we were away)
        await self._on_head(_int(await request("eth_blockNumber", [])) or 0, emit)
        log.info("following node", url=self.url, chain_id=self.chain_id, from_block=self.follower.last)
        stop_wait = asyncio.ensure_future(self._stop.wait())
        try:
            async for msg in w3.socket.process_subscriptions():
                if self._stop.is_set():
                    return
                sub, result = msg["subscription"], msg["result"]
                if sub == heads_sub:
                    await self._on_head(_int(result["number"]) or 0, emit)
                elif sub == pending_sub:
                    seen = time.time_ns()
                    if isinstance(result, (str, bytes)) or hasattr(result, "hex") and not hasattr(result, "get"):
                        result = await request("eth_getTransactionByHash", [_hex(result)])
                        if result is None:
                            continue
                    try:
                        p = normalize_pending(result, chain_id=self.chain_id or 1, source_node=self.url, first_seen_ns=seen)
                    except (KeyError, TypeError, ValueError, AttributeError) as exc:
                        if self._dead_letter is not None:
                            await _call_dl(self._dead_letter, self.url, f"unreadable pending transaction: {exc!r}", repr(result).encode())
                        continue
                    p.replaces = self.fates.on_pending(p)
                    await _call(emit, p)
        finally:
            stop_wait.cancel()

    async def _on_head(self, head: int, emit) -> None:
        assert self.follower is not None
        for m in await self.follower.advance(head):
            fates = self.fates.on_block(m) if isinstance(m, Block) else []
            if isinstance(m, Block):
                log.debug("block", block_number=m.number, block_hash=m.hash, transactions=len(m.transactions))
            else:
                log.warning("reorg: block reverted", block_number=getattr(m, "block_number", None),
                            block_hash=getattr(m, "block_hash", None), depth=getattr(m, "depth", None))
            await _call(emit, m)
            for f in fates:
                if self.on_fate is not None:
                    await _call(self.on_fate, f)
        for f in self.fates.expire(time.time_ns()):
            if self.on_fate is not None:
                await _call(self.on_fate, f)


async def _call_dl(fn, source: str, reason: str, raw: bytes | None) -> None:
    r = fn(source, reason, raw)
    if asyncio.iscoroutine(r):
        await r


async def _call(fn, arg) -> None:
    r = fn(arg)
    if asyncio.iscoroutine(r):
        await r
