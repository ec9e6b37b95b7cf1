"""The opaque-call sandwich rule (monitor/detect/opaque.py) on constructed mempools built from real
mainnet transactions: a victim's real router swap and real calls no decoder understands."""

from __future__ import annotations

import pytest

from mevwatch.monitor.decode.pending import decode_pending
from mevwatch.monitor.detect.opaque import OpaqueSandwichWatcher
from mevwatch.monitor.detect.registry import default_registry
from mevwatch.monitor.types import PendingTx

pytestmark = pytest.mark.fast
GWEI = 10**9
BLOCK = 13666326


def pending(tx, *, sender: str | None = None, nonce: int = 0, tip: int, seen: int) -> PendingTx:
    return PendingTx(chain_id=1, hash=tx.hash if sender is None else "0x" + f"{seen:064x}", from_address=sender or tx.from_address,
                     to_address=tx.to_address, nonce=nonce, input=tx.input, value=tx.value, gas=300_000, gas_price=None,
                     max_fee_per_gas=500 * GWEI, max_priority_fee_per_gas=tip, type=2, first_seen_ns=seen, source_node="test")


@pytest.fixture(scope="module")
def real(load_block):
    """A real user's router swap and two real calls (to two contracts) that decode to no swap."""
    b = load_block(BLOCK)
    swap = next(t for t in b.transactions if (s := decode_pending(t.to_address, t.input, t.value)) and not s[0].extra.get("direct"))
    opaque = [t for t in b.transactions if t.to_address and len(t.input) >= 10 and not decode_pending(t.to_address, t.input, t.value)]
    first = opaque[0]
    second = next(t for t in opaque if t.to_address != first.to_address)
    return swap, first, second


def run(txs: list[PendingTx]) -> list:
    w = OpaqueSandwichWatcher(chain_id=1)
    return [a for p in txs for a in w.on_pending(p)]


def test_registered_as_a_mempool_rule():
    assert "opaque_calls" in [n for n, _f in default_registry().mempool_rules]


def test_two_opaque_calls_around_someones_swap_raise_an_attempt_naming_the_victim(real):
    swap, first, second = real
    user = "0x" + "11" * 20
    v = pending(swap, tip=2 * GWEI, seen=1)
    f = pending(first, sender=user, nonce=5, tip=2 * GWEI + GWEI // 10, seen=2)  # outbids by 0.1 gwei
    b = pending(second, sender=user, nonce=6, tip=2 * GWEI - GWEI // 10, seen=3)  # underbids by 0.1 gwei
    alerts = run([v, f, b])
    assert len(alerts) == 1
    a = alerts[0]
    assert a.kind == "sandwich_attempt" and a.stage == "pending" and a.block_number is None
    assert [(t.hash, t.role) for t in a.txs] == [(f.hash, "frontrun"), (v.hash, "victim"), (b.hash, "backrun")]
    assert a.victims == [swap.from_address] and a.attackers == [user]
    # the same contract driven by a second account is one attacker too
    b2 = pending(first, sender="0x" + "22" * 20, nonce=0, tip=GWEI, seen=3)
    assert [t.role for t in run([v, f, b2])[0].txs] == ["frontrun", "victim", "backrun"]


def test_an_honest_user_with_two_unrelated_opaque_calls_raises_nothing(real):
    swap, first, second = real
    user = "0x" + "33" * 20
    v = pending(swap, tip=2 * GWEI, seen=1)
    # one high-tip and one low-tip call, not around anyone's swap: both above it ...
    assert run([v, pending(first, sender=user, nonce=1, tip=9 * GWEI, seen=2), pending(second, sender=user, nonce=2, tip=3 * GWEI, seen=3)]) == []
    # ... both below it ...
    assert run([v, pending(first, sender=user, nonce=1, tip=GWEI, seen=2), pending(second, sender=user, nonce=2, tip=GWEI // 2, seen=3)]) == []
    # ... sent before the swap was seen ...
    assert run([pending(first, sender=user, nonce=1, tip=9 * GWEI, seen=1), v, pending(second, sender=user, nonce=2, tip=GWEI, seen=3)]) == []
    # ... with no swap in the mempool at all ...
    assert run([pending(first, sender=user, nonce=1, tip=9 * GWEI, seen=2), pending(second, sender=user, nonce=2, tip=GWEI, seen=3)]) == []
    # ... or the low-tip one first (its nonce runs first: it cannot land after the swap and the other before)
    assert run([v, pending(first, sender=user, nonce=2, tip=9 * GWEI, seen=2), pending(second, sender=user, nonce=1, tip=GWEI, seen=3)]) == []


def test_the_swap_senders_own_calls_and_mined_swaps_are_no_victims(real, load_block):
    swap, first, second = real
    v = pending(swap, tip=2 * GWEI, seen=1)
    own = [pending(first, sender=swap.from_address, nonce=100, tip=3 * GWEI, seen=2),
           pending(second, sender=swap.from_address, nonce=101, tip=GWEI, seen=3)]
    assert run([v, *own]) == []
    w = OpaqueSandwichWatcher(chain_id=1)
    w.on_pending(v)
    from mevwatch.monitor.decode import BlockDecoder

    w.observe_block(BlockDecoder().decode(load_block(BLOCK)))  # the swap is mined: no longer pending
    user = "0x" + "44" * 20
    assert w.on_pending(pending(first, sender=user, nonce=1, tip=3 * GWEI, seen=2)) == []
    assert w.on_pending(pending(second, sender=user, nonce=2, tip=GWEI, seen=3)) == []


def test_a_contract_many_accounts_call_is_not_one_attacker(real):
    swap, first, _second = real
    v = pending(swap, tip=2 * GWEI, seen=1)
    callers = [pending(first, sender="0x" + f"{i:040x}", nonce=0, tip=(5 + i) * GWEI, seen=2 + i) for i in range(1, 6)]
    low = pending(first, sender="0x" + "55" * 20, nonce=0, tip=GWEI, seen=20)
    assert run([v, *callers, low]) == []  # six senders at once: a public contract
    assert run([v, callers[0], low]) != []  # two: one bot driven by two accounts
