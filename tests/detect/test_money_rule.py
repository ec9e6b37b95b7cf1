"""One money rule for every alert (docs/alerts.md, "Amounts"), checked on the real mainnet blocks:
the per-token breakdown is always present, the headline ETH value is the value of the whole
breakdown (null when a token has no price, never a partial sum), and USD comes from a stablecoin's
WETH pool in the same block, with the pool named in the evidence."""

from __future__ import annotations

import pytest

from mevwatch.monitor.detect import detect_block
from mevwatch.monitor.detect.common import BlockView
from mevwatch.monitor.money import USD_STABLES, PriceBook, eth_only, valued

WETH = "0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2"
USDC = "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48"


def _alerts(decode_block, numbers):
    for n in numbers:
        db = decode_block(n)
        prices = BlockView(db).prices
        for a in detect_block(db):
            yield n, prices, a


def test_every_amount_on_the_real_blocks_follows_the_rule(decode_block, all_block_numbers):
    seen = multi = usd = 0
    for n, prices, a in _alerts(decode_block, all_block_numbers):
        for amount in (a.profit, a.victim_loss):
            if amount is None:
                continue
            seen += 1
            parts = amount.by_token
            assert parts and all(v != 0 for v in parts.values()) or parts == {amount.token: 0}, (n, a.alert_id)
            assert parts[amount.token] == amount.amount  # the headline is one entry of the breakdown
            values = [prices.eth(t, v) for t, v in parts.items()]
            if None in values:
                assert amount.eth is None and amount.usd is None, (n, a.alert_id)
            else:
                assert amount.eth == pytest.approx(sum(values), rel=1e-9, abs=1e-18), (n, a.alert_id)
            if amount.usd is not None:
                usd += 1
                assert amount.usd == pytest.approx(amount.eth * prices.usd_per_eth, rel=1e-9)
            assert (amount.usd is None) == (amount.eth is None or prices.usd_per_eth is None)
            multi += len(parts) > 1
            assert a.evidence["valuation"]["usd_per_eth"] == prices.usd_per_eth
            assert a.to_json()[("profit" if amount is a.profit else "victim_loss")]["by_token"] == {
                t: str(v) for t, v in parts.items()}
    assert seen >= 25 and multi >= 5 and usd >= 20, (seen, multi, usd)


def test_the_weth_leg_of_a_real_sandwich_counts_in_its_headline(decode_block):
    """Block 12914944: a sandwich that gains 960 USDC but spends 0.0059 WETH more than it got back;
    the headline ETH value is the net of both, not the USDC leg alone."""
    (sw,) = [a for _, _, a in _alerts(decode_block, [12914944]) if a.kind == "sandwich"]
    p = sw.profit
    assert p.token == USDC and p.by_token[USDC] == 960415380
    assert p.by_token[WETH] == -5948231186438492
    prices = BlockView(decode_block(12914944)).prices
    usdc_only = prices.eth(USDC, 960415380)
    assert p.eth == pytest.approx(usdc_only - 0.005948231186438492, rel=1e-9)
    assert p.usd == pytest.approx(p.eth * prices.usd_per_eth, rel=1e-9)


def test_usd_comes_from_a_stablecoin_pool_swapped_in_the_same_block(decode_block, all_block_numbers):
    priced = 0
    for n in all_block_numbers:
        db = decode_block(n)
        book = PriceBook(db.swaps)
        if book.usd_per_eth is None:
            assert book.usd_source is None
            assert not any(s for s in db.swaps if {s.token_in, s.token_out} == {WETH, USDC}), n
            continue
        priced += 1
        src = book.usd_source
        assert src["token"] in {t for t, _ in USD_STABLES}
        assert any(s.pool == src["pool"] and src["token"] in (s.token_in, s.token_out) for s in db.swaps), n
        assert 100 < book.usd_per_eth < 10_000, (n, book.usd_per_eth)  # ether's price over 2020-2021
    assert priced >= 10


def test_unknown_is_null_never_a_partial_sum():
    a = valued({WETH: 10**18, "0x" + "ab" * 20: 5}, eth_only, usd_per_eth=2000.0)
    assert a.eth is None and a.usd is None and a.token == WETH and a.amount == 10**18
    b = valued({WETH: 10**18, USDC: 0}, eth_only, usd_per_eth=2000.0)
    assert b.by_token == {WETH: 10**18} and b.eth == 1.0 and b.usd == 2000.0
    c = valued({WETH: 3 * 10**17 // 3}, lambda t, v: 0.1 + 0.2 if v else 0.0)  # no float noise: 0.3
    assert c.eth == 0.3
    assert valued({USDC: 0}, eth_only).to_json() == {"token": USDC, "amount": "0", "eth": 0.0, "usd": None,
                                                     "by_token": {USDC: "0"}}


def test_a_tiny_pool_of_ones_own_cannot_move_the_price():
    """The deepest WETH pool of a token sets its price (and USD's): a later swap on a pool holding 1
    WETH at a silly price changes nothing."""
    from builders import a, swap, tx

    deep, tiny = a(0xDEE), a(0x717)
    t0, t1 = tx(0, a(1)), tx(1, a(2))
    s0 = swap(t0, deep, WETH, USDC, 10**18, 1990 * 10**6, reserves=(1000 * 10**18, 2_000_000 * 10**6))
    s1 = swap(t1, tiny, WETH, USDC, 10**17, 10**6, reserves=(10**18, 10 * 10**6))
    book = PriceBook([s0, s1])
    assert book.usd_per_eth == 2000.0 and book.usd_source == {"token": USDC, "pool": deep}
    assert PriceBook([s1]).usd_per_eth == 10.0  # alone, the tiny pool is all there is (10 USDC for 1 WETH)
