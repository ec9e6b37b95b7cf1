"""Sandwich rule: the real 12775690 attack exactly, known false positives, and linking."""

from __future__ import annotations

import json

import pytest
from conftest import raw_block
from builders import BOT, POOL, POOL2, ROUTER, TKN, WETH, a, decoded, swap, transfer, tx

from mevwatch.monitor.detect import detect_block

pytestmark = pytest.mark.fast


def sandwiches(db):
    return [x for x in detect_block(db) if x.kind == "sandwich"]


def test_block_12775690_matches_mev_inspect_expectation(decode_block, traces_dir):
    expected = json.loads((traces_dir / "12775690.sandwiches.expected.json").read_text())[0]
    (alert,) = sandwiches(decode_block(12775690))
    roles = {(t.hash, t.role) for t in alert.txs}
    assert (expected["frontrun_swap"]["transaction_hash"], "frontrun") in roles
    assert (expected["backrun_swap"]["transaction_hash"], "backrun") in roles
    victims = {v["transaction_hash"] for v in expected["sandwiched_swaps"]}
    assert {h for h, r in roles if r == "victim"} == victims and len(victims) == 4
    assert expected["sandwicher_address"] in alert.attackers
    assert alert.pools == [expected["frontrun_swap"]["contract_address"]]
    assert alert.profit.token == expected["profit_token_address"]
    assert alert.profit.amount == expected["profit_amount"]
    front = alert.evidence["frontrun_swaps"][0]
    assert int(front["amount_in"]) == expected["frontrun_swap"]["token_in_amount"]
    assert int(front["amount_out"]) == expected["frontrun_swap"]["token_out_amount"]
    # every victim lost tokens to the front-run, and the loss is what the summary reports
    losses = [int(v["loss"]) for v in alert.evidence["victim_swaps"]]
    assert all(x > 0 for x in losses) and alert.victim_loss.amount == sum(losses)
    assert alert.victim_loss.eth and alert.victim_loss.eth > 0
    receipts = {r["transaction_hash"]: r for r in raw_block(12775690)["receipts"]}
    legs = [expected["frontrun_swap"]["transaction_hash"], expected["backrun_swap"]["transaction_hash"]]
    assert alert.gas_cost_wei == sum(receipts[h]["gas_used"] * receipts[h]["effective_gas_price"] for h in legs)
    assert alert.stage == "included" and alert.detector == "rules"


def test_block_12914944_sandwich_reported_once_and_no_pool_as_attacker(decode_block):
    db = decode_block(12914944)
    found = sandwiches(db)
    assert len(found) == 1, "mev-inspect-py reports this sandwich twice"
    pools = {s.pool for s in db.swaps}
    assert not set(found[0].attackers) & pools


def test_same_alert_id_on_every_run(decode_block):
    (a1,) = sandwiches(decode_block(12775690))
    (a2,) = sandwiches(decode_block(12775690))
    assert a1.alert_id == a2.alert_id and a1.to_jsonl() == a2.to_jsonl()


ATTACKER = a(0xA77)
VICTIM = a(0xB0B)


def classic(victim_sender=VICTIM, back_sender=ATTACKER):
    t0, t1, t2 = tx(0, ATTACKER, BOT), tx(1, victim_sender, ROUTER), tx(2, back_sender, BOT)
    f = swap(t0, POOL, WETH, TKN, 10**18, 500 * 10**18, sender=BOT, recipient=BOT, payer=BOT, reserves=(11 * 10**18, 5000 * 10**18))
    v = swap(t1, POOL, WETH, TKN, 2 * 10**18, 800 * 10**18, sender=ROUTER, recipient=victim_sender, payer=ROUTER,
             reserves=(13 * 10**18, 4200 * 10**18))
    b = swap(t2, POOL, TKN, WETH, 500 * 10**18, 13 * 10**17, sender=BOT, recipient=BOT, payer=BOT, reserves=(117 * 10**17, 4700 * 10**18))
    return [t0, t1, t2], [f, v, b]


def test_textbook_sandwich_and_its_profit():
    txs, sw = classic()
    (alert,) = sandwiches(decoded(txs, sw))
    assert [t.role for t in alert.txs] == ["frontrun", "victim", "backrun"]
    assert alert.profit.amount == 3 * 10**17 and alert.profit.eth == pytest.approx(0.3)
    assert ATTACKER in alert.attackers and BOT in alert.attackers and VICTIM in alert.victims


def test_attacker_split_over_two_accounts_through_one_bot_contract():
    txs, sw = classic(back_sender=a(0xA78))  # a second EOA drives the same bot, which holds the tokens
    (alert,) = sandwiches(decoded(txs, sw))
    assert {ATTACKER, a(0xA78), BOT} <= set(alert.attackers)


def test_split_accounts_linked_by_a_token_transfer():
    t0, t1, t2, t3 = tx(0, ATTACKER, a(0xC1)), tx(1, VICTIM, ROUTER), tx(2, a(0xA78), a(0xC1)), tx(3, a(0xA79), a(0xC2))
    holder, seller = a(0xC1), a(0xC2)
    f = swap(t0, POOL, WETH, TKN, 10**18, 500 * 10**18, recipient=holder, payer=holder)
    v = swap(t1, POOL, WETH, TKN, 10**18, 400 * 10**18, sender=ROUTER, recipient=VICTIM, payer=ROUTER)
    move = transfer(t2, TKN, holder, seller, 500 * 10**18, 1)
    b = swap(t3, POOL, TKN, WETH, 500 * 10**18, 12 * 10**17, recipient=seller, payer=seller)
    assert [] == sandwiches(decoded([t0, t1, t3], [f, v, b]))  # without the transfer nothing links them
    (alert,) = sandwiches(decoded([t0, t1, t2, t3], [f, v, b], [move]))
    assert {holder, seller} <= set(alert.attackers)


def test_no_victim_no_sandwich():
    txs, sw = classic()
    assert sandwiches(decoded([txs[0], txs[2]], [sw[0], sw[2]])) == []


def test_victim_trading_the_other_way_is_not_sandwiched():
    txs, sw = classic()
    sw[1] = swap(txs[1], POOL, TKN, WETH, 100 * 10**18, 10**17, sender=ROUTER, recipient=VICTIM, payer=ROUTER)
    assert sandwiches(decoded(txs, sw)) == []


def test_two_users_of_one_router_are_not_an_attacker():
    t0, t1, t2 = tx(0, a(1), ROUTER), tx(1, a(2), ROUTER), tx(2, a(3), ROUTER)
    f = swap(t0, POOL, WETH, TKN, 10**18, 500 * 10**18, sender=ROUTER, recipient=a(1), payer=ROUTER)
    v = swap(t1, POOL, WETH, TKN, 10**18, 400 * 10**18, sender=ROUTER, recipient=a(2), payer=ROUTER)
    b = swap(t2, POOL, TKN, WETH, 500 * 10**18, 12 * 10**17, sender=ROUTER, recipient=ROUTER, payer=ROUTER)
    assert sandwiches(decoded([t0, t1, t2], [f, v, b])) == []


def test_two_front_runs_over_two_pools_share_one_back_run():
    t0, t1, t2, t3 = tx(0, ATTACKER, BOT), tx(1, VICTIM, ROUTER), tx(2, a(0xB0C), ROUTER), tx(3, ATTACKER, BOT)
    f1 = swap(t0, POOL, WETH, TKN, 10**18, 500 * 10**18, sender=BOT, recipient=BOT, payer=BOT)
    f2 = swap(t0, POOL2, WETH, TKN, 10**18, 490 * 10**18, sender=BOT, recipient=BOT, payer=BOT, idx=1)
    v1 = swap(t1, POOL, WETH, TKN, 10**18, 400 * 10**18, sender=ROUTER, recipient=VICTIM, payer=ROUTER)
    v2 = swap(t2, POOL2, WETH, TKN, 10**18, 390 * 10**18, sender=ROUTER, recipient=a(0xB0C), payer=ROUTER)
    b1 = swap(t3, POOL, TKN, WETH, 500 * 10**18, 11 * 10**17, sender=BOT, recipient=BOT, payer=BOT)
    b2 = swap(t3, POOL2, TKN, WETH, 490 * 10**18, 11 * 10**17, sender=BOT, recipient=BOT, payer=BOT, idx=1)
    (alert,) = sandwiches(decoded([t0, t1, t2, t3], [f1, f2, v1, v2, b1, b2]))
    assert alert.pools == sorted([POOL, POOL2]) and len(alert.victims) == 2
    assert alert.profit.amount == 2 * 10**17


def _attributed(t, swaps):
    """Swaps as the decoders hand them over: each attributed to the account whose call made it."""
    from mevwatch.monitor.decode.context import PoolRegistry, TxContext
    from mevwatch.monitor.types import DecodeStats

    ctx = TxContext(t, DecodeStats(), PoolRegistry(), None)
    for s in swaps:
        ctx.add_swap(s)
    return ctx.swaps


def test_tax_token_selling_its_fees_inside_the_back_run_is_not_the_back_run():
    """TKN takes a fee on every transfer and, inside the attacker's transfer to the pool, sells the
    fees it collected on the same pool (paid from its own balance). That swap is the token's: the
    back-run is the attacker's own later swap, and the profit is computed from it."""
    t0, t1, t2 = tx(0, ATTACKER, BOT), tx(1, VICTIM, ROUTER), tx(2, ATTACKER, BOT)
    f = swap(t0, POOL, WETH, TKN, 10**18, 500 * 10**18, sender=BOT, recipient=BOT, payer=BOT)
    v = swap(t1, POOL, WETH, TKN, 2 * 10**18, 800 * 10**18, sender=ROUTER, recipient=VICTIM, payer=ROUTER)
    fee_sale = swap(t2, POOL, TKN, WETH, 60 * 10**18, 15 * 10**16, sender=ROUTER, recipient=TKN, payer=TKN, idx=1)
    back = swap(t2, POOL, TKN, WETH, 490 * 10**18, 125 * 10**16, sender=BOT, recipient=BOT, payer=BOT, idx=5)
    fee = transfer(t2, TKN, BOT, TKN, 10 * 10**18, 0)  # the tax: attacker -> token (a one-hop "link")
    b_swaps = _attributed(t2, [fee_sale, back])
    assert [s.actor for s in b_swaps] == [TKN, ""]
    (alert,) = sandwiches(decoded([t0, t1, t2], [f, v] + b_swaps, [fee]))
    assert [b["trace_address"] for b in alert.evidence["backrun_swaps"]] == [[5]]
    assert TKN not in alert.attackers and TKN not in alert.victims
    # pro-rata: bought 500 for 1 WETH, sold 490 for 1.25 WETH -> min(1.25 - 0.98, 1.25*500/490 - 1)
    assert alert.profit.token == WETH and alert.profit.amount == 125 * 10**16 - 98 * 10**16


def test_real_tax_token_fee_sale_is_attributed_to_the_token(decode_block):
    tx76 = "0xdb57297aa32d05d49747db4aea419b43c58f85594f606326214a6d02147a949d"
    token = "0x9f91d9f9070b0478abb5a9918c79b5dd533f672c"
    swaps = {s.trace_address: s for s in decode_block(13298725).swaps if s.transaction_hash == tx76}
    assert swaps[(0, 1, 3)].actor == token  # inside the user's transferFrom of the token
    assert swaps[(4,)].actor == "" and swaps[(7,)].actor == ""  # the user's own route
