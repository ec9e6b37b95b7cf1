"""The AttestationRegistry on a real anvil, through web3.py: a cold owner and hot attesters, roots
keyed per attester, strictly ordered ranges, revocation of attesters and batches, bounded paged
reads, ownership transfer, and the gas an attestation costs."""

from __future__ import annotations

import pytest
from attest_common import ATTESTER, OTHER, OWNER, STRANGER, deploy, registry, transact
from web3 import HTTPProvider, Web3
from web3.exceptions import ContractCustomError

from mevwatch.monitor.attest.chain import AttestChain, decode_revert

pytestmark = pytest.mark.anvil
ROOT = bytes.fromhex("11" * 32)
MODEL = bytes.fromhex("ab" * 32)
ZERO = b"\0" * 32


@pytest.fixture
def w3(anvil, rpc):
    rpc("evm_setAutomine", True)
    return Web3(HTTPProvider(anvil.http_url))


def reverts_with(fn, sender) -> str:
    with pytest.raises(ContractCustomError) as info:
        fn.call({"from": sender.address})
    return decode_revert(info.value.data)


def test_owner_is_not_the_attester_and_access_control(w3):
    reg = registry(w3, deploy(w3))
    assert reg.functions.owner().call() == OWNER.address
    assert reg.functions.isAttester(ATTESTER.address).call() and not reg.functions.isAttester(OWNER.address).call()
    for who in (STRANGER, OWNER):  # the owner manages attesters; it does not attest
        assert reverts_with(reg.functions.attest(ROOT, 10, 20, 5, MODEL, "u"), who) == f"NotAttester({who.address})"
    assert reverts_with(reg.functions.addAttester(STRANGER.address), STRANGER) == f"NotOwner({STRANGER.address})"
    assert reverts_with(reg.functions.revokeAttester(ATTESTER.address, 0), ATTESTER) == f"NotOwner({ATTESTER.address})"
    assert reverts_with(reg.functions.revokeBatch(1), ATTESTER) == f"NotOwner({ATTESTER.address})"
    assert reverts_with(reg.functions.addAttester(ATTESTER.address), OWNER) == f"AlreadyAttester({ATTESTER.address})"
    # malformed batches
    assert reverts_with(reg.functions.attest(ZERO, 10, 20, 5, MODEL, ""), ATTESTER) == "ZeroRoot()"
    assert reverts_with(reg.functions.attest(ROOT, 10, 20, 0, MODEL, ""), ATTESTER) == "EmptyBatch()"
    assert reverts_with(reg.functions.attest(ROOT, 21, 20, 5, MODEL, ""), ATTESTER) == "BadRange(21, 20)"
    # a registry deployed with no attester: nobody attests until the owner adds one
    bare = registry(w3, deploy(w3, attester=None))
    assert reverts_with(bare.functions.attest(ROOT, 1, 2, 1, ZERO, ""), OWNER) == f"NotAttester({OWNER.address})"

    r = transact(w3, reg.functions.attest(ROOT, 10, 20, 5, MODEL, "https://example.org/b/1"), ATTESTER)
    (ev,) = reg.events.Attested().process_receipt(r)
    assert ev["args"]["batchId"] == 1 and ev["args"]["root"] == ROOT and ev["args"]["attester"] == ATTESTER.address
    assert (ev["args"]["fromBlock"], ev["args"]["toBlock"], ev["args"]["count"]) == (10, 20, 5)
    logs = w3.eth.get_logs({"address": reg.address, "fromBlock": 0, "topics": [None, None, "0x" + ROOT.hex()]})
    assert len(logs) == 1

    # two-step ownership, to a multisig or cold key
    transact(w3, reg.functions.transferOwnership(STRANGER.address), OWNER)
    assert reg.functions.owner().call() == OWNER.address
    assert reverts_with(reg.functions.acceptOwnership(), OTHER) == f"NotOwner({OTHER.address})"
    transact(w3, reg.functions.acceptOwnership(), STRANGER)
    assert reg.functions.owner().call() == STRANGER.address
    assert reverts_with(reg.functions.addAttester(OTHER.address), OWNER) == f"NotOwner({OWNER.address})"


def test_roots_are_keyed_per_attester_and_ranges_strictly_ordered(w3):
    reg = registry(w3, deploy(w3))
    transact(w3, reg.functions.addAttester(OTHER.address), OWNER)
    # another authorised attester attests "our" root first, with any range: it does not block us
    transact(w3, reg.functions.attest(ROOT, 0, 1000, 1, ZERO, ""), OTHER)
    transact(w3, reg.functions.attest(ROOT, 10, 20, 5, MODEL, ""), ATTESTER)
    assert reg.functions.batchIdOf(OTHER.address, ROOT).call() == 1
    assert reg.functions.batchIdOf(ATTESTER.address, ROOT).call() == 2
    assert reg.functions.lastBatchOf(ATTESTER.address).call() == 2
    # but an attester cannot attest its own root twice
    assert reverts_with(reg.functions.attest(ROOT, 21, 30, 2, MODEL, ""), ATTESTER) == f"DuplicateRoot(0x{ROOT.hex()}, 2)"
    # each attester's ranges strictly increase: overlapping, repeated and backdated ranges revert
    r2 = bytes.fromhex("22" * 32)
    for frm, to in ((20, 25), (15, 30), (10, 20), (0, 5)):
        assert reverts_with(reg.functions.attest(r2, frm, to, 1, ZERO, ""), ATTESTER) == f"RangeNotAfter({frm}, 20)"
    transact(w3, reg.functions.attest(r2, 21, 30, 2, ZERO, ""), ATTESTER)  # the next range is fine
    # (another attester's ranges are its own)
    transact(w3, reg.functions.attest(r2, 1001, 1001, 1, ZERO, ""), OTHER)
    b = reg.functions.getBatch(3).call()
    assert (b[0], b[2], b[3], b[4], b[6], b[7], b[8]) == (r2, 21, 30, 2, ATTESTER.address, 2, False)  # prev of attester: 2
    assert reverts_with(reg.functions.getBatch(5), STRANGER) == "UnknownBatch(5)"


def test_revocation_records_when_and_invalidates_later_batches(w3, anvil):
    reg = registry(w3, deploy(w3))
    roots = [bytes([i + 1]) * 32 for i in range(4)]
    for i, root in enumerate(roots[:3]):
        transact(w3, reg.functions.attest(root, 10 * i, 10 * i + 9, 1, ZERO, ""), ATTESTER)
    assert [reg.functions.batchValid(i).call() for i in (1, 2, 3)] == [True, True, True]
    # the key leaked after batch 2: revoke it, batches 1..2 stay valid, 3 does not
    r = transact(w3, reg.functions.revokeAttester(ATTESTER.address, 2), OWNER)
    (ev,) = reg.events.AttesterRevoked().process_receipt(r)
    assert ev["args"]["validThroughBatch"] == 2 and ev["args"]["atBlock"] == r["blockNumber"]
    assert [reg.functions.batchValid(i).call() for i in (1, 2, 3)] == [True, True, False]
    info = AttestChain(w3, reg.address).attester_info(ATTESTER.address)
    assert (info.allowed, info.revoked, info.revoked_at_block, info.valid_through) == (False, True, r["blockNumber"], 2)
    # revoked for good: no more batches, and it cannot be re-added
    assert reverts_with(reg.functions.attest(roots[3], 100, 109, 1, ZERO, ""), ATTESTER) == f"NotAttester({ATTESTER.address})"
    assert reverts_with(reg.functions.addAttester(ATTESTER.address), OWNER) == f"AttesterWasRevoked({ATTESTER.address})"
    # "keep everything" is clamped to its last batch
    transact(w3, reg.functions.addAttester(OTHER.address), OWNER)
    transact(w3, reg.functions.attest(roots[3], 0, 9, 1, ZERO, ""), OTHER)
    transact(w3, reg.functions.revokeAttester(OTHER.address, 2**256 - 1), OWNER)
    assert reg.functions.attesterState(OTHER.address).call()[4] == 4 and reg.functions.batchValid(4).call()
    # one batch revoked by the owner
    transact(w3, reg.functions.revokeBatch(1), OWNER)
    assert not reg.functions.batchValid(1).call() and reg.functions.getBatch(1).call()[8] is True
    assert reverts_with(reg.functions.revokeBatch(9), OWNER) == "UnknownBatch(9)"


def test_paged_reads_are_bounded_and_resumable(w3):
    reg = registry(w3, deploy(w3))
    transact(w3, reg.functions.addAttester(OTHER.address), OWNER)
    for i in range(7):  # attesters alternate: ids 1,3,5,7 ours (blocks 0..9, 20..29, ...), 2,4,6 the other's
        who = ATTESTER if i % 2 == 0 else OTHER
        transact(w3, reg.functions.attest(bytes([i + 1]) * 32, 10 * i, 10 * i + 9, 1, ZERO, ""), who)
    # limit 0 and above MAX_SCAN revert instead of returning a cursor that never ends
    assert reverts_with(reg.functions.batchesInRange(0, 99, 1, 0), OWNER) == "BadLimit(0)"
    assert reverts_with(reg.functions.batchesInRange(0, 99, 1, 1001), OWNER) == "BadLimit(1001)"
    assert reverts_with(reg.functions.batchesOfInRange(ATTESTER.address, 0, 99, 0, 0), OWNER) == "BadLimit(0)"
    # the global scan: at most maxScan ids per call, resumed from `next`
    got, cursor, calls = [], 1, 0
    while True:
        ids, cursor = reg.functions.batchesInRange(15, 45, cursor, 2).call()
        got += ids
        calls += 1
        if not cursor:
            break
    assert got == [2, 3, 4, 5] and calls == 4  # ids 1..7 two at a time
    assert reg.functions.batchesInRange(0, 99, 7, 5).call() == [[7], 0]
    # one attester's batches: a walk back along its own chain, stopping before fromBlock
    assert reg.functions.batchesOfInRange(ATTESTER.address, 15, 45, 0, 10).call() == [[5, 3], 0]
    ids, nxt = reg.functions.batchesOfInRange(ATTESTER.address, 0, 99, 0, 2).call()
    assert (ids, nxt) == ([7, 5], 3)
    assert reg.functions.batchesOfInRange(ATTESTER.address, 0, 99, nxt, 2).call() == [[3, 1], 0]
    assert reverts_with(reg.functions.batchesOfInRange(ATTESTER.address, 0, 99, 2, 2), OWNER) == "UnknownBatch(2)"
    chain = AttestChain(w3, reg.address)
    assert chain.batches_of(ATTESTER.address, page=1) == [1, 3, 5, 7]
    assert chain.batches_of(OTHER.address, 30, 59) == [4, 6]
    assert chain.batches_of(STRANGER.address) == []


def test_gas_of_an_attestation(w3):
    reg = registry(w3, deploy(w3))
    first = transact(w3, reg.functions.attest(ROOT, 10, 20, 5, MODEL, ""), ATTESTER)["gasUsed"]
    later = transact(w3, reg.functions.attest(bytes.fromhex("22" * 32), 21, 30, 5, MODEL, ""), ATTESTER)["gasUsed"]
    # bench/bench_attest.py writes the figures down: a few storage-heavy writes, well under 250k
    assert 100_000 < later <= first < 250_000, (first, later)
