"""`mevwatch verify` cannot be fooled, on a real anvil: it trusts only the registry its settings name
(never the bundle's), only the code this mevwatch ships, only the attesters and models the verifier
names, honours revocation, reads at the finalized block, can check the monitored chain for reorgs,
and answers malformed input with exit 2. The reference script reads the chain too, or says it did not."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from attest_common import (ATTESTER, KEYS, OTHER, OWNER, REPO, STRANGER, alert, attest_single, compile_solidity, deploy,
                           failed_checks, registry, run_cli, single_bundle, transact, write_config)
from eth_account import Account
from web3 import HTTPProvider, Web3

from mevwatch.monitor.alerts import AlertTx

pytestmark = pytest.mark.anvil


@pytest.fixture
def official(anvil, rpc, tmp_path):
    """The official registry (cold owner, hot attester) with one attested alert; settings pin both."""
    rpc("evm_setAutomine", True)
    w3 = Web3(HTTPProvider(anvil.http_url))
    contract = deploy(w3)
    bundle = attest_single(w3, contract, ATTESTER, alert(1, 50).to_json())
    cfg = write_config(tmp_path / "verify.yaml", rpc=anvil.http_url, contract=contract,
                       trusted_attesters=[ATTESTER.address], verify_at="latest")
    return w3, contract, bundle, cfg


def save(tmp_path: Path, bundle: dict, name: str = "bundle.json") -> str:
    f = tmp_path / name
    f.write_text(json.dumps(bundle))
    return str(f)


def verify(cfg: Path, bundle_file: str, *args: str, env: dict | None = None) -> tuple[int, str, list[str]]:
    r = run_cli(cfg, "verify", bundle_file, *args, env=env)
    return r.returncode, r.stdout + r.stderr, failed_checks(r.stdout)


def reference(bundle_file: str, *args: str) -> tuple[int, dict]:
    r = subprocess.run(["node", str(REPO / "scripts" / "attest_reference.mjs"), bundle_file, *args],
                       capture_output=True, text=True, timeout=60)
    return r.returncode, json.loads(r.stdout)


def test_forged_registry_named_by_the_bundle_is_not_verified(official, anvil, tmp_path):
    w3, contract, good, cfg = official
    rc, out, fails = verify(cfg, save(tmp_path, good, "good.json"))
    assert rc == 0 and "VERIFIED" in out and fails == [], out
    assert f"{ATTESTER.address} is a trusted attester" in out and "is the AttestationRegistry artifact's" in out

    # anyone deploys an identical registry and attests a made-up sandwich there (its alert id computed correctly)
    forged_registry = deploy(w3, owner=STRANGER, attester=STRANGER)
    forged = attest_single(w3, forged_registry, STRANGER, alert(7, 60).to_json())
    f = save(tmp_path, forged, "forged.json")
    # the settings pin the official registry (YAML and the environment alike)
    for env in (None, {"MEVWATCH_ATTEST__CONTRACT": contract}):
        rc, out, fails = verify(cfg, f, env=env)
        assert rc == 1 and "NOT VERIFIED" in out, out
        assert fails == [f"registry: the proof names registry {forged_registry} on chain 31337; the trusted registry is "
                         f"{contract} on chain 31337"], out
    # tricked into passing the forged address: same code, but its attester is nobody the verifier trusts
    rc, out, fails = verify(cfg, f, "--contract", forged_registry)
    assert rc == 1 and fails == [f"attester: {STRANGER.address} is not a trusted attester (trusted: {ATTESTER.address})"], out
    # the bundle rewritten to name the official registry and our attester: that attester never attested the root
    forged["proof"].update(contract=contract, attester=ATTESTER.address)
    rc, out, fails = verify(cfg, save(tmp_path, forged, "forged2.json"))
    assert rc == 1 and len(fails) == 1 and fails[0].startswith("root on chain: root 0x") and \
        f"is not attested by {ATTESTER.address}" in fails[0], out

    # the independent reference script: says it only checked self-consistency, or reads the chain
    rc, ref = reference(f)
    assert rc == 0 and ref["matches"] is True and ref["scope"].startswith("self-consistent only"), ref
    chain_args = ("--rpc", anvil.http_url, "--contract", contract, "--attester", ATTESTER.address, "--at", "latest")
    rc, ref = reference(f, *chain_args)
    assert rc == 1 and ref["matches"] is False and ref["chain"]["proof_names_registry"] is False, ref
    rc, ref = reference(save(tmp_path, forged, "forged2.json"), *chain_args)
    assert rc == 1 and ref["matches"] is False and ref["chain"]["batch_id"] == 0, ref
    rc, ref = reference(str(tmp_path / "good.json"), *chain_args)
    assert rc == 0 and ref["matches"] is True and ref["chain"]["code_matches"] is True and ref["chain"]["batch"]["valid"], ref


def test_omitted_registry_chain_or_attester_is_not_verified(official, tmp_path):
    _w3, contract, good, cfg = official
    for drop, reason in ((("chain_id",), "does not name its chain_id"), (("contract",), "does not name its contract"),
                         (("contract", "chain_id"), "does not name its contract and chain_id")):
        b = json.loads(json.dumps(good))
        for k in drop:
            del b["proof"][k]
        rc, out, fails = verify(cfg, save(tmp_path, b))
        assert rc == 1 and fails == [f"registry: the proof {reason}; it cannot be tied to the trusted registry {contract}"], out
    b = json.loads(json.dumps(good))
    del b["proof"]["attester"]
    rc, out, fails = verify(cfg, save(tmp_path, b))
    assert rc == 1 and fails == ["attester: the proof names no attester"], out


def test_untrusted_and_revoked_attesters_and_revoked_batches(official, anvil, tmp_path):
    w3, contract, good, cfg = official
    reg = registry(w3, contract)
    transact(w3, reg.functions.addAttester(OTHER.address), OWNER)  # a second authorised attester, not trusted by us
    b1 = attest_single(w3, contract, OTHER, alert(8, 70).to_json())
    b2 = attest_single(w3, contract, OTHER, alert(9, 80).to_json())
    f1, f2 = save(tmp_path, b1, "b1.json"), save(tmp_path, b2, "b2.json")
    rc, out, fails = verify(cfg, f1)
    assert rc == 1 and fails == [f"attester: {OTHER.address} is not a trusted attester (trusted: {ATTESTER.address})"], out
    rc, out, _ = verify(cfg, f1, "--attester", OTHER.address)
    assert rc == 0, out

    # the owner (its key, through the CLI) revokes OTHER: batches through b1 stay valid, b2 does not
    owner_key = tmp_path / "owner.key"
    owner_key.write_text(KEYS[0])
    owner_key.chmod(0o600)
    env = {"MEVWATCH_ATTEST__PRIVATE_KEY_FILE": str(owner_key)}
    bid1, bid2 = b1["proof"]["batch_id"], b2["proof"]["batch_id"]
    r = run_cli(cfg, "attest", "revoke", OTHER.address, "--valid-through", str(bid1), "--calldata")
    assert r.returncode == 0 and f"to: {contract}" in r.stdout and "data: 0x" in r.stdout, r.stdout + r.stderr
    assert reg.functions.isAttester(OTHER.address).call()  # (calldata only: nothing sent)
    r = run_cli(cfg, "attest", "revoke", OTHER.address, "--valid-through", str(bid1), env=env)
    assert r.returncode == 0, r.stderr
    revoked_at = reg.functions.attesterState(OTHER.address).call()[3]
    assert revoked_at > 0
    rc, out, _ = verify(cfg, f1, "--attester", OTHER.address)
    assert rc == 0 and f"attester revoked at block {revoked_at}; its batches through {bid1} stay valid" in out, out
    rc, out, fails = verify(cfg, f2, "--attester", OTHER.address)
    assert rc == 1 and fails == [f"authorised: attester revoked at block {revoked_at}; its batches through {bid1} stay "
                                 f"valid, batch {bid2} is after that"], out

    # one batch of our own attester revoked by the owner
    gid = good["proof"]["batch_id"]
    r = run_cli(cfg, "attest", "revoke-batch", str(gid), env=env)
    assert r.returncode == 0, r.stderr
    rc, out, fails = verify(cfg, save(tmp_path, good, "good.json"))
    assert rc == 1 and fails == [f"authorised: batch {gid} was revoked by the registry's owner"], out
    # a hot key is no owner
    hot = tmp_path / "hot.key"
    hot.write_text(KEYS[1])
    r = run_cli(cfg, "attest", "grant", STRANGER.address, env={"MEVWATCH_ATTEST__PRIVATE_KEY_FILE": str(hot)})
    assert r.returncode == 1 and f"NotOwner({ATTESTER.address})" in r.stderr, r.stderr


def test_look_alike_contract_is_not_verified(official, tmp_path):
    w3, _contract, _good, _cfg = official
    art = compile_solidity(Path(__file__).parent / "contracts" / "LookAlike.sol")["LookAlike"]
    h = w3.eth.contract(abi=art["abi"], bytecode=art["bytecode"]).constructor().transact({"from": STRANGER.address})
    fake = w3.eth.wait_for_transaction_receipt(h)["contractAddress"]
    record = alert(11, 90).to_json()
    bundle = single_bundle(record, fake, 31337, ATTESTER.address, 1, 90)
    look = w3.eth.contract(address=fake, abi=art["abi"])
    transact(w3, look.functions.set(bytes.fromhex(bundle["proof"]["root"][2:]), 90, 90, 1, ATTESTER.address), STRANGER)
    # a user told to verify against it (its address in the settings): it answers every read, only its code differs
    cfg = write_config(tmp_path / "fake.yaml", rpc=_cfg_rpc(_cfg), contract=fake, trusted_attesters=[ATTESTER.address],
                       verify_at="latest")
    rc, out, fails = verify(cfg, save(tmp_path, bundle))
    assert rc == 1 and len(fails) == 1 and fails[0].startswith(f"registry code: the code at {fake} (hash 0x"), out
    assert "is not the AttestationRegistry this mevwatch ships" in fails[0]
    assert "ok   registry:" in out and "ok   inclusion" in out  # everything before the code check passed


def _cfg_rpc(cfg: Path) -> str:
    import yaml

    return yaml.safe_load(cfg.read_text())["attest"]["rpc"]


def test_malformed_input_exits_2_and_index_bounds(official, tmp_path):
    _w3, _contract, good, cfg = official
    cases = [("root", good["proof"]["root"][:-2], "proof root is 31 bytes, not 32"),
             ("leaf", "0x" + "zz" * 32, "proof leaf"), ("index", 0.5, "proof index must be an integer"),
             ("size", "1", "proof size must be an integer"), ("path", ["0x12"], "proof path entry 0 is 1 bytes"),
             ("model_hash", "0x1234", "proof model_hash is 2 bytes"), ("contract", "0x1234", "is not an address")]
    for field, value, why in cases:
        b = json.loads(json.dumps(good))
        b["proof"][field] = value
        rc, out, _ = verify(cfg, save(tmp_path, b))
        assert rc == 2 and why in out and "Traceback" not in out, (field, out)
    b = json.loads(json.dumps(good))
    b["alert"]["model_hash"] = "0xnot-a-hash"
    rc, out, _ = verify(cfg, save(tmp_path, b))
    assert rc == 2 and "the alert's model_hash" in out and "Traceback" not in out, out
    # a negative index is a proof that does not verify (it once verified the last leaf of a power-of-two tree)
    b = json.loads(json.dumps(good))
    b["proof"]["index"] = -1
    rc, out, fails = verify(cfg, save(tmp_path, b))
    assert rc == 1 and "inclusion: index -1 is outside a tree of 1 leaves" in fails, out


def test_reads_at_the_finalized_block_by_default(official, rpc, tmp_path):
    w3, contract, good, _cfg = official
    cfg = write_config(tmp_path / "fin.yaml", rpc=_cfg_rpc(_cfg), contract=contract, trusted_attesters=[ATTESTER.address])
    f = save(tmp_path, good)
    rc, out, fails = verify(cfg, f)
    assert rc == 1 and fails == [f"registry code: the registry at {contract} is not deployed yet at the finalized block; "
                                 "try again later (or --at latest)"], out
    rpc("anvil_mine", 70)  # anvil finalizes 64 blocks behind its head
    assert verify(cfg, f)[0] == 0
    fresh = save(tmp_path, attest_single(w3, contract, ATTESTER, alert(20, 200).to_json()), "fresh.json")
    rc, out, fails = verify(cfg, fresh)
    assert rc == 1 and len(fails) == 1 and "but not yet at the finalized block; try again later" in fails[0], out
    assert verify(cfg, fresh, "--at", "latest")[0] == 0
    rpc("anvil_mine", 70)
    rc, out, _ = verify(cfg, fresh)
    assert rc == 0 and "registry read at the finalized block" in out, out


def test_chain_rpc_catches_a_reorg_after_final(official, tmp_path):
    from services import Anvil

    w3, contract, _good, cfg = official
    node = Anvil(tmp_path / "monitored", chain_id=1337).start()
    try:
        m = Web3(HTTPProvider(node.http_url))
        m.provider.make_request("anvil_mine", [100])  # past the blocks our attester covered already (ranges only go up)
        snap = m.provider.make_request("evm_snapshot", [])["result"]
        hashes = [m.eth.send_transaction({"from": m.eth.accounts[i], "to": m.eth.accounts[5], "value": 1 + i}) for i in range(3)]
        m.provider.make_request("evm_mine", [])
        blk = m.eth.get_block("latest")
        a = alert(12, blk["number"], chain_id=1337)
        a.block_hash = "0x" + bytes(blk["hash"]).hex()
        order = {bytes(h): i for i, h in enumerate(blk["transactions"])}
        a.txs = [AlertTx("0x" + bytes(h).hex(), order[bytes(h)], role) for h, role in zip(hashes, ("frontrun", "victim", "backrun"))]
        from mevwatch.monitor.alerts import compute_alert_id

        a.alert_id = compute_alert_id(a.chain_id, a.kind, a.txs)
        f = save(tmp_path, attest_single(w3, contract, ATTESTER, a.to_json()))
        rc, out, _ = verify(cfg, f, "--chain-rpc", node.http_url)
        assert rc == 0 and f"ok   monitored chain: block {blk['number']}" in out, out
        # the monitored chain reorganises past the "final" block: other transactions, another hash
        m.provider.make_request("evm_revert", [snap])
        m.eth.send_transaction({"from": m.eth.accounts[7], "to": m.eth.accounts[8], "value": 5})
        m.provider.make_request("evm_mine", [])
        rc, out, fails = verify(cfg, f, "--chain-rpc", node.http_url)
        assert rc == 1 and len(fails) == 1 and "reorganised after the alert was final" in fails[0], out
        assert verify(cfg, f)[0] == 0  # without --chain-rpc the attestation itself still holds
    finally:
        node.stop()


def test_model_check_against_named_model_files_and_release_records(official, tmp_path):
    w3, contract, _good, cfg = official
    shipped = json.loads((REPO / "models" / "default" / "model.json").read_text())["model_hash"]
    other = "0x" + "5e" * 32
    by_shipped = attest_single(w3, contract, ATTESTER, alert(13, 100, model=shipped).to_json(), model=bytes.fromhex(shipped[2:]))
    by_other = attest_single(w3, contract, ATTESTER, alert(14, 110, model=other).to_json(), model=bytes.fromhex(other[2:]))
    f1, f2 = save(tmp_path, by_shipped, "m1.json"), save(tmp_path, by_other, "m2.json")
    # by default the shipped model file, hashed from its weights (not the hash string written beside it)
    rc, out, _ = verify(cfg, f1)
    assert rc == 0 and f"model {shipped}: the batch names it; it is the model file" in out and "(weights hashed)" in out, out
    rc, out, fails = verify(cfg, f2)
    assert rc == 1 and len(fails) == 1 and "but it is not a model you trust" in fails[0], out
    rec = tmp_path / "release.json"
    rec.write_text(json.dumps({"release": "v1", "models": [other]}))
    rc, out, _ = verify(cfg, f2, "--model", str(rec))
    assert rc == 0 and f"it is the release record {rec}" in out, out
    # naming only the release record: the shipped model is not trusted implicitly
    rc, out, fails = verify(cfg, f1, "--model", str(rec))
    assert rc == 1 and "not a model you trust" in fails[0], out
    # a model file whose bytes were changed is not the model its metadata claims
    import torch

    blob = torch.load(REPO / "models" / "default" / "model.pt", weights_only=True)
    name = sorted(blob["state_dict"])[0]
    blob["state_dict"][name] = blob["state_dict"][name] + 1
    edited = tmp_path / "edited.pt"
    torch.save(blob, edited)
    rc, out, fails = verify(cfg, f1, "--model", str(edited))
    assert rc == 1 and "not a model you trust" in fails[0], out


def test_deploy_does_not_make_the_owner_the_attester(anvil, rpc, tmp_path):
    rpc("evm_setAutomine", True)
    key = tmp_path / "deployer.key"
    key.write_text(KEYS[0])
    key.chmod(0o600)
    env = {"MEVWATCH_ATTEST__PRIVATE_KEY_FILE": str(key)}
    cfg = write_config(tmp_path / "c.yaml")
    r = run_cli(cfg, "attest", "deploy", "--rpc", anvil.http_url, env=env)
    assert r.returncode == 0, r.stderr
    reg = registry(Web3(HTTPProvider(anvil.http_url)), r.stdout.strip())
    assert reg.functions.owner().call() == OWNER.address and not reg.functions.isAttester(OWNER.address).call()
    r = run_cli(cfg, "attest", "deploy", "--rpc", anvil.http_url, "--attester", OWNER.address, env=env)
    assert r.returncode == 2 and "is the owner" in r.stderr, r.stderr
    cold = Account.create().address
    r = run_cli(cfg, "attest", "deploy", "--rpc", anvil.http_url, "--attester", ATTESTER.address, "--owner", cold, env=env)
    assert r.returncode == 0, r.stderr
    reg = registry(Web3(HTTPProvider(anvil.http_url)), r.stdout.strip())
    assert reg.functions.owner().call() == cold and reg.functions.isAttester(ATTESTER.address).call()
