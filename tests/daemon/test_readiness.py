"""Health endpoints per role, on the real daemon (`mevwatch run --role ...` as a process) and real
services: readiness reflects what each role depends on (ingest: the node and the bus; detect:
the bus and the store; attest: the store and the attestation node), the heartbeat goes on while
start-up waits for ClickHouse or Kafka (so /healthz does not report a stall and a pod is not killed for
waiting), /startupz reports start-up completion, and a second attester on the same journal exits
with a clear error while the first one keeps running."""

from __future__ import annotations

import time
import uuid

import pytest
from eth_account import Account
from web3 import HTTPProvider, Web3

from conftest import Rpc
from harness import Daemon, wait_until
from mevwatch.monitor.attest.chain import deploy_registry
from services import Anvil, ClickHouseServer, free_port

pytestmark = [pytest.mark.kafka, pytest.mark.anvil]
OWNER_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"  # anvil's dev accounts 0 (cold owner)
ATTESTER_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"  # and 1 (the hot attester key)


def test_detect_waits_for_clickhouse_alive_then_starts_and_is_ready(tmp_path, kafka):
    port = free_port()  # ClickHouse comes up here only later: the daemon starts without it
    daemon = Daemon(tmp_path, kafka=kafka.bootstrap, clickhouse=f"clickhouse://127.0.0.1:{port}/ready_{uuid.uuid4().hex[:6]}",
                    confirmations=2, group=f"g-{uuid.uuid4().hex[:6]}").start()
    ch = ClickHouseServer(tmp_path / "clickhouse", port=port)
    try:
        wait_until(lambda: daemon.get("/healthz")[0] == 200, 60, "the health endpoint", daemon.tail)
        ages = []
        t_end = time.monotonic() + 25
        while time.monotonic() < t_end:  # old behaviour: the beat never moved, its age grew to 25 s (stalled at 60)
            code, body = daemon.get("/healthz")
            assert code == 200 and body["status"] == "ok" and body["started"] is False, (code, body)
            ages.append(body["beat_age_s"])
            code, body = daemon.get("/startupz")
            assert code == 503 and body["status"] == "starting" and body["role"] == "detect", body
            code, body = daemon.get("/readyz")
            assert code == 503 and body["checks"]["store"] is not True and body["started"] is False, body
            time.sleep(1)
        assert max(ages) < 15, f"the heartbeat stopped while backing off: {ages}"
        assert daemon.get("/startupz")[1]["phase"] == "waiting for ClickHouse"
        assert daemon.get("/readyz")[1]["checks"] == {"bus": True, "store": False}
        assert "ClickHouse unavailable at start; retrying" in daemon.tail()

        ch.start()
        wait_until(lambda: daemon.get("/startupz")[0] == 200, 90, "start-up to complete once ClickHouse is up", daemon.tail)
        wait_until(lambda: daemon.get("/readyz")[0] == 200, 30, "detect to be ready", daemon.tail)
        code, body = daemon.get("/readyz")
        assert body["role"] == "detect" and body["checks"] == {"bus": True, "store": True}, body
        assert daemon.get("/healthz")[1]["started"] is True
        assert daemon.terminate() == 0
    finally:
        if daemon.proc and daemon.proc.poll() is None:
            daemon.kill()
        ch.stop()


def test_detect_waits_for_kafka_at_start_then_is_ready(tmp_path):
    """A broker that is not up when detect starts is waited for (the heartbeat on, /startupz naming
    the wait), not a crash: the pod is not restarted in a loop while Kafka rolls."""
    from services import Kafka

    broker = Kafka(tmp_path / "kafka")  # not started yet
    daemon = Daemon(tmp_path, kafka=broker.bootstrap, clickhouse=None, confirmations=2, group=f"g-{uuid.uuid4().hex[:6]}").start()
    try:
        wait_until(lambda: daemon.get("/startupz")[1].get("phase") == "waiting for Kafka", 120, "the wait for Kafka", daemon.tail)
        code, body = daemon.get("/healthz")
        assert code == 200 and body["started"] is False, body
        assert daemon.get("/readyz")[1]["checks"]["bus"] is False
        assert "Kafka unavailable at start; retrying" in daemon.tail() and daemon.proc.poll() is None
        broker.start()
        wait_until(lambda: daemon.get("/readyz")[0] == 200, 120, "detect ready once Kafka is up", daemon.tail)
        assert daemon.terminate() == 0, daemon.tail()
    finally:
        if daemon.proc and daemon.proc.poll() is None:
            daemon.kill()
        broker.stop()


def test_ingest_is_ready_on_the_node_and_the_bus(tmp_path, kafka, anvil, rpc):
    daemon = Daemon(tmp_path, kafka=kafka.bootstrap, clickhouse=None, confirmations=2, role="ingest", rpc=anvil.ws_url).start()
    try:
        wait_until(lambda: daemon.get("/startupz")[0] == 200, 60, "ingest start-up", daemon.tail)
        rpc("evm_mine")
        wait_until(lambda: daemon.get("/readyz")[0] == 200, 60, "ingest to follow the node", daemon.tail)
        body = daemon.get("/readyz")[1]
        assert body["role"] == "ingest" and body["checks"] == {"node": True, "bus": True}, body
        assert body["store"] is None and body["chain"] is None  # not this role's business
        anvil.stop()  # the node goes away: ingest is no longer ready (but alive: it reconnects)
        wait_until(lambda: daemon.get("/readyz")[0] == 503, 60, "readiness to drop without the node", daemon.tail)
        code, body = daemon.get("/readyz")
        assert body["checks"]["node"] is False and body["checks"]["bus"] is True, body
        assert daemon.get("/healthz")[0] == 200
        assert daemon.terminate() == 0
    finally:
        if daemon.proc and daemon.proc.poll() is None:
            daemon.kill()


def test_attest_is_ready_on_store_and_chain_and_a_second_attester_exits(tmp_path, clickhouse):
    chain_node = Anvil(tmp_path / "anvil-attest", chain_id=31338).start()
    Rpc(chain_node.http_url)("evm_setAutomine", True)
    owner, attester = Account.from_key(OWNER_KEY), Account.from_key(ATTESTER_KEY)
    contract = deploy_registry(Web3(HTTPProvider(chain_node.http_url)), owner, attester.address, owner.address)
    key = tmp_path / "attester.key"
    key.write_text(ATTESTER_KEY)
    key.chmod(0o600)
    url = clickhouse.url(f"ra_{uuid.uuid4().hex[:8]}")
    extra = {"data_dir": str(tmp_path / "data"), "attest": {"rpc": chain_node.http_url, "contract": contract}}
    env = {"MEVWATCH_ATTEST__PRIVATE_KEY_FILE": str(key)}
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = Daemon(tmp_path / "a", kafka=None, clickhouse=url, confirmations=2, role="attest", extra=extra, env=env)
    second = Daemon(tmp_path / "b", kafka=None, clickhouse=url, confirmations=2, role="attest", extra=extra, env=env)
    try:
        first.start()
        # the bug this guards: only ingest ever set the node flag, so an attest pod was never ready
        wait_until(lambda: first.get("/readyz")[0] == 200, 90, "the attester to be ready", first.tail)
        body = first.get("/readyz")[1]
        assert body["role"] == "attest" and body["checks"] == {"store": True, "chain": True}, body
        assert body["node"] is None and first.get("/startupz")[0] == 200
        lock = tmp_path / "data" / "attest" / f"inflight-31338-{contract.lower()}.json.lock"
        assert lock.read_text().strip() == str(first.proc.pid)

        second.start()  # the same journal (same volume): refused with a clear error, nothing sent
        assert second.proc.wait(90) != 0, second.tail()
        assert "another attester is running on this journal" in second.tail() and f"locked by pid {first.proc.pid}" in second.tail()
        assert first.proc.poll() is None and first.get("/readyz")[0] == 200

        chain_node.stop()  # the attestation node goes away: not ready, still alive
        wait_until(lambda: first.get("/readyz")[0] == 503, 60, "readiness to drop without the attestation node", first.tail)
        body = first.get("/readyz")[1]
        assert body["checks"] == {"store": True, "chain": False} and "attestation node" in body["last_error"], body
        assert first.get("/healthz")[0] == 200
        assert first.terminate() == 0
        second.start()  # the lock went with the first process: the next attester starts (and waits for its node)
        wait_until(lambda: second.get("/startupz")[1].get("phase") == "waiting for the attestation node", 60,
                   "the next attester to wait for its node", second.tail)
        assert second.get("/healthz")[0] == 200
        assert second.terminate() == 0
    finally:
        for d in (first, second):
            if d.proc and d.proc.poll() is None:
                d.kill()
        chain_node.stop()
