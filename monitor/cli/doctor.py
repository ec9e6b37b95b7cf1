"""``mevwatch doctor --rpc URL``: what a node offers mevwatch, probed method by method.

The probes, in order (docs/node.md says why each matters):

===================  ==============================================================  ========
check                how                                                             run needs
===================  ==============================================================  ========
websocket            the URL is ws:// or wss:// (http(s):// is probed over HTTP too)  yes
connect              open the connection                                             yes
chain id             ``eth_chainId``                                                 yes
new heads            ``eth_subscribe newHeads``                                      yes
pending txs          ``eth_subscribe newPendingTransactions true`` (else without     no
                     ``true``); then up to ``--wait`` seconds for one, to see
                     whether the node sends full transactions or only hashes
block receipts       ``eth_getBlockReceipts`` of the head block                      yes
trace_block          ``trace_block`` of the head block                               no
geth callTracer      ``debug_traceBlockByNumber`` with ``callTracer``                no
re-execution         ``eth_simulateV1`` of an empty call on the head block's state   no
                     (victim losses where no pool model exists, docs/node.md)
===================  ==============================================================  ========

(and with ``node.traces`` set to ``parity`` or ``geth``, that tracer is needed too). It prints a
table and a plain statement of what ``mevwatch run`` will and will not see; ``--json`` prints
the same as one JSON object. Exit 0: everything ``run`` needs works; 1: something it needs is
missing; 2: the node cannot be reached. The URL is shown with its credentials masked.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from dataclasses import asdict, dataclass, field
from typing import Annotated, Any, Optional

import typer

from mevwatch.monitor.cli.main import FAILED, OptionError, handled, state
from mevwatch.monitor.cli.output import esc
from mevwatch.monitor.log import redact_text, redact_url
from mevwatch.streams.node import MAX_MESSAGE_BYTES, TRACE_MODES, WITHOUT_TRACES, describe_error, is_unsupported

UNREACHABLE = 2  # exit code: nothing answered


@dataclass
class Check:
    name: str
    ok: bool | None  # None: not probed (a check before it failed, or not possible over this transport)
    needed: bool  # mevwatch run cannot work without it
    detail: str


@dataclass
class Report:
    url: str
    reachable: bool = False
    ready_for_run: bool = False
    chain_id: int | None = None
    head: int | None = None
    traces: str | None = None  # what run would use: "trace_block", "debug_traceBlockByNumber callTracer" or None
    mempool: str = "none"  # full, hashes, none; unknown: subscribed, nothing arrived; not probed: over HTTP
    checks: list[Check] = field(default_factory=list)
    will_see: list[str] = field(default_factory=list)
    wont_see: list[str] = field(default_factory=list)

    def add(self, name: str, ok: bool | None, needed: bool, detail: str) -> Check:
        c = Check(name, ok, needed, redact_text(detail))
        self.checks.append(c)
        return c

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class RpcFailure(Exception):
    """A JSON-RPC error answer (``code``, ``message``)."""

    def __init__(self, method: str, error: Any):
        self.code = error.get("code") if isinstance(error, dict) else None
        self.rpc_message = str(error.get("message", error) if isinstance(error, dict) else error)
        super().__init__(f"{method}: {self.rpc_message}" + (f" (code {self.code})" if self.code is not None else ""))


class _Ws:
    """A bare JSON-RPC client over one WebSocket: answers by id, notifications kept aside."""

    def __init__(self, url: str, timeout: float):
        self.url, self.timeout = url, timeout
        self.ids = itertools.count(1)
        self.notes: list[dict] = []
        self.ws: Any = None

    async def open(self) -> None:
        from websockets.asyncio.client import connect

        opening = min(self.timeout, 15.0)  # an answer may take long (tracing a full block); a handshake should not
        self.ws = await asyncio.wait_for(connect(self.url, max_size=MAX_MESSAGE_BYTES, open_timeout=opening), opening)

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()

    async def request(self, method: str, params: list) -> Any:
        rid = next(self.ids)
        await self.ws.send(json.dumps({"jsonrpc": "2.0", "id": rid, "method": method, "params": params}))
        deadline = time.monotonic() + self.timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{method}: no answer in {self.timeout:g} s")
            msg = json.loads(await asyncio.wait_for(self.ws.recv(), left))
            if isinstance(msg, dict) and msg.get("id") == rid:
                if "error" in msg:
                    raise RpcFailure(method, msg["error"])
                return msg.get("result")
            if isinstance(msg, dict) and msg.get("method") == "eth_subscription":
                self.notes.append(msg.get("params") or {})

    async def notification(self, sub: str, wait_s: float) -> Any:
        """The first notification of subscription ``sub`` within ``wait_s`` (None if none came)."""
        deadline = time.monotonic() + wait_s
        while True:
            for n in self.notes:
                if n.get("subscription") == sub:
                    return n.get("result")
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                msg = json.loads(await asyncio.wait_for(self.ws.recv(), left))
            except asyncio.TimeoutError:
                return None
            if isinstance(msg, dict) and msg.get("method") == "eth_subscription":
                self.notes.append(msg.get("params") or {})


class _Http:
    """JSON-RPC over plain HTTP (what replay --rpc takes; run cannot subscribe over it)."""

    def __init__(self, url: str, timeout: float):
        self.url, self.timeout = url, timeout
        self.ids = itertools.count(1)

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def request(self, method: str, params: list) -> Any:
        import urllib.error
        import urllib.request

        body = json.dumps({"jsonrpc": "2.0", "id": next(self.ids), "method": method, "params": params}).encode()

        def post() -> Any:
            req = urllib.request.Request(self.url, data=body, headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as r:  # noqa: S310 - the user's node URL
                    return json.loads(r.read())
            except urllib.error.HTTPError as exc:  # a JSON-RPC error may come with a 4xx/5xx status
                payload = exc.read()
                try:
                    return json.loads(payload)
                except ValueError:
                    raise OSError(f"HTTP {exc.code}") from None

        msg = await asyncio.to_thread(post)
        if isinstance(msg, dict) and "error" in msg:
            raise RpcFailure(method, msg["error"])
        return msg.get("result") if isinstance(msg, dict) else None


def _why(exc: BaseException) -> str:
    if isinstance(exc, RpcFailure):
        return f"error answer: {exc.rpc_message[:160]}" + (f" (code {exc.code})" if exc.code is not None else "")
    return describe_error(exc)


def _unsupported(exc: BaseException, method: str) -> bool:
    from mevwatch.streams.node import RpcError

    if not isinstance(exc, RpcFailure):
        return False
    return is_unsupported(RpcError(method, {"code": exc.code, "message": exc.rpc_message}), method)


async def probe(url: str, *, traces_mode: str = "auto", timeout: float = 30.0, wait_s: float = 3.0) -> Report:
    """Probe the node at ``url``; never raises for what the node does (it is all in the report)."""
    rep = Report(url=redact_url(url))
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    ws = scheme in ("ws", "wss")
    if ws:
        rep.add("websocket", True, True, "ws:// URL: subscriptions possible")
    elif scheme in ("http", "https"):
        rep.add("websocket", False, True, "http(s):// URL: run and ingest need the node's ws:// or wss:// URL "
                                          "(eth_subscribe cannot work over plain HTTP); the rest is probed over HTTP")
    else:
        rep.add("websocket", False, True, "not a ws://, wss://, http:// or https:// URL")
        return _conclude(rep, traces_mode)
    conn: _Ws | _Http = _Ws(url, timeout) if ws else _Http(url, timeout)
    try:
        await conn.open()
        rep.chain_id = int(await conn.request("eth_chainId", []), 16)
    except Exception as exc:  # noqa: BLE001 - the node cannot be reached: the report says why
        rep.add("connect", False, True, describe_error(exc) if not isinstance(exc, RpcFailure) else _why(exc))
        await _close(conn)
        return _conclude(rep, traces_mode)
    rep.reachable = True
    try:
        rep.add("connect", True, True, "connected")
        rep.add("chain id", True, True, f"{rep.chain_id}")
        await _probe_node(conn, rep, ws=ws, wait_s=wait_s)
    finally:
        await _close(conn)
    return _conclude(rep, traces_mode)


async def _close(conn: _Ws | _Http) -> None:
    try:
        await conn.close()
    except Exception:  # noqa: BLE001 - closing a broken connection: nothing to report
        pass


async def _probe_node(conn: _Ws | _Http, rep: Report, *, ws: bool, wait_s: float) -> None:
    pending_sub = None
    if isinstance(conn, _Ws):
        try:
            await conn.request("eth_subscribe", ["newHeads"])
            rep.add("new heads", True, True, "eth_subscribe newHeads accepted")
        except Exception as exc:  # noqa: BLE001
            rep.add("new heads", False, True, f"eth_subscribe newHeads: {_why(exc)}")
        full = True
        try:
            pending_sub = await conn.request("eth_subscribe", ["newPendingTransactions", True])
        except Exception as exc:  # noqa: BLE001
            full = False
            refused = _why(exc)
            try:
                pending_sub = await conn.request("eth_subscribe", ["newPendingTransactions"])
            except Exception as exc2:  # noqa: BLE001
                rep.add("pending txs", False, False, f"newPendingTransactions refused: {_why(exc2)}")
            else:
                rep.mempool = "hashes"
                rep.add("pending txs", False, False, f"full transactions refused ({refused}); hashes only")
        if pending_sub is not None and full:
            first = await conn.notification(pending_sub, wait_s)
            if first is None:
                rep.mempool = "unknown"
                rep.add("pending txs", None, False, f"subscribed with full transactions; none arrived in {wait_s:g} s "
                                                    "(an idle node, or one that sends nothing)")
            elif isinstance(first, dict):
                rep.mempool = "full"
                rep.add("pending txs", True, False, "full pending transactions arrive")
            else:
                rep.mempool = "hashes"
                rep.add("pending txs", False, False, "the node sends hashes although full transactions were asked for; "
                                                     "each is fetched by hash")
    else:
        rep.mempool = "not probed"
        rep.add("new heads", None, True, "not over HTTP")
        rep.add("pending txs", None, False, "not over HTTP")
    try:
        rep.head = int(await conn.request("eth_blockNumber", []), 16)
    except Exception as exc:  # noqa: BLE001
        rep.add("block receipts", False, True, f"eth_blockNumber: {_why(exc)}")
        rep.add("trace_block", None, False, "no head block to trace")
        rep.add("geth callTracer", None, False, "no head block to trace")
        rep.add("re-execution", None, False, "no head block to simulate on")
        return
    tag = hex(rep.head)
    try:
        receipts = await conn.request("eth_getBlockReceipts", [tag])
        rep.add("block receipts", True, True, f"eth_getBlockReceipts: {len(receipts or [])} receipts in block {rep.head}")
    except Exception as exc:  # noqa: BLE001
        gone = _unsupported(exc, "eth_getBlockReceipts")
        rep.add("block receipts", False, True, ("not served: " if gone else "") + f"eth_getBlockReceipts: {_why(exc)}")
    for name, method, params in (("trace_block", "trace_block", [tag]),
                                 ("geth callTracer", "debug_traceBlockByNumber", [tag, {"tracer": "callTracer"}])):
        try:
            answer = await conn.request(method, params)
            rep.add(name, True, False, f"{method}: {len(answer or [])} entries for block {rep.head}")
        except Exception as exc:  # noqa: BLE001
            gone = _unsupported(exc, method)
            rep.add(name, False, False, ("not offered: " if gone else "failed (may pass on retry): ") + _why(exc))
    zero = "0x" + "0" * 40
    try:  # an empty call, validation off: does the node re-execute on a block's state
        await conn.request("eth_simulateV1", [{"blockStateCalls": [{"calls": [{"from": zero, "to": zero}]}],
                                               "validation": False}, tag])
        rep.add("re-execution", True, False, "eth_simulateV1 answers: victim losses for every pool that pays out itself")
    except Exception as exc:  # noqa: BLE001
        gone = _unsupported(exc, "eth_simulateV1")
        rep.add("re-execution", False, False, ("not offered: " if gone else "failed (may pass on retry): ") + _why(exc))


def _conclude(rep: Report, traces_mode: str) -> Report:
    """Which tracer run would use, whether run can work, and what it will and won't see."""
    ok = {c.name: c.ok for c in rep.checks}
    if traces_mode == "auto":
        rep.traces = ("trace_block" if ok.get("trace_block") else
                      "debug_traceBlockByNumber callTracer" if ok.get("geth callTracer") else None)
    elif traces_mode in ("parity", "geth"):
        name = "trace_block" if traces_mode == "parity" else "geth callTracer"
        if ok.get(name):
            rep.traces = "trace_block" if traces_mode == "parity" else "debug_traceBlockByNumber callTracer"
        elif rep.reachable:
            for c in rep.checks:
                if c.name == name:
                    c.needed = True
                    c.detail += f" (node.traces is {traces_mode!r}: run stops on this; set auto or none)"
    needed_ok = rep.reachable and all(c.ok is not False for c in rep.checks if c.needed) and \
        all(ok.get(n) for n in ("websocket", "connect", "chain id", "new heads", "block receipts"))
    rep.ready_for_run = bool(needed_ok)
    will, wont = rep.will_see, rep.wont_see
    if not rep.reachable:
        wont.append("anything: the node cannot be reached (" + next((c.detail for c in rep.checks if c.ok is False), "") + ")")
        return rep
    if not rep.ready_for_run:
        missing = ", ".join(c.name for c in rep.checks if c.needed and c.ok is not True)
        wont.append(f"anything live: `mevwatch run` cannot follow this node (missing: {missing}); "
                    "what follows is what it offers otherwise")
    if ok.get("block receipts"):
        will.append("every block with its transactions, receipts and event logs")
    if rep.traces:
        will.append(f"call traces ({rep.traces}): every decoder works, Balancer V1, 0x and Bancor included")
    elif traces_mode == "none":
        wont.append(f"call traces (node.traces is none): swaps are decoded from event logs; {WITHOUT_TRACES}")
    else:
        wont.append(f"call traces (the node offers neither trace_block nor Geth's callTracer): swaps are decoded from "
                    f"event logs; {WITHOUT_TRACES}")
    if ok.get("re-execution"):
        will.append("exact victim losses for Curve, Balancer and V3-across-ticks sandwiches (re-executed on the node)")
    else:
        wont.append("victim losses where no pool model exists (Curve, Balancer, V3 across ticks): `unavailable` "
                    "(the node does not serve eth_simulateV1)")
    if rep.mempool == "full":
        will.append("the mempool (full pending transactions): pending-stage alerts, before attacks land")
    elif rep.mempool == "unknown":
        will.append("the mempool, if the node sends pending transactions (none arrived while probing)")
    elif rep.mempool == "hashes":
        will.append("the mempool as hashes, each fetched with eth_getTransactionByHash: slower, and some are gone first")
    elif rep.mempool == "not probed":
        pass  # subscriptions need the WebSocket URL: probe that one
    else:
        wont.append("the mempool: no pending-stage alerts; attacks are reported once included")
    return rep


def print_report(rep: Report) -> None:
    from rich.console import Console
    from rich.table import Table

    out = Console(soft_wrap=True, highlight=False)
    mark = {True: "[green]yes[/green]", False: "[red]no[/red]", None: "[yellow]?[/yellow]"}
    title = f"mevwatch doctor: {esc(rep.url)}" + (f" (chain {rep.chain_id}, head {rep.head})" if rep.chain_id is not None else "")
    t = Table(title=title, title_justify="left")
    t.add_column("check")
    t.add_column("works")
    t.add_column("run needs it")
    t.add_column("detail", overflow="fold")
    for c in rep.checks:
        t.add_row(c.name, mark[c.ok], "yes" if c.needed else "no", esc(c.detail))
    out.print(t)
    if not rep.reachable:
        why = next((c.detail for c in rep.checks if c.ok is False), "")
        out.print(f"[red]The node cannot be reached[/red] ({esc(why)}): mevwatch will see nothing from it.")
        return
    verdict = "[green]mevwatch run can follow this node.[/green]" if rep.ready_for_run else \
        "[red]mevwatch run cannot follow this node.[/red]"
    out.print(verdict)
    for line in rep.will_see:
        out.print(f"  will see: {esc(line)}")
    for line in rep.wont_see:
        out.print(f"  won't see: {esc(line)}")
    out.print("What each feature needs from the node: docs/node.md")


@handled(FAILED)
def doctor(
    rpc: Annotated[Optional[str], typer.Option("--rpc", help="The node's URL (ws:// or wss://; http(s):// is probed too), or MEVWATCH_NODE__RPC.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as one JSON object.")] = False,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait for each answer (tracing a full mainnet block can take a while).")] = 30.0,
    wait: Annotated[float, typer.Option("--wait", help="Seconds to wait for a pending transaction (full or hash?).")] = 3.0,
) -> None:
    """Check what a node offers mevwatch: WebSocket, chain id, new heads, full pending transactions,
    block receipts, trace_block and Geth's callTracer; then say what `mevwatch run` will and won't see.

    Exit 0 when everything run needs works, 1 when something it needs is missing, 2 when the node
    cannot be reached. docs/node.md explains each requirement.
    """
    s = state.settings
    url = rpc or s.node.rpc
    if not url:
        raise OptionError("--rpc is required (the node's ws:// URL), or set MEVWATCH_NODE__RPC")
    mode = s.node.traces if s.node.traces in TRACE_MODES else "auto"
    rep = asyncio.run(probe(url, traces_mode=mode, timeout=timeout, wait_s=wait))
    if as_json:
        typer.echo(json.dumps(rep.as_dict(), indent=2))
    else:
        print_report(rep)
    if not rep.reachable:
        raise typer.Exit(UNREACHABLE)
    if not rep.ready_for_run:
        raise typer.Exit(FAILED)

