"""``mevwatch run``: the long-running daemon.

Roles:
- ``all`` (default): node -> bus -> detect -> sinks in one process. With no Kafka
  configured the bus is in-process and ClickHouse is embedded chDB: nothing to set up
  but a node URL.
- ``ingest``: node -> Kafka only. Resumes after the last block on the blocks topic.
- ``detect``: Kafka -> detect -> sinks, in the consumer group ``<kafka.group_id>-detect``;
  run several to share the mempool partitions (the single blocks partition is read by
  one member at a time; see docs/operations.md).
- ``attest``: ClickHouse -> batches of final alerts -> the attestation registry. Run
  exactly one (one attester key, one nonce sequence). Role ``all`` runs it as a thread
  when ``attest.enabled``.

SIGTERM or SIGINT: stop ingesting, process what was already consumed, deliver due
webhooks for up to ``--drain-s``, commit, exit 0. The health server runs on
``health_host:health_port``.
"""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from mevwatch.monitor import metrics, retry
from mevwatch.monitor.config import Settings
from mevwatch.monitor.errors import BusError, ConfigError, KafkaAccessError, StoreError
from mevwatch.monitor.kinds import NodeRole
from mevwatch.monitor.log import get_logger, redact_url
from mevwatch.monitor.health import Health
from mevwatch.monitor.pipeline import DetectWorker, detect_worker, settle_for_latency
from mevwatch.monitor.sinks.outbox import Outbox
from mevwatch.monitor.sinks.webhooks import Deliverer
from mevwatch.monitor.store.store import AlertStore, settings_store
from mevwatch.streams import bus as busmod
from mevwatch.monitor.types import Message, PendingTx
from mevwatch.streams.ingest import last_block_on_topic, node_source, publish

log = get_logger("mevwatch.daemon")
ROLES = tuple(r.value for r in NodeRole)


@dataclass
class RunResult:
    blocks: int = 0
    pending: int = 0
    alerts: int = 0
    published: int = 0
    interrupted: bool = False


class Ingestor:
    """NodeSource in a background thread, publishing every message to the bus."""

    def __init__(self, rpc: str, bus: busmod.Bus, settings: Settings, health: Health, start_block: int | None):
        self.bus, self.health = bus, health
        self.source = node_source(rpc, settings, start_block=start_block)
        self.published = 0
        self.blocks = 0
        self.error: BaseException | None = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._main, name="ingest", daemon=True)

    def start(self) -> Ingestor:
        self._thread.start()
        return self

    def _emit(self, msg: Message) -> None:
        with self._lock:
            try:
                publish(self.bus, msg)
                if not isinstance(msg, PendingTx):
                    self.bus.flush(30)
            except Exception as exc:
                metrics.PRODUCE_ERRORS.inc()
                self.health.mark("bus", False, f"Kafka produce failed: {str(exc)[:200]}")
                raise
            self.published += 1
            if not isinstance(msg, PendingTx):
                self.blocks += 1
        self.health.node_ok = True
        self.health.bus_ok = True

    def _dead(self, source: str, reason: str, raw: bytes | None) -> None:
        self.bus.produce(busmod.DEADLETTER, None, busmod.dead_letter(source, None, reason, raw))

    def _main(self) -> None:
        from mevwatch.streams.ingest import _until_stopped

        try:
            asyncio.run(_until_stopped(self.source, self._emit, self._dead))
        except BaseException as exc:  # noqa: BLE001 - reported by the main loop
            self.error = exc
            self.health.node_ok = False

    def stop(self) -> None:
        self.source.stop()
        self._thread.join(15)
        with self._lock:
            self.bus.flush(30)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()


def run_daemon(settings: Settings, *, role: str = "all", rpc: str | None = None, duration_s: float | None = None,
               max_blocks: int | None = None, drain_s: float = 10.0, on_events=None,
               stop: threading.Event | None = None) -> RunResult:
    if role not in ROLES:
        raise ConfigError(f"--role must be one of {', '.join(ROLES)}")
    rpc = rpc or settings.node.rpc
    if role in ("all", "ingest") and not rpc:
        raise ConfigError("mevwatch run needs a node: --rpc ws://host:8546 or MEVWATCH_NODE__RPC")
    if role in ("ingest", "detect") and not settings.kafka.bootstrap:
        raise ConfigError(f"--role {role} needs Kafka: --kafka host:9092 or MEVWATCH_KAFKA__BOOTSTRAP")
    stop = stop or threading.Event()
    # readiness waits for what this role depends on (monitor/health.py: DEPENDENCIES)
    health = Health.for_role(role, attest=settings.attest.enabled)
    result = RunResult()
    restore_signals = _install_signals(stop)
    server = None
    if settings.health_port is not None:
        from mevwatch.monitor.health import serve

        server = serve(health, settings.health_host, settings.health_port)
        log.info("health endpoints", url=f"http://{settings.health_host}:{server.server_address[1]}/healthz")
    try:
        bus = _make_bus_retrying(settings, role, stop, health)
    except BaseException:
        if server is not None:
            server.shutdown()
        restore_signals()
        raise
    if bus is None:
        if server is not None:
            server.shutdown()
        restore_signals()
        result.interrupted = True
        return result
    if role != "attest":
        health.bus_ok = True  # the Kafka bus made its topics and producer: the broker answers
    store: AlertStore | None = None
    outbox: Outbox | None = None
    deliverer: Deliverer | None = None
    worker: DetectWorker | None = None
    ingestor: Ingestor | None = None
    attest_stop = threading.Event()
    attest_thread: threading.Thread | None = None
    query_endpoint: tuple[Path, str] | None = None
    try:
        if role in ("all", "detect", "attest"):
            store = _open_store_retrying(settings, stop, health)
            if store is None:
                result.interrupted = True
                return result
            if server is not None:
                query_endpoint = _offer_queries(settings, store, health, server.server_address[1])
        if role == "attest" or (role == "all" and settings.attest.enabled):
            assert store is not None
            batcher = _make_batcher_retrying(settings, store, stop, attest_stop, health)
            if batcher is None:
                result.interrupted = True
                return result
            attest_thread = threading.Thread(target=batcher.run, args=(attest_stop,),
                                             kwargs={"on_round": _attest_round_reporter(batcher, health)},
                                             name="attest", daemon=True)
            attest_thread.start()
            log.info("attesting final alerts", registry=batcher.chain.address, chain_id=batcher.chain.chain_id,
                     attester=batcher.address, embedded=batcher.chain.embedded)
        if role in ("all", "detect"):
            assert store is not None
            outbox = Outbox(settings.webhook_delivery.outbox or settings.data_dir / "outbox.sqlite")
            if settings.webhooks:
                deliverer = Deliverer(outbox, settings.webhooks, settings.webhook_delivery).start()
            worker = detect_worker(settings, bus, store, stop=stop, health=health, outbox=outbox,
                                   on_outbox=deliverer.wake if deliverer else None)
            worker.on_events = on_events
            health.waiting("joining the consumer group, restoring state")
            worker.restore(store)
            worker.warm_up()
            settle_for_latency()  # eth-abi imported, start-up objects out of the collector's way
            health.bus_ok = True  # the consumer read the bus's history
            log.info("detecting", group=worker.group, confirmations=worker.engine.confirmations)
        if role in ("all", "ingest"):
            assert rpc is not None
            health.waiting("finding the block to resume from")
            start = _resume_block(settings, store)
            health.bus_ok = True
            ingestor = Ingestor(rpc, bus, settings, health, start).start()
            log.info("ingesting", rpc=redact_url(rpc), from_block=start if start is not None else "head")
        health.start_done()  # /startupz: 200; readiness: the role's checks (the node: its first message)
        deadline = time.monotonic() + duration_s if duration_s else None
        reconnects = 0
        while not stop.is_set():
            if deadline is not None and time.monotonic() > deadline:
                break
            if ingestor is not None and not ingestor.alive and ingestor.error is not None:
                raise ingestor.error
            if ingestor is not None and ingestor.source.reconnects != reconnects:
                reconnects = ingestor.source.reconnects  # the node went away: not ready until its next message
                health.mark("node", False, "node connection lost; reconnecting")
            if worker is not None:
                if worker.step(500) is None:
                    break
                if max_blocks is not None and worker.counts.blocks >= max_blocks:
                    break
            else:
                health.beat = time.monotonic()
                stop.wait(0.5)
                if max_blocks is not None and ingestor is not None and ingestor.blocks >= max_blocks:
                    break
        result.interrupted = stop.is_set()
    finally:
        log.info("shutting down: draining")
        attest_stop.set()
        if attest_thread is not None:
            attest_thread.join(30)
        if ingestor is not None:
            ingestor.stop()
            result.published = ingestor.published
        if worker is not None:
            if not (stop.is_set() and not health.store_ok):
                t_end = time.monotonic() + drain_s
                while time.monotonic() < t_end:  # what the ingest thread already put on the bus
                    if worker.step(200) is None or worker.last_poll == 0:
                        break
            result.blocks, result.pending = worker.counts.blocks, worker.counts.pending
            result.alerts = worker.counts.alerts
            worker.close()
        if deliverer is not None:
            deliverer.stop(drain_s)
        if outbox is not None:
            outbox.close()
        if query_endpoint is not None:
            from mevwatch.monitor.store import endpoint

            health.query = None
            endpoint.remove(*query_endpoint)
        if store is not None:
            store.close()
        try:
            bus.flush(10)
        except Exception:  # noqa: BLE001 - broker gone at exit: nothing left to lose (offsets not committed)
            pass
        bus.close()
        if server is not None:
            server.shutdown()
        restore_signals()
        log.info("stopped", blocks=result.blocks, alerts=result.alerts)
    if ingestor is not None and not ingestor.source.reached:
        raise ingestor.source.unreached_error()  # a run that never reached its node failed (exit 1)
    return result


def _make_bus_retrying(settings: Settings, role: str, stop: threading.Event, health: Health) -> busmod.Bus | None:
    """The role's bus; a broker that does not answer at start is waited for (heartbeat on, /startupz
    503 with the reason) like ClickHouse; refused credentials or certificates end the run at once
    (KafkaAccessError: waiting cannot mend them). None: stopped while waiting."""
    bootstrap = None if role == "attest" else settings.kafka.bootstrap
    kw = {"security": settings.kafka.client_kwargs(), "topic_prefix": settings.kafka.topic_prefix} if bootstrap else {}

    def make() -> busmod.Bus:
        return busmod.make_bus(bootstrap, client_id=settings.kafka.client_id, partitions=settings.kafka.partitions,
                               replication=settings.kafka.replication_factor, commit_timeout_s=settings.kafka.commit_timeout_s,
                               session_timeout_s=settings.kafka.session_timeout_s, **kw)

    def on_retry(exc: BaseException, wait_s: float) -> None:
        health.bus_ok = False
        health.waiting("waiting for Kafka", str(exc))
        log.warning("Kafka unavailable at start; retrying", error=str(exc)[:300], retry_in_s=round(wait_s, 2))

    if bootstrap:
        health.waiting("connecting to Kafka")
    try:
        return retry.call(make, policy="startup", retry_if=lambda e: isinstance(e, BusError) and not isinstance(e, KafkaAccessError),
                          stop=stop, on_retry=on_retry)
    except retry.Stopped:
        return None


def _offer_queries(settings: Settings, store: AlertStore, health: Health, port: int) -> tuple[Path, str] | None:
    """While this process holds the embedded store, answer ``mevwatch db query`` through the health
    server (monitor/store/endpoint.py). A ClickHouse server needs none of this: readers share it."""
    from mevwatch.monitor.store import endpoint
    from mevwatch.monitor.store.backend import ChdbBackend

    backend = store.backend
    url = endpoint.local_url(settings.health_host, port)
    if not isinstance(backend, ChdbBackend) or url is None:
        return None
    token = endpoint.new_token()
    path = endpoint.endpoint_file(settings.clickhouse.data_dir)
    try:
        endpoint.write(path, url, token)
    except OSError as exc:
        log.warning("cannot write the query endpoint file: `mevwatch db query` will not reach this daemon",
                    path=str(path), error=str(exc))
        return None
    health.query_token, health.query = token, backend.read_only_shared
    return path, token


def _open_store_retrying(settings: Settings, stop: threading.Event, health: Health) -> AlertStore | None:
    def on_retry(exc: BaseException, wait_s: float) -> None:
        health.store_ok = False
        health.waiting("waiting for ClickHouse", str(exc))  # the heartbeat goes on: backing off is not being stuck
        log.warning("ClickHouse unavailable at start; retrying", error=str(exc)[:200], retry_in_s=round(wait_s, 2))

    health.waiting("opening the store")
    try:
        store = retry.call(lambda: settings_store(settings), policy="startup",
                           retry_if=lambda e: isinstance(e, StoreError) and e.retriable, stop=stop, on_retry=on_retry)
    except retry.Stopped:
        return None
    health.store_ok = True
    return store


def _make_batcher_retrying(settings: Settings, store: AlertStore, stop: threading.Event, attest_stop: threading.Event,
                           health: Health):
    """The attester's batcher, waiting (heartbeat on) while the attestation node is unreachable at
    start; it then holds the journal's lock (a second attester on the same volume exits here)."""
    from mevwatch.monitor.attest.batcher import make_batcher
    from mevwatch.monitor.errors import AttestError

    def on_retry(exc: BaseException, wait_s: float) -> None:
        health.chain_ok = False
        health.waiting("waiting for the attestation node", str(exc))
        log.warning("attestation node unavailable at start; retrying", error=str(exc)[:200], retry_in_s=round(wait_s, 2))

    health.waiting("opening the attestation chain")
    try:
        batcher = retry.call(lambda: make_batcher(settings, store, stop=attest_stop), policy="startup",
                             retry_if=lambda e: isinstance(e, AttestError) and e.retriable, stop=stop, on_retry=on_retry)
    except retry.Stopped:
        return None
    batcher.attester.journal.acquire()  # JournalLocked: another attester runs on this journal
    health.chain_ok = True
    return batcher


def _attest_round_reporter(batcher, health: Health):
    """After each round of the batcher (in its thread): the store answered unless the round failed
    with a StoreError; the attestation node answers when a cheap call (its block number) does."""
    def on_round(exc: BaseException | None) -> None:
        if exc is None:
            health.store_ok = True  # every round reads the store's newest block
        elif isinstance(exc, StoreError):
            health.mark("store", False, str(exc)[:300])
        try:  # an idle round may not touch the chain: ask it
            batcher.chain.w3.eth.block_number  # noqa: B018 - a probe
        except Exception as probe:  # noqa: BLE001 - any transport failure
            health.mark("chain", False, f"attestation node: {type(probe).__name__}: {str(probe)[:200]}")
        else:
            health.chain_ok = True

    return on_round


def _resume_block(settings: Settings, store: AlertStore | None) -> int | None:
    """First block to ingest: after the last one processed (store) or published (Kafka); None = from head."""
    last = None
    if settings.kafka.bootstrap:
        last = last_block_on_topic(settings.kafka.bootstrap, security=settings.kafka.client_kwargs(),
                                   prefix=settings.kafka.topic_prefix)
    elif store is not None:
        last = store.last_block()
    return last + 1 if last is not None else None


def _install_signals(stop: threading.Event):
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    old = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}

    def handler(signum, frame) -> None:
        log.info("signal received; stopping", signal=signal.Signals(signum).name)
        stop.set()

    for s in old:
        signal.signal(s, handler)

    def restore() -> None:
        for s, h in old.items():
            signal.signal(s, h)

    return restore

