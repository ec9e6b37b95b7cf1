"""Counterfactual re-execution on a node: what a sandwich's victim would have received without the
front-run (issue 17; docs/detection.md, "Victim loss").

The block's transactions up to the victim are executed again on the parent block's state with
``eth_simulateV1`` (``validation: false``: signatures, nonces and fees are not checked; the block
number, time and fee recipient are the real block's), leaving out the attacker's front-runs; the
victim's output is then the token its pool sent in the victim's own transaction (ERC-20
``Transfer`` logs from the pool, in the victim's token out). That works for every pool type that
pays out itself (constant product, concentrated liquidity, Curve-like); a venue that pays from
elsewhere (Balancer's Vault) gives no number, and the loss stays ``unavailable`` with the reason.

The node must serve ``eth_simulateV1`` (Geth, Reth, Nethermind, Erigon, anvil; docs/node.md) and
hold the parent block's state (an archive node for old blocks).
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from mevwatch.monitor.errors import NodeError
from mevwatch.monitor.types import Block

TRANSFER_TOPIC = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
METHOD = "eth_simulateV1"

Request = Callable[[str, list], Any]
_HEX_WORD = re.compile(r"0x[0-9a-fA-F]{1,64}")


def http_request(url: str, timeout: float = 30.0) -> Request:
    """A synchronous JSON-RPC ``request(method, params)`` to an http(s) node; NodeError on failure
    (the node is named without credentials)."""
    from mevwatch.monitor.log import redact_text, redact_url

    ids = itertools.count(1)
    shown = redact_url(url)

    def request(method: str, params: list) -> Any:
        body = json.dumps({"jsonrpc": "2.0", "id": next(ids), "method": method, "params": params}).encode()
        req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"}, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                resp = json.loads(r.read())
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise NodeError(f"{method} to {shown} failed: {redact_text(str(exc))[:300]}") from None
        if not isinstance(resp, dict):
            raise NodeError(f"{method} to {shown}: malformed answer")
        if "error" in resp:
            raise NodeError(f"{method} failed: {redact_text(str(resp['error']))[:300]}")
        return resp.get("result")

    return request


def ws_request(url: str, timeout: float = 30.0) -> Request:
    """:func:`http_request` over a WebSocket (one connection, opened on first use, reopened after
    an error): the daemon's node URL is ws(s)://."""
    from websockets.exceptions import WebSocketException
    from websockets.sync.client import ClientConnection, connect

    from mevwatch.monitor.log import redact_text, redact_url

    ids = itertools.count(1)
    shown = redact_url(url)
    conn: list[ClientConnection] = []
    lock = threading.Lock()  # one request at a time on the connection

    def request(method: str, params: list) -> Any:
        with lock:
            return _ws_call(method, params)

    def _ws_call(method: str, params: list) -> Any:
        rid = next(ids)
        try:
            if not conn:
                conn.append(connect(url, open_timeout=timeout, max_size=2**26))
            conn[0].send(json.dumps({"jsonrpc": "2.0", "id": rid, "method": method, "params": params}))
            while True:  # answers to earlier, timed-out requests are skipped
                resp = json.loads(conn[0].recv(timeout=timeout))
                if isinstance(resp, dict) and resp.get("id") == rid:
                    break
        except (WebSocketException, OSError, TimeoutError, ValueError) as exc:
            if conn:
                conn.pop().close()
            raise NodeError(f"{method} to {shown} failed: {redact_text(str(exc))[:300]}") from None
        if "error" in resp:
            raise NodeError(f"{method} failed: {redact_text(str(resp['error']))[:300]}")
        return resp.get("result")

    return request


def node_request(url: str, timeout: float = 30.0) -> Request:
    return ws_request(url, timeout) if url.startswith(("ws://", "wss://")) else http_request(url, timeout)


class NodeSimulator:
    """The loss oracle of the sandwich rule (monitor/detect/common.py's ``LossOracle``) on a node.
    ``every_pool``: re-execute where an exact model exists too (``--reexecute all``, audits). A node
    that lacks ``eth_simulateV1`` is asked once."""

    method = "reexecution"

    def __init__(self, request: Request, every_pool: bool = False):
        self.request = request
        self.every_pool = every_pool
        self.simulations = 0
        self.unsupported: str | None = None

    def victim_output(self, block: Block, drop: frozenset[str], victim_hash: str, pool: str,
                      token_out: str) -> tuple[int | None, str]:
        """(amount of ``token_out`` that ``pool`` pays in the victim's transaction when the
        transactions in ``drop`` are left out, or None; the detail: the node method, or why not)."""
        calls: list[dict[str, str]] = []
        victim = None
        for tx in sorted(block.transactions, key=lambda t: t.position):
            if tx.hash == victim_hash:
                victim = tx
            elif tx.hash in drop:
                continue
            call = {"from": tx.from_address, "input": tx.input, "value": hex(tx.value)}
            if tx.to_address is not None:
                call["to"] = tx.to_address
            calls.append(call)
            if victim is not None:
                break
        if victim is None:
            return None, "the victim's transaction is not in the block"
        overrides = {"number": hex(block.number), "time": hex(block.timestamp)}
        if block.miner:
            overrides["feeRecipient"] = block.miner
        if block.base_fee_per_gas is not None:
            overrides["baseFeePerGas"] = hex(block.base_fee_per_gas)
        params = [{"blockStateCalls": [{"blockOverrides": overrides, "calls": calls}], "validation": False},
                  hex(block.number - 1)]
        if self.unsupported is not None:
            return None, self.unsupported
        try:
            result = self.request(METHOD, params)
            self.simulations += 1
            answered = result[0]["calls"]
            last = answered[-1]
            status, logs = last.get("status"), last.get("logs")
        except NodeError as exc:
            why = f"{METHOD} failed: {str(exc)[:200]}"
            text = str(exc).lower()
            # only "no such method" turns re-execution off for the run; "header not found" (state not
            # kept for that block) and other errors cost this victim only
            if "-32601" in text or "method not found" in text or "does not exist" in text or "not supported" in text:
                self.unsupported = f"the node does not serve {METHOD}"
                why = self.unsupported
            return None, why
        except (TypeError, KeyError, IndexError, AttributeError):
            return None, f"{METHOD}: malformed answer"
        if not isinstance(answered, list) or len(answered) != len(calls):
            return None, f"{METHOD}: answered {len(answered) if isinstance(answered, list) else 'no'} calls for {len(calls)}"
        if status not in ("0x1", 1, True):
            return None, "the victim's transaction fails without the front-run (no counterfactual output)"
        out = paid_out(logs, pool, token_out)
        if out is None:
            return None, f"{METHOD}: malformed logs in the answer"
        if out == 0:
            return None, "the pool pays no token out itself in the re-execution (a vault venue?)"
        return out, METHOD


def paid_out(logs: Any, pool: str, token: str) -> int | None:
    """What ``pool`` paid out in ``token`` (ERC-20 ``Transfer`` logs from it), in a node's log
    objects; None when they are malformed (not a list, non-hex or negative amounts)."""
    if not isinstance(logs, list):
        return None
    pool_topic = "0x" + "0" * 24 + pool[2:].lower()
    out = 0
    for log in logs:
        try:
            topics = [t.lower() for t in log["topics"]]
            data = log["data"]
            if (str(log["address"]).lower() == token and len(topics) == 3 and topics[0] == TRANSFER_TOPIC
                    and topics[1] == pool_topic):
                if not (isinstance(data, str) and _HEX_WORD.fullmatch(data)):
                    return None
                out += int(data[2:], 16)
        except (KeyError, TypeError, ValueError, AttributeError):
            return None
    return out
