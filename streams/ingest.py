"""Node -> bus (``mevwatch ingest``), node -> JSONL (``mevwatch record``), bus -> terminal (``mevwatch tail``)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rich.console import Console

from mevwatch.monitor.config import Settings
from mevwatch.monitor.errors import EnvelopeError
from mevwatch.monitor.log import get_logger
from mevwatch.monitor.types import Block
from mevwatch.streams import bus as busmod
from mevwatch.streams import envelope
from mevwatch.monitor.types import Message, PendingTx, RevertEvent
from mevwatch.streams.node import NodeSource, check_ws_url

log = get_logger("mevwatch.ingest")


def topic_and_key(msg: Message) -> tuple[str, bytes]:
    if isinstance(msg, PendingTx):
        return busmod.MEMPOOL, msg.from_address.encode()
    if isinstance(msg, Block):
        return busmod.BLOCKS, (msg.hash or str(msg.number)).encode()
    return busmod.BLOCKS, msg.block_hash.encode()


def publish(bus: busmod.Bus, msg: Message) -> None:
    topic, key = topic_and_key(msg)
    bus.produce(topic, key, envelope.encode(msg))


def node_source(rpc: str, settings: Settings, *, pending: bool = True, traces: bool = True,
                start_block: int | None = None) -> NodeSource:
    """The node follower of ``settings.node`` (every entry point that follows a node: ingest, the daemon)."""
    return NodeSource(rpc, chain_id=None, traces=settings.node.traces if traces else "none",
                      max_reorg_depth=settings.node.max_reorg_depth, reconnect_max_s=settings.node.reconnect_max_s,
                      pending=pending, confirmations=settings.node.confirmations, start_block=start_block,
                      block_time_s=settings.node.block_time_s,
                      # a chain id set on purpose (several chains on one cluster): a node of another chain is refused
                      expect_chain_id=settings.chain_id if "chain_id" in settings.model_fields_set else None)


def run_ingest(rpc: str, kafka: str, *, settings: Settings, pending: bool = True, traces: bool = True,
               max_messages: int | None = None) -> int:
    """Node -> Kafka until ``max_messages`` or Ctrl-C. Raises NodeError when the node was never reached."""
    check_ws_url(rpc, "mevwatch ingest")
    bus = busmod.KafkaBus(kafka, client_id=settings.kafka.client_id, partitions=settings.kafka.partitions,
                          replication=settings.kafka.replication_factor, security=settings.kafka.client_kwargs(),
                          topic_prefix=settings.kafka.topic_prefix)
    source = node_source(rpc, settings, pending=pending, traces=traces)
    count = 0

    def emit(msg: Message) -> None:
        nonlocal count
        publish(bus, msg)
        count += 1
        if not isinstance(msg, PendingTx):
            bus.flush(30)  # a block is a natural batch boundary
        if max_messages is not None and count >= max_messages:
            source.stop()

    def dead(source_name: str, reason: str, raw: bytes | None) -> None:
        bus.produce(busmod.DEADLETTER, None, busmod.dead_letter(source_name, None, reason, raw))

    try:
        asyncio.run(_until_stopped(source, emit, dead))
    except KeyboardInterrupt:
        log.info("interrupted; flushing")
    finally:
        bus.flush(30)
        bus.close()
    if not source.reached:
        raise source.unreached_error()
    return count


async def _until_stopped(source: NodeSource, emit, dead) -> None:
    task = asyncio.ensure_future(source.run(emit, dead))
    while not task.done():
        if source._stop.is_set():
            await asyncio.sleep(0.2)
            task.cancel()
            break
        await asyncio.sleep(0.05)
    try:
        await task
    except asyncio.CancelledError:
        pass


def run_record(rpc: str, out: Path, *, settings: Settings, max_blocks: int | None = None,
               duration_s: float | None = None, pending: bool = True) -> dict[str, int]:
    check_ws_url(rpc, "mevwatch record")
    source = node_source(rpc, settings, pending=pending)
    counts = {"blocks": 0, "pending": 0, "reverts": 0}
    deadline = time.monotonic() + duration_s if duration_s else None
    with open(out, "ab") as fh:
        def emit(msg: Message) -> None:
            fh.write(envelope.encode(msg) + b"\n")
            fh.flush()
            key = "blocks" if isinstance(msg, Block) else "pending" if isinstance(msg, PendingTx) else "reverts"
            counts[key] += 1
            if (max_blocks is not None and counts["blocks"] >= max_blocks) or (deadline and time.monotonic() > deadline):
                source.stop()

        async def main() -> None:
            if deadline:
                async def timer() -> None:
                    await asyncio.sleep(max(0.0, deadline - time.monotonic()))
                    source.stop()

                t = asyncio.ensure_future(timer())
                await _until_stopped(source, emit, None)
                t.cancel()
            else:
                await _until_stopped(source, emit, None)

        try:
            asyncio.run(main())
        except KeyboardInterrupt:
            pass
    if not source.reached:
        raise source.unreached_error()
    return counts


def tail_topic(kafka: str, topic: str, *, max_messages: int | None, idle_timeout_s: float, raw: bool,
               console: Console, security: Mapping[str, Any] | None = None) -> int:
    from kafka import KafkaConsumer

    c = KafkaConsumer(topic, bootstrap_servers=kafka, group_id=f"mevwatch-tail-{uuid.uuid4().hex[:8]}",
                      enable_auto_commit=False, auto_offset_reset="earliest", **(security or {}))
    n = 0
    last = time.monotonic()
    try:
        while max_messages is None or n < max_messages:
            batch = c.poll(timeout_ms=500)
            if not batch:
                if time.monotonic() - last > idle_timeout_s:
                    break
                continue
            last = time.monotonic()
            for _tp, msgs in batch.items():
                for m in msgs:
                    n += 1
                    console.print(describe(m.topic, m.partition, m.offset, m.value, raw), soft_wrap=True, highlight=False)
                    if max_messages is not None and n >= max_messages:
                        break
    finally:
        c.close()
    return n


def describe(topic: str, partition: int, offset: int, value: bytes, raw: bool = False) -> str:
    where = f"[dim]{topic}/{partition}@{offset}[/dim]"
    if raw or topic.endswith((busmod.ALERTS[len(busmod.DEFAULT_PREFIX):], busmod.DEADLETTER[len(busmod.DEFAULT_PREFIX):])):
        return f"{where} {value.decode('utf-8', 'replace')}"
    try:
        msg = envelope.decode(value, source=f"{topic}/{partition}", position=f"offset {offset}")
    except EnvelopeError as exc:
        return f"{where} [red]bad message:[/red] {exc}"
    if isinstance(msg, Block):
        return (f"{where} [bold]block {msg.number}[/bold] {msg.hash} parent {msg.parent_hash} txs {len(msg.transactions)} "
                f"logs {sum(len(t.logs) for t in msg.transactions)} traces {'yes' if msg.has_traces else 'no'}")
    if isinstance(msg, RevertEvent):
        return f"{where} [yellow]revert[/yellow] block {msg.block_number} {msg.block_hash} depth {msg.depth} replaced by {msg.replaced_by}"
    tip = msg.max_priority_fee_per_gas if msg.max_priority_fee_per_gas is not None else msg.gas_price
    rep = f" replaces {msg.replaces}" if msg.replaces else ""
    return f"{where} pending {msg.hash} from {msg.from_address} nonce {msg.nonce} to {msg.to_address} tip {tip} seen {msg.first_seen_ns}{rep}"


def last_block_on_topic(bootstrap: str, scan: int = 200, *, security: Mapping[str, Any] | None = None,
                        prefix: str = busmod.DEFAULT_PREFIX) -> int | None:
    """Number of the newest block record on the blocks topic (None when it holds none).

    Reads at most the last ``scan`` records of its single partition. After a revert event
    the newest canonical block is what the follower must continue from, which is the
    newest block record."""
    from kafka import KafkaConsumer, TopicPartition

    with busmod.diagnosed(bootstrap):  # a named error (KafkaAccessError for a refused login), not a traceback
        busmod.ensure_topics(bootstrap, security=security, prefix=prefix)
        c = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None, **(security or {}))
    tp = TopicPartition(busmod.topic_name(busmod.BLOCKS, prefix), 0)
    try:
        c.assign([tp])
        end = c.end_offsets([tp])[tp]
        if end == 0:
            return None
        c.seek(tp, max(0, end - scan))
        newest: int | None = None
        got = 0
        deadline = time.monotonic() + 30
        while got < end - max(0, end - scan) and time.monotonic() < deadline:
            for _tp, msgs in c.poll(timeout_ms=500).items():
                for m in msgs:
                    got += 1
                    try:
                        msg = envelope.decode(m.value, source=busmod.BLOCKS, position=m.offset)
                    except EnvelopeError:
                        continue
                    if isinstance(msg, Block):
                        newest = msg.number
                    elif isinstance(msg, RevertEvent):
                        newest = msg.block_number - 1 if newest is None or newest >= msg.block_number else newest
        return newest
    finally:
        c.close()
