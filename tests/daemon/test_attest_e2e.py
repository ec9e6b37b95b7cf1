"""Attestation end to end on anvil: the lab's attacks land, `mevwatch run` raises and finalises
alerts, a reorg orphans some of them before finality, and the batcher attests the final ones on
a second anvil (the attestation chain) to a registry owned by a cold key. Then `mevwatch verify` (trusting
only the configured registry and attester, reading at the finalized block, checking the monitored chain)
passes for an attested alert, the reference script agrees after reading the chain, and verify fails for
the same alert with one byte of evidence changed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest
import yaml
from eth_account import Account
from web3 import HTTPProvider, Web3

from harness import REPO, Daemon, start_on_lab, wait_until
from mevwatch.monitor.attest.chain import deploy_registry, open_chain
from mevwatch.monitor.config import load_settings
from services import Anvil
from mevwatch.monitor.store.store import open_store
from mevwatch.sim.runner import Lab
from conftest import Rpc

pytestmark = pytest.mark.anvil
OWNER_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"  # anvil's dev accounts 0 (cold owner)
ATTESTER_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"  # and 1 (the hot attester key)
CONFIRMATIONS = 8


def test_final_alerts_are_attested_orphaned_ones_never_and_verify_checks_bytes(tmp_path, clickhouse):
    node = Anvil(tmp_path / "anvil", chain_id=31337).start()
    chain_node = Anvil(tmp_path / "anvil-attest", chain_id=31338).start()
    Rpc(chain_node.http_url)("evm_setAutomine", True)
    owner, attester = Account.from_key(OWNER_KEY), Account.from_key(ATTESTER_KEY)
    contract = deploy_registry(Web3(HTTPProvider(chain_node.http_url)), owner, attester.address, owner.address)
    key = tmp_path / "attester.key"
    key.write_text(ATTESTER_KEY)
    key.chmod(0o600)
    url = clickhouse.url(f"e_{uuid.uuid4().hex[:8]}")
    attest = {"rpc": chain_node.http_url, "contract": contract, "batch_blocks": 1, "batch_seconds": 0.5, "confirmations": 1}
    daemon = Daemon(tmp_path, kafka=None, clickhouse=url, confirmations=CONFIRMATIONS, role="all", rpc=node.ws_url,
                    extra={"attest": attest}, env={"MEVWATCH_ATTEST__PRIVATE_KEY_FILE": str(key)})
    store = open_store(url, tmp_path)
    rpc = Rpc(node.http_url)
    try:
        lab = Lab(node.http_url, node.ws_url, seed=3)
        start_on_lab(daemon, lab, rpc, lambda: store.count("blocks") >= 1)
        snap: dict = {}

        def on_round(rnd, _messages) -> None:
            if rnd == 5:  # six blocks stay canonical, the next six will be orphaned
                snap["id"], snap["block"] = rpc("evm_snapshot"), int(rpc("eth_blockNumber"), 16)
        lab.run(12, on_round=on_round)
        head = int(rpc("eth_blockNumber"), 16)
        wait_until(lambda: store.last_block() == head, 60, "every lab block processed", daemon.tail)
        rows = store.backend.query("SELECT alert_id, block_number FROM alerts FINAL WHERE block_number IS NOT NULL")
        doomed = {r[0] for r in rows if int(r[1]) > snap["block"]}
        kept = {r[0] for r in rows if int(r[1]) <= snap["block"]}
        kinds = dict(store.backend.query("SELECT alert_id, kind FROM alerts FINAL"))
        assert sum(kinds[a] == "sandwich" for a in doomed) >= 1 and sum(kinds[a] == "sandwich" for a in kept) >= 1, \
            "the lab landed too few sandwiches on each side of the reorg"

        rpc("evm_revert", snap["id"])
        for _ in range(head - snap["block"] + CONFIRMATIONS + 4):
            rpc("evm_mine")  # the chain grows past the old head, and the kept blocks become final

        def stages() -> dict[str, str]:
            return dict(store.backend.query("SELECT alert_id, stage FROM alerts FINAL"))

        def proved() -> dict[str, int]:
            return {r[0]: int(r[1]) for r in store.backend.query("SELECT alert_id, batch_id FROM evidence FINAL WHERE batch_id >= 0")}
        wait_until(lambda: all(stages()[a] == "final" for a in kept) and kept <= set(proved()), 90,
                   "the kept alerts final and attested", daemon.tail)
        st = stages()
        assert all(st[a] == "retracted" for a in doomed)
        assert not doomed & set(proved()), "an orphaned alert was attested"
        assert set(proved()) == {a for a, s in st.items() if s == "final"}

        # the chain holds exactly the batches the store knows, and their sizes add up
        assert daemon.terminate() == 0
        assert ATTESTER_KEY[2:] not in daemon.log.read_text().lower(), "the attester key was logged"
        s = load_settings(attest__rpc=chain_node.http_url, attest__contract=contract)
        chain = open_chain(s)
        batches = [chain.batch(i) for i in range(1, chain.batch_count() + 1)]
        assert sum(b.count for b in batches) == len(proved())
        assert len(store.attestations()) == len(batches)
        ranges = sorted((b.from_block, b.to_block) for b in batches)
        assert all(a[1] < b[0] for a, b in zip(ranges, ranges[1:])), f"overlapping batches {ranges}"
        assert {b.attester for b in batches} == {attester.address}

        Rpc(chain_node.http_url)("anvil_mine", 70)  # verify reads the registry at the finalized block
        cfg = tmp_path / "verify.yaml"
        cfg.write_text(yaml.safe_dump({"chain_id": 31337, "clickhouse": {"url": url},
                                       "attest": {"rpc": chain_node.http_url, "contract": contract,
                                                  "trusted_attesters": [attester.address]}}))
        cli = [sys.executable, "-m", "mevwatch.monitor.cli", "--config", str(cfg), "--log-level", "WARNING"]
        env = dict(os.environ, PYTHONPATH=str(REPO))
        sandwich = sorted(a for a in kept if kinds[a] == "sandwich")[0]
        r = subprocess.run(cli + ["verify", sandwich, "--chain-rpc", node.http_url], capture_output=True, text=True, env=env, cwd=REPO)
        assert r.returncode == 0 and "VERIFIED" in r.stdout, r.stdout + r.stderr
        assert f"{attester.address} is a trusted attester" in r.stdout and "ok   monitored chain: block" in r.stdout, r.stdout
        bundle = tmp_path / "bundle.json"
        r = subprocess.run(cli + ["attest", "proof", sandwich, "-o", str(bundle)], capture_output=True, text=True, env=env, cwd=REPO)
        assert r.returncode == 0, r.stderr
        r = subprocess.run(["node", str(REPO / "scripts" / "attest_reference.mjs"), str(bundle), "--rpc", chain_node.http_url,
                            "--contract", contract, "--attester", attester.address], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0 and json.loads(r.stdout)["matches"] is True, r.stdout + r.stderr
        doc = json.loads(bundle.read_text())
        ev = json.dumps(doc["alert"]["evidence"], sort_keys=True)
        digit = next(i for i, ch in enumerate(ev) if ch.isdigit())
        changed = ev[:digit] + str((int(ev[digit]) + 1) % 10) + ev[digit + 1:]  # one byte of evidence
        doc["alert"]["evidence"] = json.loads(changed)
        bundle.write_text(json.dumps(doc))
        r = subprocess.run(cli + ["verify", str(bundle)], capture_output=True, text=True, env=env, cwd=REPO)
        assert r.returncode == 1 and "NOT VERIFIED" in r.stdout, r.stdout + r.stderr
        doomed_one = sorted(doomed)[0]
        r = subprocess.run(cli + ["verify", doomed_one], capture_output=True, text=True, env=env, cwd=REPO)
        assert r.returncode == 1 and "retracted: only final alerts are attested" in r.stdout, r.stdout
    finally:
        if daemon.proc and daemon.proc.poll() is None:
            daemon.kill()
        store.close()
        node.stop()
        chain_node.stop()
