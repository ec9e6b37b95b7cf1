"""Mempool rules, driven by the real victims of block 12775690 replayed as pending txs."""

from __future__ import annotations

import pytest
from conftest import raw_block

from mevwatch.monitor.detect.pending import MempoolWatcher, pair_address, sandwich_exposure
from mevwatch.monitor.money import v2_amount_out
from mevwatch.monitor.types import PendingTx

pytestmark = pytest.mark.fast
PAIR = "0xefb47fcfcad4f96c83d4ca676842fb03ef20a477"
SHIBA_ROUTER = "0x03f7724180aa6b939894b5ca4314783b0b36b329"


def pending(tx_hash, *, fee, seen, sender=None):
    a = next(t["action"] for t in raw_block(12775690)["traces"] if t["transaction_hash"] == tx_hash and t["trace_address"] == [])
    return PendingTx(1, tx_hash, sender or a["from"], a["to"], 0, a["input"], int(a["value"], 16), 300_000, None,
                     100 * 10**9, fee, 2, seen, "test")


def watcher_before_frontrun(decode_block) -> MempoolWatcher:
    """Pool state as it was before the front-run (reserves from the front-run's own trace)."""
    w = MempoolWatcher()
    db = decode_block(12775690)
    front = next(s for s in db.swaps if s.transaction_position == 2 and s.pool == PAIR)
    r_in = front.reserves_after[0] - front.amount_in
    r_out = front.reserves_after[1] + front.amount_out
    from mevwatch.monitor.detect.pending import Reserves

    t0, t1 = sorted((front.token_in, front.token_out))
    w.reserves[PAIR] = Reserves(t0, t1, *((r_in, r_out) if t0 == front.token_in else (r_out, r_in)))
    w.pools_by_pair[(t0, t1)] = {PAIR}
    return w


def test_the_30_weth_victim_was_exposed(decode_block):
    w = watcher_before_frontrun(decode_block)
    (alert,) = w.on_pending(pending("0x1fe35f66e24f12bdb54a0d35934aac809c783710d998621b70116ea9f95f4f4f", fee=2, seen=1))
    assert alert.kind == "exposed_swap" and alert.stage == "pending" and alert.block_number is None
    assert alert.pools == [PAIR] and alert.profit.token == "0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2"
    assert alert.profit.amount > 0 and alert.victim_loss.amount > 0
    ev = alert.evidence
    assert int(ev["amount_out_min"]) == 2737949751213388842090
    # the best front-run leaves the victim exactly at or above its limit
    r_in, r_out = (int(x) for x in ev["reserves_in_out"])
    a = int(ev["best_frontrun_in"])
    got = v2_amount_out(a, r_in, r_out)
    assert v2_amount_out(30 * 10**18, r_in + a, r_out - got) >= 2737949751213388842090
    # the tolerance as the integers give it, to 9 decimals (no float noise such as 0.0030000000000000027)
    clean, limit = int(ev["expected_out_without_attack"]), 2737949751213388842090
    assert ev["slippage_tolerance"] == ((clean - limit) * 10**9 // clean) / 10**9
    assert len(repr(ev["slippage_tolerance"])) <= 11


def test_tight_slippage_is_not_exposed(decode_block):
    w = watcher_before_frontrun(decode_block)
    assert w.on_pending(pending("0xf8e45a291cdab5e456375e4d7df30771670d504835c9332b32114e5bc4e315f9", fee=2, seen=1)) == []


def test_exposure_math_edges():
    assert sandwich_exposure(10**18, 10**30, 10**20, 10**20) is None  # would revert anyway
    assert sandwich_exposure(0, 0, 10**20, 10**20) is None
    e = sandwich_exposure(10**19, 0, 10**20, 10**20)  # no slippage limit at all: very exposed
    assert e is not None and e.profit > 0


def test_pending_sandwich_attempt(decode_block):
    w = watcher_before_frontrun(decode_block)
    w.reported.clear()
    victim = pending("0x1fe35f66e24f12bdb54a0d35934aac809c783710d998621b70116ea9f95f4f4f", fee=2 * 10**9, seen=100)
    assert [a.kind for a in w.on_pending(victim)] == ["exposed_swap"]
    bot = "0x" + "ab" * 20
    # the attacker copies router calls: buy before (higher tip), sell after (lower tip)
    front = pending("0xf8e45a291cdab5e456375e4d7df30771670d504835c9332b32114e5bc4e315f9", fee=5 * 10**9, seen=200, sender=bot)
    assert [a.kind for a in w.on_pending(front) if a.kind == "sandwich_attempt"] == []
    sell = pending("0x91a3abe5f3b806426542252820ba0ab6d56c098fdef6864ecaf4d352f64217a0", fee=1, seen=300, sender=bot)
    # a sell leg through the same router: encode one by hand
    from eth_abi import encode

    tkn, weth = "0x9813037ee2218799597d83d4a5b6f3b6778218d9", "0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2"
    sell.to_address = SHIBA_ROUTER
    sell.input = "0x18cbafe5" + encode(["uint256", "uint256", "address[]", "address", "uint256"], [10**20, 0, [tkn, weth], bot, 2**40]).hex()
    attempts = [a for a in w.on_pending(sell) if a.kind == "sandwich_attempt"]
    (att,) = attempts
    assert [(t.hash, t.role) for t in att.txs] == [(front.hash, "frontrun"), (victim.hash, "victim"), (sell.hash, "backrun")]
    assert att.attackers == [bot] and att.stage == "pending"


def test_pair_address_is_create2_of_the_factory():
    uni = ("0x5c69bee701ef814a2b6a3edd4b1652cb9cc5aa6f", "0x96e8ac4277198ff8b6f785478aa9a39f403cb768dd02cbee326c3e7da348845f")
    usdc, weth = "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48", "0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2"
    assert pair_address(*uni, usdc, weth) == pair_address(*uni, weth, usdc) == "0xb4e16d0168e52d35cacd2c6185b44281ec28c9dc"
