"""The lab end to end through the real Kafka broker: anvil -> `mevwatch ingest` -> Kafka ->
decode + rules + mempool rules. Every landed attack is alerted; an honest-only run raises no
sandwich alert."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from mevwatch.monitor.demo import Monitor
from services import Anvil
from mevwatch.sim.runner import Lab
from mevwatch.sim.score import score
from mevwatch.streams import bus as busmod

pytestmark = [pytest.mark.kafka, pytest.mark.anvil]


def run_lab_through_kafka(kafka, tmp_path: Path, *, attacks: bool) -> tuple[list[dict], list[dict]]:
    node = Anvil(tmp_path / "anvil", chain_id=31337).start()
    bus = busmod.KafkaBus(kafka.bootstrap)
    mon = Monitor(bus, None, confirmations=12, group=f"lab-{uuid.uuid4().hex[:6]}")
    # the session's broker holds earlier tests' messages: start where the topics end now
    while mon.consumer.poll(timeout_ms=1000, max_records=100_000):
        pass
    mon.consumer.commit()
    exe = str(Path(sys.executable).with_name("mevwatch"))
    log = open(tmp_path / "ingest.log", "wb")
    ingest = subprocess.Popen([exe, "ingest", "--rpc", node.ws_url, "--kafka", kafka.bootstrap], stdout=log, stderr=subprocess.STDOUT)
    try:
        lab = Lab(node.http_url, node.ws_url, seed=11, attacks=attacks)
        lab.setup()
        assert lab.market is not None
        time.sleep(2)  # ingest is following the node
        mon.watcher.register_router(lab.market.router.address, lab.market.factory.address, lab.market.pair_init_code_hash)
        result = lab.run(15)
        head = lab.w3.eth.block_number
        deadline = time.monotonic() + 60
        while mon.last_block != head and time.monotonic() < deadline:
            mon.step(timeout_ms=500)
        assert mon.last_block == head, (tmp_path / "ingest.log").read_text()[-2000:]
        mon.close()
        return [a.to_json() for a in mon.alerts], [a.to_json() for a in result.attacks]
    finally:
        ingest.terminate()
        ingest.wait(20)
        bus.close()
        node.stop()


def test_every_landed_attack_is_alerted_through_kafka(kafka, tmp_path):
    alerts, labels = run_lab_through_kafka(kafka, tmp_path, attacks=True)
    sc = score(alerts, labels)
    assert sc.attacks >= 3 and sc.recall == 1.0 and sc.false_positives == 0, sc
    assert score(alerts, labels, kinds=("sandwich",)).recall == 1.0
    arb = score(alerts, labels, kinds=("arbitrage", "backrun"))
    assert arb.recall == 1.0 and arb.false_positives == 0, arb
    jit = score(alerts, labels, kinds=("jit_sandwich",))
    assert jit.attacks >= 1 and jit.recall == 1.0 and jit.false_positives == 0, jit


def test_honest_run_through_kafka_raises_no_sandwich(kafka, tmp_path):
    alerts, labels = run_lab_through_kafka(kafka, tmp_path, attacks=False)
    assert labels == []
    assert [a for a in alerts if a["kind"] in ("sandwich", "sandwich_attempt")] == []
