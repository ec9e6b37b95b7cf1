"""Profit and victim-loss arithmetic, checked by hand."""

from __future__ import annotations

import pytest

from mevwatch.monitor.money import pro_rata_profit, v2_amount_out

pytestmark = pytest.mark.fast


def test_full_round_trip_profit_is_plain_difference():
    assert pro_rata_profit(cost_in=100, bought=50, sold=50, received=110) == 10


def test_partial_close_uses_the_smaller_pro_rata_estimate():
    # bought 100 Y for 1000 X, sold only 50 Y for 600 X.
    # back-run side: 600 - 1000*50/100 = 100; front-run side: 600*100/50 - 1000 = 200 -> 100
    assert pro_rata_profit(1000, 100, 50, 600) == 100
    # sold more than bought (inventory): 1000 X for 100 Y, sold 200 Y for 2100 X
    # back: 2100 - 1000*200/100 = 100; front: 2100*100/200 - 1000 = 50 -> 50
    assert pro_rata_profit(1000, 100, 200, 2100) == 50


def test_v2_amount_out_matches_uniswap_formula():
    # 1 ETH into 10 ETH / 20,000 TKN at 0.3%: 997*20000e18 / (10000 + 997) per unit
    assert v2_amount_out(10**18, 10 * 10**18, 20_000 * 10**18) == 997 * 10**18 * 20_000 * 10**18 // (10 * 10**18 * 1000 + 997 * 10**18)
    assert v2_amount_out(0, 1, 1) == 0


def test_argmax_unimodal_finds_the_peak():
    from mevwatch.monitor.money import argmax_unimodal

    assert argmax_unimodal(lambda x: -(x - 37) ** 2, 0, 1000) == 37
    assert argmax_unimodal(lambda x: x, 0, 10) == 10
    assert argmax_unimodal(lambda x: -x, 5, 10) == 5


def test_gas_cost_is_unknown_when_a_receipt_lacks_gas(decode_block):
    """A null gas_used (or a receipt without it) is unknown: the alert's gas cost is null, never 0
    and never the sum of the legs that have it."""
    from mevwatch.monitor.money import gas_cost

    db = decode_block(12775690)
    txs = db.block.transactions[:3]
    hashes = [t.hash for t in txs]
    full = gas_cost(db, hashes)
    assert full is not None and full == sum(t.gas_used * t.effective_gas_price for t in txs)
    txs[1].gas_used = None
    assert gas_cost(db, hashes) is None and gas_cost(db, []) is None


def test_a_null_gas_used_in_a_receipt_is_read_as_unknown(traces_dir):
    import copy
    import gzip
    import json

    from mevwatch.streams.mevinspect import parse_block

    raw = json.loads(gzip.open(traces_dir / "12775690.json.gz").read())
    bad = copy.deepcopy(raw)
    bad["receipts"][0]["gas_used"] = None
    pos = bad["receipts"][0]["transaction_index"]
    tx = next(t for t in parse_block(bad).transactions if t.position == pos)
    assert tx.gas_used is None
