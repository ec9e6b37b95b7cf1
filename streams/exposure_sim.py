"""Exposure of a pending swap by simulation on a node (issue 17; monitor/detect/exposure.py).

The pending transaction is run as it is against the node's latest state with ``eth_simulateV1``
(``validation: false``: signature, nonce and fees are not checked), and the logs it would emit are
decoded like a block's (monitor/decode): the swaps of every hop, with the V2 pairs' reserves and
the V3 pools' price and liquidity after each. A concentrated-liquidity pool's fee is read once with
``eth_call fee()`` and kept. Any router works (the Universal Router, aggregators, bots), since
only the pools' own events are read.

One simulation per pending swap the built-in model cannot estimate from blocks (V3 pools,
multi-hop routes, pairs not yet seen); a node without ``eth_simulateV1`` is asked once.
"""

from __future__ import annotations

import re
from typing import Any

from mevwatch.monitor.decode import BlockDecoder
from mevwatch.monitor.detect.exposure import Hop, hop_from_swap
from mevwatch.monitor.errors import NodeError
from mevwatch.monitor.types import Block, Log, PendingTx, Transaction
from mevwatch.streams.simulate import METHOD, Request

SEL_FEE = "0xddca3f43"  # fee()
FEE_CACHE_MAX = 50_000
_HEX = re.compile(r"0x[0-9a-fA-F]*")
_ADDR = re.compile(r"0x[0-9a-fA-F]{40}")
_TOPIC = re.compile(r"0x[0-9a-fA-F]{64}")


def _logs(raw: Any) -> list[Log] | None:
    """A node's log objects as :class:`Log`, or None when any is malformed."""
    if not isinstance(raw, list):
        return None
    logs = []
    for i, lg in enumerate(raw):
        try:
            addr, topics, data = lg["address"], lg["topics"], lg["data"]
        except (KeyError, TypeError):
            return None
        if not (isinstance(addr, str) and _ADDR.fullmatch(addr) and isinstance(data, str) and _HEX.fullmatch(data)
                and isinstance(topics, list) and all(isinstance(t, str) and _TOPIC.fullmatch(t) for t in topics)):
            return None
        logs.append(Log(addr.lower(), tuple(t.lower() for t in topics), data.lower(), i))
    return logs


class NodeExposure:
    """The exposure oracle of the mempool rule (``MempoolWatcher.exposure_oracle``) on a node."""

    method = "simulation"

    def __init__(self, request: Request, chain_id: int = 1):
        self.request = request
        self.chain_id = chain_id
        self.fees: dict[str, int | None] = {}
        self.simulations = 0
        self.unsupported: str | None = None

    def fee_ppm(self, pool: str) -> int | None:
        if pool not in self.fees:
            if len(self.fees) >= FEE_CACHE_MAX:  # pools are anyone's contracts: the cache stays bounded
                self.fees.clear()
            try:
                out = self.request("eth_call", [{"to": pool, "data": SEL_FEE}, "latest"])
                self.fees[pool] = int(out, 16) if isinstance(out, str) and _TOPIC.fullmatch(out) else None
            except NodeError:
                self.fees[pool] = None
        return self.fees[pool]

    def hops(self, p: PendingTx) -> tuple[list[Hop] | None, str]:
        """The route's hops with their state before the swap, or None and why not."""
        if self.unsupported is not None:
            return None, self.unsupported
        if p.to_address is None:
            return None, "a contract creation"
        call = {"from": p.from_address, "to": p.to_address, "input": p.input, "value": hex(p.value)}
        if p.gas:
            call["gas"] = hex(p.gas)
        params = [{"blockStateCalls": [{"calls": [call]}], "validation": False}, "latest"]
        try:
            result = self.request(METHOD, params)
            self.simulations += 1
            (answer,) = result[0]["calls"]
            status, raw_logs = answer.get("status"), answer.get("logs")
        except NodeError as exc:
            text = str(exc).lower()
            if "-32601" in text or "method not found" in text or "does not exist" in text or "not supported" in text:
                self.unsupported = f"the node does not serve {METHOD}"
                return None, self.unsupported
            return None, f"{METHOD} failed: {str(exc)[:200]}"
        except (TypeError, KeyError, IndexError, AttributeError, ValueError):
            return None, f"{METHOD}: malformed answer"
        if status not in ("0x1", 1, True):
            return None, "the swap fails against the current state"
        logs = _logs(raw_logs)
        if logs is None:
            return None, f"{METHOD}: malformed logs in the answer"
        tx = Transaction(p.hash, 0, p.from_address, p.to_address, p.input, p.value, logs=logs)
        decoded = BlockDecoder().decode(Block(0, None, None, 0, None, None, [tx], chain_id=self.chain_id, has_logs=True))
        swaps = sorted(decoded.swaps, key=lambda s: s.order)
        if not swaps:
            return None, "no swap in the simulation's logs"
        hops: list[Hop] = []
        for s in swaps:
            hop = hop_from_swap(s, self.fee_ppm(s.pool) if s.protocol == "uniswap_v3" else None)
            if isinstance(hop, str):
                return None, hop
            hops.append(hop)
        for a, b in zip(hops, hops[1:]):
            if a.token_out != b.token_in:
                return None, "the swaps do not form one route"
        return hops, METHOD
