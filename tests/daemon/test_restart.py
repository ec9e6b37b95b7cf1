"""Exactly once across restarts, on the real detect pipeline (DetectWorker, engine, chDB store, the
checkpoint sink, the webhook outbox) with the lab's recording: a run stopped after a batch, or
killed inside the commit window (some sinks took the last batch, the checkpoint did not), then a
new process restores from the store and the ingest resumes after the checkpointed block (the
embedded bus, as ``mevwatch run --role all`` does). Every ``(alert, stage)`` is emitted with the
version of a fault-free run, and never twice with two versions; a stored proof is never replaced."""

from __future__ import annotations

from collections import Counter

import pytest

from harness import baseline
from mevwatch.monitor.alerts import AlertEvent
from mevwatch.monitor.batch import Batch
from mevwatch.monitor.pipeline import DetectWorker
from mevwatch.monitor.sinks.base import SinkChain
from mevwatch.monitor.sinks.outbox import Outbox
from mevwatch.monitor.sinks.webhook_outbox import OutboxSink
from mevwatch.monitor.config import WebhookSubscriber
from mevwatch.monitor.store.sink import CheckpointSink, StoreSink
from mevwatch.monitor.store.store import open_store
from mevwatch.monitor.types import Block
from mevwatch.streams import bus as busmod
from mevwatch.streams.ingest import publish

pytestmark = pytest.mark.anvil
CONF = 3
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


class Recorder:
    name, health = "recorder", None

    def __init__(self) -> None:
        self.events: list[AlertEvent] = []

    def write(self, batch: Batch) -> None:
        self.events += batch.alerts

    def flush(self) -> None: ...

    def close(self) -> None: ...


def _worker(messages: list, sinks: list) -> DetectWorker:
    bus = busmod.InProcessBus()
    for m in messages:
        publish(bus, m)
    return DetectWorker(bus, SinkChain(sinks), chain_id=31337, confirmations=CONF)


def _block_cut(messages: list, nth_block: int) -> int:
    """Index just after the ``nth_block``-th block of ``messages``."""
    seen = 0
    for i, m in enumerate(messages):
        if isinstance(m, Block):
            seen += 1
            if seen == nth_block:
                return i + 1
    raise AssertionError("too few blocks")


def _stage_events(events: list[AlertEvent]) -> set[tuple[str, str, int]]:
    return {(e.alert.alert_id, e.alert.stage, e.version) for e in events if e.alert.stage != "pending"}


def restart_problems(lab_messages, tmp_path, stop_after: int, crash: str) -> list[str]:
    """Run the recording stopped after block ``stop_after`` (``crash``: cleanly, or killed inside the
    commit window) and restarted from the store; what is wrong with what the sinks got (empty: exact)."""
    want = _stage_events(baseline(lab_messages, CONF))
    store = open_store(None, tmp_path / "db")
    outbox = Outbox(tmp_path / "outbox.sqlite")
    subs = [WebhookSubscriber(url="http://127.0.0.1:9/hook", secrets=[SECRET])]
    cut = _block_cut(lab_messages, stop_after)
    rec1 = Recorder()
    w1 = _worker(lab_messages[:cut], [rec1, OutboxSink(outbox, subs), StoreSink(store), CheckpointSink(store)])
    w1.drain()
    resume_at = cut
    if crash == "killed_before_checkpoint":
        # the next blocks' batch reached the recorder, the outbox and ClickHouse, then the process died:
        # no checkpoint, no commit; the ingest resumes after the last checkpointed block
        cut2 = _block_cut(lab_messages, stop_after + 2)
        for m in lab_messages[cut:cut2]:
            publish(w1.bus, m)
        w1.sinks.sinks = [s for s in w1.sinks.sinks if s.name != "checkpoint"]
        w1.drain()
    assert store.last_block() is not None
    assert [e for e in rec1.events if e.alert.stage == "final"], "the stop came before anything was final: nothing tested"

    rec2 = Recorder()
    w2 = _worker(lab_messages[resume_at:], [rec2, OutboxSink(outbox, subs), StoreSink(store), CheckpointSink(store)])
    w2.restore(store)
    w2.drain()
    problems = []
    got = _stage_events(rec1.events) | _stage_events(rec2.events)
    pairs: dict[tuple[str, str], set[int]] = {}
    for aid, stage, ver in got:
        pairs.setdefault((aid, stage), set()).add(ver)
    twice = {k: v for k, v in pairs.items() if len(v) > 1}
    if twice:
        problems.append(f"{len(twice)} alert stages emitted under two versions, e.g. {list(twice.items())[:3]}")
    if got != want:
        problems.append(f"{len(got - want)} stage events not in the fault-free run, {len(want - got)} missing")
    # the outbox (webhooks) holds one message per (alert, stage) for the subscriber
    rows = outbox._db.execute("SELECT event_id, event_type FROM messages").fetchall()
    per_stage = Counter((event_id.rsplit("-", 1)[0], event_type) for event_id, event_type in rows)  # id: {alert_id}-{version}
    if len(rows) != len({r[0] for r in rows}) or any(n > 1 for n in per_stage.values()):
        problems.append(f"webhook outbox: {sum(n - 1 for n in per_stage.values())} (alert, stage) queued twice")
    raw = store.backend.query("SELECT alert_id, stage, count(DISTINCT version) FROM alerts GROUP BY alert_id, stage")
    if any(int(r[2]) != 1 for r in raw):
        problems.append(f"ClickHouse: (alert, stage) under several versions: {[r for r in raw if int(r[2]) > 1][:5]}")
    outbox.close()
    store.close()
    return problems


@pytest.mark.parametrize("stop_after", [6, 11, 17])
@pytest.mark.parametrize("crash", ["clean_stop", "killed_before_checkpoint"])
def test_restart_emits_each_stage_once_at_the_fault_free_version(lab_messages, tmp_path, stop_after, crash):
    problems = restart_problems(lab_messages, tmp_path, stop_after, crash)
    assert not problems, "\n".join(problems)


def test_the_restart_check_catches_a_restart_that_reopens_final_alerts(lab_messages, tmp_path, monkeypatch):
    """The same check on a deliberately broken restore (test-only ``MEVWATCH_FAULT=broken:reopen_final``,
    the bug of an earlier release): the alerts finalised by the checkpoint's own block event are
    reloaded as open and finalised again under a new version, and the check says so."""
    monkeypatch.setenv("MEVWATCH_FAULT", "broken:reopen_final")
    problems = [p for stop in (6, 11, 17) for p in restart_problems(lab_messages, tmp_path / str(stop), stop, "clean_stop")]
    assert any("'final'" in p and "two versions" in p for p in problems), \
        f"the broken restore passed the restart check at every stop point: {problems}"


def test_a_stored_proof_is_never_replaced_by_a_later_row(lab_messages, tmp_path):
    """An attested alert stays attested whatever stage row comes for it later."""
    store = open_store(None, tmp_path / "db")
    rec = Recorder()
    w = _worker(lab_messages, [rec, StoreSink(store), CheckpointSink(store)])
    w.drain()
    final = next(e for e in rec.events if e.alert.stage == "final")
    proof = '{"batch_id": 1, "proof": []}'
    store.write_proofs([(final.alert, final.version, proof, 1)],
                       (1, "0x" + "00" * 32, "0x" + "00" * 20, 31337, "0x" + "00" * 32, 1, 1, "0x" + "00" * 20, 0, 0, 1, "", "", 0, 1))
    assert store.proof(final.alert.alert_id)[1] is not None
    later = AlertEvent(final.alert, final.version + (100 << 3))  # e.g. finalised again after a bad restore
    store.write(Batch(alerts=[later]))
    a, p = store.proof(final.alert.alert_id)
    assert p is not None, "the proof was replaced by a row without one"
    assert store.alert_versions([final.alert.alert_id])[final.alert.alert_id] == (final.version, "final")
    store.close()


def test_operations_doc_states_each_sinks_guarantee_and_the_fault_points():
    from pathlib import Path

    from mevwatch.monitor.pipeline import FAULT_POINTS

    doc = (Path(__file__).resolve().parents[2] / "docs" / "operations.md").read_text()
    assert "| webhooks | exactly once per `(alert, stage)` per endpoint" in doc
    assert "| ClickHouse | exactly one version per `(alert, stage)`" in doc
    assert "| alerts topic | at least once with a stable id" in doc
    for point in [*FAULT_POINTS.values(), "before_commit"]:
        assert f"`{point}`" in doc
