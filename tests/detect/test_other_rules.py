"""Arbitrage, back-run, JIT and displacement rules: positive and negative cases."""

from __future__ import annotations

import pytest
from builders import BOT, POOL, POOL2, ROUTER, TKN, USDC, WETH, a, decoded, liquidity, swap, tx

from mevwatch.monitor.detect import detect_block

pytestmark = pytest.mark.fast


def kinds(db):
    return [x.kind for x in detect_block(db)]


def test_real_arbitrage_in_12483198(decode_block):
    arbs = [x for x in detect_block(decode_block(12483198)) if x.kind == "arbitrage" and x.txs[0].position == 0]
    (arb,) = arbs
    assert arb.profit.token == WETH and arb.profit.amount == 9952775606184015146
    assert len(arb.evidence["route"]) >= 2 and len(set(arb.pools)) >= 2


def test_cycle_over_two_pools_is_arbitrage():
    t = tx(0, a(1), BOT)
    s1 = swap(t, POOL, WETH, TKN, 10**18, 500 * 10**18, idx=0)
    s2 = swap(t, POOL2, TKN, WETH, 500 * 10**18, 11 * 10**17, idx=1)
    (arb,) = detect_block(decoded([t], [s1, s2]))
    assert arb.kind == "arbitrage" and arb.profit.amount == 10**17


def test_wash_on_one_pool_and_losing_cycle_are_not_arbitrage():
    t = tx(0, a(1), BOT)
    wash = [swap(t, POOL, WETH, TKN, 10**18, 500 * 10**18, idx=0), swap(t, POOL, TKN, WETH, 500 * 10**18, 11 * 10**17, idx=1)]
    assert kinds(decoded([t], wash)) == []
    loss = [swap(t, POOL, WETH, TKN, 10**18, 500 * 10**18, idx=0), swap(t, POOL2, TKN, WETH, 500 * 10**18, 9 * 10**17, idx=1)]
    assert kinds(decoded([t], loss)) == []


def test_arbitrage_right_behind_its_target_is_a_backrun():
    t0, t1 = tx(0, a(2), ROUTER), tx(1, a(1), BOT)
    target = swap(t0, POOL, WETH, TKN, 5 * 10**18, 2000 * 10**18, sender=ROUTER, recipient=a(2))
    s1 = swap(t1, POOL, TKN, WETH, 500 * 10**18, 13 * 10**17, idx=0)
    s2 = swap(t1, POOL2, WETH, TKN, 12 * 10**17, 500 * 10**18, idx=1)
    # route starts and ends in TKN here: sell TKN where the target made it dear, buy it back elsewhere
    s1.amount_in, s2.amount_out = 500 * 10**18, 520 * 10**18
    (alert,) = detect_block(decoded([t0, t1], [target, s1, s2]))
    assert alert.kind == "backrun" and [t.role for t in alert.txs] == ["victim", "backrun"]
    assert alert.victim_loss is None


def test_arbitrage_far_from_the_swap_is_not_a_backrun():
    txs = [tx(0, a(2), ROUTER)] + [tx(i, a(10 + i), a(99)) for i in range(1, 4)] + [tx(4, a(1), BOT)]
    target = swap(txs[0], POOL, WETH, TKN, 5 * 10**18, 2000 * 10**18, sender=ROUTER, recipient=a(2))
    s1 = swap(txs[4], POOL, TKN, WETH, 500 * 10**18, 13 * 10**17, idx=0)
    s2 = swap(txs[4], POOL2, WETH, TKN, 12 * 10**17, 520 * 10**18, idx=1)
    assert kinds(decoded(txs, [target, s1, s2])) == ["arbitrage"]


def test_jit_liquidity_around_a_victim():
    lp, victim = a(0x11), a(0x22)
    t0, t1, t2 = tx(0, lp, a(0x33)), tx(1, victim, ROUTER), tx(2, lp, a(0x33))
    add = liquidity(t0, "add", POOL, lp, -600, 600, a0=10**6, a1=10**18)
    v = swap(t1, POOL, USDC, WETH, 1000 * 10**6, 5 * 10**17, sender=ROUTER, recipient=victim, protocol="uniswap_v3")
    rem = liquidity(t2, "remove", POOL, lp, -600, 600, a0=1001 * 10**6, a1=5 * 10**17 + 10**15)
    (alert,) = detect_block(decoded([t0, t1, t2], [v], liq=[add, rem]))
    assert alert.kind == "jit_sandwich"
    assert [t.role for t in alert.txs] == ["liquidity_add", "victim", "liquidity_remove"]
    assert lp in alert.attackers and alert.victims == [victim]


def test_liquidity_in_another_range_or_owner_is_not_jit():
    lp, victim = a(0x11), a(0x22)
    t0, t1, t2 = tx(0, lp, a(0x33)), tx(1, victim, ROUTER), tx(2, lp, a(0x33))
    v = swap(t1, POOL, USDC, WETH, 1000 * 10**6, 5 * 10**17, sender=ROUTER, recipient=victim, protocol="uniswap_v3")
    add = liquidity(t0, "add", POOL, lp, -600, 600)
    assert kinds(decoded([t0, t1, t2], [v], liq=[add, liquidity(t2, "remove", POOL, lp, -60, 60)])) == []
    assert kinds(decoded([t0, t1, t2], [v], liq=[add, liquidity(t2, "remove", POOL, a(0x44), -600, 600)])) == []
    # shared position manager: same manager, different senders -> not one owner
    nfpm = "0xc36442b4a4522e871399cd717abdd847ab11fe88"
    t2b = tx(2, a(0x55), nfpm)
    assert kinds(decoded([t0, t1, t2b], [v], liq=[liquidity(t0, "add", POOL, nfpm, -600, 600),
                                                   liquidity(t2b, "remove", POOL, nfpm, -600, 600)])) == []


CALL = "0x12345678" + "00" * 31 + "01" + "ab" * 32


def test_copied_call_with_higher_fee_displaces_a_failed_victim():
    target = a(0x77)
    att = tx(0, a(1), target, fee=50 * 10**9, inp=CALL)
    vic = tx(1, a(2), target, fee=30 * 10**9, success=False, inp=CALL)
    (alert,) = detect_block(decoded([att, vic], [], base_fee=10 * 10**9))
    assert alert.kind == "frontrun_displacement" and [t.role for t in alert.txs] == ["displacer", "displaced"]


def test_displacement_negative_cases():
    target = a(0x77)
    base = 10 * 10**9
    # victim succeeded
    assert kinds(decoded([tx(0, a(1), target, fee=50 * 10**9, inp=CALL), tx(1, a(2), target, fee=30 * 10**9, inp=CALL)], [], base_fee=base)) == []
    # lower fee
    assert kinds(decoded([tx(0, a(1), target, fee=20 * 10**9, inp=CALL), tx(1, a(2), target, fee=30 * 10**9, success=False, inp=CALL)], [], base_fee=base)) == []
    # same sender
    assert kinds(decoded([tx(0, a(1), target, fee=50 * 10**9, inp=CALL), tx(1, a(1), target, fee=30 * 10**9, success=False, inp=CALL)], [], base_fee=base)) == []
    # a crowd of senders making the same call: not one copier
    crowd = [tx(i, a(10 + i), target, fee=50 * 10**9, inp=CALL) for i in range(3)] + [tx(3, a(2), target, fee=30 * 10**9, success=False, inp=CALL)]
    assert kinds(decoded(crowd, [], base_fee=base)) == []


def test_recorded_blocks_kinds(all_block_numbers, decode_block):
    seen = {}
    for n in all_block_numbers:
        for alert in detect_block(decode_block(n)):
            seen.setdefault(alert.kind, []).append(n)
            assert alert.alert_id.startswith("0x") and len(alert.alert_id) == 66
            if alert.kind in ("sandwich", "arbitrage", "backrun"):
                assert alert.profit is not None and alert.profit.amount > 0
    assert {"sandwich", "arbitrage", "backrun"} <= set(seen)
    assert seen["sandwich"].count(12775690) == 1


def _traceless(db):
    db.block.has_traces = False
    return db


def test_traceless_copier_through_its_bot_contract_displaces_a_failed_victim():
    """Receipts and logs only: the attacker calls its own bot, whose calldata embeds the victim's
    target address and the victim's arguments; the victim's receipt says it failed."""
    target, bot = a(0x77), a(0xB07)
    forwarded = "0xdeadbeef" + "00" * 12 + target[2:] + CALL[2:]  # execute(target, victim's call)
    att = tx(0, a(1), bot, fee=50 * 10**9, inp=forwarded)
    vic = tx(1, a(2), target, fee=30 * 10**9, success=False, inp=CALL)
    (alert,) = detect_block(_traceless(decoded([att, vic], [], base_fee=10 * 10**9)))
    assert alert.kind == "frontrun_displacement" and alert.attackers == [a(1)] and alert.victims == [a(2)]
    # the same bot call not naming the victim's contract is no copy of it
    other = tx(0, a(1), bot, fee=50 * 10**9, inp="0xdeadbeef" + "00" * 12 + a(0x78)[2:] + CALL[2:])
    assert kinds(_traceless(decoded([other, vic], [], base_fee=10 * 10**9))) == []
    # and the victim must have failed
    ok = tx(1, a(2), target, fee=30 * 10**9, inp=CALL)
    assert kinds(_traceless(decoded([att, ok], [], base_fee=10 * 10**9))) == []


def test_gas_war_is_not_displacement():
    target, base = a(0x77), 10 * 10**9
    # outbid by a single wei on the same public function: a bidding race
    war = [tx(0, a(1), target, fee=30 * 10**9 + 1, inp=CALL), tx(1, a(2), target, fee=30 * 10**9, success=False, inp=CALL)]
    assert kinds(decoded(war, [], base_fee=base)) == []
    # several senders calling the same function with their own arguments, each outbidding the next
    own = ["0x12345678" + f"{i:064x}" + "ab" * 32 for i in range(3)]
    crowd = [tx(0, a(1), target, fee=40 * 10**9, inp=own[0] + CALL[10:]),
             tx(1, a(3), target, fee=35 * 10**9, inp=own[1]),
             tx(2, a(2), target, fee=30 * 10**9, success=False, inp=CALL)]
    assert kinds(decoded(crowd, [], base_fee=base)) == []
    # without the race (two senders, a real fee jump) the copy is still reported
    copy = [tx(0, a(1), target, fee=40 * 10**9, inp=CALL), tx(1, a(2), target, fee=30 * 10**9, success=False, inp=CALL)]
    assert kinds(decoded(copy, [], base_fee=base)) == ["frontrun_displacement"]
