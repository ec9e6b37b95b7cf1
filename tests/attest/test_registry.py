"""The AttestationRegistry on a real anvil, through web3.py: access control, duplicate roots,
events, reads by id and block range, ownership transfer, and the gas an attestation costs."""

from __future__ import annotations

import pytest
from web3 import HTTPProvider, Web3
from web3.exceptions import ContractCustomError

from mevwatch.monitor.attest.chain import decode_revert, registry_artifact

pytestmark = pytest.mark.anvil
ROOT = bytes.fromhex("11" * 32)
MODEL = bytes.fromhex("ab" * 32)


@pytest.fixture
def w3(anvil, rpc):
    rpc("evm_setAutomine", True)
    return Web3(HTTPProvider(anvil.http_url))


def deploy(w3, owner, attester):
    art = registry_artifact()
    h = w3.eth.contract(abi=art["abi"], bytecode=art["bytecode"]).constructor(attester).transact({"from": owner})
    r = w3.eth.wait_for_transaction_receipt(h)
    assert r["status"] == 1
    return w3.eth.contract(address=r["contractAddress"], abi=art["abi"])


def reverts_with(fn, sender) -> str:
    with pytest.raises(ContractCustomError) as info:
        fn.call({"from": sender})
    return decode_revert(info.value.data)


def test_registry_access_control_duplicates_events_and_reads(w3):
    owner, attester, stranger, newowner = w3.eth.accounts[:4]
    reg = deploy(w3, owner, attester)
    assert reg.functions.owner().call() == owner and reg.functions.isAttester(attester).call()

    # an unauthorised caller reverts, also the owner who is not an attester
    for who in (stranger, owner):
        assert reverts_with(reg.functions.attest(ROOT, 10, 20, 5, MODEL, "u"), who) == f"NotAttester({who})"
    assert reverts_with(reg.functions.setAttester(stranger, True), stranger) == f"NotOwner({stranger})"
    # malformed batches
    assert reverts_with(reg.functions.attest(b"\0" * 32, 10, 20, 5, MODEL, ""), attester) == "ZeroRoot()"
    assert reverts_with(reg.functions.attest(ROOT, 10, 20, 0, MODEL, ""), attester) == "EmptyBatch()"
    assert reverts_with(reg.functions.attest(ROOT, 21, 20, 5, MODEL, ""), attester) == "BadRange(21, 20)"

    h = reg.functions.attest(ROOT, 10, 20, 5, MODEL, "https://example.org/b/1").transact({"from": attester})
    r = w3.eth.wait_for_transaction_receipt(h)
    assert r["status"] == 1
    (ev,) = reg.events.Attested().process_receipt(r)
    assert ev["args"]["batchId"] == 1 and ev["args"]["root"] == ROOT and ev["args"]["attester"] == attester
    assert (ev["args"]["fromBlock"], ev["args"]["toBlock"], ev["args"]["count"]) == (10, 20, 5)
    assert ev["args"]["modelHash"] == MODEL and ev["args"]["uri"] == "https://example.org/b/1"
    # indexed: the root and the attester filter the logs
    logs = w3.eth.get_logs({"address": reg.address, "fromBlock": 0, "topics": [None, None, "0x" + ROOT.hex()]})
    assert len(logs) == 1
    gas_first = r["gasUsed"]

    # the same root cannot be attested twice, by anyone
    reg.functions.setAttester(stranger, True).transact({"from": owner})
    for who in (attester, stranger):
        assert reverts_with(reg.functions.attest(ROOT, 21, 30, 2, MODEL, ""), who) == f"DuplicateRoot(0x{ROOT.hex()}, 1)"

    root2 = bytes.fromhex("22" * 32)
    r2 = w3.eth.wait_for_transaction_receipt(reg.functions.attest(root2, 21, 30, 2, b"\0" * 32, "").transact({"from": stranger}))
    assert r2["status"] == 1
    assert reg.functions.batchCount().call() == 2
    assert reg.functions.batchIdOfRoot(root2).call() == 2 and reg.functions.lastBatchOf(stranger).call() == 2
    b = reg.functions.getBatch(1).call()
    assert (b[0], b[1], b[2], b[3], b[4], b[6], b[7]) == (ROOT, MODEL, 10, 20, 5, attester, "https://example.org/b/1")
    assert reverts_with(reg.functions.getBatch(3), stranger) == "UnknownBatch(3)"
    assert reg.functions.batchesInRange(0, 9, 1, 10).call() == [[], 0]
    assert reg.functions.batchesInRange(20, 21, 1, 10).call() == [[1, 2], 0]
    assert reg.functions.batchesInRange(25, 99, 1, 10).call() == [[2], 0]
    assert reg.functions.batchesInRange(0, 99, 1, 1).call() == [[1], 2]  # paged: continue from id 2

    # revoked attesters are refused again
    reg.functions.setAttester(stranger, False).transact({"from": owner})
    assert reverts_with(reg.functions.attest(bytes.fromhex("33" * 32), 31, 40, 1, MODEL, ""), stranger) == f"NotAttester({stranger})"

    # two-step ownership
    reg.functions.transferOwnership(newowner).transact({"from": owner})
    assert reg.functions.owner().call() == owner
    assert reverts_with(reg.functions.acceptOwnership(), stranger) == f"NotOwner({stranger})"
    reg.functions.acceptOwnership().transact({"from": newowner})
    assert reg.functions.owner().call() == newowner
    assert reverts_with(reg.functions.setAttester(stranger, True), owner) == f"NotOwner({owner})"

    # gas (bench/bench_attest.py writes the figure down): one storage-heavy write, well under 250k
    assert 100_000 < gas_first < 250_000, gas_first
