"""The bus contract, on the real Kafka broker and on the in-process bus alike."""

from __future__ import annotations

import uuid

import pytest

from mevwatch.streams import bus as busmod
from mevwatch.streams.consume import decode_records
from mevwatch.streams.envelope import encode_block, decode as decode_envelope

pytestmark = pytest.mark.kafka


@pytest.fixture(params=["kafka", "inprocess"])
def bus(request):
    if request.param == "inprocess":
        yield busmod.InProcessBus()
        return
    kafka = request.getfixturevalue("kafka")
    b = busmod.KafkaBus(kafka.bootstrap, partitions=3)
    yield b
    b.close()


def drain(consumer, want: int, rounds: int = 60) -> list:
    got = []
    for _ in range(rounds):
        got += consumer.poll(timeout_ms=500)
        if len(got) >= want:
            break
    return got


def test_one_senders_messages_stay_in_order(bus):
    group = f"g-{uuid.uuid4().hex[:6]}"
    c = bus.consumer([busmod.MEMPOOL], group)
    tag = uuid.uuid4().hex[:6].encode()
    senders = [b"0xaaaa" + tag, b"0xbbbb" + tag, b"0xcccc" + tag]
    for i in range(60):
        s = senders[i % 3]
        bus.produce(busmod.MEMPOOL, s, s + b":" + str(i).encode())
    bus.flush(30)
    got = [r for r in drain(c, 60) if r.key in senders]
    assert len(got) == 60
    for s in senders:
        seq = [int(r.value.split(b":")[1]) for r in got if r.key == s]
        assert seq == sorted(seq) and len(seq) == 20
    c.close()


def test_uncommitted_work_is_delivered_again(bus):
    group = f"g-{uuid.uuid4().hex[:6]}"
    topic = busmod.ALERTS
    tag = uuid.uuid4().hex.encode()
    c = bus.consumer([topic], group)
    drain(c, 10**9, rounds=2)  # skip what earlier tests left
    c.commit()
    c.close()
    for i in range(5):
        bus.produce(topic, tag, tag + str(i).encode())
    bus.flush(30)
    c1 = bus.consumer([topic], group)
    first = [r for r in drain(c1, 5) if r.key == tag]
    assert len(first) == 5
    c1.close()  # crashed before commit
    c2 = bus.consumer([topic], group)
    again = [r for r in drain(c2, 5) if r.key == tag]
    assert [r.value for r in again] == [r.value for r in first]
    c2.commit()
    c2.close()
    c3 = bus.consumer([topic], group)
    assert [r for r in drain(c3, 1, rounds=4) if r.key == tag] == []
    c3.close()


def test_bad_messages_become_dead_letters_and_the_rest_is_processed(bus, load_block):
    group = f"g-{uuid.uuid4().hex[:6]}"
    tag = uuid.uuid4().hex.encode()
    good = encode_block(load_block(12674514))
    bus.produce(busmod.BLOCKS, tag + b"-1", good)
    bus.produce(busmod.BLOCKS, tag + b"-2", b"{not json")
    bus.produce(busmod.BLOCKS, tag + b"-3", b'{"schema": "mevwatch.block.v1", "chain_id": 1}')
    bus.produce(busmod.BLOCKS, tag + b"-4", good)
    bus.flush(30)
    c = bus.consumer([busmod.BLOCKS], group)
    records = [r for r in drain(c, 10**9, rounds=8) if r.key and r.key.startswith(tag)]
    assert len(records) == 4
    decoded = decode_records(records, bus)
    assert [r.key for r, _ in decoded] == [tag + b"-1", tag + b"-4"]
    assert decoded[0][1].number == 12674514
    bus.flush(30)
    dl = bus.consumer([busmod.DEADLETTER], f"dl-{uuid.uuid4().hex[:6]}")
    letters = [decode_json(r.value) for r in drain(dl, 10**9, rounds=8) if r.key and r.key.startswith(tag)]
    assert len(letters) == 2
    offsets = {r.offset for r in records[1:3]}
    assert {x["position"] for x in letters} == offsets
    assert any("malformed JSON" in x["reason"] for x in letters)
    assert any("'block_number': missing" in x["reason"] for x in letters)
    assert all(x["source"] == f"{busmod.BLOCKS}/0" for x in letters)


def decode_json(b: bytes) -> dict:
    import orjson

    return orjson.loads(b)


def test_envelope_survives_the_broker_byte_for_byte(bus, load_block):
    block = load_block(12775690)
    group = f"g-{uuid.uuid4().hex[:6]}"
    tag = uuid.uuid4().hex.encode()
    bus.produce(busmod.BLOCKS, tag, encode_block(block))
    bus.flush(30)
    c = bus.consumer([busmod.BLOCKS], group)
    (r,) = [r for r in drain(c, 10**9, rounds=8) if r.key == tag]
    assert decode_envelope(r.value) == block


def test_a_detect_members_reader_sees_every_partition_and_resumes_at_the_groups_offsets(kafka):
    """The detect member's reader (librdkafka, fetching in the background): every partition's records,
    byte for byte; "commit everything polled" commits its positions; a member starting later in the
    group reads from there, nothing before."""
    b = busmod.KafkaBus(kafka.bootstrap, partitions=3, topic_prefix=f"rd{uuid.uuid4().hex[:6]}")
    group = f"g-{uuid.uuid4().hex[:6]}"
    try:
        def send(records: dict[bytes, bytes]) -> dict[bytes, bytes]:
            for k, v in records.items():
                b.produce(busmod.MEMPOOL, k, v)
            b.flush(30)
            return records

        sent = send({f"0xsender{i:02d}".encode(): f"value {i} \u00e9".encode() for i in range(30)})
        r = b.replica_consumer([busmod.MEMPOOL], group)
        got = []
        for _ in range(60):
            got += r.poll(timeout_ms=500)
            if len(got) >= 30 and r.owned():
                break
        assert {rec.key: rec.value for rec in got} == sent and len(got) == 30
        assert {rec.partition for rec in got} == {0, 1, 2} and all(rec.topic == busmod.MEMPOOL for rec in got)
        assert all(rec.timestamp_ms > 0 for rec in got)
        assert r.owned() == {(busmod.MEMPOOL, p) for p in range(3)}  # the only member owns every partition
        assert r.lag() == {busmod.MEMPOOL: 0}
        r.commit()  # asynchronous: answered while the member goes on polling
        ends = {p: max(rec.offset for rec in got if rec.partition == p) + 1 for p in range(3)}
        for _ in range(50):
            if all(r.committed(busmod.MEMPOOL, p) == ends[p] for p in range(3)):
                break
            r.poll(timeout_ms=100)
        assert {p: r.committed(busmod.MEMPOOL, p) for p in range(3)} == ends
        r.close()
        later = send({b"0xlate1": b"a", b"0xlate2": b"b"})
        r2 = b.replica_consumer([busmod.MEMPOOL], group)
        got2 = []
        for _ in range(20):
            got2 += r2.poll(timeout_ms=300)
            if len(got2) >= 2:
                break
        got2 += r2.poll(timeout_ms=1000)  # nothing older may follow
        assert {rec.key: rec.value for rec in got2} == later and len(got2) == 2
        r2.close()
    finally:
        b.close()
