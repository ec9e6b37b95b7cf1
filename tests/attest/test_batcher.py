"""The batcher on real chains and real stores: final alerts only, proofs stored with the
alerts, restarts in the middle of a batch, fee caps and replacements, the embedded chain."""

from __future__ import annotations

import json
import re
import os
import subprocess
import sys
import threading
import time
import uuid

import pytest
from attest_common import ATTESTER, CONFIRMATIONS, REPO, alert, anvil_settings, proofs, put
from eth_account import Account

from mevwatch.monitor.attest.batcher import make_batcher
from mevwatch.monitor.attest.chain import open_chain
from mevwatch.monitor.attest.verify import verify_alert
from mevwatch.monitor.config import load_settings
from mevwatch.monitor.errors import AttestError
from mevwatch.monitor.store.store import open_store


@pytest.mark.anvil
def test_attester_restarted_mid_batch_does_not_double_attest(tmp_path, anvil, rpc, clickhouse):
    s, w3, _contract, _key = anvil_settings(tmp_path, anvil, rpc)
    store = open_store(clickhouse.url(f"a_{uuid.uuid4().hex[:8]}"), tmp_path)
    first = [alert(i, 10 + i) for i in range(10)]
    put(store, first + [alert(99, 27, "retracted"), alert(98, 30, "included")], head=40)  # horizon 28

    stop = threading.Event()
    b1 = make_batcher(s, store, stop=stop)
    out: list = []
    t = threading.Thread(target=lambda: out.append(b1.step(force=True)))
    t.start()
    deadline = time.monotonic() + 30
    while int(rpc("txpool_status")["pending"], 16) == 0:  # the attestation is in the mempool, not mined
        assert time.monotonic() < deadline and t.is_alive(), "no attestation broadcast"
        time.sleep(0.05)
    stop.set()  # the process "dies" before the receipt and before any proof is written
    t.join(10)
    assert out == [None] and b1.attester.journal.path.exists() and proofs(store) == {}
    sent = json.loads(b1.attester.journal.path.read_text())["sent"][0]["tx_hash"]

    # meanwhile more blocks become final, and the pending attestation is mined
    put(store, [alert(100 + i, 29 + i) for i in range(3)], head=50)  # horizon 38
    rpc("evm_mine")

    b2 = make_batcher(s, store)  # the restarted attester
    r1 = b2.step(force=True)
    assert r1 is not None and r1.attested.batch_id == 1 and r1.attested.tx_hash == sent
    assert (r1.plan.from_block, r1.plan.to_block, r1.plan.count) == (10, 28, 10)
    rpc("evm_setAutomine", True)
    r2 = b2.step(force=True)
    assert r2 is not None and r2.attested.batch_id == 2
    assert (r2.plan.from_block, r2.plan.to_block, r2.plan.count) == (29, 38, 3)
    assert b2.step(force=True) is None  # nothing left
    assert not b2.attester.journal.path.exists()

    # exactly two transactions from the attester, two batches, every final alert in exactly one
    assert w3.eth.get_transaction_count(ATTESTER.address) == 2  # (a cold key deployed the registry)
    assert b2.chain.batch_count() == 2
    got = proofs(store)
    assert set(got) == {a.alert_id for a in first} | {alert(100 + i, 29 + i).alert_id for i in range(3)}
    assert {bid for bid, _p in got.values()} == {1, 2}
    assert alert(99, 27, "retracted").alert_id not in got and alert(98, 30, "included").alert_id not in got
    from mevwatch.monitor.attest.verify import trust_from_settings

    trust = trust_from_settings(s, b2.chain, at="latest")
    for aid, (bid, proof) in got.items():
        a, p = store.proof(aid)
        assert p["attester"] == ATTESTER.address and p["format"] == 2
        v = verify_alert(a.to_json(), p, b2.chain, trust)
        assert v.ok, [c for c in v.checks if not c.ok]

    # a batch journaled but never broadcast (crash between the two) is sent on restart
    put(store, [alert(200, 39)], head=60)
    b3 = make_batcher(s, store)
    from mevwatch.monitor.attest.batcher import build_plan

    alerts = store.final_alerts(39, 48)
    plan, _ = build_plan(alerts, 39, 48)
    nonce = w3.eth.get_transaction_count(b3.address, "pending")
    b3.attester.journal.save(plan, nonce, [b3.attester._sign(plan, nonce, 10**10, 10**9)])
    r = b3.step()
    assert r is not None and r.attested.batch_id == 3 and r.plan.root == plan.root and not r.attested.adopted
    assert b3.chain.batch_count() == 3
    store.close()


@pytest.mark.anvil
def test_fees_are_capped_and_stuck_transactions_replaced(tmp_path, anvil, rpc, clickhouse):
    s, w3, _contract, _key = anvil_settings(tmp_path, anvil, rpc, attest__replace_after_s=0.5, attest__priority_fee_gwei=1.0)
    store = open_store(clickhouse.url(f"f_{uuid.uuid4().hex[:8]}"), tmp_path)
    put(store, [alert(i, 5 + i) for i in range(4)], head=30)

    base = int(w3.eth.get_block("latest")["baseFeePerGas"])
    s.attest.max_fee_gwei = base / 2 / 1e9  # below the base fee: hold, do not overpay
    with pytest.raises(AttestError, match="above the cap") as info:
        make_batcher(s, store).step(force=True)
    assert info.value.retriable

    s.attest.max_fee_gwei = 300.0
    b = make_batcher(s, store)
    out: list = []
    t = threading.Thread(target=lambda: out.append(b.step(force=True)))
    t.start()
    deadline = time.monotonic() + 30
    while b.attester.replacements < 2:  # nobody mines: the attester raises its fees, same nonce
        assert time.monotonic() < deadline, "no replacement"
        time.sleep(0.1)
    rpc("evm_mine")
    t.join(30)
    (r,) = out
    assert r is not None and r.attested.batch_id == 1
    journal_txs = b.attester.replacements + 1
    tx = w3.eth.get_transaction(r.attested.tx_hash)
    assert tx["nonce"] == 0 and tx["maxPriorityFeePerGas"] > 10**9  # the replacement, with a higher tip, was mined
    assert w3.eth.get_transaction_count(b.address) == 1 and journal_txs >= 3
    store.close()


@pytest.mark.fast
def test_embedded_chain_attests_final_alerts_and_verify_command(tmp_path):
    data = tmp_path / "data"
    s = load_settings(data_dir=str(data), chain_id=31337, node__confirmations=CONFIRMATIONS,
                      clickhouse__data_dir=str(data / "chdb"))
    store = open_store(None, data / "chdb")
    m1, m2 = "0x" + "aa" * 32, "0x" + "bb" * 32
    finals = [alert(i, 10 + i) for i in range(5)] + [alert(10 + i, 20 + i, model=m1) for i in range(2)] + [
        alert(20 + i, 25 + i, model=m2) for i in range(2)]
    put(store, finals + [alert(50, 12, "retracted"), alert(51, 12, "included")], head=60)
    b = make_batcher(s, store)
    assert b.chain.embedded
    got = []
    while (r := b.step(force=True)) is not None:
        got.append(r)
    # cut where the model changes: rules-only and model m1 first, then m2
    assert [(r.plan.from_block, r.plan.to_block, r.plan.count) for r in got] == [(10, 24, 7), (25, 48, 2)]
    assert got[0].plan.model_hash == m1 and got[1].plan.model_hash == m2
    assert set(proofs(store)) == {a.alert_id for a in finals}
    store.close()

    # the embedded chain is rebuilt from its log: same batches after a restart
    c = open_chain(s)
    assert c.batch_count() == 2 and c.batch(1).root.hex() == got[0].plan.root[2:]

    env = dict(os.environ, PYTHONPATH=str(REPO))
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"data_dir: {data}\nchain_id: 31337\nclickhouse:\n  data_dir: {data / 'chdb'}\n")
    cli = [sys.executable, "-m", "mevwatch.monitor.cli", "--config", str(cfg), "--log-level", "WARNING"]
    aid = finals[0].alert_id
    r = subprocess.run(cli + ["verify", aid], capture_output=True, text=True, env=env, cwd=REPO)
    assert r.returncode == 0 and "VERIFIED" in r.stdout, r.stdout + r.stderr
    # the embedded chain's key is public: verify says so
    assert "EMBEDDED chain" in r.stdout and "proves nothing to anyone else" in r.stdout, r.stdout
    assert "proves nothing to a third party" in r.stderr, r.stderr
    bundle = tmp_path / "bundle.json"
    r = subprocess.run(cli + ["attest", "proof", aid, "--out", str(bundle)], capture_output=True, text=True, env=env, cwd=REPO)
    assert r.returncode == 0, r.stderr
    r = subprocess.run(cli + ["verify", str(bundle)], capture_output=True, text=True, env=env, cwd=REPO)
    assert r.returncode == 0 and "VERIFIED" in r.stdout, r.stdout + r.stderr
    # one changed byte of evidence: not verified
    text = bundle.read_text()
    assert text.count('"i": 0') == 1
    bundle.write_text(text.replace('"i": 0', '"i": 1'))
    r = subprocess.run(cli + ["verify", str(bundle)], capture_output=True, text=True, env=env, cwd=REPO)
    assert r.returncode == 1 and "NOT VERIFIED" in r.stdout and "does not lead" in r.stdout, r.stdout
    # a model-scored alert: its batch names the model, and no model you trust has that hash
    r = subprocess.run(cli + ["verify", finals[5].alert_id], capture_output=True, text=True, env=env, cwd=REPO)
    assert r.returncode == 1 and "not a model you trust" in r.stdout, r.stdout
    # ... until you name a release record holding it
    rec = tmp_path / "release.json"
    rec.write_text(json.dumps({"model_hash": m1}))
    r = subprocess.run(cli + ["verify", finals[5].alert_id, "--model", str(rec)], capture_output=True, text=True, env=env, cwd=REPO)
    assert r.returncode == 0 and f"release record {rec}" in r.stdout, r.stdout
    # not final, not attested
    r = subprocess.run(cli + ["verify", alert(51, 12, "included").alert_id], capture_output=True, text=True, env=env, cwd=REPO)
    assert r.returncode == 1 and "only final alerts" in r.stdout, r.stdout
    r = subprocess.run(cli + ["verify", "0x" + "12" * 32], capture_output=True, text=True, env=env, cwd=REPO)
    assert r.returncode == 2 and "unknown alert" in r.stderr, r.stderr


@pytest.mark.anvil
def test_attest_role_runs_as_its_own_process(tmp_path, clickhouse):
    """`mevwatch run --role attest`: the store in, proofs out, SIGTERM to stop (embedded chain)."""
    from services import free_port

    url = clickhouse.url(f"r_{uuid.uuid4().hex[:8]}")
    store = open_store(url, tmp_path)
    finals = [alert(300 + i, 10 + i) for i in range(6)]
    put(store, finals, head=40)
    port = free_port()
    cfg = tmp_path / "attest.yaml"
    cfg.write_text(f"chain_id: 31337\ndata_dir: {tmp_path / 'data'}\nhealth_port: {port}\nkafka:\n  bootstrap: 127.0.0.1:1\n"
                   "attest:\n  batch_blocks: 1\n  batch_seconds: 0.5\n")
    proc = subprocess.Popen([sys.executable, "-m", "mevwatch.monitor.cli", "--config", str(cfg), "run", "--role", "attest",
                             "--clickhouse", url], cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while set(proofs(store)) != {a.alert_id for a in finals}:
            assert time.monotonic() < deadline and proc.poll() is None, proc.stdout.read().decode()[-3000:] if proc.poll() is not None else "timeout"
            time.sleep(0.3)
        import urllib.request

        def scrape() -> tuple[str, float]:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                text = r.read().decode()
            return text, float(re.search(r"^mevwatch_attestation_batches_total (\S+)$", text, re.M).group(1))

        # the batcher writes a batch's proofs, then counts it: on a loaded machine a scrape can fall between
        text, batches = scrape()
        while batches == 0 and time.monotonic() < deadline:
            time.sleep(0.2)
            text, batches = scrape()
        # one batch, or two when the first round ran while the store was still settling (a loaded machine)
        assert batches in (1.0, 2.0) and "mevwatch_attestation_alerts_total 6.0" in text, text[-1500:]
        proc.terminate()
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        store.close()


@pytest.mark.fast
def test_attester_key_from_keystore_and_never_echoed(tmp_path, monkeypatch):
    from mevwatch.monitor.attest.chain import load_account
    from mevwatch.monitor.errors import ConfigError

    key = "0x" + "5a" * 32
    ks = tmp_path / "key.json"
    ks.write_text(json.dumps(Account.encrypt(key, "correct horse")))
    pw = tmp_path / "pw"
    pw.write_text("correct horse\n")
    monkeypatch.setenv("MEVWATCH_ATTEST__KEYSTORE_PASSWORD_FILE", str(pw))
    s = load_settings(attest__keystore=str(ks))
    assert load_account(s).address == Account.from_key(key).address
    assert "correct horse" not in repr(s) and "correct horse" not in s.model_dump_json()
    pw.write_text("wrong")
    with pytest.raises(ConfigError, match="wrong password") as info:
        load_account(load_settings(attest__keystore=str(ks)))
    assert "wrong" not in str(info.value).replace("wrong password", "")
    monkeypatch.delenv("MEVWATCH_ATTEST__KEYSTORE_PASSWORD_FILE")
    with pytest.raises(ConfigError, match="not a valid 32-byte hex key") as info:
        load_account(load_settings(attest__private_key="0xnothex" + "5a" * 20))
    assert "5a5a" not in str(info.value)
