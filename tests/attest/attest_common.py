"""What the attestation tests share: alerts, the store's checkpoint, anvil's dev keys, a registry
deployed the way an operator would (a cold owner, a hot attester), proof bundles and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml
from eth_account import Account
from web3 import HTTPProvider, Web3

from mevwatch.monitor.alerts import Alert, AlertEvent, AlertTx, Amount
from mevwatch.monitor.attest import canonical, merkle
from mevwatch.monitor.attest.chain import deploy_registry, registry_artifact
from mevwatch.monitor.config import load_settings
from mevwatch.monitor.lifecycle import version_of
from mevwatch.monitor.store.store import StoreBatch

REPO = Path(__file__).resolve().parents[2]
# anvil's dev accounts (mnemonic "test test ... junk"): 0 the registry's owner (cold), 1 our attester (hot),
# 2 a stranger who deploys a forged registry, 3 a second authorised attester
KEYS = ["0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
        "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
        "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
        "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6"]
OWNER, ATTESTER, STRANGER, OTHER = (Account.from_key(k) for k in KEYS)
CONFIRMATIONS = 12


def alert(i: int, block: int, stage: str = "final", model: str | None = None, chain_id: int = 31337) -> Alert:
    return Alert(kind="sandwich", stage=stage, chain_id=chain_id, block_number=block, block_hash=f"0x{block:064x}",
                 txs=[AlertTx(f"0x{i:062x}a1", 0, "frontrun"), AlertTx(f"0x{i:062x}b2", 1, "victim"), AlertTx(f"0x{i:062x}c3", 2, "backrun")],
                 attackers=["0xa"], victims=["0xv"], pools=["0xp"], tokens=["'); DROP TABLE alerts; --"],
                 profit=Amount("0xweth", 10**18 + i, 1.0 + i / 8), victim_loss=Amount("0xt", 5 * i, None), gas_cost_wei=21000,
                 evidence={"i": i, "symbol": "\"{x:String}\" %(s)s"}, model_hash=model)


def put(store, alerts: list[Alert], head: int) -> None:
    """Final (or other-stage) alerts plus the processed-block checkpoint ``head``."""
    b = StoreBatch(alerts=[AlertEvent(a, version_of(1000 + i + head, a.stage)) for i, a in enumerate(alerts)])
    b.blocks.append((head, f"0x{head:064x}", "", 0, 0, 1, 0, version_of(2000 + head, "included"), 0, 0, None, 1))
    store.write(b)


def proofs(store) -> dict[str, tuple[int, dict]]:
    rows = store.backend.query("SELECT alert_id, batch_id, proof FROM evidence FINAL WHERE batch_id >= 0")
    return {r[0]: (int(r[1]), json.loads(r[2])) for r in rows}


def deploy(w3, owner=OWNER, attester=ATTESTER) -> str:
    """The official registry: owned by a cold key, attested to by another (hot) key."""
    return deploy_registry(w3, owner, attester.address if attester is not None else None, owner.address)


def registry(w3, address: str):
    return w3.eth.contract(address=address, abi=registry_artifact()["abi"])


def transact(w3, fn, who) -> dict:
    r = w3.eth.wait_for_transaction_receipt(fn.transact({"from": who.address}))
    assert r["status"] == 1
    return r


def anvil_settings(tmp_path: Path, anvil, rpc, *, key_mode: int = 0o600, **extra):
    """A registry on ``anvil`` and settings attesting there with ATTESTER's key (mining left off)."""
    rpc("evm_setAutomine", True)
    w3 = Web3(HTTPProvider(anvil.http_url))
    contract = deploy(w3)
    rpc("evm_setAutomine", False)
    key = tmp_path / "attester.key"
    key.write_text(KEYS[1] + "\n")
    key.chmod(key_mode)
    os.environ["MEVWATCH_ATTEST__PRIVATE_KEY_FILE"] = str(key)
    try:
        s = load_settings(data_dir=str(tmp_path / "data"), chain_id=31337, node__confirmations=CONFIRMATIONS,
                          attest__rpc=anvil.http_url, attest__contract=contract, attest__confirmations=1, **extra)
    finally:
        del os.environ["MEVWATCH_ATTEST__PRIVATE_KEY_FILE"]
    return s, w3, contract, key


def single_bundle(record: dict, contract: str, chain_id: int, attester: str, batch_id: int, block: int) -> dict:
    """The bundle of an alert alone in its batch (its root is its leaf)."""
    leaf = merkle.leaf_hash(canonical.alert_bytes(record))
    return {"alert": record, "proof": {"format": 2, "batch_id": batch_id, "root": "0x" + leaf.hex(), "leaf": "0x" + leaf.hex(),
                                       "index": 0, "size": 1, "path": [], "contract": contract, "chain_id": chain_id,
                                       "attester": attester, "tx_hash": None, "from_block": block, "to_block": block,
                                       "model_hash": "0x" + "00" * 32}}


def attest_single(w3, contract: str, who, record: dict, *, model: bytes = b"\0" * 32) -> dict:
    """``who`` attests ``record`` alone as a batch on the registry at ``contract``; its bundle."""
    blk = record["block_number"]
    leaf = merkle.leaf_hash(canonical.alert_bytes(record))
    reg = registry(w3, contract)
    transact(w3, reg.functions.attest(leaf, blk, blk, 1, model, ""), who)
    bid = reg.functions.batchIdOf(who.address, leaf).call()
    b = single_bundle(record, contract, int(w3.eth.chain_id), who.address, bid, blk)
    b["proof"]["model_hash"] = "0x" + model.hex()
    return b


def write_config(path: Path, **attest) -> Path:
    path.write_text(yaml.safe_dump({"chain_id": 31337, "data_dir": str(path.parent / "verify-data"), "attest": attest}))
    return path


def run_cli(cfg: Path, *args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "mevwatch.monitor.cli", "--config", str(cfg), "--log-level", "WARNING", *args]
    e = dict(os.environ, PYTHONPATH=str(REPO))
    for k in [k for k in e if k.startswith("MEVWATCH_")]:
        del e[k]
    e.update(env or {})
    return subprocess.run(cmd, capture_output=True, text=True, env=e, cwd=REPO, timeout=timeout)


def failed_checks(stdout: str) -> list[str]:
    return [line.split("FAIL", 1)[1].strip() for line in stdout.splitlines() if "FAIL" in line]


def compile_solidity(source: Path) -> dict[str, dict]:
    """Compile one Solidity file with the pinned solc-js; {contract: {abi, bytecode}}."""
    script = ("const solc=require(process.argv[1]);const fs=require('fs');"
              "const src=fs.readFileSync(process.argv[2],'utf8');"
              "const out=JSON.parse(solc.compile(JSON.stringify({language:'Solidity',sources:{'x.sol':{content:src}},"
              "settings:{optimizer:{enabled:true,runs:200},evmVersion:'cancun',outputSelection:{'*':{'*':['abi','evm.bytecode.object']}}}})));"
              "if((out.errors||[]).some(e=>e.severity==='error')){console.error(JSON.stringify(out.errors));process.exit(1)}"
              "const r={};for(const [n,c] of Object.entries(out.contracts['x.sol']))r[n]={abi:c.abi,bytecode:'0x'+c.evm.bytecode.object};"
              "process.stdout.write(JSON.stringify(r))")
    r = subprocess.run(["node", "-e", script, str(REPO / "contracts" / "node_modules" / "solc"), str(source)],
                       capture_output=True, text=True, check=True, timeout=120)
    return json.loads(r.stdout)
