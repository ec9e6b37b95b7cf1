"""What the node source does when the node lacks something or fails (docs/node.md), on a real anvil
behind a proxy that answers chosen requests with errors (tests/rpc_proxy.py): trace errors retried,
then one block decoded from logs and traces asked for again on the next; the Geth tracer when
``trace_block`` is missing; ``traces: geth`` never calling ``trace_block``; a clear error, not a
reconnect loop, for a missing ``eth_getBlockReceipts`` or named tracer; hashes when full pending
transactions are refused; a node never reached; blocks over the WebSocket library's 1 MiB default."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from live import Collector
from prometheus_client import REGISTRY
from rpc_proxy import RATE_LIMITED, FaultProxy, RefusingServer

from mevwatch.monitor.errors import ConfigError
from mevwatch.streams.node import NodeSource, NodeUnreachableError, NodeUnsuitableError

pytestmark = pytest.mark.anvil


@pytest.fixture
def proxy(anvil):
    p = FaultProxy(anvil.ws_url).start()
    yield p
    p.stop()


def sample(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def mine_with_tx(rpc, value: int = 1) -> str:
    me = rpc("eth_accounts")[0]
    h = rpc("eth_sendTransaction", {"from": me, "to": rpc("eth_accounts")[1], "value": hex(value)})
    rpc("evm_mine")
    return h


def block_with(c: Collector, tx_hash: str):
    c.wait_for(lambda m: any(t.hash == tx_hash for b in c.blocks() for t in b.transactions))
    return next(b for b in c.blocks() if any(t.hash == tx_hash for t in b.transactions))


def run_until_error(source: NodeSource, timeout: float = 30.0) -> BaseException:
    got: list = []
    try:
        asyncio.run(asyncio.wait_for(source.run(got.append), timeout))
    except BaseException as exc:  # noqa: BLE001 - the test inspects it
        return exc
    raise AssertionError("run returned without an error")


def test_one_error_answer_is_retried_and_the_block_keeps_its_traces(proxy, rpc):
    retries = sample("mevwatch_retries_total", policy="trace")
    with Collector(proxy.url, pending=False) as c:
        c.wait_for(lambda m: c.source.follower is not None and c.blocks())
        proxy.fail("trace_block", RATE_LIMITED, times=1)
        b = block_with(c, mine_with_tx(rpc))
    assert proxy.faults["trace_block"] == 1
    assert b.has_traces and b.transactions[0].traces
    assert sample("mevwatch_retries_total", policy="trace") == retries + 1


def test_a_failing_block_falls_back_to_logs_and_the_next_block_has_traces_again(proxy, rpc, capsys):
    fallbacks = sample("mevwatch_trace_fallbacks_total", reason="error")
    with Collector(proxy.url, pending=False) as c:
        c.wait_for(lambda m: c.source.follower is not None and c.blocks())
        proxy.fail("trace_block", RATE_LIMITED, times=3)  # every try for one block
        first = block_with(c, mine_with_tx(rpc, 1))
        second = block_with(c, mine_with_tx(rpc, 2))
        third = block_with(c, mine_with_tx(rpc, 3))
    assert not first.has_traces and first.transactions[0].traces == []
    assert second.has_traces and second.transactions[0].traces and third.has_traces
    assert proxy.faults["trace_block"] == 3
    assert sample("mevwatch_trace_fallbacks_total", reason="error") == fallbacks + 1
    err = capsys.readouterr().err
    assert err.count("call traces failed; decoding this block from event logs") == 1
    assert err.count("call traces are back") == 1


def test_auto_uses_geths_call_tracer_when_trace_block_is_missing(proxy, rpc):
    proxy.fail("trace_block")  # a Geth node: the method does not exist
    with Collector(proxy.url, pending=False) as c:
        c.wait_for(lambda m: c.source.follower is not None and c.blocks())
        a = block_with(c, mine_with_tx(rpc, 1))
        b = block_with(c, mine_with_tx(rpc, 2))
    assert a.has_traces and b.has_traces and a.transactions[0].traces[0].call_type == "call"
    assert proxy.calls["trace_block"] == 1  # asked once, then the Geth tracer is remembered
    assert proxy.calls["debug_traceBlockByNumber"] >= 3
    assert c.source.tracer.kind == "geth"


def test_traces_geth_never_calls_trace_block(proxy, rpc):
    with Collector(proxy.url, pending=False, traces="geth") as c:
        c.wait_for(lambda m: c.source.follower is not None and c.blocks())
        b = block_with(c, mine_with_tx(rpc))
    assert b.has_traces and b.transactions[0].traces
    assert proxy.calls["trace_block"] == 0 and proxy.calls["debug_traceBlockByNumber"] >= 2


def test_a_node_without_any_tracer_is_decoded_from_logs_with_one_warning(proxy, rpc, capsys):
    proxy.fail("trace_block").fail("debug_traceBlockByNumber")
    unsupported = sample("mevwatch_trace_fallbacks_total", reason="unsupported")
    with Collector(proxy.url, pending=False) as c:
        c.wait_for(lambda m: c.source.follower is not None and c.blocks())
        a = block_with(c, mine_with_tx(rpc, 1))
        b = block_with(c, mine_with_tx(rpc, 2))
    assert not a.has_traces and not b.has_traces and a.has_logs
    assert proxy.calls["trace_block"] == 1 and proxy.calls["debug_traceBlockByNumber"] == 1  # not asked again
    assert sample("mevwatch_trace_fallbacks_total", reason="unsupported") == unsupported + len(c.blocks())
    err = capsys.readouterr().err
    assert err.count("the node offers no call traces") == 1 and "Balancer V1, 0x and Bancor" in err


def test_a_missing_named_tracer_stops_the_run(proxy):
    proxy.fail("trace_block")
    exc = run_until_error(NodeSource(proxy.url, traces="parity", pending=False, reconnect_max_s=0.2))
    assert isinstance(exc, NodeUnsuitableError) and "node.traces is 'parity'" in str(exc) and "trace_block" in str(exc)


def test_missing_block_receipts_is_a_clear_error_not_a_reconnect_loop(proxy, capsys):
    proxy.fail("eth_getBlockReceipts")
    source = NodeSource(proxy.url, pending=False, reconnect_max_s=0.2)
    exc = run_until_error(source)
    assert isinstance(exc, NodeUnsuitableError) and "does not serve eth_getBlockReceipts" in str(exc)
    assert "docs/node.md" in str(exc)
    assert source.reconnects == 0 and "node connection lost" not in capsys.readouterr().err


def test_refused_full_pending_transactions_fall_back_to_hashes(proxy, rpc, capsys):
    proxy.fail("eth_subscribe", {"code": -32602, "message": "invalid argument 1: full transactions not supported"},
               when=lambda params: params == ["newPendingTransactions", True])
    me, to = rpc("eth_accounts")[:2]
    with Collector(proxy.url) as c:
        c.wait_for(lambda m: c.source.follower is not None)
        h = rpc("eth_sendTransaction", {"from": me, "to": to, "value": "0x7"})
        c.wait_for(lambda m: any(p.hash == h for p in c.pending()))
    (p,) = [p for p in c.pending() if p.hash == h]
    assert p.value == 7 and p.from_address == me.lower()
    assert not c.source.pending_full and proxy.calls["eth_getTransactionByHash"] >= 1
    assert capsys.readouterr().err.count("the node refused full pending transactions") == 1


def test_a_node_never_reached_or_refusing_the_handshake_is_an_error():
    from services import free_port

    closed = NodeSource(f"ws://127.0.0.1:{free_port()}", connect_timeout_s=1.0, reconnect_max_s=0.2, pending=False)
    exc = run_until_error(closed)
    assert isinstance(exc, NodeUnreachableError) and "connection refused" in str(exc) and not closed.reached
    key = "0123456789abcdef0123456789abcdef"
    with RefusingServer(401) as srv:
        source = NodeSource(f"ws://user:hunter2@127.0.0.1:{srv.port}/v3/{key}", reconnect_max_s=0.2)
        exc = run_until_error(source, timeout=10)
    assert isinstance(exc, NodeUnreachableError) and "HTTP 401" in str(exc)
    assert "hunter2" not in str(exc) and key not in str(exc) and "***@127.0.0.1" in str(exc)
    with pytest.raises(ConfigError, match="WebSocket URL"):
        asyncio.run(NodeSource("http://127.0.0.1:8545").run(print))


def test_a_block_larger_than_one_mib_is_followed(anvil, rpc):
    me, to = rpc("eth_accounts")[:2]
    with Collector(anvil.ws_url, pending=False) as c:
        c.wait_for(lambda m: c.source.follower is not None and c.blocks())
        # 8 x 100 kB of calldata (zero bytes: cheap under EIP-7623's floor): ~1.6 MB of hex in the block's answer
        hashes = [rpc("eth_sendTransaction", {"from": me, "to": to, "gas": hex(1_100_000), "data": f"0x{i + 1:02x}" + "00" * 100_000})
                  for i in range(8)]
        rpc("evm_mine")
        b = block_with(c, hashes[-1])
    assert len(b.transactions) == 8 and b.has_traces and c.source.reconnects == 0


# --- the same through the command line ---------------------------------------------------------------
def cli(*args: str, cwd, env: dict | None = None) -> subprocess.Popen:
    exe = str(Path(sys.executable).with_name("mevwatch"))
    full_env = {**os.environ, "MEVWATCH_GNN__ENABLED": "false", **(env or {})}
    return subprocess.Popen([exe, *args], cwd=cwd, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_run_on_a_node_without_block_receipts_exits_1_naming_it(proxy, tmp_path):
    proxy.fail("eth_getBlockReceipts")
    p = cli("run", "--rpc", proxy.url, "--duration", "60", "--no-attest", "--health-port", "0", cwd=tmp_path)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 1, err[-2000:]
    assert "error: the node does not serve eth_getBlockReceipts" in err and "docs/node.md" in err
    assert "node connection lost" not in err and "Traceback" not in err


def test_traces_geth_in_the_settings_reaches_the_node_source(proxy, rpc, tmp_path):
    out = tmp_path / "rec.jsonl"
    p = cli("record", "--rpc", proxy.url, "--out", str(out), "--blocks", "3", "--no-pending", cwd=tmp_path,
            env={"MEVWATCH_NODE__TRACES": "geth"})
    deadline = time.monotonic() + 60
    while not out.exists() or out.stat().st_size == 0:  # the head block is recorded first
        assert time.monotonic() < deadline and p.poll() is None, p.communicate()[1][-2000:]
        time.sleep(0.2)
    mine_with_tx(rpc, 1)
    mine_with_tx(rpc, 2)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 0, err[-2000:]
    blocks = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(blocks) == 3 and all(b["has_traces"] for b in blocks)
    assert blocks[-1]["transactions"][0]["traces"]
    assert proxy.calls["trace_block"] == 0 and proxy.calls["debug_traceBlockByNumber"] == 3


def test_a_node_of_another_chain_than_the_chain_id_set_is_refused_at_once(anvil):
    """Several chains on one cluster: an ingest pointed at the wrong chain's node would fill that
    chain's topics with foreign messages (which detection dead-letters); it stops at once instead."""
    source = NodeSource(anvil.ws_url, pending=False, reconnect_max_s=0.2, expect_chain_id=8453)
    exc = run_until_error(source)
    assert isinstance(exc, NodeUnsuitableError) and "serves chain 31337, but chain_id is 8453" in str(exc)
    assert source.reconnects == 0
