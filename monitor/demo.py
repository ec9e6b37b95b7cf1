"""``mevwatch demo``: the lab and the whole monitor, live, on embedded defaults.

Starts anvil, deploys the lab's market, runs honest traders and the sandwich bot on the
real mempool, and monitors it all the way production does: the node source's messages go
through the bus (the in-process one) into the detect role's pipeline (decode, the exact
rules, the mempool rules, alert stages) and into the embedded chDB store; final alerts are
attested on the embedded chain. Alerts appear in a live table as they are raised; at the
end, precision and recall against the lab's ground truth, and where everything was written.
Everything lives under ``--out`` (its own mevwatch.yaml, chdb/, attest/); a new demo
replaces the previous one's store and chain.
"""

from __future__ import annotations

import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from rich.console import Console
from rich.live import Live
from rich.table import Table

import yaml

from mevwatch.monitor.alerts import Alert, AlertEvent
from mevwatch.monitor.attest.batcher import make_batcher
from mevwatch.monitor.config import Settings, load_settings
from mevwatch.monitor.detect.pending import MempoolWatcher
from mevwatch.monitor.kinds import Kind
from mevwatch.monitor.health import Health
from mevwatch.monitor.pipeline import detect_worker
from mevwatch.monitor.store.store import AlertStore, open_store
from mevwatch.sim.anvil import Anvil
from mevwatch.sim.runner import Lab, LabResult
from mevwatch.sim.score import Score, score
from mevwatch.streams import bus as busmod
from mevwatch.streams import envelope
from mevwatch.streams.ingest import publish

CHAIN_ID = 31337
DEMO_CONFIRMATIONS = 5  # the lab's anvil does not reorganise: 5 blocks make a minute's run show every stage


@dataclass
class DemoResult:
    lab: LabResult | None
    alerts: list[Alert] = field(default_factory=list)
    scores: dict[str, Score] = field(default_factory=dict)
    out_dir: Path = Path(".")
    interrupted: bool = False
    events: list[AlertEvent] = field(default_factory=list)
    store_path: Path | None = None
    stored: dict[str, int] = field(default_factory=dict)
    attested: int = 0
    batches: int = 0
    registry: str | None = None
    example_attested: str | None = None
    model: tuple[str | None, str] | None = None  # (model hash, device) when the graph model scored
    model_off: str | None = None  # why it did not (models/scorer.py: model_off_reason)


class Monitor:
    """The detect role's pipeline on the in-process bus: decode, the exact and mempool rules,
    alert stages (pending, included, final), written to the embedded chDB store."""

    def __init__(self, bus: busmod.Bus, store: AlertStore | None, confirmations: int, group: str = "mevwatch-demo",
                 scorers: list | None = None, settings: Settings | None = None):
        self.stop = threading.Event()
        settings = settings or load_settings(chain_id=CHAIN_ID)
        # the daemon's detect role, with no webhooks (no outbox) and no alerts topic
        self.worker = detect_worker(settings, bus, store, stop=self.stop, health=Health(), publish_alerts=False,
                                    group=group, confirmations=confirmations, scorers=scorers or [])
        self.events: list[AlertEvent] = []
        self.alerts: list[Alert] = []  # pending and included: what is scored against the ground truth

    @property
    def watcher(self) -> MempoolWatcher:
        return self.worker.watcher

    @property
    def last_block(self) -> int | None:
        return self.worker.last_block

    @property
    def consumer(self):
        return self.worker.consumer

    def close(self) -> None:
        self.worker.close()

    def step(self, timeout_ms: int = 0) -> list[AlertEvent]:
        """Process everything the bus holds (waiting up to ``timeout_ms`` for it: a Kafka
        consumer needs a positive wait); return the new stage events."""
        new = self.worker.drain(timeout_ms)
        self.events += new
        self.alerts += [e.alert for e in new if e.alert.stage in ("pending", "included")]
        return new


def _table(events: list[AlertEvent], blocks_done: int, blocks: int, attested: int = 0) -> Table:
    t = Table(title=f"mevwatch demo: block {blocks_done}/{blocks}, {len(events)} alert events, {attested} final alerts attested",
              title_justify="left", expand=False)
    for col in ("stage", "kind", "block", "attacker", "victim", "profit ETH", "victim loss ETH"):
        t.add_column(col)
    for a in [e.alert for e in events[-14:]]:
        loss = ""
        if a.victim_loss is not None:
            loss = f"{a.victim_loss.eth:.4f}" if a.victim_loss.eth is not None else f"{a.victim_loss.amount:.3e} (token)"
        t.add_row(a.stage, a.kind, str(a.block_number or "-"), (a.attackers[0][:10] + "..") if a.attackers else "-",
                  (a.victims[0][:10] + "..") if a.victims else "-",
                  f"{a.profit.eth:.4f}" if a.profit and a.profit.eth is not None else "", loss)
    return t


def demo_settings(out_dir: Path) -> Settings:
    """The demo's own settings: everything under ``out_dir`` (written there as mevwatch.yaml)."""
    out = out_dir.resolve()
    return load_settings(chain_id=CHAIN_ID, data_dir=str(out), clickhouse__data_dir=str(out / "chdb"),
                         node__confirmations=DEMO_CONFIRMATIONS, attest__batch_blocks=10, attest__batch_seconds=5.0)


def run_demo(*, blocks: int, seed: int, out_dir: Path, console: Console, block_time: float = 1.0,
             attest: bool = True) -> DemoResult:
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in ("chdb", "attest"):  # each demo starts on a fresh chain: the previous demo's store goes
        shutil.rmtree(out_dir / old, ignore_errors=True)
    settings = demo_settings(out_dir)
    (out_dir / "mevwatch.yaml").write_text(yaml.safe_dump(
        {"chain_id": CHAIN_ID, "data_dir": str(settings.data_dir), "clickhouse": {"data_dir": str(settings.clickhouse.data_dir)},
         "node": {"confirmations": DEMO_CONFIRMATIONS}}))
    result = DemoResult(None, out_dir=out_dir)
    store = open_store(None, settings.clickhouse.data_dir)
    result.store_path = settings.clickhouse.data_dir
    batcher = make_batcher(settings, store) if attest else None
    attest_stop = threading.Event()
    attest_thread = None
    if batcher is not None:
        attest_thread = threading.Thread(target=batcher.run, args=(attest_stop, 1.0), name="attest", daemon=True)
        attest_thread.start()
    node = Anvil(out_dir / "anvil", chain_id=CHAIN_ID).start()
    bus = busmod.InProcessBus()
    from mevwatch.models.scorer import load_scorer, model_off_reason

    scorer = load_scorer(settings)
    mon = Monitor(bus, store, DEMO_CONFIRMATIONS, scorers=[scorer] if scorer else [], settings=settings)
    published = 0
    lab = Lab(node.http_url, node.ws_url, seed=seed)
    try:
        console.print(f"anvil on {node.ws_url}; deploying the lab's market (seed {seed}) ...")
        lab.setup()
        assert lab.market is not None
        mon.watcher.register_router(lab.market.router.address, lab.market.factory.address, lab.market.pair_init_code_hash)
        with Live(_table([], 0, blocks), console=console, refresh_per_second=8, transient=not console.is_terminal) as live:
            next_block = time.monotonic()

            def on_round(rnd: int, messages) -> None:
                nonlocal published, next_block
                for m in messages[published:]:
                    publish(bus, m)
                published = len(messages)
                mon.step()
                live.update(_table(mon.events, rnd + 1, blocks, batcher.alerts_attested if batcher else 0))
                next_block += block_time  # pace the lab like a chain with this block time
                time.sleep(max(0.0, next_block - time.monotonic()))

            result.lab = lab.run(blocks, on_round=on_round)
            result.interrupted = result.lab.interrupted
    except KeyboardInterrupt:
        result.interrupted = True
    finally:
        node.stop()
        attest_stop.set()
        if attest_thread is not None:
            attest_thread.join(30)
        try:
            if batcher is not None and not result.interrupted:
                batcher.attester.stop.clear()
                while batcher.step(force=True) is not None:  # everything final by now
                    pass
        finally:
            if batcher is not None:
                result.attested, result.batches = batcher.alerts_attested, batcher.batches
                result.registry = batcher.chain.address
            result.stored = {t: store.count(t) for t in ("alerts", "swaps", "pending_txs", "blocks")}
            result.example_attested = store.first_attested_alert()
            mon.close()
            store.close()
    result.alerts = mon.alerts
    result.events = mon.events
    if mon.worker.scorer is not None:
        result.model = (mon.worker.scorer.model_hash, mon.worker.scorer.device)
    else:
        result.model_off = model_off_reason(settings)
    _write(result, out_dir)
    if result.lab is not None:
        labels = [a.to_json() for a in result.lab.attacks]
        alerts = [a.to_json() for a in result.alerts]
        result.scores = {k: score(alerts, labels, kinds=(k,)) for k in (Kind.SANDWICH_ATTEMPT, Kind.SANDWICH)}
        result.scores["either"] = score(alerts, labels)
        result.scores["arbitrage"] = score(alerts, labels, kinds=(Kind.ARBITRAGE, Kind.BACKRUN))
        result.scores["displacement"] = score(alerts, labels, kinds=(Kind.FRONTRUN_DISPLACEMENT,))
        result.scores["jit"] = score(alerts, labels, kinds=(Kind.JIT_SANDWICH,))
    return result


def _write(result: DemoResult, out: Path) -> None:
    with open(out / "alerts.jsonl", "wb") as fh:
        for alert in result.alerts:
            fh.write(alert.to_jsonl())
    if result.lab is not None:
        with open(out / "recording.jsonl", "wb") as fh:
            for m in result.lab.messages:
                fh.write(envelope.encode(m) + b"\n")
        with open(out / "labels.jsonl", "wb") as fh:
            for a in result.lab.attacks:
                fh.write(orjson.dumps(a.to_json(), option=orjson.OPT_SORT_KEYS) + b"\n")
