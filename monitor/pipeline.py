"""The detect role: bus -> engine -> sinks, then commit.

One :class:`DetectWorker` step polls a batch of mempool and block records, feeds them to the
engine (monitor/engine.py: decode, detectors, scorers, alert stages) in production order, and
hands the engine's batch to the :class:`~monitor.sinks.base.SinkChain` (by default: the webhook
outbox, ClickHouse, the alerts topic, the processed-block checkpoints; monitor/sinks/registry.py),
and only then commits the bus offsets. A sink that is down (ClickHouse stopped, the broker
restarting) is retried with backoff while the offsets stay where they are; a crash anywhere
re-delivers the uncommitted records, whose rows and outbox messages are identical to the first
ones and collapse. The alerts topic is at-least-once: a consumer de-duplicates on
``(alert_id, version)``.
"""

from __future__ import annotations

import gc
import time
from collections import deque
from collections.abc import Callable, Sequence

from mevwatch.monitor import metrics, retry
from mevwatch.monitor.alerts import AlertEvent
from mevwatch.monitor.batch import Batch
from mevwatch.monitor.detect.common import LossOracle
from mevwatch.monitor.detect.registry import REGISTRY, Registry
from mevwatch.monitor.engine import Engine
from mevwatch.monitor.lifecycle import block_event_of, event_end
from mevwatch.monitor.log import get_logger
from mevwatch.monitor.scoring import Scorer
from mevwatch.monitor.sinks.base import SinkChain
from mevwatch.monitor.store.store import AlertStore
from mevwatch.monitor.types import Block
from mevwatch.streams import bus as busmod
from mevwatch.streams.consume import decode_records
from mevwatch.monitor.types import Message, PendingTx, RevertEvent

log = get_logger("mevwatch.pipeline")
EXPIRE_EVERY_S = 10.0
FAULT_ENV = "MEVWATCH_FAULT"
FAULT_POINTS = {"webhooks": "after_outbox", "clickhouse": "after_store", "alerts_topic": "after_topic"}


class FaultHook:
    """Test-only: ``MEVWATCH_FAULT=<point>:<n>[:kill|term|pause]`` kills (SIGKILL, the default),
    stops (SIGTERM) or pauses (SIGSTOP: the test resumes it with SIGCONT) this process at a named
    point of the commit window of the ``n``-th batch that carries alerts: ``after_outbox``,
    ``after_store``, ``after_topic`` (after that sink took the batch) or ``before_commit`` (every
    sink took it, the offsets are not committed). Unset: no hook.

    ``MEVWATCH_FAULT=broken:commit_before_sinks[:<n>]`` is a deliberately BROKEN variant, for the
    tests that show the fault tests can fail (tests/daemon/test_faults.py): it commits the offsets
    before the sinks take the batch, and with ``n`` SIGKILLs the process right after that commit of
    the ``n``-th batch with block-stage alerts, so the batch is lost. ``MEVWATCH_FAULT=broken:reopen_final``
    is another: a restart reloads the alerts finalised by the checkpoint's own block event as still
    open (the bug tests/daemon/test_restart.py guards against). Never set any outside tests."""

    def __init__(self, spec: str):
        parts = spec.split(":")
        self.commit_first = self.reopen_final = False
        if parts == ["broken", "reopen_final"]:
            self.reopen_final = True
            parts = ["never", "0", "kill"]  # a point never reached: no kill
        elif parts[:2] == ["broken", "commit_before_sinks"] and (len(parts) == 2 or (len(parts) == 3 and parts[2].isdigit())):
            self.commit_first = True
            parts = ["after_commit", parts[2] if len(parts) == 3 else "0", "kill"]
        elif len(parts) not in (2, 3) or parts[0] not in {*FAULT_POINTS.values(), "before_commit"} or not parts[1].isdigit() \
                or (len(parts) == 3 and parts[2] not in ("kill", "term", "pause")):
            raise ValueError(f"{FAULT_ENV} must be <after_outbox|after_store|after_topic|before_commit>:<batch>[:kill|term|pause] "
                             f"or broken:commit_before_sinks[:<batch>] or broken:reopen_final, got {spec!r}")
        self.point, self.at, self.action = parts[0], int(parts[1]), parts[2] if len(parts) == 3 else "kill"
        self.batches = 0
        self.fired = False

    @classmethod
    def from_env(cls) -> FaultHook | None:
        import os

        spec = os.environ.get(FAULT_ENV, "")
        return cls(spec) if spec else None

    def begin(self, batch: Batch) -> None:
        # the broken variant counts batches with block-stage alerts only: losing one is then always visible
        if batch.alerts and (not self.commit_first or any(ev.alert.stage != "pending" for ev in batch.alerts)):
            self.batches += 1

    def reached(self, point: str) -> None:
        if self.fired or point != self.point or self.batches != self.at:
            return
        import os
        import signal

        self.fired = True  # once (a paused process goes on from here when resumed)
        log.warning("fault injected", point=point, batch=self.batches, action=self.action)
        sig = {"kill": signal.SIGKILL, "term": signal.SIGTERM, "pause": signal.SIGSTOP}[self.action]
        os.kill(os.getpid(), sig)


TRIM_EVERY_S = 2.0  # how often held output of other members' partitions is checked against the group's commits
REORDER_MS = 20  # a record waits this long for earlier records of other partitions (the ingest's clock)
MAX_HOLD_MS = 2000  # a partition behind its end that shows nothing holds the others no longer than this
HELD_POLL_MS = 20  # a step's poll wait while records are held for such a partition (not 0: no spinning)


def _order(rec: busmod.Record, msg: Message | None) -> tuple:
    """A record's place in production order: its time, a mempool record before a block record of the same
    millisecond, pending transactions by first sight; then topic, partition and offset (a total order)."""
    return (rec.timestamp_ms, rec.topic != busmod.MEMPOOL, msg.first_seen_ns if isinstance(msg, PendingTx) else 0,
            rec.topic, rec.partition, rec.offset)


def production_order(items: list[tuple[busmod.Record, Message]]) -> list[tuple[busmod.Record, Message]]:
    """The order the messages were seen in, across partitions: by record timestamp; within one
    millisecond a mempool record before a block record (it was seen before the block that includes
    it), and pending transactions by their first sight (ns), as a recording holds them."""
    return sorted(items, key=lambda it: (it[0].timestamp_ms, it[0].topic != busmod.MEMPOOL,
                                         it[1].first_seen_ns if isinstance(it[1], PendingTx) else 0))


def settle_for_latency() -> None:
    """Before a long-running detect loop (the daemon calls it once its worker is set up): pay now the one-off costs the first records would pay, and keep full
    garbage collections short. eth-abi (which decodes the router calls the fast decoder refuses) is imported on first use, ~0.15-0.2 s, so the
    first router swap of a process stalled the member and every record queued behind it; and a full
    collection scanned every object made since start (web3, pydantic, the model): 66-93 ms pauses
    every few seconds at 1,000 tx/s (bench/bench_member_latency.py, docs/benchmarks.md). What exists now
    is collected once and then frozen (``gc.freeze``: never scanned again); cycles made later are
    collected as before."""
    from mevwatch.monitor.decode.pending import eth_abi_decode

    word = (0).to_bytes(32, "big")
    eth_abi_decode(["uint256", "address[]"], word + (64).to_bytes(32, "big") + word)  # 0, []: imports eth-abi
    gc.collect()
    gc.freeze()


class DetectWorker:
    """Consumes the mempool and blocks topics in one consumer group, through the engine, into the sinks."""

    def __init__(self, bus: busmod.Bus, sinks: SinkChain, *, chain_id: int, confirmations: int, group: str = "mevwatch-detect",
                 pending_ttl_s: float = 3600.0, scorers: Sequence[Scorer] = (), registry: Registry | None = None,
                 decoders: str = "full", oracle: LossOracle | None = None, only_chain: int | None = None,
                 native_wrapper: str | None = None):
        self.bus, self.sinks = bus, sinks
        self.group = group
        self.only_chain = only_chain  # messages of another chain are dead letters (streams/consume.py)
        # with Kafka, every member reads every partition (the whole state) and writes only what it owns
        # (streams/bus.py ReplicaConsumer; docs/operations.md "Several detect members")
        replica = getattr(bus, "replica_consumer", None)
        self.consumer = (replica if replica is not None else bus.consumer)([busmod.MEMPOOL, busmod.BLOCKS], group)
        self._owned: set[tuple[str, int]] = set()  # what this member owned at its last step
        # the output of records this member read but does not own, by partition, until the group's
        # committed offset passes them: if the partition comes to this member, it writes what the
        # last owner may not have (a record's rows and events, or the dead letter of a bad record: its
        # owner may have died before sending it)
        self._held: dict[tuple[str, int], deque[tuple[int, Batch | tuple[bytes | None, bytes]]]] = {}
        self._last_trim = time.monotonic()
        # records polled but not yet processed: processed in production order once no earlier record
        # can still arrive from another partition (REORDER_MS), so every member, and a restarted one,
        # runs the same sequence whatever its polls returned
        self._queue: list[tuple[tuple, busmod.Record, Message | None, float]] = []
        self._max_ts = 0  # the newest record time seen (ms)
        self._last_ts: dict[tuple[str, int], int] = {}  # per partition: the newest record time polled (ms)
        self._horizon_held = False  # the last step held due records for a partition behind its end
        self._hold_warned = False  # the hold's time limit was reached once (logged once)
        self._done: dict[tuple[str, int], int] = {}  # per partition: the offset after the last processed record
        self.engine = Engine(chain_id=chain_id, confirmations=confirmations, scorers=list(scorers), pending_ttl_s=pending_ttl_s,
                             decoders=decoders, oracle=oracle, registry=registry or REGISTRY, native_wrapper=native_wrapper)
        self.last_poll = 0
        self.offset_base = 0  # added to blocks-topic offsets (non-durable bus only, see restore)
        self._last_expire = time.monotonic()
        self._last_lag = 0.0
        self._block_arrival: dict[str, float] = {}  # block hash -> when its record reached the bus (s)
        self.on_events: Callable[[list[AlertEvent]], None] | None = None
        self.fault = FaultHook.from_env()
        if self.fault is not None:
            fault = self.fault
            self.sinks.after_sink = lambda name: fault.reached(FAULT_POINTS.get(name, name))

    @property
    def counts(self):
        return self.engine.counts

    @property
    def watcher(self):
        return self.engine.watcher

    @property
    def owned(self) -> frozenset[tuple[str, int]]:
        """The (topic, partition) pairs this member wrote for at its last step (the group's assignment)."""
        return frozenset(self._owned)

    @property
    def last_block(self) -> int | None:
        return self.engine.last_block

    @property
    def scorer(self) -> Scorer | None:
        return self.engine.scorers[0] if self.engine.scorers else None

    @scorer.setter
    def scorer(self, s: Scorer | None) -> None:
        self.engine.scorers = [s] if s is not None else []  # the engine shares its wrapper with it

    def restore(self, store: AlertStore) -> None:
        """Pick up where the last run stopped: open alerts and processed blocks from the store."""
        blocks = store.recent_blocks(512)
        ckpt_version = store.checkpoint_version()
        # open: alerts awaiting finality, and those finalised or retracted by a block event after the
        # checkpoint's (that event will be processed again and regenerates the same versions). A final
        # row of the checkpoint's own block event (``E<<3|3`` above the checkpoint's ``E<<3|2``) is done.
        broken = self.fault is not None and self.fault.reopen_final  # the test-only broken variant (FaultHook)
        bound = ckpt_version if broken else event_end(ckpt_version)
        if not getattr(self.bus, "durable", False):
            # the in-process bus starts again at offset 0 and ingest resumes after the checkpointed block:
            # its block events continue right after the checkpoint's, as they were numbered the first time
            self.offset_base = block_event_of(ckpt_version)
        # (a retracted pending alert has no block: nothing to await)
        open_alerts = [a for a in store.open_alerts(bound) if a.block_number is not None]
        self.engine.lifecycle.restore(open_alerts, blocks)
        if blocks:
            log.info("restored detection state", open_alerts=len(open_alerts), last_block=blocks[-1][0])

    def warm_up(self, window: dict[str, int] | None = None) -> int:
        """Rebuild the mempool rules' state (reserves, routers, pending intents) and the fate tracker
        from the records just before the committed offsets, without raising anything again:
        those records' alerts were delivered before the offsets were committed."""
        window = window or {busmod.MEMPOOL: 5000, busmod.BLOCKS: 64}
        records = self.bus.history([busmod.MEMPOOL, busmod.BLOCKS], self.group, window)
        for _rec, msg in production_order(decode_records(records, self.bus, self.only_chain)):
            self.engine.warm(msg)
        if records:
            log.info("warmed up from the bus", records=len(records))
        return len(records)

    def step(self, timeout_ms: int = 500) -> list[AlertEvent] | None:
        """One batch through the pipeline; None when stopped before the sinks took it (offsets not committed)."""
        if self._queue:  # wake up when the oldest queued record is due
            due = REORDER_MS - (time.monotonic() - min(q[3] for q in self._queue)) * 1000
            # held for a partition behind its end: wait for its records (a poll returns on the first)
            timeout_ms = max(HELD_POLL_MS if self._horizon_held else 0, min(timeout_ms, int(due) + 1))
        records = self.consumer.poll(timeout_ms=timeout_ms, max_records=5000)
        self.last_poll = len(records)
        batch = Batch()
        owned = self.consumer.owned()  # None: every record polled is this member's
        if owned is not None:
            for tp in sorted(owned - self._owned):  # partitions that just came to this member
                self._release(tp, batch)
            self._owned = owned

        def mine(rec: busmod.Record) -> bool:
            return owned is None or (rec.topic, rec.partition) in owned

        def hold_letter(rec: busmod.Record, letter: bytes) -> None:
            self._held.setdefault((rec.topic, rec.partition), deque()).append((rec.offset, (rec.key, letter)))

        for rec, msg in self._due(records, decode_records(records, self.bus, self.only_chain, mine, hold_letter)):
            self._done[(rec.topic, rec.partition)] = max(self._done.get((rec.topic, rec.partition), 0), rec.offset + 1)
            if msg is None:  # a dead letter (written by its owner): nothing to process
                continue
            own = mine(rec)
            out = batch if own else Batch()
            if isinstance(msg, PendingTx):
                if own:
                    metrics.PENDING_SEEN.inc()
                self.engine.pending(msg, out)
            elif isinstance(msg, RevertEvent):
                if own:
                    metrics.REVERTED_BLOCKS.inc()
                self.engine.revert(msg, rec.offset + self.offset_base, out)
            elif isinstance(msg, Block):
                if msg.hash:
                    self._block_arrival[msg.hash] = rec.timestamp_ms / 1000
                before = self.engine.counts.blocks
                self.engine.block(msg, rec.offset + self.offset_base, out)
                if own and self.engine.counts.blocks > before:
                    metrics.observe_block(msg.number, msg.timestamp)
            if not own:
                self._held.setdefault((rec.topic, rec.partition), deque()).append((rec.offset, out))
        if time.monotonic() - self._last_expire > EXPIRE_EVERY_S:
            self._last_expire = time.monotonic()
            # dropped fates (by the clock, not by a record): written by the member that owns the blocks; the
            # others hold theirs with the blocks partition's output (written if the blocks come to them)
            blocks_tp = (busmod.BLOCKS, 0)
            out = batch if owned is None or blocks_tp in owned else Batch()
            self.engine.expire(out)
            if out is not batch and len(out):
                self._held.setdefault(blocks_tp, deque()).append((self._done.get(blocks_tp, 0), out))
        if self._held and time.monotonic() - self._last_trim > TRIM_EVERY_S:
            self._last_trim = time.monotonic()
            self._trim()
        if not records and not len(batch):
            self._beat()
            return []
        broken = self.fault is not None and self.fault.commit_first
        if self.fault is not None:
            self.fault.begin(batch)
            if broken:  # the deliberately broken test-only variant (FaultHook): offsets first
                self._commit()
                landed = getattr(self.consumer, "wait_committed", None)
                if landed is not None:  # an asynchronous commit: landed before the kill, or nothing is lost
                    landed(10.0)
                self.fault.reached("after_commit")
        if not self.sinks.write(batch):
            return None
        if self.fault is not None:
            self.fault.reached("before_commit")
        if not broken:
            self._commit()
        self._observe(batch.alerts)
        self._beat()
        if self.on_events is not None and batch.alerts:
            self.on_events(batch.alerts)
        return batch.alerts

    def _due(self, records: list[busmod.Record], good: list[tuple[busmod.Record, Message]]) -> list[tuple[busmod.Record, Message | None]]:
        """The queued records now due, in production order (:func:`production_order`; bad records with
        no message, so that their offsets are passed). A record is due once a record REORDER_MS newer
        has been seen, or it has waited REORDER_MS, or a poll came back empty; and, where the consumer
        knows which partitions it has not read to their end (``behind``), only once every such
        partition has shown a record at least as new (:meth:`_horizon`): a member catching up a
        backlog gets one partition's records in large runs before another's, and would otherwise run
        them in another order than a member reading live."""
        now = time.monotonic()
        decoded = {id(r): m for r, m in good}
        last_ts = self._last_ts
        for r in records:
            m = decoded.get(id(r))
            self._queue.append((_order(r, m), r, m, now))
            self._max_ts = max(self._max_ts, r.timestamp_ms)
            tp = (r.topic, r.partition)
            if r.timestamp_ms > last_ts.get(tp, -1):
                last_ts[tp] = r.timestamp_ms
        if not self._queue:
            return []
        self._queue.sort(key=lambda q: q[0])
        horizon = self._horizon()
        last = -1
        self._horizon_held = False
        for i, (key, _r, _m, arrived) in enumerate(self._queue):
            if key[0] >= horizon:
                if (now - arrived) * 1000 < MAX_HOLD_MS:
                    self._horizon_held = True
                    break  # an earlier record (or one of the same millisecond) may still come from a partition not read to its end
                if not self._hold_warned:
                    self._hold_warned = True
                    log.warning("a partition behind its end showed no record for MAX_HOLD_MS; running newer records "
                                "without waiting for it", max_hold_ms=MAX_HOLD_MS, horizon_ms=horizon, record_ms=key[0])
            if not records or key[0] <= self._max_ts - REORDER_MS or (now - arrived) * 1000 >= REORDER_MS:
                last = i
        due, self._queue = self._queue[:last + 1], self._queue[last + 1:]
        return [(r, m) for _k, r, m, _a in due]

    def _horizon(self) -> float:
        """Records older than this (ms) can no longer be undercut by any partition: the oldest of the
        newest record times polled from each partition not yet read to its end (streams/bus.py
        ``ReplicaConsumer.behind``; such a partition may still deliver more records of that
        millisecond); infinite when every partition is read to its end, or the consumer cannot tell."""
        behind = getattr(self.consumer, "behind", None)
        parts = behind() if behind is not None else ()
        if not parts:
            return float("inf")
        return min(self._last_ts.get(tp, -1) for tp in parts)

    def _positions(self) -> dict[tuple[str, int], int]:
        """Per partition, the offset to commit: the first record not yet processed (one still queued),
        else the one after the last processed."""
        out = dict(self._done)
        for _k, r, _m, _a in self._queue:
            tp = (r.topic, r.partition)
            out[tp] = min(out.get(tp, r.offset), r.offset)
        return out

    def _release(self, tp: tuple[str, int], batch: Batch) -> None:
        """``tp`` came to this member: the held output of its records from the group's committed
        offset on (what the last owner may not have written) goes into ``batch``."""
        held = self._held.pop(tp, None)
        if not held:
            return
        try:
            start = self.consumer.committed(*tp) or 0
        except Exception as exc:  # noqa: BLE001 - the broker away: write all of it (rows written twice collapse)
            log.warning("committed offset unavailable; writing every held record's output", error=repr(exc)[:200])
            start = 0
        for offset, out in held:
            if offset < start:
                continue
            if isinstance(out, Batch):
                batch.extend(out)
            else:  # a bad record's dead letter (at least once: its owner may have sent it)
                self.bus.produce(busmod.DEADLETTER, out[0], out[1])
        log.info("partition came to this member; writing the output its last owner had not committed",
                 topic=tp[0], partition=tp[1], from_offset=start)

    def _trim(self) -> None:
        """Forget held output the group has committed (its owner wrote it)."""
        for tp, held in list(self._held.items()):
            if tp in self._owned:
                continue
            try:
                start = self.consumer.committed(*tp) or 0
            except Exception as exc:  # noqa: BLE001 - trimming waits for the next round
                log.debug("committed offset unavailable", error=repr(exc)[:200])
                return
            while held and held[0][0] < start:
                held.popleft()
            if not held:
                del self._held[tp]

    def drain(self, timeout_ms: int = 0) -> list[AlertEvent]:
        """Steps until a poll comes back empty with nothing held for a partition behind its end (at
        most MAX_HOLD_MS more), waiting up to ``timeout_ms`` each (a Kafka consumer needs a positive
        wait), or the sinks stop; the events of all of them."""
        events: list[AlertEvent] = []
        while True:
            got = self.step(timeout_ms)
            if got is None:
                return events
            events += got
            if self.last_poll == 0 and not (self._horizon_held and self._queue):
                return events

    def _beat(self) -> None:
        if self.sinks.health is not None:
            self.sinks.health.beat = time.monotonic()

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

    def _commit(self) -> None:
        def rebalancing(exc: BaseException) -> bool:
            return "rebalanc" in repr(exc).lower() or "CommitFailed" in repr(exc)

        def on_retry(exc: BaseException, wait_s: float) -> None:
            log.warning("offset commit failed; retrying", error=repr(exc)[:200], retry_in_s=round(wait_s, 2))

        try:  # broker away: retry; group rebalancing: the records come again elsewhere, their rows collapse
            positions = self._positions()
            retry.call(lambda: self.consumer.commit(positions), policy="commit", retry_if=lambda e: isinstance(e, Exception) and not rebalancing(e),
                       stop=self.sinks.stop, on_retry=on_retry)
        except retry.Stopped:
            return
        except Exception as exc:  # noqa: BLE001 - rebalancing
            log.warning("offset commit refused by a rebalance; records will be re-delivered", error=repr(exc)[:200])

    def close(self) -> None:
        try:
            self.consumer.close()
        except Exception:  # noqa: BLE001
            pass


def detect_worker(settings, bus: busmod.Bus, store: AlertStore | None, *, stop, health=None, outbox=None,
                  on_outbox: Callable[[], None] | None = None, publish_alerts: bool = True, group: str | None = None,
                  confirmations: int | None = None, scorers: Sequence[Scorer] | None = None) -> DetectWorker:
    """The detect role as every entry point wires it (the daemon, the demo): the sinks the settings
    name (monitor/sinks/registry.py), the graph model when it is on (``scorers=None``), the engine."""
    from mevwatch.monitor.sinks.registry import SinkContext, build_sinks

    ctx = SinkContext(settings=settings, bus=bus, store=store, outbox=outbox, on_outbox=on_outbox, publish_alerts=publish_alerts)
    sinks = SinkChain(build_sinks(settings.sinks, ctx), stop=stop, health=health)
    if scorers is None:
        from mevwatch.models.scorer import load_scorer

        scorer = load_scorer(settings)
        scorers = [scorer] if scorer is not None else []
    from mevwatch.monitor import chains

    if not chains.known(settings.chain_id) and not settings.native_wrapper:
        log.warning("chain has no known wrapped native token: amounts are valued in its native coin only once "
                    "native_wrapper is set (monitor/chains.py)", chain_id=settings.chain_id)
    oracle = None
    if settings.node.rpc and settings.node.reexecute != "off":  # victim losses by re-execution (streams/simulate.py)
        from mevwatch.streams.simulate import NodeSimulator, node_request

        oracle = NodeSimulator(node_request(settings.node.rpc), every_pool=settings.node.reexecute == "all")
    worker = DetectWorker(bus, sinks, chain_id=settings.chain_id,
                          confirmations=settings.node.confirmations if confirmations is None else confirmations,
                          group=group or f"{settings.kafka.group_id}-detect", scorers=scorers, decoders=settings.decoders,
                          oracle=oracle, native_wrapper=settings.native_wrapper,
                          # a chain id set on purpose (several chains on one cluster) is enforced on every message
                          only_chain=settings.chain_id if "chain_id" in settings.model_fields_set else None)
    if settings.node.rpc and settings.node.exposure != "off":  # pending exposure by simulation (streams/exposure_sim.py)
        from mevwatch.streams.exposure_sim import NodeExposure
        from mevwatch.streams.simulate import node_request

        worker.engine.watcher.exposure_oracle = NodeExposure(node_request(settings.node.rpc, timeout=5.0), settings.chain_id)
    return worker
