"""Exposure of a pending swap by simulation on a node (issue 17; monitor/detect/exposure.py).

The pending transaction is run as it is against the node's latest state with ``eth_simulateV1``
(``validation: false``: signature, nonce and fees are not checked), and the logs it would emit are
decoded like a block's (monitor/decode): the swaps of every hop, with the V2 pairs' reserves and
the V3 pools' price and liquidity after each. A concentrated-liquidity pool's fee is read once with
``eth_call fee()`` and kept. Any router works (the Universal Router, aggregators, bots): the pools'
events are read, and every amount they claim must have moved in the token contracts' own
``Transfer`` logs (a fake pool's events are its own word; it cannot move WETH it does not hold).

One simulation per pending swap the built-in model cannot estimate from blocks (V3 pools,
multi-hop routes, pairs not yet seen); a node without ``eth_simulateV1`` is asked once.
"""

from __future__ import annotations

import re
import time
from typing import Any

from mevwatch.monitor.decode import BlockDecoder
from mevwatch.monitor.detect.exposure import Hop, hop_from_swap
from mevwatch.monitor.errors import NodeError
from mevwatch.monitor.log import get_logger
from mevwatch.monitor.types import Block, Log, PendingTx, Transaction
from mevwatch.streams.simulate import METHOD, Request

SEL_FEE = "0xddca3f43"  # fee()
FEE_CACHE_MAX = 50_000
GAS_CAP = 3_000_000  # a swap route needs far less; an attacker's 30M-gas call is cut short
MAX_HOPS = 8
STALE_NS = 30 * 10**9  # a pending transaction first seen longer ago is not simulated on today's state
BREAKER_ERRORS, BREAKER_PAUSE_S = 3, 60.0  # consecutive node errors that pause simulations, and for how long
_HEX = re.compile(r"0x[0-9a-fA-F]*")
_ADDR = re.compile(r"0x[0-9a-fA-F]{40}")
_TOPIC = re.compile(r"0x[0-9a-fA-F]{64}")
log = get_logger("mevwatch.exposure")


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
        self.errors = 0  # consecutive node errors
        self.paused_until = 0.0
        self.last_block: int | None = None  # the block the last simulation ran on (the evidence names it)
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

    def hops(self, p: PendingTx, recipient: str | None = None) -> tuple[list[Hop] | None, str]:
        """The route's hops with their state before the swap, or None and why not. ``recipient``:
        who the call names to receive the output (its floor is checked against what it receives)."""
        if self.unsupported is not None:
            return None, self.unsupported
        if p.to_address is None:
            return None, "a contract creation"
        if time.time_ns() - p.first_seen_ns > STALE_NS:
            return None, "seen too long ago: the node's state has moved on"  # a backlog, a takeover
        if time.monotonic() < self.paused_until:
            return None, "paused after node errors"
        call = {"from": p.from_address, "to": p.to_address, "input": p.input, "value": hex(p.value),
                "gas": hex(min(p.gas or GAS_CAP, GAS_CAP))}
        params = [{"blockStateCalls": [{"calls": [call]}], "validation": False}, "latest"]
        self.last_block = None
        try:
            result = self.request(METHOD, params)
            self.simulations += 1
            (answer,) = result[0]["calls"]
            status, raw_logs = answer.get("status"), answer.get("logs")
            number = result[0].get("number")
        except NodeError as exc:
            text = str(exc).lower()
            if "-32601" in text or "method not found" in text or (
                    METHOD.lower() in text and ("does not exist" in text or "not available" in text)):
                self.unsupported = f"the node does not serve {METHOD}"
                log.warning("pending-swap exposure by simulation is off: the node does not serve it", method=METHOD)
                return None, self.unsupported
            self.errors += 1
            if self.errors >= BREAKER_ERRORS:  # a failing or slow node must not hold up the mempool path
                self.paused_until, self.errors = time.monotonic() + BREAKER_PAUSE_S, 0
            return None, f"{METHOD} failed"
        except (TypeError, KeyError, IndexError, AttributeError, ValueError):
            return None, f"{METHOD}: malformed answer"
        self.errors = 0
        if isinstance(number, str) and _HEX.fullmatch(number) and len(number) > 2:
            self.last_block = int(number, 16)
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
        if len(swaps) > MAX_HOPS:
            return None, f"a route of more than {MAX_HOPS} swaps"
        # every amount an event claims must have moved: a pool's events are its own word, the tokens'
        # Transfer logs come from the token contracts (a fake pool cannot move WETH it does not hold)
        into: dict[tuple[str, str], int] = {}
        out_of: dict[tuple[str, str], int] = {}
        for t in decoded.transfers:
            into[(t.to_address, t.token)] = into.get((t.to_address, t.token), 0) + t.amount
            out_of[(t.from_address, t.token)] = out_of.get((t.from_address, t.token), 0) + t.amount
        hops: list[Hop] = []
        for s in swaps:
            if s.amount_in > into.get((s.pool, s.token_in), 0) or s.amount_out > out_of.get((s.pool, s.token_out), 0):
                return None, "a pool's event claims more than its token transfers moved"
            hop = hop_from_swap(s, self.fee_ppm(s.pool) if s.protocol == "uniswap_v3" else None)
            if isinstance(hop, str):
                return None, hop
            hops.append(hop)
        for a, b in zip(hops, hops[1:]):
            if a.token_out != b.token_in:
                return None, "the swaps do not form one route"
        if recipient is not None:
            got = into.get((recipient, hops[-1].token_out))
            if got is not None and got < hops[-1].amount_out:
                return None, "the recipient receives less than the last pool pays (a fee after the swap)"
        return hops, METHOD
