"""The attester on a real anvil and a real ClickHouse: proofs are never lost after confirmation (the
journal goes only once they are stored; `attest repair` rebuilds them from the chain), another
attester cannot take our root, batches are cut at model changes, the journal is private and never
follows a symlink, key files are checked, and the tip escalation stops at its caps."""

from __future__ import annotations

import json
import os
import stat
import threading
import time
import uuid

import pytest
import structlog
import yaml
from attest_common import (ATTESTER, OTHER, OWNER, alert, anvil_settings, proofs, put, registry, run_cli, transact,
                           write_config)

from mevwatch.monitor.attest.batcher import build_plan, make_batcher, model_set_hash
from mevwatch.monitor.attest.verify import trust_from_settings, verify_alert
from mevwatch.monitor.errors import AttestError, StoreError
from mevwatch.monitor.store.store import open_store

pytestmark = pytest.mark.anvil


def all_verify(store, batcher, settings, **trust) -> None:
    t = trust_from_settings(settings, batcher.chain, at="latest", **trust)
    for aid in proofs(store):
        a, p = store.proof(aid)
        v = verify_alert(a.to_json(), p, batcher.chain, t)
        assert v.ok, (aid, [c for c in v.checks if not c.ok])


def test_proofs_are_not_lost_when_the_store_fails_after_confirmation(tmp_path, anvil, rpc, clickhouse):
    s, w3, contract, key = anvil_settings(tmp_path, anvil, rpc)
    rpc("evm_setAutomine", True)
    url = clickhouse.url(f"p_{uuid.uuid4().hex[:8]}")
    store = open_store(url, tmp_path)
    first = [alert(i, 10 + i) for i in range(5)]
    put(store, first, head=40)  # horizon 28

    b = make_batcher(s, store)
    real_write = store.write_proofs
    failures = {"left": 1}

    def failing_write(items, row):  # a transient store failure right after the batch was confirmed
        if failures["left"]:
            failures["left"] -= 1
            raise StoreError("clickhouse went away", retriable=True)
        return real_write(items, row)

    store.write_proofs = failing_write  # type: ignore[method-assign]
    with pytest.raises(StoreError):
        b.step(force=True)
    assert b.chain.batch_count() == 1 and proofs(store) == {}
    assert b.attester.journal.path.exists(), "the journal went before the proofs were stored"
    r = b.step(force=True)  # the store is back: the batch in flight is finished, not sent again
    assert r is not None and r.attested.batch_id == 1 and r.plan.count == 5
    assert set(proofs(store)) == {a.alert_id for a in first} and not b.attester.journal.path.exists()
    assert w3.eth.get_transaction_count(ATTESTER.address) == 1
    assert b.step(force=True) is None  # and nothing is attested twice

    # the worst case: the store fails and the journal is lost too; `attest repair` rebuilds from the chain
    second = [alert(100 + i, 30 + i) for i in range(3)]
    put(store, second, head=50)  # horizon 38
    failures["left"] = 1
    with pytest.raises(StoreError):
        b.step(force=True)
    b.attester.journal.path.unlink()
    assert b.step(force=True) is None  # the batcher moved past batch 2: its alerts have no proofs
    assert not {a.alert_id for a in second} & set(proofs(store))
    store.write_proofs = real_write  # type: ignore[method-assign]

    cfg = write_config(tmp_path / "repair.yaml", rpc=anvil.http_url, contract=contract, trusted_attesters=[ATTESTER.address],
                       verify_at="latest")
    doc = yaml.safe_load(cfg.read_text())
    doc.update(clickhouse={"url": url}, data_dir=str(tmp_path / "data"), node={"confirmations": 12})
    cfg.write_text(json.dumps(doc))
    env = {"MEVWATCH_ATTEST__PRIVATE_KEY_FILE": str(key)}
    st = run_cli(cfg, "attest", "status", env=env)
    assert "final alerts not attested yet: 3" in st.stdout, st.stdout + st.stderr
    r = run_cli(cfg, "attest", "repair", env=env)
    assert r.returncode == 0 and "batch 2: 3 proofs written" in r.stderr, r.stderr
    assert set(proofs(store)) == {a.alert_id for a in first + second}
    assert proofs(store)[second[0].alert_id][1]["tx_hash"]  # found through the Attested log
    r = run_cli(cfg, "verify", second[0].alert_id, env=env)
    assert r.returncode == 0 and "VERIFIED" in r.stdout, r.stdout + r.stderr
    r = run_cli(cfg, "attest", "repair", env=env)
    assert r.returncode == 0 and "every batch of this attester has its proofs" in r.stderr, r.stderr
    st = run_cli(cfg, "attest", "status", env=env)
    assert "final alerts not attested yet: 0" in st.stdout, st.stdout + st.stderr
    store.close()


def test_another_attester_cannot_take_our_root(tmp_path, anvil, rpc, clickhouse):
    s, w3, contract, _key = anvil_settings(tmp_path, anvil, rpc)
    rpc("evm_setAutomine", True)
    reg = registry(w3, contract)
    transact(w3, reg.functions.addAttester(OTHER.address), OWNER)  # a second instance, or a compromised key
    store = open_store(clickhouse.url(f"t_{uuid.uuid4().hex[:8]}"), tmp_path)
    finals = [alert(i, 10 + i) for i in range(4)]
    put(store, finals, head=40)  # horizon 28
    plan, _ = build_plan(store.final_alerts(10, 28), 10, 28)
    # the other attester attests our root first, with a range and count of its own
    transact(w3, reg.functions.attest(bytes.fromhex(plan.root[2:]), 0, 10**6, 1, b"\0" * 32, ""), OTHER)

    b = make_batcher(s, store)
    r = b.step(force=True)
    assert r is not None and not r.attested.adopted and r.attested.batch_id == 2
    assert b.chain.batch(2).attester == ATTESTER.address and b.chain.last_batch_of(ATTESTER.address) == 2
    assert b.step(force=True) is None  # flush ends
    got = proofs(store)
    assert set(got) == {a.alert_id for a in finals} and {p["attester"] for _b, p in got.values()} == {ATTESTER.address}
    all_verify(store, b, s)

    # the batch in flight is our root, but what landed is our batch of that root with another range (an
    # older transaction of ours took the nonce): never adopted as the plan; its proofs are rebuilt from
    # the chain's batch and the next plan starts after it
    later = [alert(200 + i, 30 + i) for i in range(2)]
    put(store, later, head=60)  # horizon 48
    p2, _ = build_plan(store.final_alerts(29, 48), 29, 48)
    nonce = w3.eth.get_transaction_count(ATTESTER.address)
    b.attester.journal.save(p2, nonce, [b.attester._sign(p2, nonce, 10**10, 10**9)])
    transact(w3, reg.functions.attest(bytes.fromhex(p2.root[2:]), 29, 40, 2, b"\0" * 32, ""), ATTESTER)
    assert b.step(force=True) is None and not b.attester.journal.path.exists()
    got = proofs(store)
    assert {got[a.alert_id][1]["to_block"] for a in later} == {40} and {got[a.alert_id][0] for a in later} == {3}
    assert b.chain.batch_count() == 3
    all_verify(store, b, s)
    store.close()


def test_batches_are_cut_at_model_changes_and_never_name_model_zero(tmp_path, anvil, rpc, clickhouse):
    s, w3, _contract, _key = anvil_settings(tmp_path, anvil, rpc)
    rpc("evm_setAutomine", True)
    store = open_store(clickhouse.url(f"m_{uuid.uuid4().hex[:8]}"), tmp_path)
    ma, mb = "0x" + "a1" * 32, "0x" + "b2" * 32
    finals = [alert(1, 10), alert(2, 11, model=ma), alert(3, 12, model=ma), alert(4, 12, model=mb), alert(5, 12),
              alert(6, 13, model=mb)]
    put(store, finals, head=40)
    b = make_batcher(s, store)
    got = []
    while (r := b.step(force=True)) is not None:
        got.append(r)
    assert [(r.plan.from_block, r.plan.to_block, r.plan.count) for r in got] == [(10, 11, 2), (12, 12, 3), (13, 28, 1)]
    on_chain = ["0x" + b.chain.batch(r.attested.batch_id).model_hash.hex() for r in got]
    assert on_chain == [ma, model_set_hash([ma, mb]), mb] and "0x" + "00" * 32 not in on_chain
    assert proofs(store)[finals[3].alert_id][1]["models"] == sorted([ma, mb])
    rec = tmp_path / "release.json"
    rec.write_text(json.dumps({"models": [ma, mb]}))
    all_verify(store, b, s, models=[rec])
    store.close()


def test_journal_is_private_and_never_follows_symlinks(tmp_path, anvil, rpc, clickhouse, monkeypatch):
    s, w3, _contract, _key = anvil_settings(tmp_path, anvil, rpc)
    store = open_store(clickhouse.url(f"j_{uuid.uuid4().hex[:8]}"), tmp_path)
    put(store, [alert(i, 10 + i) for i in range(3)], head=40)
    synced_dirs: list[str] = []
    real_fsync = os.fsync

    def spy(fd):  # which descriptors get fsynced (the real fsync runs)
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            synced_dirs.append(os.readlink(f"/proc/self/fd/{fd}"))
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    stop = threading.Event()
    b = make_batcher(s, store, stop=stop)
    j = b.attester.journal
    victim = tmp_path / "victim.txt"
    victim.write_text("untouched\n")
    planted = j.path.with_name(f".{j.path.name}.{os.getpid()}.tmp")
    planted.parent.mkdir(parents=True, exist_ok=True)
    planted.symlink_to(victim)  # someone plants the temporary name as a symlink

    t = threading.Thread(target=b.step, kwargs={"force": True})
    t.start()
    deadline = time.monotonic() + 30
    while int(rpc("txpool_status")["pending"], 16) == 0:
        assert time.monotonic() < deadline and t.is_alive(), "no attestation broadcast"
        time.sleep(0.05)
    stop.set()
    t.join(10)
    assert victim.read_text() == "untouched\n" and not planted.exists()
    assert j.path.exists() and not j.path.is_symlink()
    assert stat.S_IMODE(j.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(j.path.parent.stat().st_mode) & 0o077 == 0
    assert str(j.path.parent) in synced_dirs  # the rename is durable
    # a journal replaced by a symlink is refused, not read through
    body = j.path.read_bytes()
    j.path.unlink()
    other = tmp_path / "elsewhere.json"
    other.write_bytes(body)
    j.path.symlink_to(other)
    with pytest.raises(AttestError, match="is a symlink"):
        make_batcher(s, store).step(force=True)
    j.path.unlink()
    j.path.write_bytes(body)
    os.chmod(j.path, 0o600)
    rpc("evm_setAutomine", True)
    r = make_batcher(s, store).step(force=True)  # the batch in flight is finished from the journal
    assert r is not None and r.attested.batch_id == 1 and not j.path.exists()
    store.close()


def test_key_files_readable_by_others_are_warned_about(tmp_path, anvil, rpc, clickhouse):
    store = open_store(clickhouse.url(f"k_{uuid.uuid4().hex[:8]}"), tmp_path)
    from mevwatch.monitor.attest import chain as chainmod

    for mode, warned in ((0o644, True), (0o600, False)):
        chainmod._warned_paths.clear()
        d = tmp_path / f"m{mode:o}"
        d.mkdir()
        s, _w3, _c, key = anvil_settings(d, anvil, rpc, key_mode=mode)
        os.environ["MEVWATCH_ATTEST__PRIVATE_KEY_FILE"] = str(key)
        try:
            with structlog.testing.capture_logs() as logs:
                make_batcher(s, store)
        finally:
            del os.environ["MEVWATCH_ATTEST__PRIVATE_KEY_FILE"]
        hits = [x for x in logs if "readable by its group or others" in x["event"]]
        assert bool(hits) == warned, logs
        if warned:
            assert hits[0]["file"] == str(key) and hits[0]["mode"] == "0o644" and hits[0]["log_level"] == "warning"
    store.close()


def test_tip_escalation_is_capped_and_no_underpriced_replacement_is_sent(tmp_path, anvil, rpc, clickhouse):
    # tip 1 gwei, capped at 1.3: two raises of 12.5% fit (1.125, 1.27), the third would not
    s, w3, _c, _k = anvil_settings(tmp_path, anvil, rpc, attest__replace_after_s=0.3, attest__priority_fee_gwei=1.0,
                                   attest__max_priority_fee_gwei=1.3)
    store = open_store(clickhouse.url(f"c_{uuid.uuid4().hex[:8]}"), tmp_path)
    put(store, [alert(i, 5 + i) for i in range(4)], head=30)
    b = make_batcher(s, store)
    out: list = []
    t = threading.Thread(target=lambda: out.append(b.step(force=True)))
    t.start()
    deadline = time.monotonic() + 30
    while b.attester.capped < 3:  # nobody mines; the caps bind after two replacements
        assert time.monotonic() < deadline and t.is_alive(), (b.attester.replacements, b.attester.capped)
        time.sleep(0.1)
    assert b.attester.replacements == 2
    sent = json.loads(b.attester.journal.path.read_text())["sent"]
    assert len(sent) == 3 and max(x["priority_fee"] for x in sent) <= 1.3e9
    assert int(rpc("txpool_status")["pending"], 16) == 1  # one transaction out, the newest
    rpc("evm_mine")
    t.join(30)
    (r,) = out
    assert r is not None and r.attested.batch_id == 1
    tx = w3.eth.get_transaction(r.attested.tx_hash)
    assert tx["maxPriorityFeePerGas"] == sent[-1]["priority_fee"] and tx["nonce"] == 0
    store.close()
