"""``mevwatch replay --rpc URL --from N --to M``: fetch a block range from a node and replay it
through the engine (monitor/replay.py's :class:`Replayer`)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import IO, Any

from mevwatch.monitor.errors import NodeError
from mevwatch.monitor.replay import Replayer, ReplaySummary
from mevwatch.streams.node import fetch_block


async def _fetch_range(url: str, start: int, end: int, chain_id: int, handle: Callable[[Any], None]) -> None:
    from web3 import AsyncHTTPProvider, AsyncWeb3, WebSocketProvider
    from web3.types import RPCEndpoint

    provider = WebSocketProvider(url) if url.startswith(("ws://", "wss://")) else AsyncHTTPProvider(url)
    w3 = AsyncWeb3(provider)
    if url.startswith(("ws://", "wss://")):
        await w3.provider.connect()

    async def request(method: str, params: list) -> Any:
        try:
            resp = await w3.provider.make_request(RPCEndpoint(method), params)
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
               on_block: Callable[[int], None] | None = None, chain_id: int = 1, scorer: Any = None) -> ReplaySummary:
    if end < start:
        raise NodeError(f"--to ({end}) is before --from ({start})")
    rep = Replayer(chain_id=chain_id, out=out, on_block=on_block, scorer=scorer)
    asyncio.run(_fetch_range(url, start, end, chain_id, rep.message))
    return rep.finish()
