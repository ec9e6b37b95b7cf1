"""The message bus: Kafka (kafka-python; the detect members' reader librdkafka, through
confluent-kafka: :class:`FetchingReader`) or an in-process bus with the same interface.

Topics (``TOPICS``): ``mevwatch.mempool.v1`` keyed by sender address, so one sender's
nonces stay in order on one partition; ``mevwatch.blocks.v1`` (blocks and revert
events) keyed by block hash on a single partition, so consumers see the chain in
order; ``mevwatch.alerts.v1`` keyed by alert id; ``mevwatch.deadletter.v1``.

Producers are idempotent with ``acks=all``. Consumers never auto-commit: call
``commit()`` after the work for the polled records is done (at-least-once).

A keyed record goes to partition ``crc32(key) mod partitions`` on both buses. This
is not the Java client's murmur2: kafka-python computes murmur2 in pure Python, which
halves producer throughput. Any fixed key -> partition map keeps one key's records in
order, which is all mevwatch needs; a foreign producer writing the same keys would
need the same map. (The ``crc32c`` package is a dependency: without its C code,
kafka-python checksums every record batch in pure Python.)
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
import zlib
from collections import defaultdict
from dataclasses import dataclass
from collections.abc import Iterator, Mapping
from typing import Any, Protocol

import orjson

from mevwatch.monitor.errors import BusError, FlushTimeout, KafkaAccessError

MEMPOOL = "mevwatch.mempool.v1"
BLOCKS = "mevwatch.blocks.v1"
ALERTS = "mevwatch.alerts.v1"
DEADLETTER = "mevwatch.deadletter.v1"
TOPICS = (MEMPOOL, BLOCKS, ALERTS, DEADLETTER)

# A group member silent this long (its process gone: killed, its machine lost) is dropped from the group
# and its partitions go to the others: kafka-python's 45 s default would leave a crashed detect member's
# partitions unwritten for most of a minute. Heartbeats run on the client's own thread every third of
# it, so a member busy with a long batch is not dropped (a stuck one is, by max_poll_interval_ms).
SESSION_TIMEOUT_S = 10.0


def group_timeouts(session_timeout_s: float = SESSION_TIMEOUT_S) -> dict[str, int]:
    """kafka-python's group-membership settings for a session timeout of ``session_timeout_s``."""
    ms = int(session_timeout_s * 1000)
    return {"session_timeout_ms": ms, "heartbeat_interval_ms": max(500, ms // 3)}


SINGLE_PARTITION = {BLOCKS}
MEMBER_POLL_MS = 50  # a ReplicaConsumer's group poll: long enough for kafka-python to make progress joining
DEFAULT_PREFIX = "mevwatch"


def topic_name(logical: str, prefix: str = DEFAULT_PREFIX) -> str:
    """The Kafka topic of a logical topic under ``kafka.topic_prefix``: ``mevwatch.blocks.v1`` is
    ``<prefix>.blocks.v1``. One prefix per chain keeps several chains' streams apart on one
    cluster (docs/operations.md, "Several chains"); the code names topics by their logical names."""
    return logical if prefix == DEFAULT_PREFIX else prefix + logical[len(DEFAULT_PREFIX):]


@dataclass(slots=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    timestamp_ms: int


Positions = Mapping[tuple[str, int], int]  # (topic, partition) -> the next offset to read


class Consumer(Protocol):
    def poll(self, timeout_ms: int = 1000, max_records: int = 500) -> list[Record]: ...

    def commit(self, positions: Positions | None = None) -> None:
        """Commit ``positions`` (partitions not named: what was polled); only partitions this
        consumer owns are committed."""
        ...

    def lag(self) -> dict[str, int]: ...
    def close(self) -> None: ...

    def owned(self) -> set[tuple[str, int]] | None:
        """The (topic, partition)s whose output this member writes; None: every record it polls
        (a consumer that only receives its own partitions)."""
        ...

    def committed(self, topic: str, partition: int) -> int | None:
        """The group's committed offset of a partition (None: none yet)."""
        ...


class Bus(Protocol):
    def history(self, topics: list[str], group: str, window: dict[str, int]) -> list[Record]: ...
    def produce(self, topic: str, key: bytes | None, value: bytes, errors: list[Exception] | None = None) -> None: ...
    def flush(self, timeout: float | None = None, errors: list[Exception] | None = None) -> None: ...
    def consumer(self, topics: list[str], group: str) -> Consumer: ...
    def close(self) -> None: ...


def dead_letter(source: str, position: str | int | None, reason: str, raw: bytes | None) -> bytes:
    return orjson.dumps({"source": source, "position": position, "reason": reason,
                         "raw": raw.decode("utf-8", "replace") if raw is not None else None})


# --- in-process -----------------------------------------------------------------------------
class InProcessBus:
    """Thread-safe in-memory topics with partitions, consumer groups and committed offsets."""

    durable = False  # offsets start again at 0 in a new process

    def __init__(self, partitions: int = 6):
        self.partitions = partitions
        self._logs: dict[str, list[list[Record]]] = {}
        self._committed: dict[tuple[str, str, int], int] = defaultdict(int)
        self._cond = threading.Condition()

    def _topic(self, topic: str) -> list[list[Record]]:
        if topic not in self._logs:
            n = 1 if topic in SINGLE_PARTITION else self.partitions
            self._logs[topic] = [[] for _ in range(n)]
        return self._logs[topic]

    def produce(self, topic: str, key: bytes | None, value: bytes, errors: list[Exception] | None = None) -> None:
        with self._cond:
            parts = self._topic(topic)
            p = zlib.crc32(key) % len(parts) if key is not None else 0
            parts[p].append(Record(topic, p, len(parts[p]), key, value, int(time.time() * 1000)))
            self._cond.notify_all()

    def flush(self, timeout: float | None = None, errors: list[Exception] | None = None) -> None:
        return None

    def consumer(self, topics: list[str], group: str) -> _InProcessConsumer:
        return _InProcessConsumer(self, topics, group)

    def history(self, topics: list[str], group: str, window: dict[str, int]) -> list[Record]:
        """Up to ``window[topic]`` records per partition just before ``group``'s committed offsets."""
        out: list[Record] = []
        with self._cond:
            for t in topics:
                for p, log in enumerate(self._topic(t)):
                    end = self._committed[(group, t, p)]
                    out += log[max(0, end - window.get(t, 0)):end]
        return out

    def close(self) -> None:
        return None


class _InProcessConsumer:
    def __init__(self, bus: InProcessBus, topics: list[str], group: str):
        self.bus, self.topics, self.group = bus, topics, group
        with bus._cond:
            self._position = {(t, p): bus._committed[(group, t, p)] for t in topics for p in range(len(bus._topic(t)))}

    def poll(self, timeout_ms: int = 1000, max_records: int = 500) -> list[Record]:
        bus = self.bus
        with bus._cond:
            out = self._take(max_records)
            if not out and timeout_ms > 0:
                bus._cond.wait(timeout_ms / 1000)
                out = self._take(max_records)
            return out

    def _take(self, max_records: int) -> list[Record]:
        out: list[Record] = []
        for (t, p), pos in self._position.items():
            log = self.bus._logs[t][p]
            if pos < len(log):
                batch = log[pos : pos + max_records - len(out)]
                out.extend(batch)
                self._position[(t, p)] = pos + len(batch)
            if len(out) >= max_records:
                break
        return out

    def lag(self) -> dict[str, int]:
        """Records between this consumer's position and the end of each topic."""
        out: dict[str, int] = {}
        with self.bus._cond:
            for (t, p), pos in self._position.items():
                out[t] = out.get(t, 0) + len(self.bus._logs[t][p]) - pos
        return out

    def commit(self, positions: Positions | None = None) -> None:
        with self.bus._cond:
            for (t, p), pos in self._position.items():
                self.bus._committed[(self.group, t, p)] = (positions or {}).get((t, p), pos)

    def owned(self) -> set[tuple[str, int]] | None:
        return None  # it receives only what it owns

    def committed(self, topic: str, partition: int) -> int | None:
        with self.bus._cond:
            return self.bus._committed.get((self.group, topic, partition))

    def close(self) -> None:
        return None


# --- Kafka --------------------------------------------------------------------------------------
# kafka-python says only "Unable to bootstrap" when every connection failed; why they failed it
# logs. These reasons cannot be mended by waiting: the error names them and is not retried.
# (Not "Handshake failed" as such: kafka-python words a connection reset during the TLS handshake
# so too, as a restarting broker or a load balancer without backends gives: that is waited for.)
ACCESS_FAILURES = ("SaslAuthenticationFailedError", "UnsupportedSaslMechanism", "IllegalSaslState",
                   "CERTIFICATE_VERIFY_FAILED", "WRONG_VERSION_NUMBER")


class _ConnectionReasons(logging.Handler):
    """Collects, while a client bootstraps, the first access failure kafka-python logs."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.reason: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if self.reason is not None:
            return
        try:
            msg = record.getMessage()
        except Exception:  # noqa: BLE001 - a log record that does not format tells nothing
            return
        if any(m in msg for m in ACCESS_FAILURES):
            # "<KafkaSSLTransport [...]>: Abort ([Error 58] SaslAuthenticationFailedError: ...)" -> the reason itself
            self.reason = re.sub(r"^<[^>]*>:\s*", "", msg).removeprefix("Abort (").rstrip(")")[:300]


@contextlib.contextmanager
def diagnosed(bootstrap: str) -> Iterator[None]:
    """Turn a client's start-up failure into :class:`BusError` naming the broker and, where
    kafka-python logged one, why: :class:`KafkaAccessError` for a refused login or certificate."""
    from kafka.errors import KafkaError

    reasons = _ConnectionReasons()
    logger = logging.getLogger("kafka")
    logger.addHandler(reasons)
    try:
        yield
    except KafkaError as exc:
        if reasons.reason is not None:
            raise KafkaAccessError(f"Kafka at {bootstrap} refused the connection: {reasons.reason}") from None
        if "AuthorizationFailed" in type(exc).__name__:  # an ACL refuses this user (e.g. creating the topics)
            raise KafkaAccessError(f"Kafka at {bootstrap} refused an operation for this user: {exc!r}"[:400]) from None
        raise BusError(f"cannot reach Kafka at {bootstrap}: {exc}") from None
    finally:
        logger.removeHandler(reasons)


class KafkaBus:
    """kafka-python producer (idempotent, acks=all) and manual-commit consumers."""

    durable = True

    def __init__(self, bootstrap: str, *, client_id: str = "mevwatch", partitions: int = 6, replication: int = 1,
                 create_topics: bool = True, commit_timeout_s: float = 30.0, security: Mapping[str, Any] | None = None,
                 topic_prefix: str = DEFAULT_PREFIX, session_timeout_s: float = SESSION_TIMEOUT_S):
        from kafka import KafkaProducer

        self.bootstrap = bootstrap
        self.topic_prefix = topic_prefix
        self._physical = {t: topic_name(t, topic_prefix) for t in TOPICS}  # logical -> Kafka topic
        self._logical = {v: k for k, v in self._physical.items()}
        self.client_id = client_id
        self.commit_timeout_s = commit_timeout_s
        self._group = group_timeouts(session_timeout_s)
        self._security = dict(security or {})  # kafka-python TLS/SASL arguments (KafkaSettings.client_kwargs): holds the password
        with diagnosed(bootstrap):
            if create_topics:
                ensure_topics(bootstrap, partitions, replication, security=self._security, prefix=topic_prefix)
            self._producer = KafkaProducer(
                bootstrap_servers=bootstrap, client_id=client_id, **self._security, acks="all", enable_idempotence=True,
                max_in_flight_requests_per_connection=5, linger_ms=5, batch_size=256 * 1024, retries=2**31 - 1,
                delivery_timeout_ms=120_000, request_timeout_ms=10_000,
            )
        self._errors: list[Exception] = []
        self._partitions: dict[str, list[int]] = {}

    def physical(self, topic: str) -> str:
        """The Kafka topic of a logical topic name (what errors and dead letters name)."""
        return self._physical.get(topic, topic)

    def _partition(self, topic: str, key: bytes | None) -> int | None:
        if key is None:
            return None
        parts = self._partitions.get(topic)
        if parts is None:
            found = self._producer.partitions_for(topic)
            if not found:
                raise BusError(f"topic {topic} does not exist on {self.bootstrap}")
            parts = self._partitions[topic] = sorted(found)
        return parts[zlib.crc32(key) % len(parts)]

    def produce(self, topic: str, key: bytes | None, value: bytes, errors: list[Exception] | None = None) -> None:
        """Send one record; a failure lands in ``errors`` (a caller's own list: threads that share
        this producer, as ingest and the alerts sink in ``--role all``, each see only theirs)."""
        topic = self._physical.get(topic, topic)
        fut = self._producer.send(topic, key=key, value=value, partition=self._partition(topic, key))
        fut.add_errback((self._errors if errors is None else errors).append)

    def flush(self, timeout: float | None = None, errors: list[Exception] | None = None) -> None:
        """Wait for every produced record's acknowledgement. :class:`FlushTimeout` when ``timeout``
        passed first (the records stay buffered and are still being sent: flush again, do not
        produce them again); :class:`BusError` when some of the records produced with the same
        ``errors`` list were refused (produce them again)."""
        from kafka.errors import KafkaTimeoutError

        try:
            self._producer.flush(timeout)
        except KafkaTimeoutError:
            raise FlushTimeout(f"Kafka at {self.bootstrap} did not acknowledge the produced records within {timeout} s") from None
        mine = self._errors if errors is None else errors
        if mine:
            errs = list(mine)
            mine.clear()
            raise BusError(f"{len(errs)} Kafka produce error(s), first: {errs[0]!r}")

    def consumer(self, topics: list[str], group: str) -> _KafkaConsumer:
        return _KafkaConsumer(self.bootstrap, [self._physical.get(t, t) for t in topics], group, self.client_id,
                              self.commit_timeout_s, self._security, self._logical, group_settings=self._group)

    def replica_consumer(self, topics: list[str], group: str) -> ReplicaConsumer:
        """Every partition of ``topics`` read by this member, and the group's assignment as what it
        owns (:class:`ReplicaConsumer`: the detect role, docs/operations.md "Several detect members")."""
        return ReplicaConsumer(self.bootstrap, [self._physical.get(t, t) for t in topics], group, self.client_id,
                               self.commit_timeout_s, self._security, self._logical, group_settings=self._group)

    def history(self, topics: list[str], group: str, window: dict[str, int]) -> list[Record]:
        """Up to ``window[topic]`` records per partition just before ``group``'s committed offsets
        (read without joining the group, so nothing is committed or rebalanced)."""

        from kafka import KafkaConsumer, TopicPartition

        with diagnosed(self.bootstrap):
            probe = KafkaConsumer(bootstrap_servers=self.bootstrap, group_id=group, enable_auto_commit=False, **self._security)
            try:
                reader = KafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False, **self._security)
            except BaseException:
                probe.close()
                raise
        try:
            phys = [self._physical.get(t, t) for t in topics]
            tps = [TopicPartition(t, p) for t in phys for p in sorted(probe.partitions_for_topic(t) or ())]
            ranges: dict[TopicPartition, tuple[int, int]] = {}
            for tp in tps:
                end = probe.committed(tp) or 0
                size = window.get(self._logical.get(tp.topic, tp.topic), 0)
                if end > 0 and size > 0:
                    ranges[tp] = (max(0, end - size), end)
            if not ranges:
                return []
            reader.assign(list(ranges))
            for tp, (start, _end) in ranges.items():
                reader.seek(tp, start)
            out: list[Record] = []
            todo = dict(ranges)
            deadline = time.monotonic() + 60
            while todo and time.monotonic() < deadline:
                for tp, msgs in reader.poll(timeout_ms=500, max_records=10_000).items():
                    for m in msgs:
                        if tp in todo and m.offset < todo[tp][1]:
                            out.append(Record(self._logical.get(m.topic, m.topic), m.partition, m.offset, m.key, m.value,
                                              m.timestamp))
                    if tp in todo and reader.position(tp) >= todo[tp][1]:
                        del todo[tp]
                        reader.pause(tp)
            return out
        finally:
            probe.close()
            reader.close()

    def close(self) -> None:
        self._producer.close(10)


def _lag(reader: Any, parts: list[Any], names: Mapping[str, str]) -> dict[str, int]:
    """Per logical topic: records between ``reader``'s positions and the ends of ``parts``."""
    if not parts:
        return {}
    ends = reader.end_offsets(parts)
    out: dict[str, int] = {}
    for tp in parts:
        pos = reader.position(tp)
        name = names.get(tp.topic, tp.topic)
        out[name] = out.get(name, 0) + max(0, int(ends.get(tp, pos)) - int(pos))
    return out


class _KafkaConsumer:
    """``topics`` are Kafka's names; records and lag name them by ``logical`` (the code's names)."""

    def __init__(self, bootstrap: str, topics: list[str], group: str, client_id: str, commit_timeout_s: float = 30.0,
                 security: Mapping[str, Any] | None = None, logical: Mapping[str, str] | None = None,
                 *, group_settings: Mapping[str, int]):
        from kafka import KafkaConsumer

        self._name = dict(logical or {})
        self.commit_timeout_ms = int(commit_timeout_s * 1000)
        with diagnosed(bootstrap):  # a broker gone since the bus was made: a named error, not a traceback
            self._c = KafkaConsumer(*topics, bootstrap_servers=bootstrap, group_id=group, client_id=client_id,
                                    enable_auto_commit=False, auto_offset_reset="earliest", max_poll_records=10_000,
                                    fetch_max_wait_ms=10, max_partition_fetch_bytes=8 * 1024 * 1024,
                                    reconnect_backoff_max_ms=2000, **group_settings, **(security or {}))

    def poll(self, timeout_ms: int = 1000, max_records: int = 500) -> list[Record]:
        batches = self._c.poll(timeout_ms=timeout_ms, max_records=max_records)
        out = []
        for _tp, msgs in batches.items():
            for m in msgs:
                out.append(Record(self._name.get(m.topic, m.topic), m.partition, m.offset, m.key, m.value, m.timestamp))
        return out

    def commit(self, positions: Positions | None = None) -> None:
        """Commit the consumed offsets (or ``positions`` where given); raises (kafka-python's timeout
        error) when the broker does not answer within the commit timeout, so the caller's retry policy
        backs off, logs and counts."""
        if not positions:
            self._c.commit(timeout_ms=self.commit_timeout_ms)
            return
        from kafka.structs import OffsetAndMetadata

        offsets = {tp: OffsetAndMetadata(positions.get((self._name.get(tp.topic, tp.topic), tp.partition), self._c.position(tp)), "", -1)
                   for tp in self._c.assignment()}
        if offsets:
            self._c.commit(offsets=offsets, timeout_ms=self.commit_timeout_ms)

    def owned(self) -> set[tuple[str, int]] | None:
        return None  # it receives only the partitions the group assigned it

    def committed(self, topic: str, partition: int) -> int | None:
        from kafka import TopicPartition

        return self._c.committed(TopicPartition(self._physical(topic), partition))

    def _physical(self, topic: str) -> str:
        return next((k for k, v in self._name.items() if v == topic), topic)

    def lag(self) -> dict[str, int]:
        """Records between this consumer's positions and the ends of its assigned partitions."""
        return _lag(self._c, list(self._c.assignment()), self._name)

    def close(self) -> None:
        self._c.close()


def librdkafka_settings(bootstrap: str, client_id: str, security: Mapping[str, Any] | None) -> dict[str, Any]:
    """kafka-python's connection arguments (``KafkaSettings.client_kwargs``) as librdkafka settings,
    for the clients made with confluent-kafka (:class:`FetchingReader`): the same broker, TLS files
    and SASL login. Raises :class:`BusError` for an argument it cannot carry over (never its value)."""
    sec = dict(security or {})
    out: dict[str, Any] = {"bootstrap.servers": bootstrap, "client.id": client_id,
                           "security.protocol": str(sec.pop("security_protocol", "PLAINTEXT")).lower()}
    names = {"ssl_cafile": "ssl.ca.location", "ssl_certfile": "ssl.certificate.location",
             "ssl_keyfile": "ssl.key.location", "sasl_mechanism": "sasl.mechanism",
             "sasl_plain_username": "sasl.username", "sasl_plain_password": "sasl.password"}
    check = sec.pop("ssl_check_hostname", True)
    if out["security.protocol"] in ("ssl", "sasl_ssl"):
        out["ssl.endpoint.identification.algorithm"] = "https" if check else "none"
    for key, value in sec.items():
        if key not in names:
            raise BusError(f"Kafka setting {key} has no librdkafka equivalent here (streams/bus.py librdkafka_settings)")
        out[names[key]] = value
    return out


class FetchingReader:
    """A group-less reader that fetches in the background (librdkafka, through confluent-kafka): its
    threads keep fetching the assigned partitions while the caller runs a step and commits, so a
    record waits at the member, not at the broker, and records are parsed in C. kafka-python's
    consumer fetches only inside ``poll``: records waited at the broker through every step (bus
    alone p50 20-25 ms at 1,000 tx/s, docs/benchmarks.md "Detect member latency").

    Positions are the offsets after the records :meth:`poll` returned (what a commit of "everything
    polled" commits); records fetched but not yet returned are not counted, and are dropped at close.
    Positions, topics and partitions are Kafka's names; ``start`` maps (topic, partition) to the offset
    to read from (None: the partition's beginning)."""

    def __init__(self, settings: Mapping[str, Any], start: Mapping[tuple[str, int], int | None]):
        from confluent_kafka import Consumer

        self._errors: list[Any] = []
        conf = dict(settings)
        conf.update({"group.id": "mevwatch-reader-unused",  # required by the client; this reader never joins or commits
                     "enable.auto.commit": False, "enable.auto.offset.store": False, "fetch.wait.max.ms": 10,
                     # a start offset the broker no longer has (deleted by retention): from the first it has
                     "auto.offset.reset": "earliest",
                     "fetch.min.bytes": 1, "max.partition.fetch.bytes": 8 * 1024 * 1024,
                     "reconnect.backoff.max.ms": 2000, "logger": logging.getLogger("mevwatch.kafka.reader"),
                     "error_cb": self._errors.append})
        self._c = Consumer(conf)
        self._pos: dict[tuple[str, int], int] = {}
        self._start: dict[tuple[str, int], int | None] = {}
        self.add(start)

    def add(self, start: Mapping[tuple[str, int], int | None]) -> None:
        """Read these partitions too, each from its offset (None: its beginning)."""
        from confluent_kafka import OFFSET_BEGINNING, TopicPartition

        if not start:
            return
        self._start.update(start)
        for tp, offset in start.items():
            # where reading starts: the offset, but never before the partition's first (records before it
            # are deleted, and the reader starts from the first: auto.offset.reset)
            try:
                first = int(self._c.get_watermark_offsets(TopicPartition(*tp), timeout=10.0)[0])
            except Exception as exc:  # noqa: BLE001 - unknown until its first record: counted as behind till then
                logging.getLogger("mevwatch.kafka.reader").warning("first offset of %s unknown: %s", tp, exc)
                continue
            self._pos[tp] = first if offset is None else max(offset, first)
        self._c.incremental_assign([TopicPartition(t, p, OFFSET_BEGINNING if off is None else off)
                                    for (t, p), off in start.items()])

    def poll(self, timeout_ms: int, max_records: int) -> list[tuple[str, int, int, bytes | None, bytes, int]]:
        """Up to ``max_records`` fetched records as (topic, partition, offset, key, value, time ms),
        waiting up to ``timeout_ms`` for the first. Raises :class:`KafkaAccessError` once the brokers
        refused this client's login or certificate."""
        self._raise_refused()
        # consume() waits for all num_messages or the whole timeout: wait for the first record only,
        # then take what has already been fetched without waiting
        first = self._c.poll(max(0, timeout_ms) / 1000)
        if first is None:
            return []
        msgs = [first] + (self._c.consume(num_messages=max_records - 1, timeout=0) if max_records > 1 else [])
        out = []
        pos = self._pos
        for m in msgs:
            if m.error() is not None:  # a partition's fetch failed: librdkafka retries it; the reason is logged
                logging.getLogger("mevwatch.kafka.reader").warning("fetch error: %s", m.error())
                continue
            t, p, o = m.topic(), m.partition(), m.offset()
            if t is None or p is None or o is None:  # only events that are not records lack them
                continue
            out.append((t, p, o, m.key(), m.value() or b"", m.timestamp()[1]))
            pos[(t, p)] = o + 1
        return out

    def _raise_refused(self) -> None:
        from confluent_kafka import KafkaError

        while self._errors:
            err = self._errors.pop(0)
            if err.code() in (KafkaError._AUTHENTICATION, KafkaError._SSL) or err.fatal():
                raise KafkaAccessError(f"Kafka refused the reader: {err.str()}"[:400])
            logging.getLogger("mevwatch.kafka.reader").warning("Kafka: %s", err.str()[:300])

    def behind(self) -> list[tuple[str, int]]:
        """The partitions with records not yet returned by :meth:`poll`: fetched and waiting here, or
        still at the broker, as far as the last fetch response told (librdkafka's cached ends: no
        request); a partition no fetch has answered yet counts as behind."""
        from confluent_kafka import TopicPartition

        out = []
        for tp in self._start:
            _low, high = self._c.get_watermark_offsets(TopicPartition(*tp), cached=True) or (-1, -1)
            pos = self._pos.get(tp)
            if high < 0 or pos is None or pos < high:
                out.append(tp)
        return out

    def position(self, topic: str, partition: int) -> int | None:
        """The offset after the last record :meth:`poll` returned from the partition, else where it
        starts reading (None: a partition read from its beginning whose first offset was unknown)."""
        return self._pos.get((topic, partition))

    def lag(self, parts: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
        """Per partition: records between the position and the partition's end, as of the last fetch
        response (librdkafka keeps each partition's end from its fetches: no request to the broker,
        so the member never waits for it; asking took ~13 ms per partition, every 5 s, on the
        detect path). A partition with no fetch answered yet is left out."""
        from confluent_kafka import TopicPartition

        out = {}
        for t, p in parts:
            low, high = self._c.get_watermark_offsets(TopicPartition(t, p), cached=True) or (-1, -1)
            pos = self._pos.get((t, p), low)
            if high < 0 or pos < 0:
                continue
            out[(t, p)] = max(0, int(high) - int(pos))
        return out

    def close(self) -> None:
        self._c.close()


class ReplicaConsumer:
    """A detect member's view of the bus (docs/operations.md, "Several detect members"): it reads
    every partition of its topics, so every member holds the whole state (every pending transaction,
    every block: pool reserves, fates, sightings); and it joins the consumer group only to learn which
    partitions it *owns*: it writes the output of those records and commits their offsets. N members
    then write exactly what one member writes, each a share of it.

    - reader: a :class:`FetchingReader` (librdkafka: it fetches while the member works) assigned every
      partition, starting at the group's committed offsets (records before them are state only:
      ``Bus.history``).
    - member: a kafka-python consumer subscribed in the group, its partitions paused as soon as they
      are assigned (it fetches nothing); its assignment is :meth:`owned`; it commits the reader's
      positions for those.
    """

    def __init__(self, bootstrap: str, topics: list[str], group: str, client_id: str, commit_timeout_s: float = 30.0,
                 security: Mapping[str, Any] | None = None, logical: Mapping[str, str] | None = None,
                 *, group_settings: Mapping[str, int]):
        from kafka import KafkaConsumer, TopicPartition
        from kafka.consumer.subscription_state import ConsumerRebalanceListener

        self._name = dict(logical or {})
        self.commit_timeout_ms = int(commit_timeout_s * 1000)
        settings = librdkafka_settings(bootstrap, client_id, security)
        with diagnosed(bootstrap):
            member = self._member = KafkaConsumer(group_id=group, bootstrap_servers=bootstrap, client_id=client_id,
                                                  enable_auto_commit=False, auto_offset_reset="earliest",
                                                  reconnect_backoff_max_ms=2000, **group_settings,
                                                  **(security or {}))

            class _Paused(ConsumerRebalanceListener):
                def on_partitions_revoked(self, revoked: Any) -> None:
                    return None

                def on_partitions_assigned(self, assigned: Any) -> None:
                    if assigned:
                        member.pause(*assigned)  # ownership only: the reader fetches the records

            member.subscribe(topics, listener=_Paused())
            try:
                self._tps = [TopicPartition(t, p) for t in topics for p in sorted(member.partitions_for_topic(t) or ())]
                start = {(tp.topic, tp.partition): member.committed(tp) for tp in self._tps}
            except BaseException:
                member.close()
                raise
        try:
            self._reader = FetchingReader(settings, start)
        except BaseException:
            member.close()
            raise
        self._next: dict[Any, Any] | None = None  # offsets to send once the commit in flight is answered
        self._latest: dict[Any, Any] | None = None  # the newest offsets asked for (committed at close)
        self._sent: int | None = None  # the commit in flight (its number), None: none
        self._sent_at = 0.0
        self._sent_offsets: dict[Any, Any] | None = None  # what the commit in flight carries
        self._seq = 0
        self._failure: BaseException | None = None  # an answered commit's error, raised at the next commit

    def poll(self, timeout_ms: int = 1000, max_records: int = 500) -> list[Record]:
        # heartbeats and rebalances (its own partitions stay paused): joining takes a few round trips,
        # which kafka-python makes only while poll waits; once the group is stable, no wait
        coordinator = getattr(self._member, "_coordinator", None)
        settled = coordinator is not None and not coordinator.need_rejoin() and bool(self._member.assignment())
        self._member.poll(timeout_ms=0 if settled else MEMBER_POLL_MS)  # answers commits too
        self._send(report=False)  # offsets held back while a commit was in flight
        new = [tp for tp in self._member.assignment() if tp not in self._tps]
        if new:  # a topic gained partitions (more members): read them too, from the group's offsets
            self._add(new)
        name = self._name
        return [Record(name.get(t, t), p, o, k, v, ts) for t, p, o, k, v, ts in self._reader.poll(timeout_ms, max_records)]

    def _add(self, new: list[Any]) -> None:
        self._tps = self._tps + list(new)
        self._reader.add({(tp.topic, tp.partition): self._member.committed(tp, timeout_ms=self.commit_timeout_ms) for tp in new})

    def owned(self) -> set[tuple[str, int]] | None:
        return {(self._name.get(tp.topic, tp.topic), tp.partition) for tp in self._member.assignment() if tp in self._tps}

    def behind(self) -> list[tuple[str, int]]:
        """The (topic, partition)s, by the code's topic names, not yet read to their end
        (:meth:`FetchingReader.behind`): the detect worker holds newer records until each has shown
        one at least as new (monitor/pipeline.py ``DetectWorker._horizon``)."""
        return [(self._name.get(t, t), p) for t, p in self._reader.behind()]

    def commit(self, positions: Positions | None = None) -> None:
        """Commit ``positions`` (else the reader's: everything polled) for the owned partitions (one
        that nothing was read from yet, and no position given: left as it is).

        Asynchronous, one commit in flight: the offsets are sent at once when no earlier commit awaits
        its answer, else as soon as it has one (the newest offsets only: a commit covers every
        earlier one). The member never waits for the broker's OffsetCommit (8-10 ms on the test
        broker, now and then 30-60 ms: docs/benchmarks.md "Detect member latency"). A commit that
        failed, or was not answered within the commit timeout, raises here, at the next commit,
        so the caller's retry policy backs off, logs and counts as before; the offsets are only ever
        those of records whose output the sinks took, so a commit that never lands means re-delivery
        (rows collapse), never loss."""
        from kafka.structs import OffsetAndMetadata

        given = positions or {}
        offsets = {}
        for tp in self._member.assignment():
            if tp not in self._tps:
                continue
            pos = given.get((self._name.get(tp.topic, tp.topic), tp.partition), self._reader.position(tp.topic, tp.partition))
            if pos is not None:
                offsets[tp] = OffsetAndMetadata(pos, "", -1)
        if offsets:
            self._next = self._latest = offsets
        self._send(report=True)

    def wait_committed(self, timeout_s: float) -> bool:
        """Wait until every offset asked for has been answered (True), or ``timeout_s`` passed; a failed
        commit raises as at :meth:`commit`."""
        deadline = time.monotonic() + timeout_s
        while self._sent is not None or self._next:
            if time.monotonic() > deadline:
                return False
            self._member.poll(timeout_ms=10)  # the answer is read here
            self._send(report=True)
        return True

    def _send(self, report: bool) -> None:
        """Send the newest offsets unless a commit is in flight; ``report``: raise an earlier commit's
        failure (else it waits for the next :meth:`commit`). Failed or unanswered offsets are sent again
        unless newer ones wait; only partitions this member owns now are sent (a partition that went
        to another member is that member's to commit)."""
        if self._sent is not None and time.monotonic() - self._sent_at >= self.commit_timeout_ms / 1000:
            self._sent = None  # unanswered: its answer, if one comes, is ignored
            self._failure = BusError(f"offset commit not answered within {self.commit_timeout_ms / 1000:g} s")
            if self._next is None:
                self._next = self._sent_offsets
        if self._failure is not None:
            if not report:
                return
            exc, self._failure = self._failure, None
            raise exc
        if self._sent is not None or not self._next:
            return
        owned = self._member.assignment()
        offsets = {tp: o for tp, o in self._next.items() if tp in owned}
        self._next = None
        if not offsets:
            return
        self._seq += 1
        seq = self._seq

        def answered(_offsets: Any, response: Any) -> None:  # on this thread, in a later call into the member
            if self._sent != seq:
                return
            self._sent = None
            if isinstance(response, Exception):
                self._failure = response
                if self._next is None:
                    self._next = offsets

        self._sent, self._sent_at, self._sent_offsets = seq, time.monotonic(), offsets
        try:
            self._member.commit_async(offsets=offsets, callback=answered)
        except BaseException:
            self._sent = None
            if self._next is None:
                self._next = offsets
            raise

    def committed(self, topic: str, partition: int) -> int | None:
        from kafka import TopicPartition

        phys = next((k for k, v in self._name.items() if v == topic), topic)
        return self._member.committed(TopicPartition(phys, partition), timeout_ms=self.commit_timeout_ms)

    def lag(self) -> dict[str, int]:
        """Records between the reader's positions and the ends of the owned partitions."""
        owned = [(tp.topic, tp.partition) for tp in self._member.assignment() if tp in self._tps]
        out: dict[str, int] = {}
        for (t, _p), n in self._reader.lag(owned).items():
            out[self._name.get(t, t)] = out.get(self._name.get(t, t), 0) + n
        return out

    def close(self) -> None:
        try:
            owned = self._member.assignment()
            latest = {tp: o for tp, o in (self._latest or {}).items() if tp in owned}
            if latest and (self._sent is not None or self._next or self._failure is not None):
                try:  # the newest offsets, not yet known to have landed: committed before leaving
                    self._member.commit(offsets=latest, timeout_ms=min(self.commit_timeout_ms, 5000))
                except Exception as exc:  # noqa: BLE001 - leaving anyway: their records come again (rows collapse)
                    logging.getLogger("mevwatch.kafka").warning("last offset commit at close failed: %r", exc)
            self._member.close()  # leaves the group: the others take its partitions at once
        finally:
            self._reader.close()


def ensure_topics(bootstrap: str, partitions: int = 6, replication: int = 1, *, security: Mapping[str, Any] | None = None,
                  prefix: str = DEFAULT_PREFIX) -> None:
    """Create mevwatch's topics (under ``prefix``) when missing (the blocks topic with one partition)."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15_000, **(security or {}))
    try:
        existing = set(admin.list_topics())
        todo = [NewTopic(topic_name(t, prefix), 1 if t in SINGLE_PARTITION else partitions, replication)
                for t in TOPICS if topic_name(t, prefix) not in existing]
        if todo:
            try:
                admin.create_topics(todo)
            except TopicAlreadyExistsError:
                pass
    finally:
        admin.close()


def make_bus(bootstrap: str | None, **kw) -> Bus:
    return KafkaBus(bootstrap, **kw) if bootstrap else InProcessBus()
