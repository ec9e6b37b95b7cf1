"""Pending-tx fate: included (with latency), replaced by the same (sender, nonce), dropped after the TTL."""

from __future__ import annotations

import pytest

from mevwatch.monitor.types import Block, Transaction
from mevwatch.monitor.types import PendingTx
from mevwatch.monitor.fates import FateTracker

pytestmark = pytest.mark.fast
ME = "0x" + "11" * 20


def ptx(h: int, nonce: int, seen_s: float) -> PendingTx:
    return PendingTx(1, f"0x{h:064x}", ME, None, nonce, "0x", 0, 21000, None, 10, 1, 2, int(seen_s * 1e9), "t")


def block(number: int, ts: int, txs: list[tuple[int, int]]) -> Block:
    return Block(number, None, None, ts, None, 0,
                 [Transaction(f"0x{h:064x}", i, ME, None, "0x", nonce=n) for i, (h, n) in enumerate(txs)])


def test_replaced_included_and_dropped():
    f = FateTracker(ttl_s=60)
    assert f.on_pending(ptx(1, 0, 100.0)) is None
    assert f.on_pending(ptx(2, 0, 101.0)) == f"0x{1:064x}"  # same nonce, higher fee: replaces 1
    assert f.on_pending(ptx(2, 0, 101.5)) is None  # seen again: nothing new
    assert f.hashes_for(ME, 0) == [f"0x{1:064x}", f"0x{2:064x}"]
    f.on_pending(ptx(3, 1, 102.0))
    f.on_pending(ptx(4, 5, 103.0))
    fates = f.on_block(block(7, 104, [(2, 0), (3, 1)]))
    got = {(x.hash[-1], x.fate, x.by[-1] if x.by else None) for x in fates}
    assert got == {("2", "included", None), ("1", "replaced", "2"), ("3", "included", None)}
    inc = next(x for x in fates if x.hash.endswith("2"))
    assert inc.latency_ns == 3 * 10**9 and inc.block_number == 7
    assert f.hashes_for(ME, 0) == []
    assert f.expire(int(130e9)) == []
    (dropped,) = f.expire(int(170e9))
    assert dropped.fate == "dropped" and dropped.hash.endswith("4")
