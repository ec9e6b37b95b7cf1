"""The detection engine: the one path every entry point runs.

    message ──► decode ──► detectors (block rules, mempool rules) ──► scorers ──► lifecycle ──► Batch ──► sinks

The daemon's detect role (monitor/pipeline.py), the demo, ``mevwatch replay`` (files, JSONL, RPC,
``--gnn``, worker processes), training-data building and the benchmarks all feed messages to an
:class:`Engine` and hand its :class:`~monitor.batch.Batch` to their sinks. Only the source of the
messages and the sinks differ.

- :func:`analyse` is the stateless half (decode a block, run the block rules). It is what replay
  worker processes run; the engine runs it itself when given a bare block.
- :class:`Engine` is the stateful half, fed in chain order: the mempool rules' state, the pending
  transactions' fates, the scorers (the graph model) and the alert stages with their versions.
  Its results depend on the message sequence and the block events' offsets only, never on how
  they were polled or batched: a replay of a recording and the live daemon on the same recording
  raise the same alerts with the same versions (tests/engine).

Versions: a block event (a block or a revert) at ``offset`` (its offset on the blocks topic, or its
position among the block events of a replayed recording, or the block's number in a replay of
settled history: ``final_by_block``) versions every transition it causes (monitor/lifecycle.py).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from mevwatch.monitor import chains
from mevwatch.monitor.alerts import Alert, AlertEvent, with_stage
from mevwatch.monitor.batch import Batch
from mevwatch.monitor.decode.tokenflow import AnyDecoder, make_decoder
from mevwatch.monitor.detect.common import LossOracle
from mevwatch.monitor.detect.registry import REGISTRY, MempoolRule, Registry
from mevwatch.monitor.kinds import Stage
from mevwatch.monitor.lifecycle import PENDING_VERSION, Lifecycle, version_of
from mevwatch.monitor.scoring import Scorer
from mevwatch.monitor.types import Block, DecodedBlock, Transaction
from mevwatch.monitor.types import Message, PendingTx, RevertEvent
from mevwatch.monitor.fates import FateTracker, OrderFlow, PendingAlerts
from mevwatch.monitor import metrics


@dataclass(slots=True)
class Analysed:
    """A block after decode and the block rules."""

    decoded: DecodedBlock
    alerts: list[Alert]
    tx_rows: list[tuple] | None = None  # a slim block's transactions, as plain tuples (see slim)

    def slim(self) -> Analysed:
        """What the stateful half needs without scorers (the header, each transaction's hash, sender,
        nonce and target, the swaps, the alerts, the stats), cheap to send back from a worker
        process: no call traces, logs, calldata, transfers or liquidity changes. The transactions
        travel as tuples (pickling 230 objects a block cost more than decoding it); :meth:`unslim`
        makes them objects again. A replay with a scorer keeps the whole block in one process."""
        b = self.decoded.block
        rows = [(t.hash, t.position, t.from_address, t.to_address, t.nonce) for t in b.transactions]
        block = Block(b.number, b.hash, b.parent_hash, b.timestamp, b.miner, b.base_fee_per_gas, [], b.chain_id,
                      b.has_traces, b.has_logs)
        d = self.decoded
        return Analysed(DecodedBlock(block, d.swaps, [], [], {}, d.stats, d.source), self.alerts, rows)

    def unslim(self) -> Analysed:
        if self.tx_rows is not None:
            self.decoded.block.transactions = [Transaction(h, pos, f, to, "", 0, nonce) for h, pos, f, to, nonce in self.tx_rows]
            self.tx_rows = None
        return self


def analyse(decoder: AnyDecoder, block: Block, registry: Registry | None = None, oracle: LossOracle | None = None) -> Analysed:
    """Decode ``block`` and run the block rules: the one place decode -> detect happens. ``oracle``:
    a node that re-executes victims where no exact model of the pool exists."""
    decoded = decoder.decode(block)
    return Analysed(decoded, (registry or REGISTRY).detect(decoded, oracle=oracle))


@dataclass
class Counts:
    pending: int = 0
    blocks: int = 0
    reverts: int = 0
    duplicates: int = 0
    alerts: int = 0


@dataclass
class Engine:
    """Decode -> detect -> score -> lifecycle, one message at a time, into a :class:`Batch`."""

    chain_id: int = 1
    confirmations: int = 12
    registry: Registry = field(default_factory=lambda: REGISTRY)
    scorers: Sequence[Scorer] = ()
    pending_ttl_s: float = 3600.0
    decoders: str = "full"  # full | transfers (monitor/decode/tokenflow.py)
    oracle: LossOracle | None = None  # re-executes victims on a node (streams/simulate.py); None: models only
    final_by_block: bool = False  # block-numbered versions (monitor/lifecycle.py): replays of settled history
    native_wrapper: str | None = None  # the native_wrapper setting; None: the chain's known one (monitor/chains.py)

    def __post_init__(self) -> None:
        self.wrapper = chains.native_wrapper(self.chain_id, self.native_wrapper)
        self.decoder: AnyDecoder = make_decoder(self.decoders, native_wrapper=self.wrapper)
        self.mempool_rules: list[MempoolRule] = self.registry.mempool(self.chain_id)
        self.share_wrapper()
        self.fates = FateTracker(self.pending_ttl_s)
        self.pending_alerts = PendingAlerts(self.pending_ttl_s)  # retracted when their attack never lands
        self.order_flow = OrderFlow()  # seen in our mempool before inclusion, after, never (monitor/fates.py)
        self.lifecycle = Lifecycle(self.confirmations, self.final_by_block)
        self.counts = Counts()
        self.last_block: int | None = None
        self.last_offset: int | None = None

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        if name == "scorers" and "mempool_rules" in self.__dict__:  # scorers replaced after construction
            self.share_wrapper()

    def share_wrapper(self) -> None:
        """The chain's wrapped native token (the setting, else the chain's known one) to every mempool rule
        and scorer that values amounts or builds graphs with it (a ``native_wrapper`` attribute), from the
        start: not only once the first block names it. Run at construction and whenever ``scorers`` is set."""
        for part in [*self.mempool_rules, *self.scorers]:
            if hasattr(part, "native_wrapper"):
                part.native_wrapper = self.wrapper

    @property
    def watcher(self):  # the built-in mempool rule (the demo teaches it the lab's router)
        from mevwatch.monitor.detect.pending import MempoolWatcher

        return next(r for r in self.mempool_rules if isinstance(r, MempoolWatcher))

    # --- messages ------------------------------------------------------------------------------
    def feed(self, items: Iterable[tuple[int | None, Message]], batch: Batch | None = None) -> Batch:
        """Every message of ``items`` (``(block event offset, message)``; the offset is ignored for
        pending transactions) into ``batch``; the events land in ``batch.alerts`` in order."""
        batch = batch if batch is not None else Batch()
        for offset, msg in items:
            if isinstance(msg, PendingTx):
                self.pending(msg, batch)
            elif isinstance(msg, RevertEvent):
                assert offset is not None
                self.revert(msg, offset, batch)
            else:
                assert offset is not None
                self.block(msg, offset, batch)
        return batch

    def pending(self, p: PendingTx, batch: Batch) -> None:
        self.counts.pending += 1
        self.fates.on_pending(p)
        self.order_flow.on_pending(p)
        batch.add_pending(p)
        alerts: list[Alert] = []
        for rule in self.mempool_rules:
            alerts += rule.on_pending(p)
        for scorer in self.scorers:
            alerts += scorer.on_pending(p, alerts)
        for a in alerts:
            self.pending_alerts.add(a, p.first_seen_ns)
        self._emit(batch, [AlertEvent(a, PENDING_VERSION, p.first_seen_ns) for a in alerts])

    def block(self, block: Block, offset: int, batch: Batch, analysed: Analysed | None = None) -> None:
        self.blocks([(block, offset, analysed)], batch)

    def blocks(self, items: Sequence[tuple[Block, int, Analysed | None]], batch: Batch) -> None:
        """Blocks in chain order; the scorers see them together (one forward pass)."""
        self._before_blocks(batch)
        done = []
        for block, offset, analysed in items:
            a = analysed or analyse(self.decoder, block, self.registry, self.oracle)
            for rule in self.mempool_rules:
                rule.observe_block(a.decoded)
            self.last_block = block.number
            if self.lifecycle.seen(block):  # re-delivered: raises nothing again
                self.counts.duplicates += 1
                self.pending_alerts.on_block(self.fates.on_block(block), block.timestamp)
                continue
            done.append((block, offset, a))
        if not done:
            return
        for scorer in self.scorers:
            scorer.on_blocks([(a.decoded, a.alerts) for _b, _o, a in done])
        for block, offset, a in done:
            self.counts.blocks += 1
            self.last_offset = offset
            metrics.observe_coverage(*a.decoded.stats.swap_calls())
            for alert in a.alerts:
                self.order_flow.label(alert, self.fates.pending, block.timestamp)
            events = self.lifecycle.on_block(block, a.alerts, offset)
            for ev in events:
                if ev.alert.stage == Stage.INCLUDED:
                    seen = [p.first_seen_ns for t in ev.alert.txs if (p := self.fates.pending.get(t.hash)) is not None]
                    ev.first_seen_ns = min(seen) if seen else 0
                elif ev.alert.stage == Stage.FINAL:
                    self.order_flow.relabel(ev.alert)
            fates = self.fates.on_block(block)
            for f in fates:
                batch.add_fate(f)
            # pending alerts whose attack can no longer land (a leg replaced, past the TTL in chain time)
            gone = self.pending_alerts.on_block(fates, block.timestamp)
            events += [AlertEvent(with_stage(p, Stage.RETRACTED), version_of(offset, Stage.RETRACTED)) for p in gone]
            for rule in self.mempool_rules:  # intents of transactions never mined expire
                expire = getattr(rule, "expire", None)
                if expire is not None:
                    expire(block.timestamp * 1_000_000_000 - int(self.pending_ttl_s * 1e9))
            batch.add_block(a.decoded, version_of(offset, Stage.INCLUDED))
            self._emit(batch, events)

    def revert(self, ev: RevertEvent, offset: int, batch: Batch) -> None:
        self.counts.reverts += 1
        self.last_offset = offset
        self._emit(batch, self.lifecycle.on_revert(ev.block_number, ev.block_hash, offset))
        batch.add_revert(ev.block_number, ev.block_hash, version_of(offset, Stage.RETRACTED), ev.chain_id)

    def expire(self, batch: Batch, now_ns: int | None = None) -> None:
        """Pending transactions past the TTL become ``dropped`` fates."""
        for f in self.fates.expire(now_ns if now_ns is not None else time.time_ns()):
            batch.add_fate(f)

    def settle(self, batch: Batch) -> None:
        """End of recorded history: the scorers' last window, then every open alert final (at the
        block event after the last one)."""
        self._before_blocks(batch)
        offset = (self.last_offset if self.last_offset is not None else -1) + 1
        events = self.lifecycle.settle(offset)
        for ev in events:
            self.order_flow.relabel(ev.alert)
        self._emit(batch, events)

    def warm(self, msg: Message) -> None:
        """Learn from an already-processed message (state only: its alerts were delivered before)."""
        if isinstance(msg, PendingTx):
            self.fates.on_pending(msg)
            self.order_flow.on_pending(msg)
            for rule in self.mempool_rules:
                oracle = getattr(rule, "exposure_oracle", None)
                if oracle is not None:  # no node simulations while warming (their alerts went out before)
                    rule.exposure_oracle = None  # type: ignore[attr-defined]
                try:
                    for a in rule.on_pending(msg):
                        self.pending_alerts.add(a, msg.first_seen_ns)
                finally:
                    if oracle is not None:
                        rule.exposure_oracle = oracle  # type: ignore[attr-defined]
        elif isinstance(msg, Block):
            decoded = self.decoder.decode(msg)
            for rule in self.mempool_rules:
                rule.observe_block(decoded)
            self.pending_alerts.on_block(self.fates.on_block(msg), msg.timestamp)

    # --- internals ---------------------------------------------------------------------------
    def _before_blocks(self, batch: Batch) -> None:
        for scorer in self.scorers:
            self._emit(batch, [AlertEvent(a, PENDING_VERSION, a.evidence.get("first_seen_ns", 0)) for a in scorer.before_block()])

    def _emit(self, batch: Batch, events: list[AlertEvent]) -> None:
        self.counts.alerts += len(events)
        batch.alerts += events


def replay_offsets(messages: Iterable[Message], start: int = 0) -> Iterable[tuple[int | None, Message]]:
    """Number the block events of a recorded sequence as a fresh blocks topic would (0, 1, ...)."""
    n = start
    for m in messages:
        if isinstance(m, PendingTx):
            yield None, m
        else:
            yield n, m
            n += 1
