"""Streaming commands: ``ingest`` (node -> Kafka), ``record`` (node -> JSONL), ``tail`` (a topic)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from mevwatch.monitor.cli.main import OptionError, err, handled, state
from mevwatch.monitor.cli.output import esc


@handled()
def ingest(
    rpc: Annotated[Optional[str], typer.Option("--rpc", help="WebSocket URL of the node (ws:// or wss://).")] = None,
    kafka: Annotated[Optional[str], typer.Option("--kafka", help="Kafka bootstrap host:port (or MEVWATCH_KAFKA__BOOTSTRAP).")] = None,
    no_pending: Annotated[bool, typer.Option("--no-pending", help="Follow blocks only, not the mempool.")] = False,
    no_traces: Annotated[bool, typer.Option("--no-traces", help="Do not ask the node for call traces.")] = False,
    max_messages: Annotated[Optional[int], typer.Option("--max-messages", help="Stop after this many messages (default: run until Ctrl-C).")] = None,
) -> None:
    """Follow a node's mempool and chain head and publish every pending tx, block and revert event to Kafka.

    Mempool messages are keyed by sender (one sender's nonces stay ordered), blocks and
    reverts by block hash on the single-partition blocks topic. Messages that cannot be
    normalised go to mevwatch.deadletter.v1. Reconnects and backfills on its own.
    """
    from mevwatch.streams.ingest import run_ingest

    s = state.settings
    rpc = rpc or s.node.rpc
    kafka = kafka or s.kafka.bootstrap
    if not rpc:
        raise OptionError("--rpc is required (a ws:// URL), or set MEVWATCH_NODE__RPC")
    if not kafka:
        raise OptionError("ingest publishes to Kafka: give --kafka host:port or MEVWATCH_KAFKA__BOOTSTRAP "
                          "(the in-process bus lives inside `mevwatch run`)")
    n = run_ingest(rpc, kafka, settings=s, pending=not no_pending, traces=not no_traces, max_messages=max_messages)
    err.print(f"published {n} messages")


@handled()
def record(
    rpc: Annotated[str, typer.Option("--rpc", help="WebSocket URL of the node.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="JSONL file to write (one envelope per line).")],
    blocks: Annotated[Optional[int], typer.Option("--blocks", help="Stop after this many blocks.")] = None,
    duration: Annotated[Optional[float], typer.Option("--duration", help="Stop after this many seconds.")] = None,
    no_pending: Annotated[bool, typer.Option("--no-pending", help="Record blocks only.")] = False,
    append: Annotated[bool, typer.Option("--append", help="Add to an existing recording instead of refusing to touch it.")] = False,
) -> None:
    """Record a live node's pending txs, blocks and reverts to JSONL, replayable with `mevwatch replay`."""
    from mevwatch.streams.ingest import run_record

    if out.exists() and out.stat().st_size > 0 and not append:
        raise OptionError(f"{out} already holds a recording; pass --append to add to it, or choose another file")
    counts = run_record(rpc, out, settings=state.settings, max_blocks=blocks, duration_s=duration, pending=not no_pending)
    err.print(f"recorded {counts['blocks']} blocks, {counts['pending']} pending txs, {counts['reverts']} reverts to {esc(out)}")


@handled()
def tail(
    topic: Annotated[str, typer.Option("--topic", "-t", help="Topic to read, e.g. mevwatch.blocks.v1.")],
    kafka: Annotated[Optional[str], typer.Option("--kafka", help="Kafka bootstrap host:port.")] = None,
    max_messages: Annotated[Optional[int], typer.Option("--max", help="Stop after this many messages.")] = None,
    timeout: Annotated[float, typer.Option("--timeout", help="Stop after this many seconds without a message.")] = 10.0,
    raw: Annotated[bool, typer.Option("--raw", help="Print each message's JSON as it is.")] = False,
) -> None:
    """Pretty-print the messages of a topic, from the beginning (reads without committing offsets)."""
    from rich.console import Console

    from mevwatch.streams.ingest import tail_topic

    kafka = kafka or state.settings.kafka.bootstrap
    if not kafka:
        raise OptionError("--kafka host:port is required")
    tail_topic(kafka, topic, max_messages=max_messages, idle_timeout_s=timeout, raw=raw, console=Console(),
               security=state.settings.kafka.client_kwargs())
