"""``mevwatch demo``: the lab and the whole monitor, live, on embedded defaults.

Starts anvil, deploys the lab's market, runs honest traders and the sandwich bot on the
real mempool, and monitors it all the way production does: the node source's messages go
through the bus (the in-process one) into decode, the exact rules and the mempool rules.
Alerts appear in a live table as they are raised; at the end, precision and recall against
the lab's ground truth, and where everything was written.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from rich.console import Console
from rich.live import Live
from rich.table import Table

from monitor.alerts import Alert
from monitor.decode import BlockDecoder
from monitor.detect import detect_block
from monitor.detect.pending import MempoolWatcher
from monitor.services import Anvil
from monitor.types import Block
from sim.runner import Lab, LabResult
from sim.score import Score, score
from streams import bus as busmod
from streams import envelope
from streams.consume import decode_records
from streams.envelope import PendingTx
from streams.ingest import publish

CHAIN_ID = 31337


@dataclass
class DemoResult:
    lab: LabResult | None
    alerts: list[Alert] = field(default_factory=list)
    scores: dict[str, Score] = field(default_factory=dict)
    out_dir: Path = Path(".")
    interrupted: bool = False


class Monitor:
    """Bus consumer -> decode -> rules (blocks) and mempool rules (pending)."""

    def __init__(self, bus: busmod.Bus, group: str = "mevwatch-demo"):
        self.bus = bus
        self.consumer = bus.consumer([busmod.MEMPOOL, busmod.BLOCKS], group)
        self.last_block: int | None = None
        self.decoder = BlockDecoder()
        self.watcher = MempoolWatcher(chain_id=CHAIN_ID)
        self.alerts: list[Alert] = []

    def close(self) -> None:
        self.consumer.close()

    def step(self, timeout_ms: int = 0) -> list[Alert]:
        """Process what the bus holds (waiting up to ``timeout_ms`` for it); return the new alerts."""
        records = self.consumer.poll(timeout_ms=timeout_ms, max_records=1_000_000)
        # the two topics' records in the order they were produced (a block after the pending
        # transactions it includes); on a timestamp tie, pending first
        records.sort(key=lambda r: (r.timestamp_ms, r.topic != busmod.MEMPOOL))
        new: list[Alert] = []
        for _rec, msg in decode_records(records, self.bus):
            if isinstance(msg, PendingTx):
                new += self.watcher.on_pending(msg)
            elif isinstance(msg, Block):
                self.last_block = msg.number
                decoded = self.decoder.decode(msg)
                self.watcher.observe_block(decoded)
                new += detect_block(decoded)
        self.consumer.commit()  # after the work is done
        self.alerts += new
        return new


def _table(alerts: list[Alert], blocks_done: int, blocks: int) -> Table:
    t = Table(title=f"mevwatch demo: block {blocks_done}/{blocks}, {len(alerts)} alerts", title_justify="left", expand=False)
    for col in ("stage", "kind", "block", "attacker", "victim", "profit ETH", "victim loss ETH"):
        t.add_column(col)
    for a in alerts[-14:]:
        loss = ""
        if a.victim_loss is not None:
            loss = f"{a.victim_loss.eth:.4f}" if a.victim_loss.eth is not None else f"{a.victim_loss.amount:.3e} (token)"
        t.add_row(a.stage, a.kind, str(a.block_number or "-"), (a.attackers[0][:10] + "..") if a.attackers else "-",
                  (a.victims[0][:10] + "..") if a.victims else "-",
                  f"{a.profit.eth:.4f}" if a.profit and a.profit.eth is not None else "", loss)
    return t


def run_demo(*, blocks: int, seed: int, out_dir: Path, console: Console, block_time: float = 1.0) -> DemoResult:
    out_dir.mkdir(parents=True, exist_ok=True)
    result = DemoResult(None, out_dir=out_dir)
    node = Anvil(out_dir / "anvil", chain_id=CHAIN_ID).start()
    bus = busmod.InProcessBus()
    mon = Monitor(bus)
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
                live.update(_table(mon.alerts, rnd + 1, blocks))
                next_block += block_time  # pace the lab like a chain with this block time
                time.sleep(max(0.0, next_block - time.monotonic()))

            result.lab = lab.run(blocks, on_round=on_round)
            result.interrupted = result.lab.interrupted
    except KeyboardInterrupt:
        result.interrupted = True
    finally:
        node.stop()
    result.alerts = mon.alerts
    _write(result, out_dir)
    if result.lab is not None:
        labels = [a.to_json() for a in result.lab.attacks]
        alerts = [a.to_json() for a in result.alerts]
        result.scores = {k: score(alerts, labels, kinds=(k,)) for k in ("sandwich_attempt", "sandwich")}
        result.scores["either"] = score(alerts, labels)
        result.scores["arbitrage"] = score(alerts, labels, kinds=("arbitrage", "backrun"))
        result.scores["displacement"] = score(alerts, labels, kinds=("frontrun_displacement",))
    return result


def _write(result: DemoResult, out: Path) -> None:
    with open(out / "alerts.jsonl", "wb") as fh:
        for a in result.alerts:
            fh.write(a.to_jsonl())
    if result.lab is not None:
        with open(out / "recording.jsonl", "wb") as fh:
            for m in result.lab.messages:
                fh.write(envelope.encode(m) + b"\n")
        with open(out / "labels.jsonl", "wb") as fh:
            for a in result.lab.attacks:
                fh.write(orjson.dumps(a.to_json(), option=orjson.OPT_SORT_KEYS) + b"\n")
