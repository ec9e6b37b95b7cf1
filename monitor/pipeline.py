"""The detect role: bus -> decode -> rules -> stages -> every sink, then commit.

One :class:`DetectWorker` step polls a batch of mempool and block records, runs the
exact rules, turns their results into stage events (monitor/lifecycle.py) and hands
everything to :class:`Sinks`, which writes, in this order:

1. the webhook outbox (local SQLite, monitor/sinks/outbox.py),
2. ClickHouse: alerts, their transactions and evidence, swaps, pending transactions and fates,
3. the alerts topic (``mevwatch.alerts.v1``, keyed by alert id),
4. the processed-block checkpoints (the ``blocks`` table),

and only then commits the bus offsets. A sink that is down (ClickHouse stopped, the
broker restarting) is retried with backoff while the offsets stay where they are; a
crash anywhere re-delivers the uncommitted records, whose rows and outbox messages are
identical to the first ones and collapse. The alerts topic is at-least-once: a
consumer de-duplicates on ``(alert_id, version)``.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import orjson

from monitor import metrics
from monitor.alerts import AlertEvent
from monitor.config import WebhookSubscriber
from monitor.decode import BlockDecoder
from monitor.detect import detect_block
from monitor.detect.pending import MempoolWatcher
from monitor.errors import BusError, StoreError
from monitor.lifecycle import Lifecycle, version_of
from monitor.log import get_logger
from monitor.sinks.outbox import Outbox
from monitor.sinks.webhooks import outbox_items
from monitor.store.store import AlertStore, StoreBatch
from monitor.types import Block
from streams import bus as busmod
from streams.consume import decode_records
from streams.envelope import PendingTx, RevertEvent
from streams.fate import FateTracker

log = get_logger("mevwatch.pipeline")


def alert_message(ev: AlertEvent) -> bytes:
    return orjson.dumps({"type": ev.event_type, "version": ev.version, "first_seen_ns": ev.first_seen_ns,
                         "data": ev.alert.to_json()}, option=orjson.OPT_SORT_KEYS)


@dataclass
class Health:
    """What /healthz and /readyz report; updated by the pipeline."""

    beat: float = field(default_factory=time.monotonic)
    store_ok: bool = True
    bus_ok: bool = True
    node_ok: bool | None = None  # None: this process does not ingest
    last_error: str | None = None

    def alive(self, max_silence_s: float = 60.0) -> bool:
        return time.monotonic() - self.beat < max_silence_s

    def ready(self) -> bool:
        return self.store_ok and self.bus_ok and self.node_ok is not False


class Sinks:
    def __init__(self, bus: busmod.Bus, store: AlertStore | None, outbox: Outbox | None,
                 subscribers: list[WebhookSubscriber], *, stop: threading.Event, health: Health,
                 publish_alerts: bool = True, on_outbox: Callable[[], None] | None = None):
        self.bus, self.store, self.outbox, self.subs = bus, store, outbox, subscribers
        self.stop, self.health = stop, health
        self.publish_alerts = publish_alerts
        self.on_outbox = on_outbox
        self.store_failures = 0
        self.produce_failures = 0

    def write(self, batch: StoreBatch) -> bool:
        """Deliver ``batch`` to every sink; False when asked to stop before all took it (do not commit)."""
        if self.outbox is not None and self.subs and batch.alerts:
            self.outbox.enqueue(outbox_items(self.subs, batch.alerts))
            if self.on_outbox is not None:
                self.on_outbox()
        blocks, batch.blocks = batch.blocks, []
        if self.store is not None and len(batch) and not self._retry(lambda: self._timed_write(batch), "store"):
            return False
        if self.publish_alerts and batch.alerts:
            def produce() -> None:
                for ev in batch.alerts:
                    self.bus.produce(busmod.ALERTS, ev.alert.alert_id.encode(), alert_message(ev))
                self.bus.flush(30)
            if not self._retry(produce, "bus"):
                return False
        if self.store is not None and blocks:
            return self._retry(lambda: self._timed_write(StoreBatch(blocks=blocks)), "store")
        return True

    def _timed_write(self, batch: StoreBatch) -> None:
        assert self.store is not None
        t = time.perf_counter()
        self.store.write(batch)
        metrics.CH_INSERT.observe(time.perf_counter() - t)

    def _retry(self, fn: Callable[[], None], what: str) -> bool:
        delay = 0.25
        while True:
            try:
                fn()
                setattr(self.health, f"{what}_ok", True)
                return True
            except (StoreError, BusError) as exc:
                if isinstance(exc, StoreError) and not exc.retriable:
                    raise
                setattr(self.health, f"{what}_ok", False)
                self.health.last_error = str(exc)
                if what == "store":
                    self.store_failures += 1
                    metrics.CH_FAILURES.inc()
                else:
                    self.produce_failures += 1
                    metrics.PRODUCE_ERRORS.inc()
                log.warning(f"{what} unavailable; holding offsets and retrying", error=str(exc)[:300], retry_in_s=round(delay, 2))
                self.health.beat = time.monotonic()  # backing off is not being stuck
                if self.stop.wait(delay * (0.5 + random.random() / 2)):
                    return False
                delay = min(10.0, delay * 2)


class DetectWorker:
    """Consumes the mempool and blocks topics in one consumer group and feeds the sinks."""

    def __init__(self, bus: busmod.Bus, sinks: Sinks, *, chain_id: int, confirmations: int, group: str = "mevwatch-detect",
                 pending_ttl_s: float = 3600.0):
        self.bus, self.sinks = bus, sinks
        self.group = group
        self.consumer = bus.consumer([busmod.MEMPOOL, busmod.BLOCKS], group)
        self.decoder = BlockDecoder()
        self.watcher = MempoolWatcher(chain_id=chain_id)
        self.fates = FateTracker(pending_ttl_s)
        self.lifecycle = Lifecycle(confirmations)
        self.counts = {"pending": 0, "blocks": 0, "reverts": 0, "duplicates": 0, "alerts": 0}
        self.last_block: int | None = None
        self.last_poll = 0
        self.offset_base = 0  # added to blocks-topic offsets (non-durable bus only, see restore)
        self._last_expire = time.monotonic()
        self._last_lag = 0.0
        self._block_arrival: dict[str, float] = {}  # block hash -> when its record reached the bus (s)
        self.scorer = None  # models.scorer.Scorer: the graph model, when loaded
        self._window: list[tuple] = []  # recent pending transactions and their intents (the model's mempool window)
        self._gnn_seen: set[str] = set()
        self.on_events: Callable[[list[AlertEvent]], None] | None = None

    def restore(self, store: AlertStore) -> None:
        """Pick up where the last run stopped: open alerts and processed blocks from the store."""
        blocks = store.recent_blocks(512)
        ckpt = store.backend.query("SELECT max(version) FROM blocks")
        ckpt_version = int(ckpt[0][0] or 0) if ckpt else 0
        rows = store.backend.query(
            "SELECT alert_id FROM alerts FINAL WHERE stage = 'included' OR (version > {v:UInt64} AND stage IN ('final', 'retracted'))",
            {"v": ckpt_version})
        ids = {r[0] for r in rows}
        if not getattr(self.bus, "durable", False):
            # the in-process bus starts again at offset 0: continue the block events after the stored ones
            top = store.backend.query("SELECT max(version) FROM alerts")
            self.offset_base = max(ckpt_version, int(top[0][0] or 0) if top else 0) >> 3
        open_alerts = [a for a in store.alerts(limit=10_000_000) if a.alert_id in ids] if ids else []
        self.lifecycle.restore(open_alerts, blocks)
        if blocks:
            log.info("restored detection state", open_alerts=len(open_alerts), last_block=blocks[-1][0])

    def warm_up(self, window: dict[str, int] | None = None) -> int:
        """Rebuild the mempool rules' state (reserves, routers, pending intents) and the fate tracker
        from the records just before the committed offsets, without raising anything again:
        those records' alerts were delivered before the offsets were committed."""
        window = window or {busmod.MEMPOOL: 5000, busmod.BLOCKS: 64}
        records = self.bus.history([busmod.MEMPOOL, busmod.BLOCKS], self.group, window)
        records.sort(key=lambda r: (r.timestamp_ms, r.topic != busmod.MEMPOOL))
        for _rec, msg in decode_records(records, self.bus):
            if isinstance(msg, PendingTx):
                self.fates.on_pending(msg)
                self.watcher.on_pending(msg)
            elif isinstance(msg, Block):
                self.watcher.observe_block(self.decoder.decode(msg))
                self.fates.on_block(msg)
        if records:
            log.info("warmed up from the bus", records=len(records))
        return len(records)

    def step(self, timeout_ms: int = 500) -> list[AlertEvent] | None:
        """One batch through the pipeline; None when stopped before the sinks took it (offsets not committed)."""
        records = self.consumer.poll(timeout_ms=timeout_ms, max_records=5000)
        self.last_poll = len(records)
        events: list[AlertEvent] = []
        batch = StoreBatch()
        new_pending = False
        if records:
            records.sort(key=lambda r: (r.timestamp_ms, r.topic != busmod.MEMPOOL))
            for rec, msg in decode_records(records, self.bus):
                if isinstance(msg, PendingTx):
                    self.counts["pending"] += 1
                    metrics.PENDING_SEEN.inc()
                    self.fates.on_pending(msg)
                    batch.add_pending(msg)
                    events += [AlertEvent(a, 1, msg.first_seen_ns) for a in self.watcher.on_pending(msg)]
                    if self.scorer is not None:
                        self._remember(msg)
                        new_pending = True
                elif isinstance(msg, Block):
                    if new_pending and self.scorer is not None:  # the window before this block takes from it
                        events += self._score_window(events)
                        new_pending = False
                    if msg.hash:
                        self._block_arrival[msg.hash] = rec.timestamp_ms / 1000
                    events += self._block(msg, rec.offset + self.offset_base, batch)
                elif isinstance(msg, RevertEvent):
                    self.counts["reverts"] += 1
                    metrics.REVERTED_BLOCKS.inc()
                    off = rec.offset + self.offset_base
                    events += self.lifecycle.on_revert(msg.block_number, msg.block_hash, off)
                    batch.add_revert(msg.block_number, msg.block_hash, version_of(off, "retracted"))
        if new_pending and self.scorer is not None:
            events += self._score_window(events)
        if time.monotonic() - self._last_expire > 10:
            self._last_expire = time.monotonic()
            for f in self.fates.expire(time.time_ns()):
                batch.add_fate(f)
        if not records and not len(batch):
            self.sinks.health.beat = time.monotonic()
            return []
        batch.alerts = events
        if not self.sinks.write(batch):
            return None
        self._commit()
        self.counts["alerts"] += len(events)
        self._observe(events)
        self.sinks.health.beat = time.monotonic()
        if self.on_events is not None and events:
            self.on_events(events)
        return events

    def _remember(self, p: PendingTx) -> None:
        from monitor.decode.pending import decode_pending

        self._window.append((p, decode_pending(p.to_address, p.input, p.value)))
        if len(self._window) > 4 * self.scorer.window:
            self._window = self._window[-self.scorer.window:]

    def _score_window(self, events: list[AlertEvent]) -> list[AlertEvent]:
        """The model on the current mempool window: scores the mempool rules' attempts of this batch
        and raises the attempts only it sees (each once)."""
        order, probs = self.scorer.score_window(self._window)
        self.scorer.fuse([e.alert for e in events if e.alert.stage == "pending"], probs)
        ruled = {e.alert.alert_id: e for e in events if e.alert.stage == "pending"}
        out = []
        for a in self.scorer.attempts(self._window[-self.scorer.window:], order, probs, self.watcher.chain_id):
            if a.alert_id in ruled:
                ruled[a.alert_id].alert.detector = "both"
                continue
            if a.alert_id in self._gnn_seen:
                continue
            self._gnn_seen.add(a.alert_id)
            out.append(AlertEvent(a, 1, a.evidence.get("first_seen_ns", 0)))
        return out

    def _observe(self, events: list[AlertEvent]) -> None:
        """Metrics of committed events: counts by kind and stage, and detection latency."""
        now = time.time()
        for ev in events:
            a = ev.alert
            metrics.ALERTS.labels(a.kind, a.stage).inc()
            if a.stage == "pending" and ev.first_seen_ns:
                metrics.DETECTION_LATENCY.labels("pending").observe(max(0.0, now - ev.first_seen_ns / 1e9))
            elif a.stage == "included" and a.block_hash in self._block_arrival:
                metrics.DETECTION_LATENCY.labels("head").observe(max(0.0, now - self._block_arrival[a.block_hash]))
        if len(self._block_arrival) > 256:
            for h in list(self._block_arrival)[:-128]:
                del self._block_arrival[h]
        if time.monotonic() - self._last_lag > 5.0:
            self._last_lag = time.monotonic()
            try:
                for topic, n in self.consumer.lag().items():
                    metrics.CONSUMER_LAG.labels(topic).set(n)
            except Exception as exc:  # noqa: BLE001 - a lag probe must never stop detection
                log.debug("consumer lag unavailable", error=repr(exc)[:200])

    def _block(self, block: Block, offset: int, batch: StoreBatch) -> list[AlertEvent]:
        decoded = self.decoder.decode(block)
        self.watcher.observe_block(decoded)
        self.last_block = block.number
        if self.lifecycle.seen(block):
            self.counts["duplicates"] += 1
            self.fates.on_block(block)
            return []
        self.counts["blocks"] += 1
        metrics.observe_block(block.number, block.timestamp)
        if self._window:  # the mempool window holds what is still pending
            mined = {t.hash for t in block.transactions}
            self._window = [w for w in self._window if w[0].hash not in mined]
        alerts = detect_block(decoded)
        if self.scorer is not None:  # every block is scored (latency metric), its alerts fused
            probs = self.scorer.score_block(decoded)
            self.scorer.fuse(alerts, probs)
        events = self.lifecycle.on_block(block, alerts, offset)
        for ev in events:
            if ev.alert.stage == "included":
                seen = [p.first_seen_ns for t in ev.alert.txs if (p := self.fates.pending.get(t.hash)) is not None]
                ev.first_seen_ns = min(seen) if seen else 0
        for f in self.fates.on_block(block):
            batch.add_fate(f)
        batch.add_block(decoded, version_of(offset, "included"))
        return events

    def _commit(self) -> None:
        delay = 0.25
        while True:
            try:
                self.consumer.commit()
                return
            except Exception as exc:  # noqa: BLE001 - broker away or group rebalancing: records come again, rows collapse
                log.warning("offset commit failed; retrying", error=repr(exc)[:200])
                if self.sinks.stop.wait(delay):
                    return
                delay = min(5.0, delay * 2)
                if "rebalanc" in repr(exc).lower() or "CommitFailed" in repr(exc):
                    return

    def close(self) -> None:
        try:
            self.consumer.close()
        except Exception:  # noqa: BLE001
            pass
