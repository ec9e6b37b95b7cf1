"""Final is final: a reorg deeper than ``confirmations`` retracts only the alerts still open,
leaves the final ones as they were (their attestation commits to them) and counts the orphaned
final heights, so the operator learns that ``node.confirmations`` is too low."""

from __future__ import annotations

from mevwatch.monitor.alerts import Alert
from mevwatch.monitor.lifecycle import Lifecycle
from mevwatch.monitor.types import Block


def _block(n: int, fork: str = "a") -> Block:
    return Block(number=n, hash=f"0x{fork}{n:063x}", parent_hash=f"0x{fork}{n - 1:063x}", timestamp=1_700_000_000 + 12 * n,
                 miner=None, base_fee_per_gas=None, transactions=[])


def _alert(b: Block) -> Alert:
    return Alert(kind="sandwich", stage="included", chain_id=1, block_number=b.number, block_hash=b.hash, txs=[], attackers=[],
                 victims=[], pools=[], tokens=[], profit=None, victim_loss=None, gas_cost_wei=None, evidence={},
                 alert_id=f"alert-{b.number}")


def _chain(conf: int, heights: range) -> tuple[Lifecycle, list]:
    life, events = Lifecycle(conf), []
    for off, n in enumerate(heights):
        b = _block(n)
        events += life.on_block(b, [_alert(b)], off)
    return life, events


def test_revert_events_deeper_than_finality_retract_only_open_alerts():
    life, events = _chain(2, range(1, 7))  # head 6, confirmations 2: alerts of blocks 1..4 final
    assert sorted(e.alert.alert_id for e in events if e.alert.stage == "final") == [f"alert-{n}" for n in range(1, 5)]
    out = []
    for off, n in enumerate(range(6, 1, -1), start=100):  # the chain reverted down to block 1
        out += life.on_revert(n, _block(n).hash, off)
    assert sorted(e.alert.alert_id for e in out) == ["alert-5", "alert-6"]
    assert {e.alert.stage for e in out} == {"retracted"}
    assert life.orphaned_final == 3  # heights 2, 3, 4 had been final


def test_a_replacement_block_below_finality_counts_each_orphaned_final_height_once():
    life, _ = _chain(2, range(1, 7))
    out = life.on_block(_block(3, fork="b"), [], 200)  # a different block at height 3: 3..6 orphaned
    assert sorted(e.alert.alert_id for e in out if e.alert.stage == "retracted") == ["alert-5", "alert-6"]
    assert life.orphaned_final == 2  # heights 3 and 4
    # the new branch grows: its blocks become final on their own schedule, and nothing is counted again
    evs = []
    for off, n in enumerate(range(4, 9), start=300):
        b = _block(n, fork="b")
        evs += life.on_block(b, [_alert(b)], off)
    assert life.orphaned_final == 2
    # alert-4 was final before (its id mined again on the new branch: not again); 5 and 6 were retracted open
    assert sorted(e.alert.alert_id for e in evs if e.alert.stage == "final") == ["alert-5", "alert-6"]


def test_a_shallow_reorg_orphans_nothing_final():
    life, _ = _chain(3, range(1, 9))
    for off, n in enumerate((8, 7), start=100):
        life.on_revert(n, _block(n).hash, off)
    assert life.orphaned_final == 0


def test_final_alerts_mined_again_on_the_new_branch_are_not_raised_again():
    """The usual deep reorg: the new branch holds the same transactions, so the same alert ids."""
    life, _ = _chain(2, range(1, 7))  # alerts 1..4 final
    for off, n in enumerate(range(6, 2, -1), start=100):
        life.on_revert(n, _block(n).hash, off)
    evs = []
    for off, n in enumerate(range(3, 10), start=200):
        b = _block(n, fork="b")
        evs += life.on_block(b, [_alert(b)], off)  # same alert ids, new block hashes
    again = [(e.alert.alert_id, e.alert.stage) for e in evs if e.alert.alert_id in ("alert-3", "alert-4")]
    assert again == [], again
    assert ("alert-5", "included") in [(e.alert.alert_id, e.alert.stage) for e in evs]  # open ones go on as usual
