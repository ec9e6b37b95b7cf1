"""Decode records polled from the bus; bad ones become dead letters, the rest go on."""

from __future__ import annotations

from collections.abc import Callable

from mevwatch.monitor.errors import EnvelopeError
from mevwatch.streams import bus as busmod
from mevwatch.streams import envelope
from mevwatch.streams.bus import Bus, Record
from mevwatch.monitor.types import Message


def decode_records(records: list[Record], bus: Bus, chain_id: int | None = None,
                   owns: Callable[[Record], bool] | None = None,
                   hold: Callable[[Record, bytes], None] | None = None) -> list[tuple[Record, Message]]:
    """Envelopes of ``records`` in order; each undecodable record is sent to the dead-letter
    topic with its topic/partition@offset and the reason, and skipped. With ``chain_id``, a message
    of another chain is a dead letter too (two chains' ingests sharing one ``kafka.topic_prefix``
    would otherwise mix their blocks and mempools). ``owns``: whether this member writes a record's
    output (streams/bus.py, ReplicaConsumer); only the owner dead-letters it, and ``hold`` is given
    the dead letters of the records it does not own (sent if their partition comes to it before
    their owner committed them)."""
    out = []
    physical = getattr(bus, "physical", None)  # the Kafka topic a record came from (kafka.topic_prefix)
    names: dict[tuple[str, int], str] = {}
    for r in records:
        where = names.get((r.topic, r.partition))
        if where is None:
            where = names[(r.topic, r.partition)] = f"{physical(r.topic) if physical is not None else r.topic}/{r.partition}"
        try:
            msg = envelope.decode(r.value, source=where, position=f"offset {r.offset}")
        except EnvelopeError as exc:
            _dead(bus, r, busmod.dead_letter(where, r.offset, exc.reason, r.value), owns, hold)
            continue
        if chain_id is not None and msg.chain_id != chain_id:
            why = (f"a message of chain {msg.chain_id} on a topic this detect member reads for chain {chain_id}: "
                   "give each chain its own kafka.topic_prefix")
            _dead(bus, r, busmod.dead_letter(where, r.offset, why, r.value), owns, hold)
            continue
        out.append((r, msg))
    return out


def _dead(bus: Bus, r: Record, letter: bytes, owns: Callable[[Record], bool] | None,
          hold: Callable[[Record, bytes], None] | None) -> None:
    if owns is None or owns(r):
        bus.produce(busmod.DEADLETTER, r.key, letter)
    elif hold is not None:
        hold(r, letter)
