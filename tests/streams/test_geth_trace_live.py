"""Geth's callTracer path: ``debug_traceBlockByNumber`` call frames become the same trace records
``trace_block`` yields, so a block decodes identically with either tracer. anvil serves both: the
lab mines blocks with sandwiches, arbitrage, JIT liquidity and reverted transactions, and every one
is fetched and decoded both ways. Plus the conversion's edge cases on hand-made frames."""

from __future__ import annotations

import asyncio

import pytest

from mevwatch.monitor.decode import BlockDecoder
from mevwatch.monitor.types import Trace
from mevwatch.streams.geth_trace import GethTraceError, block_traces, frame_traces, parity_error
from mevwatch.streams.node import fetch_block

A, B, C, D = ("0x" + c * 40 for c in "abcd")


# --- the conversion on hand-made frames ------------------------------------------------------------
@pytest.mark.fast
def test_frames_become_parity_records_depth_first():
    frame = {"type": "CALL", "from": A.upper().replace("0X", "0x"), "to": B, "value": "0x10", "input": "0x12", "output": "0x34",
             "calls": [
                 {"type": "STATICCALL", "from": B, "to": C, "input": "0x56", "output": "0x78"},
                 {"type": "DELEGATECALL", "from": B, "to": D, "input": "0x9a", "value": "0x10",
                  "calls": [{"type": "CREATE2", "from": B, "to": C, "value": "0x0", "input": "0x6000", "output": "0x00"},
                            {"type": "SELFDESTRUCT", "from": C, "to": A, "value": "0x5"}]},
                 {"type": "CALL", "from": B, "to": A, "value": "0x1", "input": "0x", "error": "execution reverted",
                  "output": "0x08c379a0"},
             ]}
    got = frame_traces(frame)
    assert [t.trace_address for t in got] == [(), (0,), (1,), (1, 0), (1, 1), (2,)]
    assert got[0] == Trace((), "call", "call", A, B, "0x12", "0x34", 16, None, 3)
    assert got[1] == Trace((0,), "call", "staticcall", B, C, "0x56", "0x78", 0, None, 0)
    assert got[2] == Trace((1,), "call", "delegatecall", B, D, "0x9a", "0x", 16, None, 2)
    assert got[3] == Trace((1, 0), "create", "", B, C, "0x", "0x", 0, None, 0)
    assert got[4] == Trace((1, 1), "suicide", "", C, A, "0x", "0x", 5, None, 0)
    assert got[5] == Trace((2,), "call", "call", B, A, "0x", "0x08c379a0", 1, "Reverted", 0)


@pytest.mark.fast
def test_errors_in_trace_block_words_and_bad_answers_refused():
    assert parity_error("execution reverted") == "Reverted"
    assert parity_error("out of gas") == "Out of gas"
    assert parity_error("invalid jump destination") == "Bad jump destination"
    assert parity_error("invalid opcode: INVALID") == "Bad instruction"
    assert parity_error("something new") == "something new"
    assert parity_error(None) is None and parity_error("") is None
    failed_create = frame_traces({"type": "CREATE", "from": A, "to": B, "error": "out of gas"})
    assert failed_create[0].to_address == "" and failed_create[0].error == "Out of gas"
    ok = {"txHash": "0x01", "result": {"type": "CALL", "from": A, "to": B}}
    assert block_traces([ok], ["0x01"])[0][0].to_address == B
    with pytest.raises(GethTraceError, match="2 transactions|1 traced"):
        block_traces([ok], ["0x01", "0x02"])
    with pytest.raises(GethTraceError, match="not the block's"):
        block_traces([ok], ["0x02"])
    with pytest.raises(GethTraceError, match="could not be traced"):
        block_traces([{"txHash": "0x01", "error": "execution timeout"}], ["0x01"])
    with pytest.raises(GethTraceError, match="unknown call frame type"):
        block_traces([{"result": {"type": "TELEPORT", "from": A, "to": B}}], ["0x01"])
    with pytest.raises(GethTraceError, match="unreadable"):
        block_traces([{"result": {"type": "CALL", "to": B}}], ["0x01"])  # no 'from'
    deep: dict = {"type": "CALL", "from": A, "to": B}
    for _ in range(1100):
        deep = {"type": "CALL", "from": A, "to": B, "calls": [deep]}
    with pytest.raises(GethTraceError, match="deeper"):
        block_traces([{"result": deep}], ["0x01"])


# --- on anvil: the lab's blocks, both tracers --------------------------------------------------------
@pytest.fixture(scope="module")
def lab_node(tmp_path_factory):
    from services import Anvil

    from mevwatch.sim.runner import Lab

    node = Anvil(tmp_path_factory.mktemp("anvil-geth-trace")).start()
    try:
        result = Lab(node.http_url, node.ws_url, seed=5).run(6)
        yield node, result
    finally:
        node.stop()


async def _fetch_both(ws_url: str, numbers: list[int]):
    from web3 import AsyncWeb3, WebSocketProvider

    calls: list[tuple[str, str]] = []
    out = []
    async with AsyncWeb3(WebSocketProvider(ws_url, websocket_kwargs={"max_size": None})) as w3:
        mode = ""

        async def request(method: str, params: list):
            calls.append((mode, method))
            resp = await w3.provider.make_request(method, params)
            assert "error" not in resp, resp
            return resp.get("result")

        for n in numbers:
            mode = "parity"
            par, _ = await fetch_block(request, n, chain_id=31337, traces="parity")
            mode = "geth"
            geth, _ = await fetch_block(request, n, chain_id=31337, traces="geth")
            out.append((par, geth))
    return out, calls


@pytest.mark.anvil
def test_callTracer_decodes_the_lab_blocks_exactly_as_trace_block(lab_node):
    node, result = lab_node
    attack_blocks = sorted({a.block_number for a in result.attacks if a.block_number is not None})
    assert attack_blocks, "the lab landed no attack"
    head = max(m.number for m in result.messages if hasattr(m, "transactions"))
    numbers = list(range(head - 5, head + 1))
    assert set(attack_blocks) & set(numbers)
    pairs, calls = asyncio.run(_fetch_both(node.ws_url, numbers))
    # traces: geth asks the Geth tracer only; parity asks trace_block only
    assert {m for mode, m in calls if mode == "geth"} == {"eth_getBlockByNumber", "eth_getBlockReceipts", "debug_traceBlockByNumber"}
    assert {m for mode, m in calls if mode == "parity"} == {"eth_getBlockByNumber", "eth_getBlockReceipts", "trace_block"}
    swaps = transfers = reverted = 0
    for par, geth in pairs:
        assert par.has_traces and geth.has_traces and par.hash == geth.hash
        for tp, tg in zip(par.transactions, geth.transactions, strict=True):
            assert tp.traces == tg.traces, f"block {par.number} tx {tp.position}"
            reverted += any(t.error for t in tp.traces)
        dp, dg = BlockDecoder().decode(par), BlockDecoder().decode(geth)
        assert dp.source == dg.source == "traces"
        assert dp.swaps == dg.swaps and dp.transfers == dg.transfers and dp.liquidity == dg.liquidity
        assert dp.miner_payments == dg.miner_payments and dp.stats == dg.stats
        swaps += len(dp.swaps)
        transfers += len(dp.transfers)
    assert swaps >= 10 and transfers >= 20 and reverted >= 1, (swaps, transfers, reverted)
