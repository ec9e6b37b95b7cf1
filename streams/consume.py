"""Decode records polled from the bus; bad ones become dead letters, the rest go on."""

from __future__ import annotations

from mevwatch.monitor.errors import EnvelopeError
from mevwatch.streams import bus as busmod
from mevwatch.streams import envelope
from mevwatch.streams.bus import Bus, Record
from mevwatch.monitor.types import Message


def decode_records(records: list[Record], bus: Bus) -> list[tuple[Record, Message]]:
    """Envelopes of ``records`` in order; each undecodable record is sent to the dead-letter
    topic with its topic/partition@offset and the reason, and skipped."""
    out = []
    for r in records:
        try:
            out.append((r, envelope.decode(r.value, source=f"{r.topic}/{r.partition}", position=f"offset {r.offset}")))
        except EnvelopeError as exc:
            bus.produce(busmod.DEADLETTER, r.key, busmod.dead_letter(f"{r.topic}/{r.partition}", r.offset, exc.reason, r.value))
    return out
