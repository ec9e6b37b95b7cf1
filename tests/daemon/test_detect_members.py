"""Several detect members on a real Kafka broker equal one (docs/operations.md, "Several detect
members"): every member reads every partition (the whole state: every pending transaction, every
block) and writes the output of the partitions the group gives it. The lab's recording through one
member and through three members (six mempool partitions) gives the same alert stage events,
pending stage included, each written by exactly one member; a member that stops after writing a
batch but before committing it, and leaves, has its partitions taken over with nothing lost."""

from __future__ import annotations

import dataclasses
import threading
import time
import uuid
from collections import Counter

import pytest

from mevwatch.monitor.pipeline import DetectWorker
from mevwatch.monitor.sinks.base import SinkChain
from mevwatch.monitor.types import Block, PendingTx
from mevwatch.streams import bus as busmod
from mevwatch.streams.ingest import publish

pytestmark = [pytest.mark.kafka]
CONF = 12


class Collect:
    """A sink that keeps what it was given: (alert id, stage, version) of every event, pending rows, block rows;
    and ``ran``: the pending transactions in the order its member's engine ran them (rows of records read
    before the member owned their partition are written later, when ownership comes)."""

    name = "collect"
    health = None

    def __init__(self) -> None:
        self.events: list[tuple[str, str, int]] = []
        self.pending: list[str] = []
        self.blocks: list[int] = []
        self.ran: list[str] = []

    def write(self, batch) -> None:
        self.events += [(e.alert.alert_id, e.alert.stage, e.version) for e in batch.alerts]
        self.pending += [r[0] for r in batch.pending]
        self.blocks += [r[0] for r in batch.blocks]

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def feed(bootstrap: str, prefix: str, messages: list, start: int = 0, stop: int | None = None) -> None:
    """Publish ``messages[start:stop]`` one at a time (each acknowledged before the next), so their
    record times follow the recording's order across partitions."""
    bus = busmod.KafkaBus(bootstrap, partitions=6, topic_prefix=prefix)
    try:
        for m in messages[start:stop]:
            publish(bus, m)
            bus.flush(60)
            time.sleep(0.003 if not isinstance(m, PendingTx) else 0.001)
    finally:
        bus.close()


class Member:
    def __init__(self, bootstrap: str, prefix: str, group: str):
        self.bus = busmod.KafkaBus(bootstrap, partitions=6, topic_prefix=prefix)
        self.sink = Collect()
        self.worker = DetectWorker(self.bus, SinkChain([self.sink]), chain_id=31337, confirmations=CONF, group=group)
        engine, run_pending = self.worker.engine, self.worker.engine.pending

        def pending(p, batch) -> None:
            self.sink.ran.append(p.hash)
            run_pending(p, batch)

        engine.pending = pending  # type: ignore[method-assign]
        self.worker.warm_up()  # as the daemon starts a member: state from the records before the group's offsets
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.error: BaseException | None = None

    def _run(self) -> None:
        try:
            while not self.stop.is_set():
                self.worker.step(timeout_ms=200)
        except BaseException as exc:  # noqa: BLE001
            self.error = exc

    def start(self) -> Member:
        self.thread.start()
        return self

    def close(self) -> None:
        self.stop.set()
        self.thread.join(30)
        self.worker.close()
        self.bus.close()
        assert self.error is None, self.error


def run_until(members: list[Member], last_block: int, settle_s: float = 4.0, timeout: float = 120) -> None:
    """Until every member has processed ``last_block`` and the group has settled (commits made)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not all(m.worker.last_block == last_block for m in members):
        time.sleep(0.2)
    assert all(m.worker.last_block == last_block for m in members), [m.worker.last_block for m in members]
    time.sleep(settle_s)


@pytest.fixture(scope="module")
def one_member(kafka, lab_messages):
    """The recording through a single detect member: the reference."""
    prefix = f"m1{uuid.uuid4().hex[:6]}"
    feed(kafka.bootstrap, prefix, lab_messages)
    m = Member(kafka.bootstrap, prefix, "one").start()
    last = max(x.number for x in lab_messages if isinstance(x, Block))
    run_until([m], last)
    m.close()
    return m.sink


def test_a_member_catching_up_a_backlog_runs_it_in_the_order_it_was_published(kafka, lab_messages):
    """12,000 pending transactions of 600 senders published before the member starts (six partitions,
    one first sight after another): the fetcher hands it each partition's backlog in long runs, one
    partition after another, yet it runs them in the order they were published (it holds a record
    until every partition not read to its end has shown one as new: monitor/pipeline.py ``_horizon``)."""
    prefix = f"mb{uuid.uuid4().hex[:6]}"
    bus = busmod.KafkaBus(kafka.bootstrap, partitions=6, topic_prefix=prefix)
    txs = [m for m in lab_messages if isinstance(m, PendingTx)]
    published = []
    base = time.time_ns()
    try:
        for i in range(12_000):
            p = dataclasses.replace(txs[i % len(txs)], hash=f"0x{i:064x}", from_address=f"0x{i % 600:040x}", first_seen_ns=base + i)
            publish(bus, p)
            published.append(p.hash)
        bus.flush(60)
    finally:
        bus.close()
    m = Member(kafka.bootstrap, prefix, "backlog").start()
    try:
        deadline = time.monotonic() + 120
        while m.worker.engine.counts.pending < len(published) and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        m.close()
    assert m.sink.ran == published


def test_three_members_write_what_one_writes(kafka, lab_messages, one_member):
    want = one_member.events
    assert len(want) == len(set(want))
    assert sum(1 for e in want if e[1] == "pending") >= 5 and sum(1 for e in want if e[1] == "final") >= 5, Counter(e[1] for e in want)
    prefix = f"m3{uuid.uuid4().hex[:6]}"
    busmod.ensure_topics(kafka.bootstrap, 6, 1, prefix=prefix)
    members = [Member(kafka.bootstrap, prefix, "three") for _ in range(3)]
    for m in members:
        m.start()
    last = max(x.number for x in lab_messages if isinstance(x, Block))
    try:
        # the group settled on three owners first (reading a backlog, the first member to join could
        # run and commit all of it before the others own anything: nothing shared to test)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not all(m.worker.consumer.owned() for m in members):
            time.sleep(0.2)
        assert all(m.worker.consumer.owned() for m in members), "the three members did not share the partitions"
        feed(kafka.bootstrap, prefix, lab_messages)  # read live, as members do (the reference read it as a backlog)
        run_until(members, last)
    finally:
        for m in members:
            m.close()
    got = Counter(e for m in members for e in m.sink.events)
    assert set(got) == set(want)
    assert max(got.values()) == 1, [e for e, n in got.items() if n > 1][:5]  # each event written by one member
    writers = [m for m in members if m.sink.events]
    assert len(writers) >= 2, "the work was not shared"
    assert sorted(p for m in members for p in m.sink.pending) == sorted(one_member.pending)
    assert sorted(b for m in members for b in m.sink.blocks) == sorted(one_member.blocks)


def test_a_member_that_stops_before_committing_loses_nothing(kafka, lab_messages, one_member):
    prefix = f"mk{uuid.uuid4().hex[:6]}"
    half = len(lab_messages) // 2
    feed(kafka.bootstrap, prefix, lab_messages, 0, half)
    members = [Member(kafka.bootstrap, prefix, "kill") for _ in range(3)]
    for m in members:
        m.start()
    first_half_last = max(x.number for x in lab_messages[:half] if isinstance(x, Block))
    last = max(x.number for x in lab_messages if isinstance(x, Block))
    try:
        run_until(members, first_half_last, settle_s=2.0)
        # the member that owns the blocks partition: every block's events are its to write
        deadline = time.monotonic() + 60
        while not any((busmod.BLOCKS, 0) in (m.worker.consumer.owned() or ()) for m in members) and time.monotonic() < deadline:
            time.sleep(0.2)  # the group settled on who owns the blocks
        victim = next(m for m in members if (busmod.BLOCKS, 0) in (m.worker.consumer.owned() or ()))
        victim.worker._commit = lambda: None  # type: ignore[method-assign]  # it writes, then never commits
        written = len(victim.sink.events)
        middle = half + (len(lab_messages) - half) // 3
        feed(kafka.bootstrap, prefix, lab_messages, half, middle)
        # it processed (and wrote) part of the second half without committing
        run_until([victim], max(x.number for x in lab_messages[:middle] if isinstance(x, Block)), settle_s=0.5)
        victim.close()  # it leaves: the others take its partitions
        uncommitted = set(victim.sink.events[written:])
        assert any(e[1] != "pending" for e in uncommitted), "the stopped member wrote no block event uncommitted: nothing tested"
        feed(kafka.bootstrap, prefix, lab_messages, half + (len(lab_messages) - half) // 3)
        survivors = [m for m in members if m is not victim]
        run_until(survivors, last, settle_s=0)
        # the group has given the survivors every partition, and each has run a step since (the step that
        # wrote what the victim had not committed); a fixed wait was too short on a loaded machine
        every = {(busmod.BLOCKS, 0)} | {(busmod.MEMPOOL, p) for p in range(6)}
        deadline = time.monotonic() + 60
        while set().union(*(m.worker.owned for m in survivors)) != every and time.monotonic() < deadline:
            time.sleep(0.2)
        assert set().union(*(m.worker.owned for m in survivors)) == every
        time.sleep(2.0)  # their commits
    finally:
        for m in members:
            if m is not victim:
                m.close()
    got = Counter(e for m in members for e in m.sink.events)
    # nothing lost: every block-stage event of the one-member run, and every pending transaction's row.
    # (Pending-stage alerts are compared in the test above; here a member reads a partition from its
    # takeover on, and an attempt whose legs sit on two partitions can meet them in another order:
    # docs/operations.md, "One order".)
    blockwise = {e for e in one_member.events if e[1] != "pending"}
    assert {e for e in got if e[1] != "pending"} == blockwise
    assert set(p for m in members for p in m.sink.pending) == set(one_member.pending)
    assert sorted(set(b for m in members for b in m.sink.blocks)) == sorted(set(one_member.blocks))
    # written twice only where the stopped member wrote without committing: the survivors wrote it again
    again = {e for e, n in got.items() if n > 1}
    assert again <= set(victim.sink.events)
    assert {e for e in uncommitted if e[1] != "pending"} <= again  # its uncommitted block events, written again


def test_a_bad_record_whose_owner_leaves_before_its_dead_letter_is_sent_is_dead_lettered(kafka):
    """Every member reads every partition; only a record's owner dead-letters it. When the owner leaves
    before committing the bad record, and its dead letter never reached the broker (a producer buffer lost
    with the process), the member that takes the partition over sends it: nothing is lost."""
    import orjson
    from kafka import KafkaConsumer, KafkaProducer

    prefix = f"md{uuid.uuid4().hex[:6]}"
    members = [Member(kafka.bootstrap, prefix, "dead") for _ in range(2)]
    for m in members:
        m.start()
    try:
        deadline = time.monotonic() + 60
        while not all(m.worker.consumer.owned() for m in members) and time.monotonic() < deadline:
            time.sleep(0.2)  # both joined: each owns some partitions
        victim, survivor = members
        tp = next(t for t in sorted(victim.worker.consumer.owned() or ()) if t[0] == busmod.MEMPOOL)
        victim.worker._commit = lambda: None  # type: ignore[method-assign]  # it never commits
        produce = victim.bus.produce
        victim.bus.produce = lambda topic, key, value, errors=None: (  # type: ignore[method-assign]
            None if topic == busmod.DEADLETTER else produce(topic, key, value, errors))  # its dead letters are lost
        raw = KafkaProducer(bootstrap_servers=kafka.bootstrap)
        offset = raw.send(victim.bus.physical(busmod.MEMPOOL), value=b'{"schema": "not one of ours"}', key=b"k",
                          partition=tp[1]).get(timeout=30).offset
        raw.close()
        deadline = time.monotonic() + 60
        while not all(m.worker._done.get(tp, 0) > offset for m in members) and time.monotonic() < deadline:
            time.sleep(0.2)  # both have read it: the owner skipped it, the other holds its dead letter
        assert all(m.worker._done.get(tp, 0) > offset for m in members)
        victim.close()  # it leaves: the survivor takes the partition
        deadline = time.monotonic() + 60
        while tp not in (survivor.worker.consumer.owned() or ()) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert tp in (survivor.worker.consumer.owned() or ())
        time.sleep(2.0)  # a few steps: the takeover sends what the last owner had not committed
    finally:
        for m in members:
            if m is not victim:
                m.close()
    reader = KafkaConsumer(victim.bus.physical(busmod.DEADLETTER), bootstrap_servers=kafka.bootstrap,
                           auto_offset_reset="earliest", consumer_timeout_ms=5000)
    letters = [orjson.loads(r.value) for r in reader]
    reader.close()
    mine = [x for x in letters if x["source"].endswith(f"/{tp[1]}") and x["position"] == offset]
    assert len(mine) == 1, letters
    assert "schema" in mine[0]["reason"] and mine[0]["raw"] == '{"schema": "not one of ours"}'
