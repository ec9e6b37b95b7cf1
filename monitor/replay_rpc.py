"""``mevwatch replay --rpc URL --from N --to M``: fetch a block range from a node and replay it
through the engine (monitor/replay.py's :class:`Replayer`).

Each block the node returns is checked as a recorded one is (the envelope's validation: every
field typed and in range, named when not) before it reaches the engine: a malformed or
out-of-range block is rejected (``block N`` of the node, the field and why, its envelope as the
raw text of the dead letter) and the range goes on. Blocks past the node's head (``--to`` too far)
are one rejection naming them, after the blocks that exist were replayed (the summary says so). A
node that cannot be reached or lacks a method mevwatch needs still ends the replay (exit 2).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from urllib.parse import urlsplit
from typing import IO, Any

from mevwatch.monitor.errors import InputError, NodeError
from mevwatch.monitor.replay import Replayer, ReplaySummary, store_sinks
from mevwatch.monitor.shard import Shard
from mevwatch.monitor.store.progress import ReplayProgress
from mevwatch.monitor.types import Block
from mevwatch.streams import envelope
from mevwatch.streams.node import fetch_block

Handle = Callable[[Block, tuple[str, str]], None]
Reject = Callable[[str, str, str, bytes | None], None]


def node_name(url: str) -> str:
    """The node as rejections name it: scheme, host and port only (a provider key in the path, the
    query or the userinfo never reaches the dead-letter file)."""
    u = urlsplit(url)
    try:
        port = f":{u.port}" if u.port else ""
    except ValueError:
        port = ""
    host = u.hostname or ""
    return f"{u.scheme}://{f'[{host}]' if ':' in host else host}{port}"


def checked_block(block: Block, source: str, position: str) -> tuple[Block | None, str | None, bytes | None]:
    """``block`` as the envelope's validation reads it back: (block, None, None), or (None, why, raw)."""
    try:
        text = json.dumps(envelope.block_json(block))  # the standard library writes integers of any size
    except (TypeError, ValueError, AttributeError) as exc:
        return None, f"malformed block from the node: {exc!r}"[:300], None
    try:
        msg = envelope.decode(text, source=source, position=position)
    except InputError as exc:
        return None, exc.reason, text.encode()
    assert isinstance(msg, Block)
    return msg, None, None


async def _fetch_range(url: str, start: int, end: int, chain_id: int, handle: Handle, reject: Reject,
                       traces: str = "auto") -> None:
    from web3 import AsyncHTTPProvider, AsyncWeb3
    from web3.types import RPCEndpoint

    from mevwatch.monitor.log import redact_text, redact_url
    from mevwatch.streams.node import Tracer, ws_provider

    ws = url.startswith(("ws://", "wss://"))
    shown = redact_url(url)  # errors name the node without its credentials
    # ws_provider: messages up to a mainnet block's size, error answers returned to the request
    w3 = AsyncWeb3(ws_provider(url) if ws else AsyncHTTPProvider(url))
    if ws:
        try:
            await w3.provider.connect()
        except Exception as exc:  # noqa: BLE001 - web3's connection errors carry the full URL
            raise NodeError(f"cannot connect to {shown}: {redact_text(str(exc))[:300]}") from None

    async def request(method: str, params: list) -> Any:
        try:
            resp = await w3.provider.make_request(RPCEndpoint(method), params)
        except Exception as exc:  # noqa: BLE001
            raise NodeError(f"{method} to {shown} failed: {redact_text(str(exc))[:300]}") from None
        if "error" in resp:
            raise NodeError(f"{method} failed: {redact_text(str(resp['error']))[:300]}")
        return resp.get("result")

    source = node_name(url)
    tracer = Tracer(traces)  # one for the range: it remembers which tracer the node offers
    try:
        for n in range(start, end + 1):
            where = f"block {n}"
            try:
                block, _ = await fetch_block(request, n, chain_id=chain_id, traces=tracer)
            except NodeError as exc:
                if str(exc).startswith("node has no block"):  # --to past the node's head: what exists is replayed
                    reject(source, f"blocks {n}..{end}", f"the node has no such blocks yet (its head is below {n}); "
                           f"the replay stopped after block {n - 1}", None)
                    break
                raise  # the node, not the block: unreachable, a method it lacks
            except InputError as exc:
                reject(source, where, exc.reason, None)
                continue
            except Exception as exc:  # noqa: BLE001 - an answer that is not a block costs that block
                reject(source, where, f"malformed answer from the node: {exc!r}"[:300], None)
                continue
            good, why, raw = checked_block(block, source, where)
            if good is None:
                reject(source, where, why or "malformed block", raw)
                continue
            handle(good, (source, where))
    finally:
        await w3.provider.disconnect()  # also the HTTP provider's session (else aiohttp: "Unclosed client session")


def replay_rpc(url: str, start: int, end: int, *, out: IO[bytes] | None = None,
               on_block: Callable[[int], None] | None = None, chain_id: int = 1, scorer: Any = None,
               traces: str = "auto", decoders: str = "full", reexecute: str = "auto", store: Any = None,
               shard: Shard | None = None, checkpoint: str | None = None,
               on_start: Callable[[int, int], None] | None = None, native_wrapper: str | None = None) -> ReplaySummary:
    """``reexecute``: victim losses by re-execution on the node (streams/simulate.py) where no exact
    model of the pool exists (auto), for every pool (all: the model's number kept beside), or off.

    Versions are block-numbered (monitor/lifecycle.py), so ``shard`` (this process's slice of the
    range, monitor/shard.py) writes exactly the rows a whole run writes. ``checkpoint`` (with
    ``store``): progress recorded in the store after every write, and a run with the same name,
    shard and range resumes where the last one stopped (monitor/store/progress.py). ``on_start``
    is told the blocks this run will fetch (first, last) before it fetches them."""
    if end < start:
        raise NodeError(f"--to ({end}) is before --from ({start})")
    label = (shard or Shard(0, 1)).label
    mine = (shard or Shard(0, 1)).block_range(start, end)
    if mine is None:  # more shards than blocks: this one has none
        if on_start is not None:
            on_start(start, start - 1)
        return ReplaySummary()
    first, last = mine
    progress = None
    if checkpoint is not None:
        if store is None:
            raise NodeError("--checkpoint needs the store (--store or --clickhouse): progress is kept there")
        progress = ReplayProgress(store, checkpoint, label, chain_id, first, last)
        first = progress.resume_from()
    if on_start is not None:
        on_start(first, last)
    if first > last:  # this checkpoint's shard is done
        return ReplaySummary()
    oracle = None
    if reexecute != "off":
        from mevwatch.streams.simulate import NodeSimulator, node_request

        oracle = NodeSimulator(node_request(url), every_pool=reexecute == "all")
    rep = Replayer(chain_id=chain_id, out=out, on_block=on_block, scorer=scorer, decoders=decoders, oracle=oracle,
                   by_block=True, sinks=store_sinks(store) if store is not None else None,
                   on_written=progress.record if progress is not None else None, native_wrapper=native_wrapper)
    def reject(source: str, where: str, why: str, raw: bytes | None) -> None:
        rep.problem(source, where, why, raw)
        head = where.removeprefix("blocks ").removeprefix("block ").split("..")[0]
        if head.isdigit():  # "block N" / "blocks N..M": a checkpoint stops below it, so a resumed run retries it
            rep.rejected_block(int(head))

    asyncio.run(_fetch_range(url, first, last, chain_id, lambda b, origin: rep.message(b, origin), reject, traces))
    return rep.finish()
