"""The one engine: replay and the live detect pipeline give the same alerts and versions; detectors
and sinks plug in without editing the engine."""

from __future__ import annotations

import time

import pytest

from mevwatch.monitor.alerts import Alert, AlertTx
from mevwatch.monitor.detect.registry import REGISTRY, BlockRule
from mevwatch.monitor.pipeline import DetectWorker
from mevwatch.monitor.replay import replay_files
from mevwatch.monitor.sinks.base import SinkChain
from mevwatch.monitor.sinks.registry import SINKS, SinkContext, build_sinks, register_sink
from mevwatch.monitor.types import WETH_ADDRESS
from mevwatch.streams import bus as busmod
from mevwatch.streams import envelope
from mevwatch.monitor.types import PendingTx
from mevwatch.streams.ingest import publish


def _fingerprint(events) -> list[tuple]:
    return [(e.alert.alert_id, e.alert.stage, e.version, e.first_seen_ns, e.alert.to_jsonl()) for e in events]


def _live(messages: list, confirmations: int, scorers=(), sinks: SinkChain | None = None) -> list:
    """The detect role's pipeline (DetectWorker) on the in-process bus, fed as ingest would."""
    bus = busmod.InProcessBus()
    for m in messages:
        publish(bus, m)
        if not isinstance(m, PendingTx):
            time.sleep(0.002)  # a block arrives after the pending transactions before it
    return DetectWorker(bus, sinks or SinkChain([]), chain_id=31337, confirmations=confirmations, scorers=list(scorers)).drain()


@pytest.mark.anvil
def test_replay_of_a_recording_equals_the_live_pipeline_with_the_model(lab_messages, tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")  # noqa: F841
    from mevwatch.models.scorer import Scorer

    # The structural opaque-call rule now finds the lab's two-pool attempts the model used to find
    # alone; without it the model raises its own (model-only) alerts, so this comparison covers them.
    monkeypatch.setattr(REGISTRY, "mempool_rules", [(n, f) for n, f in REGISTRY.mempool_rules if n != "opaque_calls"])

    rec = tmp_path / "recording.jsonl"
    rec.write_bytes(b"".join(envelope.encode(m) + b"\n" for m in lab_messages))
    live = _live(lab_messages, 3, [Scorer(device="cpu", chain_id=31337, model_alerts="all")])
    replayed = []
    summary = replay_files([rec], chain_id=31337, confirmations=3, settle=False,
                           scorer=Scorer(device="cpu", chain_id=31337, model_alerts="all"), on_event=replayed.append)
    assert summary.blocks and summary.pending and not summary.problems
    assert _fingerprint(replayed) == _fingerprint(live)
    stages = {e.alert.stage for e in live}
    assert {"pending", "included", "final"} <= stages, stages
    assert any(e.alert.detector == "gnn" for e in live), "no model-only alert: the comparison would not cover them"
    # settled history: the same events, then every alert still open becomes final
    settled = []
    replay_files([rec], chain_id=31337, confirmations=3, scorer=Scorer(device="cpu", chain_id=31337, model_alerts="all"), on_event=settled.append)
    assert _fingerprint(settled[:len(live)]) == _fingerprint(live)
    assert settled[len(live):] and all(e.alert.stage == "final" for e in settled[len(live):])
    finals = {e.alert.alert_id for e in settled if e.alert.stage == "final"}
    included = {e.alert.alert_id for e in settled if e.alert.stage == "included"}
    assert finals == included


@pytest.mark.fast
def test_replay_workers_equal_one_process(traces_dir):
    paths = sorted(traces_dir.glob("*.json.gz"))
    one, two = [], []
    replay_files(paths, workers=1, on_event=one.append)
    replay_files(paths, workers=2, on_event=two.append)
    assert one and _fingerprint(one) == _fingerprint(two)
    assert {e.alert.stage for e in one} == {"included", "final"}


# --- plug-ins ---------------------------------------------------------------------------------------
WHALE_WEI = 100 * 10**18


def whale_swaps(view, claimed: frozenset[str]) -> list[Alert]:
    """A toy rule: a swap selling at least 100 WETH."""
    out = []
    for s in view.db.swaps:
        if s.token_in == WETH_ADDRESS and s.amount_in >= WHALE_WEI:
            out.append(Alert(kind="whale_swap", stage="included", chain_id=view.db.block.chain_id,
                             block_number=view.db.block.number, block_hash=view.db.block.hash,
                             txs=[AlertTx(s.transaction_hash, s.transaction_position, "whale")], attackers=[], victims=[s.tx_from],
                             pools=[s.pool], tokens=[s.token_in, s.token_out], profit=None, victim_loss=None,
                             gas_cost_wei=None, evidence={"amount_in": f"{s.amount_in}"}))
    return out


class ToySink:
    """A toy sink: remembers every batch; fails the first write (a retriable outage)."""

    name = "toy"
    health = None
    instances: list[ToySink] = []

    def __init__(self, ctx: SinkContext):
        self.batches: list = []
        self.failed = False
        ToySink.instances.append(self)

    def write(self, batch) -> None:
        if not self.failed:
            self.failed = True
            err = RuntimeError("toy sink down")
            err.retriable = True  # type: ignore[attr-defined]
            raise err
        self.batches.append(batch)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


@pytest.mark.fast
def test_a_toy_detector_and_a_toy_sink_plug_in(traces_dir, load_block, all_block_numbers):
    blocks = [load_block(n) for n in all_block_numbers]
    baseline = _live(blocks, 2)
    REGISTRY.register_block_rule(BlockRule("whale", ("whale_swap",), whale_swaps, claims=False))
    if "toy" not in SINKS:
        register_sink("toy", ToySink)
    try:
        ToySink.instances.clear()
        sinks = SinkChain(build_sinks(["clickhouse", "toy", "checkpoint"], SinkContext(store=None)))
        events = _live(blocks, 2, sinks=sinks)
    finally:
        REGISTRY.unregister("whale")
    whales = [e for e in events if e.alert.kind == "whale_swap"]
    assert whales and {e.alert.stage for e in whales} == {"included", "final"}
    assert [e for e in events if e.alert.kind != "whale_swap"] == baseline or \
        _fingerprint([e for e in events if e.alert.kind != "whale_swap"]) == _fingerprint(baseline)
    (toy,) = ToySink.instances
    assert toy.failed and _fingerprint([e for b in toy.batches for e in b.alerts]) == _fingerprint(events)
    assert sum(len(b.blocks) for b in toy.batches) == len(blocks)
    assert "whale_swap" not in {e.alert.kind for e in _live(blocks, 2)}  # unregistered again


@pytest.mark.fast
def test_a_plug_in_sink_by_module_path_and_clear_errors():
    from mevwatch.monitor.errors import ConfigError

    got = build_sinks([f"{__name__}:ToySink"], SinkContext())  # what `sinks: [module:factory]` in the config does
    assert [s.name for s in got] == ["toy"]
    with pytest.raises(ConfigError, match="unknown sink 'nope'"):
        build_sinks(["nope"], SinkContext())
    with pytest.raises(ConfigError, match="cannot load 'no.such.module:x'"):
        build_sinks(["no.such.module:x"], SinkContext())
