"""Node source against a real anvil: mempool, blocks with receipts/logs/traces, reconnects, reorgs."""

from __future__ import annotations

import pytest
from live import Collector, CuttableProxy

pytestmark = pytest.mark.anvil

TOPIC = "0x" + "2a".rjust(64, "0")
# runtime: PUSH32 TOPIC, PUSH1 0, PUSH1 0, LOG1, STOP (39 bytes); creation code copies and returns it
RUNTIME = "7f" + TOPIC[2:] + "6000" + "6000" + "a1" + "00"
CREATION = "0x6027600c60003960276000f3" + RUNTIME


def account(rpc, i=0):
    return rpc("eth_accounts")[i]


def test_pending_replacement_and_blocks_with_receipts_logs_traces(anvil, rpc):
    me = account(rpc)
    with Collector(anvil.ws_url) as c:
        c.wait_for(lambda m: c.source.follower is not None)
        deploy = rpc("eth_sendTransaction", {"from": me, "data": CREATION, "gas": "0x100000"})
        rpc("evm_mine")
        contract = rpc("eth_getTransactionReceipt", deploy)["contractAddress"].lower()
        nonce = int(rpc("eth_getTransactionCount", me, "latest"), 16)
        first = rpc("eth_sendTransaction", {"from": me, "to": contract, "nonce": hex(nonce), "gas": "0x30000",
                                             "maxFeePerGas": hex(10**10), "maxPriorityFeePerGas": hex(10**9)})
        second = rpc("eth_sendTransaction", {"from": me, "to": contract, "nonce": hex(nonce), "gas": "0x30000",
                                              "maxFeePerGas": hex(3 * 10**10), "maxPriorityFeePerGas": hex(5 * 10**9)})
        c.wait_for(lambda m: {p.hash for p in c.pending()} >= {first, second})
        rpc("evm_mine")
        c.wait_for(lambda m: any(t.hash == second for b in c.blocks() for t in b.transactions))
    by_hash = {p.hash: p for p in c.pending()}
    p1, p2 = by_hash[first], by_hash[second]
    assert p2.replaces == first and p1.replaces is None
    assert p1.first_seen_ns > 0 and p2.first_seen_ns >= p1.first_seen_ns and p1.source_node == anvil.ws_url
    assert (p2.from_address, p2.to_address, p2.nonce, p2.max_priority_fee_per_gas) == (me.lower(), contract, nonce, 5 * 10**9)
    assert c.source.fates.hashes_for(me, nonce) == []  # the nonce is settled once mined
    blocks = c.blocks()
    assert [b.number for b in blocks] == sorted(b.number for b in blocks)
    mined = blocks[-1]
    (tx,) = mined.transactions
    assert tx.hash == second and tx.gas_used and tx.effective_gas_price and tx.success
    assert tx.logs and tx.logs[0].address == contract and tx.logs[0].topics == (TOPIC,)
    assert mined.has_traces and tx.traces and tx.traces[0].to_address == contract
    for b in blocks:
        assert b.parent_hash and b.hash and b.timestamp


def test_dropped_socket_reconnects_and_backfills_every_block(anvil, rpc):
    proxy = CuttableProxy(anvil.port)
    try:
        with Collector(f"ws://127.0.0.1:{proxy.port}", pending=False) as c:
            c.wait_for(lambda m: c.source.follower is not None)
            for _ in range(3):
                rpc("evm_mine")
            c.wait_for(lambda m: c.blocks() and c.blocks()[-1].number == 3)
            proxy.cut()
            for _ in range(4):
                rpc("evm_mine")  # mined while we are disconnected
            proxy.restore()
            c.wait_for(lambda m: c.blocks()[-1].number == 7, timeout=30)
            for _ in range(2):
                rpc("evm_mine")
            c.wait_for(lambda m: c.blocks()[-1].number == 9)
        numbers = [b.number for b in c.blocks()]
        assert numbers == list(range(0, 10)), numbers
        assert c.source.reconnects >= 1
    finally:
        proxy.close()


def test_reorg_emits_reverts_then_new_canonical_blocks(anvil, rpc):
    me = account(rpc)
    with Collector(anvil.ws_url, pending=False) as c:
        c.wait_for(lambda m: c.source.follower is not None)
        rpc("evm_mine")
        c.wait_for(lambda m: c.blocks() and c.blocks()[-1].number == 1)
        snap = rpc("evm_snapshot")
        for _ in range(3):
            rpc("evm_mine")
        c.wait_for(lambda m: c.blocks()[-1].number == 4)
        orphaned = {b.number: b.hash for b in c.blocks() if b.number >= 2}
        assert rpc("evm_revert", snap)
        rpc("eth_sendTransaction", {"from": me, "to": me, "value": "0x1"})  # different content, different hashes
        for _ in range(4):
            rpc("evm_mine")
        c.wait_for(lambda m: c.blocks()[-1].number == 5 and c.reverts())
    seq = c.summary()
    reverts = c.reverts()
    assert [r.block_number for r in reverts] == [4, 3, 2]
    assert {r.block_number: r.block_hash for r in reverts} == orphaned
    assert all(r.depth == 3 for r in reverts)
    first_revert = seq.index("R4")
    assert seq[first_revert:first_revert + 7] == ["R4", "R3", "R2", "B2", "B3", "B4", "B5"]
    canonical = [b for b in c.blocks()][-4:]
    assert [b.number for b in canonical] == [2, 3, 4, 5]
    assert all(b.hash != orphaned.get(b.number) for b in canonical)
    assert reverts[-1].replaced_by == canonical[0].hash


def test_a_node_that_stops_sending_blocks_is_reconnected_and_backfilled(anvil, rpc, monkeypatch):
    """node.block_time_s: no new block for ten block times (here 10 x 0.1 s, the floor lowered for the
    test) and the follower takes the subscription for stalled, reconnects and backfills."""
    from mevwatch.monitor import chains, metrics

    monkeypatch.setattr(chains, "MIN_HEAD_TIMEOUT_S", 1.0)
    stalls = metrics.HEAD_STALLS._value.get()
    with Collector(anvil.ws_url, pending=False, block_time_s=0.1) as c:
        c.wait_for(lambda m: c.source.follower is not None)
        assert c.source.head_timeout_s == 1.0
        c.wait_for(lambda m: c.source.reconnects >= 2, timeout=15)  # anvil mines nothing: stalled, twice
        assert metrics.HEAD_STALLS._value.get() >= stalls + 2
        rpc("evm_mine")
        rpc("evm_mine")
        c.wait_for(lambda m: c.blocks() and c.blocks()[-1].number == 2)
    numbers = [b.number for b in c.blocks()]
    assert numbers == sorted(set(numbers)) and numbers[-2:] == [1, 2]  # backfilled once each, in order
    assert "no new block from the node for 1 s" in (c.source.last_error or "")
    # without a block time (dev chains, the default for anvil's 31337) there is no watchdog
    with Collector(anvil.ws_url, pending=False) as quiet:
        quiet.wait_for(lambda m: quiet.source.follower is not None)
        assert quiet.source.head_timeout_s is None
