"""`mevwatch doctor --rpc URL` against a real anvil, directly and behind a proxy that makes it look
like Geth (no trace_block), a hosted provider (no tracer, no full pending transactions) or a node
without eth_getBlockReceipts: the table, the JSON report, the statement of what run will and won't
see, and the exit codes (0 ready, 1 something run needs is missing, 2 unreachable)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from rpc_proxy import FaultProxy

pytestmark = pytest.mark.anvil

EXE = str(Path(sys.executable).with_name("mevwatch"))


def doctor(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([EXE, "doctor", "--wait", "0.5", *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def report(*args: str, env: dict | None = None) -> tuple[int, dict]:
    r = doctor(*args, "--json", env=env)
    return r.returncode, json.loads(r.stdout)


def checks(rep: dict) -> dict:
    return {c["name"]: c for c in rep["checks"]}


@pytest.fixture
def proxy(anvil):
    p = FaultProxy(anvil.ws_url).start()
    yield p
    p.stop()


def test_a_full_node_is_ready(anvil):
    r = doctor("--rpc", anvil.ws_url)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    for name in ("websocket", "connect", "chain id", "new heads", "pending txs", "block receipts", "trace_block", "geth callTracer"):
        assert name in out
    assert "mevwatch run can follow this node" in out and "docs/node.md" in out
    rc, rep = report("--rpc", anvil.ws_url)
    assert rc == 0 and rep["reachable"] and rep["ready_for_run"] and rep["chain_id"] == 31337
    assert rep["traces"] == "trace_block" and rep["url"] == anvil.ws_url
    c = checks(rep)
    assert all(c[n]["ok"] for n in ("websocket", "connect", "chain id", "new heads", "block receipts", "trace_block", "geth callTracer",
                                    "re-execution"))
    assert any("re-executed on the node" in line for line in rep["will_see"])
    assert c["pending txs"]["ok"] is None and rep["mempool"] == "unknown"  # subscribed; the idle anvil sent nothing


def test_full_pending_transactions_are_seen_when_they_flow(anvil, rpc):
    from mevwatch.monitor.cli.doctor import probe

    me, to = rpc("eth_accounts")[:2]
    done = threading.Event()

    def traffic() -> None:
        while not done.is_set():
            rpc("eth_sendTransaction", {"from": me, "to": to, "value": "0x1"})
            time.sleep(0.2)

    t = threading.Thread(target=traffic, daemon=True)
    t.start()
    try:
        rep = asyncio.run(probe(anvil.ws_url, wait_s=10))
    finally:
        done.set()
        t.join(5)
    assert rep.mempool == "full" and rep.ready_for_run
    assert any("full pending transactions" in line for line in rep.will_see)


def test_an_http_url_is_probed_but_run_cannot_use_it(anvil):
    rc, rep = report("--rpc", anvil.http_url)
    assert rc == 1 and rep["reachable"] and not rep["ready_for_run"]
    c = checks(rep)
    assert c["websocket"]["ok"] is False and "ws://" in c["websocket"]["detail"]
    assert c["block receipts"]["ok"] and c["trace_block"]["ok"]  # the rest answered over HTTP
    assert any("cannot follow this node" in line for line in rep["wont_see"])


def test_an_unreachable_node_exits_2():
    from services import free_port

    r = doctor("--rpc", f"ws://127.0.0.1:{free_port()}")
    assert r.returncode == 2 and "connection refused" in r.stdout and "cannot be reached" in r.stdout
    assert doctor("--rpc", "ftp://example.org").returncode == 2
    none = subprocess.run([EXE, "doctor"], capture_output=True, text=True, timeout=60,
                          env={k: v for k, v in os.environ.items() if k != "MEVWATCH_NODE__RPC"})
    assert none.returncode == 2 and "--rpc is required" in none.stderr


def test_a_geth_like_node_uses_the_call_tracer(proxy):
    proxy.fail("trace_block")
    rc, rep = report("--rpc", proxy.url)
    assert rc == 0 and rep["traces"] == "debug_traceBlockByNumber callTracer"
    c = checks(rep)
    assert c["trace_block"]["ok"] is False and "not offered" in c["trace_block"]["detail"] and c["geth callTracer"]["ok"]
    proxy.fail("eth_simulateV1")  # a node without re-execution: victim losses without a pool model stay unavailable
    rc, rep = report("--rpc", proxy.url)
    assert rc == 0 and checks(rep)["re-execution"]["ok"] is False and "not offered" in checks(rep)["re-execution"]["detail"]
    assert any("eth_simulateV1" in line for line in rep["wont_see"])
    # node.traces: parity on a node without trace_block: run would stop, so doctor says so (exit 1)
    rc, rep = report("--rpc", proxy.url, env={"MEVWATCH_NODE__TRACES": "parity"})
    assert rc == 1 and not rep["ready_for_run"] and checks(rep)["trace_block"]["needed"]


def test_a_hosted_like_node_is_followed_from_logs_and_hashes(proxy):
    proxy.fail("trace_block").fail("debug_traceBlockByNumber")
    proxy.fail("eth_subscribe", {"code": -32602, "message": "full transactions not supported"},
               when=lambda params: params == ["newPendingTransactions", True])
    r = doctor("--rpc", proxy.url)
    assert r.returncode == 0, r.stdout
    text = " ".join(r.stdout.split())
    assert "Balancer V1, 0x and Bancor swaps go undecoded" in text and "displacement detection is weaker" in text
    assert "hashes" in text
    rc, rep = report("--rpc", proxy.url)
    assert rc == 0 and rep["traces"] is None and rep["mempool"] == "hashes"


def test_a_node_without_block_receipts_is_not_ready(proxy):
    proxy.fail("eth_getBlockReceipts")
    r = doctor("--rpc", proxy.url)
    assert r.returncode == 1 and "cannot follow this node" in " ".join(r.stdout.split())
    rc, rep = report("--rpc", proxy.url)
    assert rc == 1 and checks(rep)["block receipts"]["ok"] is False and "not served" in checks(rep)["block receipts"]["detail"]


def test_credentials_in_the_url_are_never_printed(anvil):
    key = "0123456789abcdef0123456789abcdef"
    url = anvil.ws_url.replace("ws://", "ws://watcher:pa55word@") + f"/?apikey={key}"
    for args in (("--rpc", url), ("--rpc", url, "--json")):
        r = doctor(*args)
        assert r.returncode == 0, r.stdout + r.stderr
        both = r.stdout + r.stderr
        assert "pa55word" not in both and key not in both and "watcher" not in both
        assert "***@127.0.0.1" in both
