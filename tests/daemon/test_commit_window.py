"""Faults placed on purpose in the detect role's commit window, on the real daemon process.

`mevwatch run --role detect` reads the lab's recording from a real Kafka broker and writes a real
ClickHouse server (merges stopped, so every raw row counts), the alerts topic and a webhook
receiver; `mevwatch run --role attest` attests every final block on the embedded chain meanwhile.
The test-only hook ``MEVWATCH_FAULT=<point>:<batch>[:kill|term]`` (monitor/pipeline.py) SIGKILLs
the daemon after the webhook outbox, after ClickHouse, after the alerts topic or before the offset
commit of a chosen batch (or SIGTERMs it there); it is restarted and the feed goes on. Afterwards:

- every sink, without de-duplication (each raw ClickHouse row, each topic message, each webhook
  delivery) holds exactly the fault-free run's ``(alert_id, stage, version)`` block-stage events,
  and one version per ``(alert_id, stage)``; webhooks deliver each ``(alert, stage)`` exactly once;
- every final alert keeps its inclusion proof, and `mevwatch verify` passes for one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections import Counter

import pytest
import yaml

from harness import REPO, Daemon, Feeder, Receiver, event_problems, expected_events, raw_alert_rows, stop_merges, topic_events, wait_until
from mevwatch.monitor.store.store import open_store
from mevwatch.monitor.types import Block

pytestmark = [pytest.mark.kafka, pytest.mark.anvil]
CONF = 3
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
FAULT_BATCH = 6


@pytest.mark.parametrize("fault", ["after_outbox:kill", "after_store:kill", "after_topic:kill", "before_commit:kill",
                                   "before_commit:term"])
def test_fault_in_the_commit_window_delivers_each_stage_once(tmp_path, fresh_kafka, clickhouse, lab_messages, fault):
    point, action = fault.split(":")
    want = expected_events(lab_messages, CONF)
    n_blocks = sum(1 for m in lab_messages if isinstance(m, Block))
    db = f"w_{uuid.uuid4().hex[:8]}"
    url = clickhouse.url(db)
    store = open_store(url, tmp_path)
    stop_merges(store)  # raw rows: nothing collapses behind the test's back
    rx = Receiver(SECRET)
    data = tmp_path / "data"
    for sub in ("detect", "attest"):
        (tmp_path / sub).mkdir()
    attest = {"batch_blocks": 1, "batch_seconds": 1}
    detect = Daemon(tmp_path / "detect", kafka=fresh_kafka.bootstrap, clickhouse=url, confirmations=CONF,
                    webhooks=[{"url": rx.url, "secrets": [SECRET]}], extra={"data_dir": str(data), "attest": attest, "gnn": {"enabled": False}},
                    env={"MEVWATCH_FAULT": f"{point}:{FAULT_BATCH}:{action}"})
    attester = Daemon(tmp_path / "attest", kafka=None, clickhouse=url, confirmations=CONF, role="attest",
                      extra={"data_dir": str(data), "attest": attest})
    try:
        attester.start()
        detect.start()
        wait_until(lambda: detect.get("/readyz")[0] == 200 and '"detecting"' in detect.tail(), 90, "the detect daemon ready",
                   detect.tail)
        time.sleep(2)  # partition assignment
        feeder = Feeder(fresh_kafka.bootstrap, lab_messages, block_s=0.5).start()
        wait_until(lambda: detect.proc.poll() is not None, 120, f"the fault {fault} to fire", detect.tail)
        assert "fault injected" in detect.tail()
        assert detect.proc.returncode == (-9 if action == "kill" else 0), detect.tail()
        assert feeder.sent < len(lab_messages), "the feed ended before the fault: nothing tested"
        detect.env.pop("MEVWATCH_FAULT")
        detect.start()
        feeder.join()

        def settled() -> bool:
            rows = store.backend.query("SELECT alert_id, stage, version FROM alerts FINAL WHERE stage != 'pending'")
            return store.count("blocks") >= n_blocks and {(r[0], r[1], int(r[2])) for r in rows} >= {
                (a, s, v) for a, s, v in want if s in ("final", "retracted")}
        wait_until(settled, 120, "every alert at its final stage", detect.tail)
        wait_until(lambda: store.unattested_final_range() is None, 90, "every final alert attested", attester.tail)

        def deliveries() -> list[tuple[str, str, int, str]]:
            out = []
            for headers, body in rx.requests:
                obj = json.loads(body)
                wid = headers["webhook-id"]
                out.append((obj["data"]["alert_id"], obj["data"]["stage"], int(wid.rsplit("-", 1)[1]), wid))
            return out

        raw_want = {(a, s) for a, s, _v in want}
        wait_until(lambda: {(a, s) for a, s, _v, _w in deliveries()} >= raw_want, 90, "every webhook delivered", detect.tail)
        assert detect.terminate() == 0
        time.sleep(1)  # nothing more may arrive after the stop
        got = deliveries()
        rx.verified()  # every signature checks
        # one message per (alert, stage): one webhook-id each. After a SIGKILL a delivery whose 2xx was
        # not recorded yet (the deliverer runs beside the pipeline) is sent again under that same id
        # and body (docs/operations.md: delivered at least once, receivers de-duplicate on the id);
        # after a SIGTERM nothing is sent twice
        ids = {}
        for a, s_, _v, wid in got:
            ids.setdefault((a, s_), set()).add(wid)
        assert not {k: w for k, w in ids.items() if len(w) > 1}, "an alert stage delivered under two webhook-ids"
        per_stage = Counter((a, s) for a, s, _v, _w in got)
        twice = {k: n for k, n in per_stage.items() if n > 1}
        if action == "term":
            assert not twice, f"{len(twice)} alert stages delivered more than once, e.g. {list(twice.items())[:3]}"
        assert {(a, s, v) for a, s, v, _w in got if s != "pending"} == want

        raw = raw_alert_rows(store)
        topic = topic_events(fresh_kafka.bootstrap)
        problems = event_problems("ClickHouse alerts rows", raw, want) + event_problems("alerts topic", topic, want)
        assert not problems, "\n".join(problems)
        assert {(a, s) for a, s, _v in topic} == {(a, s) for a, s, _v in raw}, "the topic and ClickHouse disagree"

        # a proof once written is never lost: every final alert carries one, and verify checks one
        finals = {r[0] for r in store.backend.query("SELECT alert_id FROM alerts FINAL WHERE stage = 'final'")}
        proved = {r[0] for r in store.backend.query("SELECT alert_id FROM evidence FINAL WHERE batch_id >= 0")}
        assert finals and finals == proved
        assert attester.terminate() == 0
        cfg = tmp_path / "verify.yaml"
        cfg.write_text(yaml.safe_dump({"data_dir": str(data), "chain_id": 31337, "clickhouse": {"url": url}}))
        aid = sorted(finals)[0]
        r = subprocess.run([sys.executable, "-m", "mevwatch.monitor.cli", "--config", str(cfg), "--log-level", "WARNING",
                            "verify", aid], capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(REPO)), cwd=REPO)
        assert r.returncode == 0 and "VERIFIED" in r.stdout, r.stdout + r.stderr
    finally:
        for d in (detect, attester):
            if d.proc and d.proc.poll() is None:
                d.kill()
        store.close()
