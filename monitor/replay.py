"""Replay recorded history through the engine (monitor/engine.py), as live runs do.

mev-inspect files (one block each) are decoded and run through the block rules in a pool of worker
processes (the engine's stateless half, :func:`monitor.engine.analyse`), in input order; their
results and JSONL recordings (pending transactions and revert events included) go through one
:class:`~monitor.engine.Engine` in this process: the mempool rules, the scorers, the alert stages
and their versions. The block events of the input are numbered 0, 1, ... in input order, as a
fresh blocks topic would number them, so a replay of a recording raises the same alerts with the
same versions as the daemon that consumed it (tests/engine).

Output: one JSONL line per alert stage event except ``final`` (pending, included, retracted), in
input order, so replaying the same input twice yields identical output. Recorded history is
settled: at the end of the input every open alert becomes final (with the store, those stages are
written too). Bad files and bad lines are recorded (file, position, reason) and skipped;
everything else is processed.
"""

from __future__ import annotations

import gc
import multiprocessing as mp
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from mevwatch.monitor.alerts import AlertEvent
from mevwatch.monitor.batch import Batch
from mevwatch.monitor.decode import BlockDecoder
from mevwatch.monitor.engine import Analysed, Engine, analyse
from mevwatch.monitor.errors import InputError
from mevwatch.monitor.kinds import Stage
from mevwatch.monitor.sinks.base import SinkChain
from mevwatch.monitor.types import Block, DecodeStats, Message, PendingTx, RevertEvent
from mevwatch.streams.files import discover, iter_jsonl, read_mev_inspect

STORE_BATCH_BLOCKS = 500  # blocks per write to the store
REPLAY_CONFIRMATIONS = 12  # finality depth while replaying (everything is final at the end anyway)


@dataclass
class InputProblem:
    source: str
    position: str | None
    reason: str
    raw: bytes | None = None


@dataclass
class ReplaySummary:
    blocks: int = 0
    transactions: int = 0
    pending: int = 0
    reverts: int = 0
    stats: DecodeStats = field(default_factory=DecodeStats)
    alerts_by_kind: Counter = field(default_factory=Counter)
    problems: list[InputProblem] = field(default_factory=list)
    elapsed_s: float = 0.0
    first_block: int | None = None
    last_block: int | None = None

    def add_block(self, number: int, n_txs: int, stats: DecodeStats) -> None:
        self.blocks += 1
        self.transactions += n_txs
        self.stats.merge(stats)
        self.first_block = number if self.first_block is None else min(self.first_block, number)
        self.last_block = number if self.last_block is None else max(self.last_block, number)


class Replayer:
    """An engine over recorded messages, its output lines and (optionally) the store's sinks."""

    def __init__(self, *, chain_id: int = 1, out: IO[bytes] | None = None, on_block: Callable[[int], None] | None = None,
                 on_alert: Callable[[bytes], None] | None = None, on_event: Callable[[AlertEvent], None] | None = None,
                 sinks: SinkChain | None = None, scorer: Any = None, confirmations: int = REPLAY_CONFIRMATIONS,
                 engine: Engine | None = None):
        self.engine = engine or Engine(chain_id=chain_id, confirmations=confirmations, scorers=[scorer] if scorer else [])
        self.out, self.on_block, self.on_alert, self.on_event = out, on_block, on_alert, on_event
        self.sinks = sinks
        self.summary = ReplaySummary()
        self.batch = Batch()
        self.offset = 0  # the next block event's number
        self._emitted = 0
        self._blocks_in_batch = 0
        self._started = time.perf_counter()

    # --- input -------------------------------------------------------------------------------
    def message(self, msg: Message) -> None:
        if isinstance(msg, PendingTx):
            self.summary.pending += 1
            self.engine.pending(msg, self.batch)
        elif isinstance(msg, RevertEvent):
            self.summary.reverts += 1
            self.engine.revert(msg, self._next_offset(), self.batch)
        else:
            self.blocks([(msg, None)])
            return
        self._drain()

    def blocks(self, items: list[tuple[Block, Analysed | None]]) -> None:
        """Blocks in input order (given their analysis when a worker made it; else made here)."""
        if not items:
            return
        done = [(b, self._next_offset(), a or analyse(self.engine.decoder, b, self.engine.registry)) for b, a in items]
        self.engine.blocks(done, self.batch)
        for block, _o, a in done:
            self.summary.add_block(block.number, len(block.transactions), a.decoded.stats)
            if self.on_block is not None:
                self.on_block(block.number)
        self._blocks_in_batch += len(done)
        self._drain()
        if self._blocks_in_batch >= STORE_BATCH_BLOCKS:
            self._write()

    def problem(self, source: str, position: Any, reason: str, raw: bytes | None = None) -> None:
        self.summary.problems.append(InputProblem(source, str(position) if position is not None else None, reason, raw))

    def finish(self, settle: bool = True) -> ReplaySummary:
        if settle:
            self.engine.settle(self.batch)
            self._drain()
        self._write()
        self.summary.elapsed_s = time.perf_counter() - self._started
        return self.summary

    # --- internals ---------------------------------------------------------------------------
    def _next_offset(self) -> int:
        self.offset += 1
        return self.offset - 1

    def _drain(self) -> None:
        for ev in self.batch.alerts[self._emitted:]:
            if self.on_event is not None:
                self.on_event(ev)
            if ev.alert.stage == Stage.FINAL:
                continue
            self.summary.alerts_by_kind[ev.alert.kind] += 1
            line = ev.alert.to_jsonl()
            if self.out is not None:
                self.out.write(line)
            if self.on_alert is not None:
                self.on_alert(line)
        self._emitted = len(self.batch.alerts)

    def _write(self) -> None:
        if self.sinks is not None and len(self.batch):
            self.sinks.write(self.batch)
        self.batch = Batch()
        self._emitted = 0
        self._blocks_in_batch = 0


# --- worker side ------------------------------------------------------------------------
_decoder: BlockDecoder | None = None


def _worker_init() -> None:
    global _decoder
    _decoder = BlockDecoder()
    _batch_gc()


def _batch_gc() -> tuple[int, int, int]:
    """Garbage collection for batch work: everything loaded so far is frozen (never scanned again) and
    the youngest generation is collected every 50,000 allocations, not 700. A parsed block is ~100,000
    long-lived objects; the default thresholds scan them over and over (replay was ~40% slower).
    Returns the previous thresholds."""
    old = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    return old


def _analyse_file(item: tuple[str, int, bool]) -> tuple[str, Any]:
    path, chain_id, slim = item
    global _decoder
    if _decoder is None:
        _decoder = BlockDecoder()
    try:
        block = read_mev_inspect(Path(path), chain_id)
        done = analyse(_decoder, block)
    except InputError as exc:
        return "error", (path, exc.position, exc.reason)
    except Exception as exc:  # noqa: BLE001 - a bug must cost one file, not the whole replay
        return "error", (path, None, f"internal error while processing this block: {exc!r} (please report it)")
    return "ok", done.slim() if slim else done  # slim: sent back from a worker process


def _map_files(paths: list[str], chain_id: int, workers: int) -> Iterator[tuple[str, Any]]:
    if workers <= 1 or len(paths) < 4:
        _worker_init()
        for p in paths:
            yield _analyse_file((p, chain_id, False))
        return
    items = [(p, chain_id, True) for p in paths]
    ctx = mp.get_context("fork") if hasattr(os, "fork") else mp.get_context()
    with ctx.Pool(workers, initializer=_worker_init) as pool:
        yield from pool.imap(_analyse_file, items, chunksize=4)


def default_workers() -> int:
    return max(1, min(os.cpu_count() or 1, 8))


def store_sinks(store: Any) -> SinkChain:
    """The evidence store's sinks, as the daemon writes them (rows, then checkpoints)."""
    from mevwatch.monitor.sinks.registry import SinkContext, build_sinks

    return SinkChain(build_sinks(["clickhouse", "checkpoint"], SinkContext(store=store, publish_alerts=False)))


# --- driver --------------------------------------------------------------------------------
def replay_files(
    paths: list[Path],
    *,
    fmt: str = "auto",
    out: IO[bytes] | None = None,
    workers: int | None = None,
    chain_id: int = 1,
    on_block: Callable[[int], None] | None = None,
    on_alert: Callable[[bytes], None] | None = None,
    on_event: Callable[[AlertEvent], None] | None = None,
    store: Any = None,
    scorer: Any = None,
    batch: int = 64,
    confirmations: int = REPLAY_CONFIRMATIONS,
    settle: bool = True,
) -> ReplaySummary:
    """Replay ``paths`` through the engine; write alert lines to ``out`` (and, given ``store``, every
    stage, swaps and blocks to the evidence store); call ``on_block`` after each block. With a
    ``scorer``, mev-inspect blocks are scored ``batch`` blocks per forward pass in this process."""
    files = discover(paths, fmt)
    thresholds = _batch_gc()
    try:
        return _replay(files, rep_kw={"chain_id": chain_id, "out": out, "on_block": on_block, "on_alert": on_alert,
                                      "on_event": on_event, "scorer": scorer, "confirmations": confirmations},
                       store=store, workers=workers, batch=batch, settle=settle, chain_id=chain_id, scorer=scorer)
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


def _replay(files, *, rep_kw: dict, store: Any, workers: int | None, batch: int, settle: bool, chain_id: int,
            scorer: Any) -> ReplaySummary:
    rep = Replayer(**rep_kw, sinks=store_sinks(store) if store is not None else None)
    mev = [str(p) for p, f in files if f == "mev-inspect"]
    jsonl = [p for p, f in files if f == "jsonl"]
    step = batch if scorer is not None else 1
    source = _map_files(mev, chain_id, 1 if scorer is not None else (workers or default_workers()))
    chunk: list[tuple[Block, Analysed | None]] = []
    for kind, payload in source:
        if kind == "error":
            rep.problem(*payload)
            continue
        payload.unslim()
        chunk.append((payload.decoded.block, payload))
        if len(chunk) >= step:
            rep.blocks(chunk)
            chunk = []
    rep.blocks(chunk)
    for path in jsonl:
        n = 0
        try:
            for n, msg in iter_jsonl(path):
                if isinstance(msg, Exception):
                    rep.problem(str(path), f"line {n}", getattr(msg, "reason", str(msg)), getattr(msg, "raw", None))
                    continue
                rep.message(msg)
        except InputError as exc:  # the rest of this file is unreadable (corrupt gzip, a cap): the lines before it stand
            rep.problem(str(path), f"after line {n}", getattr(exc, "reason", str(exc)))
    return rep.finish(settle)
