"""Pending alerts whose attack never lands are retracted, through the engine's versioning, in the
live pipeline and in a replay alike; the mempool rules' memory stays bounded."""

from __future__ import annotations

import dataclasses
import time

import pytest

from mevwatch.monitor.batch import Batch
from mevwatch.monitor.detect import pending as pending_mod
from mevwatch.monitor.engine import Engine, replay_offsets
from mevwatch.monitor.fates import PendingAlerts
from mevwatch.monitor.lifecycle import version_of
from mevwatch.monitor.pipeline import DetectWorker
from mevwatch.monitor.sinks.base import SinkChain
from mevwatch.monitor.store.sink import CheckpointSink, StoreSink
from mevwatch.monitor.store.store import open_store
from mevwatch.monitor.types import Block, PendingTx
from mevwatch.streams import bus as busmod
from mevwatch.streams.ingest import publish

CONF = 3


def _replay(messages: list) -> list:
    return Engine(chain_id=31337, confirmations=CONF).feed(replay_offsets(messages), Batch()).alerts


def _live(messages: list, sinks=()) -> list:
    bus = busmod.InProcessBus()
    for m in messages:
        publish(bus, m)
        if not isinstance(m, PendingTx):
            time.sleep(0.002)
    return DetectWorker(bus, SinkChain(list(sinks)), chain_id=31337, confirmations=CONF).drain()


def _frontrun_replaced(messages: list) -> tuple[list, str, int]:
    """The lab recording with the first pending sandwich attempt's front-run replaced in its block
    (same sender and nonce, another hash): the attack as seen in the mempool never lands. Returns
    the messages, the attempt's id and the block event offset of that block."""
    attempt = next(e.alert for e in _replay(messages) if e.alert.kind == "sandwich_attempt")
    front = next(t.hash for t in attempt.txs if t.role == "frontrun")
    out, event = [], -1
    hit = None
    for m in messages:
        if isinstance(m, Block):
            event += 1
            if any(t.hash == front for t in m.transactions):
                txs = [dataclasses.replace(t, hash="0x" + "ee" * 32, logs=[], traces=[]) if t.hash == front else t
                       for t in m.transactions]
                m = dataclasses.replace(m, transactions=txs)
                hit = event
        out.append(m)
    assert hit is not None, "the front-run was never mined in the recording"
    return out, attempt.alert_id, hit


@pytest.mark.anvil
def test_replaced_frontrun_retracts_the_pending_attempt_in_replay_and_live(lab_messages, tmp_path):
    messages, aid, event = _frontrun_replaced(lab_messages)
    replayed = _replay(messages)
    retractions = [e for e in replayed if e.alert.alert_id == aid and e.alert.stage == "retracted"]
    assert len(retractions) == 1
    assert retractions[0].version == version_of(event, "retracted")
    assert retractions[0].event_type == "mev.alert.retracted"
    store = open_store(None, tmp_path / "db")
    live = _live(messages, [StoreSink(store), CheckpointSink(store)])
    fp = [(e.alert.alert_id, e.alert.stage, e.version) for e in live]
    assert fp == [(e.alert.alert_id, e.alert.stage, e.version) for e in replayed]  # one engine, same events
    assert store.alert_versions([aid])[aid] == (version_of(event, "retracted"), "retracted")
    # no pending alert of the unmodified recording is retracted whose legs all landed
    clean = _replay(lab_messages)
    landed = {e.alert.alert_id for e in clean if e.alert.stage == "retracted"}
    assert aid not in landed
    store.close()


@pytest.mark.anvil
def test_pending_alert_past_the_ttl_in_chain_time_is_retracted(lab_messages):
    messages, aid, _event = _frontrun_replaced(lab_messages)
    # the front-run is instead never mined at all: drop its replacement from the block too
    stripped = [dataclasses.replace(m, transactions=[t for t in m.transactions if t.hash != "0x" + "ee" * 32])
                if isinstance(m, Block) else m for m in messages]
    first_seen = next(m.first_seen_ns for m in stripped if isinstance(m, PendingTx)
                      and any(t.hash == m.hash for e in _replay(lab_messages) if e.alert.alert_id == aid for t in e.alert.txs))
    last_ts = max(m.timestamp for m in stripped if isinstance(m, Block))
    ttl = max(1.0, (last_ts * 1e9 - first_seen) / 1e9 / 2)
    eng = Engine(chain_id=31337, confirmations=CONF, pending_ttl_s=ttl)
    events = eng.feed(replay_offsets(stripped), Batch()).alerts
    assert [e.alert.stage for e in events if e.alert.alert_id == aid] == ["pending", "retracted"]
    assert len(eng.pending_alerts) < 50


def test_pending_alert_tracker_and_reported_set_are_bounded(monkeypatch):
    from mevwatch.monitor.alerts import Alert, AlertTx

    def alert(i: int) -> Alert:
        return Alert(kind="exposed_swap", stage="pending", chain_id=1, block_number=None, block_hash=None,
                     txs=[AlertTx(f"0x{i:064x}", None, "victim")], attackers=[], victims=[], pools=[], tokens=[],
                     profit=None, victim_loss=None, gas_cost_wei=None, evidence={})
    t = PendingAlerts(ttl_s=3600, cap=100)
    for i in range(1000):
        t.add(alert(i), 0)
    assert len(t) == 100 and len(t.by_tx) == 100
    monkeypatch.setattr(pending_mod, "REPORTED_CAP", 50)
    w = pending_mod.MempoolWatcher()
    for i in range(500):
        assert w._once(alert(i)) != []
    assert len(w.reported) == 50
