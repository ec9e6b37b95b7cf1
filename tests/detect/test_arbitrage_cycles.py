"""Order-free arbitrage cycles: nested flash-swap callbacks, profit in a middle token."""

from __future__ import annotations

import pytest
from builders import BOT, POOL, POOL2, TKN, USDC, WETH, a, decoded, swap, tx

from mevwatch.monitor.detect import detect_block
from mevwatch.monitor.detect.arbitrage import find_cycles
from mevwatch.monitor.types import ORDER_STRIDE

pytestmark = pytest.mark.fast

POOL3 = "0x5555555555555555555555555555555555555555"


def test_real_nested_three_swap_cycle_in_12914944(decode_block):
    """Tx 1: a V3 swap USDC->WETH whose callback swaps on a second V3 pool, whose callback swaps
    on a V2 pair: the frames come in the reverse of the trade (WETH->X->USDC->WETH)."""
    tx1 = "0xfcf4558f6432689ea57737fe63124a5ec39fd6ba6aaf198df13a825dd599bffc"
    (arb,) = [x for x in detect_block(decode_block(12914944)) if x.txs[0].hash == tx1]
    assert arb.kind == "arbitrage"
    assert arb.profit.token == WETH and arb.profit.amount == 123848351154563483804 - 70287643212620210176
    route = arb.evidence["route"]
    assert [r["pool"][:10] for r in route] == ["0x99b42f2b", "0x7ec0b75a", "0x88e6a0c2"]  # trade order
    assert route[0]["token_in"] == route[-1]["token_out"] == WETH
    # the first swap's input token (USDC) is repaid exactly: its net is 0, not the profit
    assert USDC not in arb.profit.by_token


def _nested(order: str):
    """One bot transaction: outer swap S1 (USDC->WETH, flash) whose callback does S2 (TKN->USDC,
    pays S1), whose callback does S3 (WETH->TKN, pays S2). Trace order: S1, S2, S3 (pre-order of
    the frames); log order: S3, S2, S1 (each pool emits its event after its callback returns)."""
    t = tx(0, a(1), BOT)
    specs = [
        (POOL, USDC, WETH, 2_000 * 10**6, 10 * 10**18, "uniswap_v3"),  # S1
        (POOL2, TKN, USDC, 700 * 10**18, 2_000 * 10**6, "uniswap_v3"),  # S2
        (POOL3, WETH, TKN, 9 * 10**18, 700 * 10**18, "uniswap_v2"),  # S3
    ]
    seq = specs if order == "traces" else specs[::-1]
    out = []
    for k, (pool, tin, tout, ain, aout, proto) in enumerate(seq):
        s = swap(t, pool, tin, tout, ain, aout, idx=k, protocol=proto)
        if order == "logs":
            s.trace_address, s.log_index = None, k
        else:
            s.trace_address = (0,) + (2, 0) * k
        s.order = t.position * ORDER_STRIDE + k
        out.append(s)
    return t, out


@pytest.mark.parametrize("order", ["traces", "logs"])
def test_nested_callback_cycle_in_either_order(order):
    t, swaps = _nested(order)
    (arb,) = detect_block(decoded([t], swaps))
    assert arb.kind == "arbitrage"
    assert (arb.profit.token, arb.profit.amount) == (WETH, 10**18)  # in the middle token, not USDC
    assert [r["pool"] for r in arb.evidence["route"]] == [POOL3, POOL2, POOL]
    assert arb.profit.by_token == {WETH: 10**18}


def test_both_orders_give_the_same_alert():
    ids = set()
    for order in ("traces", "logs"):
        t, swaps = _nested(order)
        (arb,) = detect_block(decoded([t], swaps))
        ids.add((arb.alert_id, arb.profit.amount, tuple(arb.pools)))
    assert len(ids) == 1


def test_cycles_found_in_any_permutation():
    import itertools

    t, swaps = _nested("traces")
    for perm in itertools.permutations(swaps):
        (route,) = find_cycles(list(perm))
        assert {s.pool for s in route} == {POOL, POOL2, POOL3}


def test_flash_cycle_that_loses_is_not_arbitrage():
    t, swaps = _nested("traces")
    swaps[2].amount_in = 11 * 10**18  # paid more WETH than the flash swap lent
    assert detect_block(decoded([t], swaps)) == []


def test_two_cycles_in_one_transaction_are_two_arbitrages():
    t = tx(0, a(1), BOT)
    s = [
        swap(t, POOL, WETH, TKN, 10**18, 500 * 10**18, idx=0),
        swap(t, POOL, USDC, WETH, 3000 * 10**6, 10**18, idx=1),
        swap(t, POOL2, TKN, WETH, 500 * 10**18, 11 * 10**17, idx=2),
        swap(t, POOL3, WETH, USDC, 10**18, 3100 * 10**6, idx=3),
    ]
    cycles = find_cycles(s)
    assert sorted(len(c) for c in cycles) == [2, 2]
    assert {frozenset(x.pool for x in c) for c in cycles} == {frozenset({POOL, POOL2}), frozenset({POOL, POOL3})}


def test_swaps_a_token_makes_for_itself_do_not_join_the_senders_cycle():
    t = tx(0, a(1), BOT)
    own = swap(t, POOL2, TKN, WETH, 500 * 10**18, 11 * 10**17, idx=1)
    own.actor = TKN  # the token sold its fees inside a transfer
    s = [swap(t, POOL, WETH, TKN, 10**18, 500 * 10**18, idx=0), own]
    assert detect_block(decoded([t], s)) == []
