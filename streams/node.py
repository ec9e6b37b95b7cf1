"""Node source: follow an Ethereum node's mempool and chain head over WebSocket (web3.py async).

- Pending transactions: ``eth_subscribe newPendingTransactions`` with full objects
  (a bare hash is fetched), stamped with first-seen time (ns) and the source node,
  and marked when they replace an earlier hash for the same (sender, nonce).
- Blocks: on each ``newHeads`` the :class:`ChainFollower` fetches every block from the
  last one it emitted up to the head with full transactions, ``eth_getBlockReceipts``
  (logs) and call traces from the :class:`Tracer` (``node.traces``: ``auto`` tries
  ``trace_block``, then Geth's ``debug_traceBlockByNumber`` with ``callTracer``; ``parity``
  or ``geth`` name one; ``none`` asks for none). It detects a
  reorganisation by hash and parent hash, emits a :class:`RevertEvent` for each orphaned
  block (newest first, up to ``max_reorg_depth``; deeper is an error), then the new
  canonical blocks. On a disconnect it reconnects with exponential backoff and jitter
  and backfills every block number it missed, so the block stream has no gaps.

What the node must offer, and what is lost without it, is in docs/node.md. A tracer that
answers with an error is asked again with backoff (retry policy ``trace``); if it still fails,
that one block is decoded from its event logs (``mevwatch_trace_fallbacks_total``, one log
line when the fallback starts and one when traces are back) and the next block asks for traces
again. A node that lacks a method mevwatch needs (``eth_getBlockReceipts``, ``eth_subscribe``
``newHeads``, the tracer named by ``parity``/``geth``) is a :class:`NodeUnsuitableError`, not a
reconnect loop; a node never reached within ``connect_timeout_s`` (or refusing the WebSocket
handshake with a 4xx) is a :class:`NodeUnreachableError`. The node's URL appears in logs,
errors and stored rows only through :func:`~monitor.log.redact_url`.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from mevwatch.monitor import chains, metrics
from mevwatch.monitor.errors import ConfigError, NodeError, ReorgTooDeepError
from mevwatch.monitor.log import get_logger, redact_text, redact_url
from mevwatch.monitor.types import Block, Log, Trace, Transaction
from mevwatch.monitor.types import Message, PendingTx, RevertEvent
from mevwatch.monitor.fates import FateTracker
from mevwatch.streams.geth_trace import GethTraceError, block_traces as geth_block_traces
from mevwatch.streams.mevinspect import _trace as parse_parity_trace

log = get_logger("mevwatch.node")
Request = Callable[[str, list], Awaitable[Any]]

TRACE_MODES = ("auto", "parity", "geth", "none")
TRACERS = {"parity": "trace_block", "geth": "debug_traceBlockByNumber callTracer"}
WITHOUT_TRACES = "Balancer V1, 0x and Bancor swaps go undecoded and displacement detection is weaker"
DOCS = "see docs/node.md"
# the largest WebSocket message taken from the node: a mainnet block's trace_block or receipts answer
# runs to tens of MB, far past the websockets library's 1 MiB default (which would drop the connection)
MAX_MESSAGE_BYTES = 512 * 2**20


class NodeUnsuitableError(NodeError):
    """The node lacks a method or subscription mevwatch needs: reconnecting cannot help."""


class NodeUnreachableError(NodeError):
    """The node was never reached (or refused the WebSocket handshake)."""


class RpcError(NodeError):
    """A JSON-RPC error answer: ``method``, ``code`` and the node's ``rpc_message``."""

    def __init__(self, method: str, error: Any):
        self.method = method
        self.code = error.get("code") if isinstance(error, dict) else None
        message = error.get("message", error) if isinstance(error, dict) else error
        self.rpc_message = redact_text(str(message))[:300]
        super().__init__(f"{method} failed: {self.rpc_message}" + (f" (code {self.code})" if self.code is not None else ""))


_UNSUPPORTED_WORDS = ("not found", "does not exist", "not available", "not supported", "unsupported", "not allowed",
                      "not enabled", "disabled", "unknown", "not whitelisted", "not permitted", "no such")


def is_unsupported(exc: BaseException, method: str = "") -> bool:
    """Whether an error answer means "this node does not offer ``method``" (JSON-RPC -32601, or a
    message that says so about a method, namespace or API), not a passing failure (a rate limit,
    ``header not found`` while the node catches up)."""
    if not isinstance(exc, NodeError) or isinstance(exc, (NodeUnsuitableError, NodeUnreachableError)):
        return False
    if getattr(exc, "code", None) == -32601:
        return True
    text = getattr(exc, "rpc_message", None)
    if text is None:  # a plain NodeError ("<method> failed: {...}") from another request function
        text = str(exc)
        if "-32601" in text:
            return True
        text = text.partition("failed:")[2] or text
    low = text.lower()
    subjects = ("method", "methods", "namespace", "api") + ((method.lower(),) if method else ())
    return any(w in low for w in _UNSUPPORTED_WORDS) and any(re.search(rf"\b{re.escape(s)}\b", low) for s in subjects)


def check_ws_url(url: str, what: str = "mevwatch run") -> None:
    """Refuse a node URL that cannot carry subscriptions, with the reason (before anything starts)."""
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if scheme in ("ws", "wss"):
        return
    shown = redact_url(url)
    if scheme in ("http", "https"):
        raise ConfigError(
            f"{what} needs the node's WebSocket URL (ws:// or wss://, often port 8546), not {shown}: it follows new "
            "heads and pending transactions through eth_subscribe, which plain HTTP cannot carry. `mevwatch replay "
            f"--rpc` and `mevwatch doctor` take http(s):// too; {DOCS}")
    raise ConfigError(f"{what}: the node URL must start with ws:// or wss://, not {shown!r}; {DOCS}")


def describe_error(exc: BaseException) -> str:
    """A short, credential-free reason for a failed connection or request (the root cause named)."""
    import socket
    import ssl

    seen: BaseException | None = exc
    for _ in range(6):
        if seen is None:
            break
        status = _status(seen)
        if status is not None:
            return f"the WebSocket handshake was answered with HTTP {status}"
        if isinstance(seen, ConnectionRefusedError):
            return "connection refused"
        if isinstance(seen, socket.gaierror):
            return "host name not resolved"
        if isinstance(seen, ssl.SSLError):
            return f"TLS failed: {redact_text(str(seen))[:120]}"
        if isinstance(seen, (TimeoutError, asyncio.TimeoutError)):
            return "timed out"
        nxt = seen.__cause__ or (None if seen.__suppress_context__ else seen.__context__)  # `raise ... from None` ends it
        if nxt is None:
            break
        seen = nxt
    return redact_text(f"{type(exc).__name__}: {exc}")[:200]


def _status(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    code = getattr(response, "status_code", None)
    return code if isinstance(code, int) else None


def handshake_status(exc: BaseException) -> int | None:
    """The HTTP status that refused the WebSocket handshake, if that is what ``exc`` (or its cause) is."""
    seen: BaseException | None = exc
    for _ in range(6):
        if seen is None:
            return None
        status = _status(seen)
        if status is not None:
            return status
        seen = seen.__cause__ or seen.__context__
    return None


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


class Tracer:
    """Where a block's call traces come from (``mode``: auto, parity, geth or none) and what
    happens when they fail. One per followed node: it remembers which tracer the node offers
    and whether the previous block fell back to logs."""

    ATTEMPTS = 3  # per block: then this block is decoded from logs, the next one asks again

    def __init__(self, mode: str = "auto", *, stop: Callable[[], bool] = lambda: False):
        if mode not in TRACE_MODES:
            raise ConfigError(f"node.traces must be one of {', '.join(TRACE_MODES)}, not {mode!r}")
        self.mode = mode
        self.kind: str | None = mode if mode in TRACERS else None  # the tracer in use; None: not known yet (auto)
        self.available = mode != "none"
        self.failing = 0  # blocks in a row decoded from logs after tracer errors
        self.stop = stop

    @classmethod
    def of(cls, traces: bool | str | Tracer) -> Tracer:
        if isinstance(traces, Tracer):
            return traces
        if isinstance(traces, bool):
            return cls("auto" if traces else "none")
        return cls(traces)

    async def block(self, request: Request, number: int, tx_hashes: list[str]) -> dict[int, list[Trace]] | None:
        """The block's traces by transaction position; None: decode this block from its logs."""
        if not self.available:
            if self.mode != "none":
                metrics.TRACE_FALLBACKS.labels("unsupported").inc()
            return None
        for kind in [self.kind] if self.kind else list(TRACERS):
            try:
                found = await self._with_retries(kind, request, number, tx_hashes)
            except (GethTraceError, KeyError, TypeError, ValueError) as exc:  # an answer that is not call traces
                self._fell_back(number, kind, exc)
                return None
            except NodeError as exc:
                if not is_unsupported(exc, TRACERS[kind].split()[0]):
                    self._fell_back(number, kind, exc)
                    return None
                if self.mode != "auto":
                    raise NodeUnsuitableError(
                        f"node.traces is {self.mode!r} but the node does not offer {TRACERS[kind]} ({exc}); set node.traces "
                        f"to auto (uses what the node has) or none; {DOCS}") from None
                continue  # auto: try the next tracer
            if self.kind is None:
                self.kind = kind
                log.info("call traces from the node", tracer=TRACERS[kind])
            if self.failing:
                log.info("call traces are back; decoding from traces again", block_number=number, tracer=TRACERS[kind],
                         blocks_decoded_from_logs=self.failing)
                self.failing = 0
            return found
        self.available = False
        metrics.TRACE_FALLBACKS.labels("unsupported").inc()
        log.warning(f"the node offers no call traces (neither trace_block nor debug_traceBlockByNumber with callTracer): "
                    f"decoding every block from event logs; {WITHOUT_TRACES} ({DOCS})", block_number=number)
        return None

    async def _with_retries(self, kind: str, request: Request, number: int, tx_hashes: list[str]) -> dict[int, list[Trace]]:
        from mevwatch.monitor import retry

        attempts = 0

        async def once() -> dict[int, list[Trace]]:
            nonlocal attempts
            attempts += 1
            return await self._fetch(kind, request, number, tx_hashes)

        def transient(exc: BaseException) -> bool:
            return isinstance(exc, NodeError) and not is_unsupported(exc, TRACERS[kind].split()[0])

        def on_retry(exc: BaseException, wait_s: float) -> None:
            log.debug("call traces failed; retrying", block_number=number, tracer=TRACERS[kind], error=str(exc)[:200],
                      retry_in_s=round(wait_s, 2))

        out = await retry.call_async(once, policy="trace", retry_if=transient, on_retry=on_retry,
                                     stop=lambda: attempts >= self.ATTEMPTS or self.stop())
        return out  # type: ignore[return-value]

    @staticmethod
    async def _fetch(kind: str, request: Request, number: int, tx_hashes: list[str]) -> dict[int, list[Trace]]:
        if kind == "geth":
            answer = await request("debug_traceBlockByNumber", [hex(number), {"tracer": "callTracer"}])
            return geth_block_traces(answer, tx_hashes)
        out: dict[int, list[Trace]] = {}
        for t in await request("trace_block", [hex(number)]) or []:
            tx_hash, pos, trace = parse_parity_trace(t)
            if tx_hash is not None and pos is not None:
                out.setdefault(pos, []).append(trace)
        return out

    def _fell_back(self, number: int, kind: str, exc: BaseException) -> None:
        metrics.TRACE_FALLBACKS.labels("error").inc()
        if self.failing == 0:
            log.warning(f"call traces failed; decoding this block from event logs ({WITHOUT_TRACES} in it); "
                        "the next block asks for traces again", block_number=number, tracer=TRACERS[kind],
                        error=redact_text(str(exc))[:200])
        else:
            log.debug("call traces failed again; block decoded from event logs", block_number=number, error=str(exc)[:200])
        self.failing += 1


RECEIPTS_MISSING = ("the node does not serve eth_getBlockReceipts ({error}), which mevwatch needs for every block's "
                    "logs (Geth 1.13+, Erigon, Reth, Nethermind and most providers serve it); " + DOCS)


async def fetch_block(request: Request, number: int, *, chain_id: int,
                      traces: bool | str | Tracer = True) -> tuple[Block, bool]:
    """Fetch block ``number`` with receipts and call traces (``traces``: a :class:`Tracer`, a mode,
    or True for auto). Returns (block, whether the node may still give traces)."""
    tracer = Tracer.of(traces)
    tag = hex(number)
    raw = await request("eth_getBlockByNumber", [tag, True])
    if raw is None:
        raise NodeError(f"node has no block {number}")
    try:
        receipts = await request("eth_getBlockReceipts", [tag]) or []
    except NodeError as exc:
        if is_unsupported(exc, "eth_getBlockReceipts"):
            raise NodeUnsuitableError(RECEIPTS_MISSING.format(error=getattr(exc, "rpc_message", exc))) from None
        raise
    by_hash = {r["transactionHash"]: r for r in receipts}
    traces_by_pos = await tracer.block(request, number, [t["hash"] for t in raw["transactions"]])
    base_fee = _int(raw.get("baseFeePerGas"))
    txs = []
    for t in raw["transactions"]:
        r = by_hash.get(t["hash"], {})
        pos = _int(t["transactionIndex"]) or 0
        tr = traces_by_pos.get(pos, []) if traces_by_pos is not None else []
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
        transactions=txs, chain_id=chain_id, has_traces=traces_by_pos is not None and bool(traces_by_pos or not txs),
        has_logs=True,
    )
    return block, tracer.available


class ChainFollower:
    """Turns head notifications into an ordered, gap-free stream of blocks and revert events."""

    def __init__(self, request: Request, *, chain_id: int, traces: bool | str | Tracer = True, max_reorg_depth: int = 64,
                 start_block: int | None = None, confirmations: int = 12):
        self.request = request
        self.confirmations = confirmations
        self.chain_id = chain_id
        self.tracer = Tracer.of(traces)
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
            block, _ = await fetch_block(self.request, n, chain_id=self.chain_id, traces=self.tracer)
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


def ws_provider(url: str, *, retries: int = 1) -> Any:
    """web3's WebSocket provider as mevwatch needs it: messages up to :data:`MAX_MESSAGE_BYTES`, and
    an error answer to a raw ``make_request`` returned to the caller (``{"error": ...}``). web3
    treats an error answer to a request it did not send through its own formatters as a "stray"
    error and raises it in the connection's listener task, which ends the listener: every error
    answer (a rate limit on ``trace_block``) would drop the connection."""
    from web3 import WebSocketProvider

    class _Provider(WebSocketProvider):
        def _raise_stray_errors_from_cache(self) -> None:  # answers go to the request that asked
            return None

    return _Provider(url, max_connection_retries=retries, websocket_kwargs={"max_size": MAX_MESSAGE_BYTES})


class NodeSource:
    """Follows one node. ``run(emit)`` calls ``emit(message)`` for every pending tx, block and revert.

    ``traces``: ``node.traces`` (auto, parity, geth, none; True is auto, False none). ``reached``
    turns true once a session is up (chain id read, head subscribed); a node never reached within
    ``connect_timeout_s`` ends ``run`` with :class:`NodeUnreachableError`. ``name`` is the URL with
    its credentials masked: what logs, errors and stored rows show.
    """

    def __init__(self, url: str, *, chain_id: int | None = None, traces: bool | str = True, max_reorg_depth: int = 64,
                 reconnect_max_s: float = 30.0, pending: bool = True, start_block: int | None = None,
                 confirmations: int = 12, on_fate: Callable[[Any], Any] | None = None, pending_ttl_s: float = 3600.0,
                 connect_timeout_s: float = 60.0, expect_chain_id: int | None = None, block_time_s: float | None = None):
        self.url = url
        self.block_time_s = block_time_s  # node.block_time_s; None: the chain's known one (monitor/chains.py)
        self.head_timeout_s: float | None = None  # no new block for this long: reconnect (set once the chain is known)
        self.name = redact_url(url)
        self.chain_id = chain_id
        self.expect_chain_id = expect_chain_id  # a chain id set on purpose: a node of another chain is refused
        self.tracer = Tracer.of(traces)
        self.tracer.stop = lambda: self._stop.is_set()
        self.max_reorg_depth = max_reorg_depth
        self.reconnect_max_s = reconnect_max_s
        self.pending = pending
        self.start_block = start_block
        self.confirmations = confirmations
        self.on_fate = on_fate
        self.connect_timeout_s = connect_timeout_s
        self.fates = FateTracker(pending_ttl_s)
        self.follower: ChainFollower | None = None
        self.reconnects = 0
        self.reached = False
        self.last_error: str | None = None  # why the last connection failed (credential-free)
        self.pending_full = True  # the node sends full pending transactions (else hashes, fetched one by one)
        self._stop = asyncio.Event()
        self._dead_letter: Callable[[str, str, bytes | None], Any] | None = None

    def stop(self) -> None:
        self._stop.set()

    def unreached_error(self) -> NodeUnreachableError:
        """The error for a run that ended without ever reaching the node."""
        why = self.last_error or "stopped before the first connection completed"
        return NodeUnreachableError(f"never reached the node at {self.name}: {why}; `mevwatch doctor --rpc URL` checks a node ({DOCS})")

    async def run(self, emit: Callable[[Message], Any],
                  dead_letter: Callable[[str, str, bytes | None], Any] | None = None) -> None:
        """Follow the node until ``stop()``. Bad node payloads go to ``dead_letter(source, reason, raw)``."""
        from web3 import AsyncWeb3

        from mevwatch.monitor.retry import policy

        check_ws_url(self.url)
        self._dead_letter = dead_letter
        started = time.monotonic()
        attempt = 0
        while not self._stop.is_set():
            try:
                async with AsyncWeb3(ws_provider(self.url)) as w3:
                    attempt = 0
                    await self._session(w3, emit)
            except asyncio.CancelledError:
                raise
            except (ReorgTooDeepError, NodeUnsuitableError):
                raise
            except Exception as exc:  # noqa: BLE001 - any transport failure: reconnect and backfill
                if self._stop.is_set():
                    break
                self.last_error = describe_error(exc)
                if not self.reached:
                    status = handshake_status(exc)
                    if status is not None and 400 <= status < 500 and status not in (408, 425, 429):
                        hint = " (a wrong key or path?)" if status in (401, 403, 404) else ""
                        raise NodeUnreachableError(f"the node at {self.name} refused the WebSocket connection with HTTP "
                                                   f"{status}{hint}; {DOCS}") from None
                    if time.monotonic() - started >= self.connect_timeout_s:
                        raise NodeUnreachableError(f"could not reach the node at {self.name} within "
                                                   f"{self.connect_timeout_s:g} s: {self.last_error}; {DOCS}") from None
                attempt += 1
                self.reconnects += 1
                metrics.RECONNECTS.inc()
                backoff = policy("node").capped(self.reconnect_max_s)
                delay = backoff.delay(attempt)
                metrics.RETRIES.labels(backoff.name).inc()
                log.warning("node connection lost; reconnecting" if self.reached else "cannot reach the node; retrying",
                            url=self.name, error=self.last_error, retry_in_s=round(delay, 2))
                try:
                    await asyncio.wait_for(self._stop.wait(), delay)
                except asyncio.TimeoutError:
                    pass

    async def _session(self, w3, emit) -> None:
        from web3.exceptions import TimeExhausted, Web3RPCError

        async def request(method: str, params: list) -> Any:
            try:
                resp = await w3.provider.make_request(method, params)
            except (TimeExhausted, asyncio.TimeoutError):
                raise NodeError(f"{method}: no answer from the node in time") from None
            if "error" in resp:
                raise RpcError(method, resp["error"])
            return resp.get("result")

        if self.chain_id is None:
            self.chain_id = _int(await request("eth_chainId", []))
        if self.expect_chain_id is not None and self.chain_id != self.expect_chain_id:
            raise NodeUnsuitableError(f"the node at {self.name} serves chain {self.chain_id}, but chain_id is "
                                      f"{self.expect_chain_id}: point node.rpc at that chain's node, or set chain_id "
                                      f"to {self.chain_id} (its messages would be dead letters for detection)")
        self.head_timeout_s = chains.head_timeout_s(chains.block_time_s(self.chain_id or 1, self.block_time_s))
        if self.follower is None:
            self.follower = ChainFollower(request, chain_id=self.chain_id or 1, traces=self.tracer,
                                          max_reorg_depth=self.max_reorg_depth, start_block=self.start_block,
                                          confirmations=self.confirmations)
        else:
            self.follower.request = request
        try:
            heads_sub = await w3.eth.subscribe("newHeads")
        except Web3RPCError as exc:
            raise NodeUnsuitableError(f"the node at {self.name} refused eth_subscribe newHeads ({redact_text(str(exc))[:200]}); "
                                      f"mevwatch follows the chain head through it; {DOCS}") from None
        pending_sub = await self._subscribe_pending(w3) if self.pending else None
        self.reached = True
        # catch up (backfill whatever was mined while we were away)
        await self._on_head(_int(await request("eth_blockNumber", [])) or 0, emit)
        log.info("following node", url=self.name, chain_id=self.chain_id, from_block=self.follower.last)
        stop_wait = asyncio.ensure_future(self._stop.wait())
        messages = w3.socket.process_subscriptions().__aiter__()
        last_head = time.monotonic()
        try:
            while True:
                msg = await self._next(messages, last_head)
                if msg is None or self._stop.is_set():
                    return
                sub, result = msg["subscription"], msg["result"]
                if sub == heads_sub:
                    await self._on_head(_int(result["number"]) or 0, emit)
                    last_head = time.monotonic()  # after the head's work (fetch, traces, the bus): that is not silence
                elif sub == pending_sub:
                    seen = time.time_ns()
                    if isinstance(result, (str, bytes)) or hasattr(result, "hex") and not hasattr(result, "get"):
                        result = await request("eth_getTransactionByHash", [_hex(result)])
                        if result is None:
                            continue
                    try:
                        p = normalize_pending(result, chain_id=self.chain_id or 1, source_node=self.name, first_seen_ns=seen)
                    except (KeyError, TypeError, ValueError, AttributeError) as exc:
                        if self._dead_letter is not None:
                            await _call_dl(self._dead_letter, self.name, f"unreadable pending transaction: {exc!r}", repr(result).encode())
                        continue
                    p.replaces = self.fates.on_pending(p)
                    await _call(emit, p)
        finally:
            stop_wait.cancel()

    async def _next(self, messages: Any, last_head: float) -> Any:
        """The next subscription message (None when the stream ends). A node that sends no new block
        for ``head_timeout_s`` (a stalled subscription: the socket stays open, pending transactions may
        even flow) raises NodeError: :meth:`run` reconnects, and backfills what it missed."""
        if self.head_timeout_s is None:
            try:
                return await messages.__anext__()
            except StopAsyncIteration:
                return None
        left = self.head_timeout_s - (time.monotonic() - last_head)
        try:
            if left <= 0:
                raise asyncio.TimeoutError
            return await asyncio.wait_for(messages.__anext__(), left)
        except StopAsyncIteration:
            return None
        except asyncio.TimeoutError:
            metrics.HEAD_STALLS.inc()
            raise NodeError(f"no new block from the node for {self.head_timeout_s:g} s (ten block times of chain "
                            f"{self.chain_id}; node.block_time_s sets it)") from None

    async def _subscribe_pending(self, w3) -> Any:
        """Full pending transactions; else hashes (each fetched); else none, with one warning each."""
        from web3.exceptions import Web3RPCError

        if self.pending_full:
            try:
                return await w3.eth.subscribe("newPendingTransactions", True)
            except Web3RPCError as exc:
                self.pending_full = False
                log.warning("the node refused full pending transactions; subscribing to their hashes and fetching each "
                            "(slower; some are gone before they are fetched)", url=self.name, error=redact_text(str(exc))[:200])
        try:
            return await w3.eth.subscribe("newPendingTransactions")
        except Web3RPCError as exc:
            self.pending = False
            log.warning(f"the node offers no pending transactions: no mempool alerts (pending stage), attacks are seen once "
                        f"included ({DOCS})", url=self.name, error=redact_text(str(exc))[:200])
            return None

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
