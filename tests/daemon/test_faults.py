"""The daemon under faults, with real services: the lab's pending transactions and blocks go
through a real Kafka broker into `mevwatch run --role detect` (a real process), which writes a
real ClickHouse server (merges stopped: every raw row counts), the alerts topic and a real
webhook receiver. Feeding starts only once the daemon's /readyz is OK and its consumer holds the
blocks partition. The faults are placed on purpose:

- the daemon is SIGKILLed right after the 8th block went through every sink (its checkpoint row
  is in ClickHouse) while the feed goes on, and restarted;
- the broker is SIGKILLed while a batch is in flight: the test-only hook
  ``MEVWATCH_FAULT=after_store:<n>:pause`` (or ``before_commit``) stops the daemon after ClickHouse
  took a batch (or every sink did), the broker dies, the daemon resumes into the alerts topic and
  the offset commit with no broker, which comes back seconds later; with 1 s produce and commit
  timeouts the log must show that the produce (or the commit) really was retried;
- ClickHouse is stopped for 30 s mid-run.

Afterwards each sink, without de-duplication (every raw ClickHouse row, every topic message,
every webhook delivery with its webhook-id and body), holds exactly the fault-free run's
``(alert_id, stage, version)`` block-stage events (computed once, in-process, from the same
recording), with one version per ``(alert_id, stage)``; webhooks are delivered once each (after a
SIGKILL a delivery may repeat, with the same webhook-id and body: docs/operations.md). The
receiver is checked again after the daemon stops. A deliberately broken variant (offsets
committed before the sinks) makes the same check report the loss."""

from __future__ import annotations

import os
import signal
import time
import uuid

import pytest

from harness import (Daemon, Feeder, Receiver, event_problems, expected_events, merged_parts, raw_alert_rows, settle,
                     sink_problems, start_detect, stop_merges,
                     stopped, wait_until)
from mevwatch.monitor.store.store import open_store
from mevwatch.monitor.types import Block

pytestmark = [pytest.mark.kafka, pytest.mark.anvil]
CONF = 3
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
KILL_AFTER_BLOCKS = 8
FAULT_BATCH = 4


def n_blocks(messages) -> int:
    return sum(1 for m in messages if isinstance(m, Block))


class Run:
    """One detect daemon on this test's broker and its own ClickHouse database (merges stopped), with a receiver."""

    def __init__(self, tmp_path, fresh_kafka, clickhouse, lab_messages, *, env: dict | None = None, flaky: bool = False,
                 kafka_settings: dict | None = None):
        self.kafka, self.messages = fresh_kafka, lab_messages
        self.want = expected_events(lab_messages, CONF)
        assert len(self.want) > 30
        url = clickhouse.url(f"t_{uuid.uuid4().hex[:8]}")
        self.store = open_store(url, tmp_path)
        stop_merges(self.store)
        self.rx = Receiver(SECRET, flaky=flaky)
        self.daemon = Daemon(tmp_path, kafka=fresh_kafka.bootstrap, clickhouse=url, confirmations=CONF,
                             webhooks=[{"url": self.rx.url, "secrets": [SECRET]}], extra={"gnn": {"enabled": False}}, env=env,
                             kafka_settings=kafka_settings)

    def start(self, block_s: float) -> Feeder:
        start_detect(self.daemon, self.kafka.bootstrap)
        return Feeder(self.kafka.bootstrap, self.messages, block_s=block_s).start()

    def finish(self, *, webhooks_once: bool = True, give_up_s: float | None = None, merged_ok: int = 0,
               timeout: float = 90, stored_before: set = frozenset()) -> list[str]:
        """Settle, stop the daemon (exit 0), and return what is wrong with any sink (empty: exact)."""
        settle(self.store, self.rx, self.want, self.messages, self.daemon, timeout=timeout, give_up_s=give_up_s,
               stored_before=stored_before, restarted=bool(merged_ok))
        before = sink_problems(self.store, self.kafka.bootstrap, self.rx, self.want, webhooks_once=webhooks_once, merged_ok=merged_ok,
                               stored_before=stored_before)
        assert self.daemon.terminate() == 0, self.daemon.tail()
        n = len(self.rx.requests)
        time.sleep(1.5)
        assert len(self.rx.requests) == n, "webhooks delivered after the daemon stopped"
        after = sink_problems(self.store, self.kafka.bootstrap, self.rx, self.want, webhooks_once=webhooks_once, merged_ok=merged_ok,
                              stored_before=stored_before)
        return sorted(set(before) | set(after))

    def close(self) -> None:
        if self.daemon.proc and self.daemon.proc.poll() is None:
            self.daemon.kill()
        self.store.close()


def sigkill_mid_run(run: Run, *, self_kill: bool = False, give_up_s: float | None = None) -> list[str]:
    """SIGKILL the daemon right after the 8th block reached every sink (or wait for the fault hook
    to kill it, ``self_kill``) while the feed goes on; restart it; the sinks' problems."""
    feeder = run.start(block_s=0.4)
    d = run.daemon
    if self_kill:
        wait_until(lambda: d.proc.poll() is not None, 60, "the fault hook to kill the daemon", d.tail)
        assert d.proc.returncode == -signal.SIGKILL and "fault injected" in d.tail(), d.tail()
    else:
        wait_until(lambda: run.store.count("blocks") >= KILL_AFTER_BLOCKS, 60, f"block {KILL_AFTER_BLOCKS} in every sink", d.tail)
        d.kill()  # SIGKILL: no drain, no commit
    fed = feeder.blocks
    assert fed < n_blocks(run.messages) - 5, f"the feed was done ({fed} blocks) before the kill: nothing tested"
    d.env.pop("MEVWATCH_FAULT", None)
    d.start()
    feeder.join()
    return run.finish(webhooks_once=False, give_up_s=give_up_s)


def test_daemon_sigkill_mid_run_every_sink_exact(tmp_path, fresh_kafka, clickhouse, lab_messages):
    run = Run(tmp_path, fresh_kafka, clickhouse, lab_messages)
    try:
        problems = sigkill_mid_run(run)
        assert not problems, "\n".join(problems)
    finally:
        run.close()


def test_the_sigkill_check_catches_offsets_committed_before_the_sinks(tmp_path, fresh_kafka, clickhouse, lab_messages):
    """The same test on a deliberately broken daemon (test-only ``MEVWATCH_FAULT=broken:commit_before_sinks``,
    monitor/pipeline.py: offsets committed before the sinks, the process killed between the two):
    the comparison must report the lost batch's events in every sink."""
    run = Run(tmp_path, fresh_kafka, clickhouse, lab_messages, env={"MEVWATCH_FAULT": f"broken:commit_before_sinks:{FAULT_BATCH}"})
    try:
        problems = sigkill_mid_run(run, self_kill=True, give_up_s=8)
        for sink in ("ClickHouse rows", "alerts topic", "webhook deliveries"):
            assert any(p.startswith(f"{sink}: ") and "missing" in p for p in problems), (sink, problems)
    finally:
        run.close()


@pytest.mark.parametrize("point, retried", [
    ("after_store", "alerts_topic unavailable; holding offsets and retrying"),  # the produce to the alerts topic
    ("before_commit", "offset commit failed; retrying"),  # the offset commit
])
def test_kafka_broker_sigkill_while_a_batch_is_in_flight(tmp_path, fresh_kafka, clickhouse, lab_messages, point, retried):
    """The broker dies while a batch is half through the commit window; the daemon goes on into the
    part that needs the broker (with 1 s produce and commit timeouts), which has to back off and
    retry (the log shows it did) until the broker is back: nothing lost, nothing twice."""
    run = Run(tmp_path, fresh_kafka, clickhouse, lab_messages, env={"MEVWATCH_FAULT": f"{point}:{FAULT_BATCH}:pause"},
              kafka_settings={"flush_timeout_s": 1.0, "commit_timeout_s": 1.0})
    d = run.daemon
    try:
        feeder = run.start(block_s=0.3)
        wait_until(lambda: stopped(d.proc.pid), 60, f"the daemon paused at {point}", d.tail)
        assert "fault injected" in d.tail()
        fresh_kafka.kill()  # SIGKILL the broker: the batch still has to get through the rest of the window
        os.kill(d.proc.pid, signal.SIGCONT)
        time.sleep(4)
        assert d.proc.poll() is None, d.tail()
        fresh_kafka.start()
        feeder.join()
        assert feeder.blocks == n_blocks(lab_messages)
        problems = run.finish()
        assert not problems, "\n".join(problems)
        log = d.log.read_text()
        assert retried in log, f"no retry while the broker was down ({retried!r} not logged):\n{d.tail()}"
    finally:
        run.close()


def test_clickhouse_stopped_30s_then_catches_up(tmp_path, fresh_kafka, clickhouse, lab_messages):
    run = Run(tmp_path, fresh_kafka, clickhouse, lab_messages)
    d = run.daemon
    try:
        feeder = run.start(block_s=0.5)
        wait_until(lambda: run.store.count("blocks") >= 5, 60, "the daemon to process some blocks", d.tail)
        # the rows so far: one version each, none a fault-free run has not (a restarted server merges
        # its parts before merges can be stopped again, so they are checked now)
        early_rows = raw_alert_rows(run.store)
        early = [p for p in event_problems("ClickHouse rows before the stop", early_rows, run.want)
                 if "missing" not in p]
        assert not early, early
        clickhouse.stop()
        t0 = time.monotonic()
        assert feeder.blocks < n_blocks(lab_messages) - 5, "the feed was done before ClickHouse stopped"
        wait_until(lambda: d.get("/readyz")[0] == 503, 30, "readiness to drop while ClickHouse is away", d.tail)
        assert d.get("/healthz")[0] == 200  # backing off is healthy; not ready
        time.sleep(max(0.0, 30 - (time.monotonic() - t0)))
        clickhouse.start()
        stop_merges(run.store)  # SYSTEM STOP MERGES does not survive a restart
        merged = merged_parts(run.store)  # merged at start-up, of the rows checked above
        feeder.join()
        # a write in flight when the server went away can wait out the driver's 30 s receive timeout
        # before its retry (backoff up to 10 s): catching up may take that long on top
        problems = run.finish(merged_ok=merged, timeout=180, stored_before=set(early_rows))
        assert not problems, "\n".join(problems)
        assert "unavailable; holding offsets" in d.log.read_text()
    finally:
        run.close()


def test_webhooks_delivered_through_a_flaky_receiver(tmp_path, fresh_kafka, clickhouse, lab_messages):
    run = Run(tmp_path, fresh_kafka, clickhouse, lab_messages, flaky=True)
    try:
        run.start(block_s=0.05).join()
        problems = run.finish()
        assert not problems, "\n".join(problems)
        bodies = run.rx.verified()  # every signature checked by the reference standardwebhooks library
        assert run.rx.n >= 2 * len(bodies) - 1  # half the attempts failed and were retried
        assert {b["type"] for b in bodies} >= {"mev.sandwich.included", "mev.sandwich.final", "mev.sandwich_attempt.pending"}
    finally:
        run.close()
