"""The node source's reading of error answers and URLs (no node needed): which answers mean "this
node does not offer the method" and which are passing failures, URL checks, trace modes. The same
behaviour on a real anvil: tests/streams/test_node_requirements_live.py."""

from __future__ import annotations

import pytest

from mevwatch.monitor.errors import ConfigError, NodeError
from mevwatch.streams.node import RpcError, Tracer, check_ws_url, is_unsupported

pytestmark = pytest.mark.fast


@pytest.mark.parametrize("method, error, unsupported", [
    ("trace_block", {"code": -32601, "message": "Method not found"}, True),
    ("trace_block", {"code": -32000, "message": "the method trace_block does not exist/is not available"}, True),
    ("trace_block", {"code": -32600, "message": "Unsupported method: trace_block on ETH_MAINNET"}, True),
    ("trace_block", {"code": -32000, "message": "trace_block is not available on the Free tier"}, True),
    ("eth_getBlockReceipts", {"code": -32601, "message": "eth_getBlockReceipts does not exist/is not available"}, True),
    # passing failures: retried, then one block from logs
    ("trace_block", {"code": 429, "message": "exceeded its compute units per second capacity; service not available"}, False),
    ("trace_block", {"code": -32005, "message": "daily request count exceeded, request rate limited"}, False),
    ("trace_block", {"code": -32000, "message": "unknown block"}, False),
    ("eth_getBlockReceipts", {"code": -32000, "message": "header not found"}, False),
])
def test_unsupported_or_passing(method, error, unsupported):
    assert is_unsupported(RpcError(method, error), method) is unsupported


def test_a_plain_node_error_is_read_too():
    assert is_unsupported(NodeError("trace_block failed: {'code': -32601, 'message': 'x'}"), "trace_block")
    assert not is_unsupported(NodeError("trace_block failed: {'code': -32000, 'message': 'header not found'}"), "trace_block")
    assert not is_unsupported(ValueError("method not found"), "trace_block")


def test_rpc_error_messages_carry_no_credentials():
    e = RpcError("eth_chainId", {"code": -32000, "message": "upstream wss://u:p@h/v3/0123456789abcdef0123456789abcdef failed"})
    assert "u:p" not in str(e) and "0123456789abcdef0123456789abcdef" not in str(e) and "(code -32000)" in str(e)


def test_urls_that_cannot_subscribe_are_refused():
    check_ws_url("ws://127.0.0.1:8546")
    check_ws_url("WSS://node.example/ws")
    with pytest.raises(ConfigError, match="WebSocket URL .* eth_subscribe") as e:
        check_ws_url("https://user:secret@node.example/v3/0123456789abcdef0123456789abcdef", "mevwatch ingest")
    assert "secret" not in str(e.value) and "mevwatch ingest" in str(e.value)
    with pytest.raises(ConfigError, match="must start with ws://"):
        check_ws_url("127.0.0.1:8546")


def test_trace_modes():
    assert Tracer.of(True).mode == "auto" and Tracer.of(False).mode == "none"
    assert Tracer.of("geth").kind == "geth" and Tracer.of("parity").kind == "parity" and Tracer.of("auto").kind is None
    assert not Tracer.of("none").available
    t = Tracer("auto")
    assert Tracer.of(t) is t
    with pytest.raises(ConfigError, match="node.traces"):
        Tracer("erigon")
