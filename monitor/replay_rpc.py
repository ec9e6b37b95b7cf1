"""``mevwatch replay --rpc URL --from N --to M``: fetch a block range from a node and replay it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import IO, Any

from monitor.decode import BlockDecoder
from monitor.errors import NodeError
from monitor.replay import ReplaySummary, process_block
from streams.node import fetch_block


async def _fetch_range(url: str, start: int, end: int, chain_id: int, handle: Callable[[Any], None]) -> None:
    from web3 import AsyncHTTPProvider, AsyncWeb3, WebSocketProvider

    provider = WebSocketProvider(url) if url.startswith(("ws://", "wss://")) else AsyncHTTPProvider(url)
    w3 = AsyncWeb3(provider)
    if url.startswith(("ws://", "wss://")):
        await w3.provider.connect()

    async def request(method: str, params: list) -> Any:
        try:
            resp = await w3.provider.make_request(method, params)
        except Exception as exc:  # noqa: BLE001
            raise NodeError(f"{method} to {url} failed: {exc}") from None
        if "error" in resp:
            raise NodeError(f"{method} failed: {resp['error']}")
        return resp.get("result")

    traces = True
    try:
        for n in range(start, end + 1):
            block, traces = await fetch_block(request, n, chain_id=chain_id, traces=traces)
            handle(block)
    finally:
        if url.startswith(("ws://", "wss://")):
            await w3.provider.disconnect()


def replay_rpc(url: str, start: int, end: int, *, out: IO[bytes] | None = None,
               on_block: Callable[[int], None] | None = None, chain_id: int = 1) -> ReplaySummary:
    if end < start:
        raise NodeError(f"--to ({end}) is before --from ({start})")
    summary = ReplaySummary()
    decoder = BlockDecoder()
    t0 = time.perf_counter()

    def handle(block) -> None:
        stats, alerts = process_block(decoder, block)
        summary.add_block(block.number, len(block.transactions), stats, [a.kind for a in alerts])
        if out is not None:
            for a in alerts:
                out.write(a.to_jsonl())
        if on_block:
            on_block(block.number)

    asyncio.run(_fetch_range(url, start, end, chain_id, handle))
    summary.elapsed_s = time.perf_counter() - t0
    return summary
