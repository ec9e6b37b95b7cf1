"""Replay recorded history through the same decode and detect path as live runs.

mev-inspect files (one block each) are decoded in a pool of worker processes, in
input order; JSONL recordings are read line by line in this process, pending transactions
included (they go through the mempool rules, with pool reserves learnt from the
recorded blocks before them). Every alert
is written as one JSONL line in input order, so replaying the same input twice
yields identical output. Bad files and bad lines are recorded (file, position,
reason) and skipped; everything else is processed.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from monitor.alerts import Alert
from monitor.decode import BlockDecoder
from monitor.detect import detect_block
from monitor.errors import InputError
from monitor.types import Block, DecodeStats
from streams import envelope
from streams.files import discover, iter_jsonl, read_mev_inspect


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

    def add_block(self, number: int, n_txs: int, stats: DecodeStats, kinds: list[str]) -> None:
        self.blocks += 1
        self.transactions += n_txs
        self.stats.merge(stats)
        self.alerts_by_kind.update(kinds)
        self.first_block = number if self.first_block is None else min(self.first_block, number)
        self.last_block = number if self.last_block is None else max(self.last_block, number)


# --- worker side ------------------------------------------------------------------------
_decoder: BlockDecoder | None = None


def _worker_init() -> None:
    global _decoder
    _decoder = BlockDecoder()


def process_block(decoder: BlockDecoder, block: Block) -> tuple[DecodeStats, list[Alert]]:
    decoded = decoder.decode(block)
    return decoded.stats, detect_block(decoded)


def _process_file(item: tuple[str, int, bool]) -> tuple[str, Any]:
    path, chain_id, rows = item
    global _decoder
    if _decoder is None:
        _decoder = BlockDecoder()
    try:
        block = read_mev_inspect(Path(path), chain_id)
        decoded = _decoder.decode(block)
        stats, alerts = decoded.stats, detect_block(decoded)
        store_rows = None
        if rows:  # the block and swap rows of the evidence store, built where the decoded block is
            from monitor.store.store import StoreBatch

            sb = StoreBatch()
            sb.add_block(decoded, replay_version(block.number))
            store_rows = (sb.blocks, sb.swaps)
    except InputError as exc:
        return "error", (path, exc.position, exc.reason)
    except Exception as exc:  # noqa: BLE001 - a bug must cost one file, not the whole replay
        return "error", (path, None, f"internal error while processing this block: {exc!r} (please report it)")
    return "ok", (block.number, len(block.transactions), stats, [a.to_jsonl() for a in alerts], [a.kind for a in alerts],
                  store_rows)


def replay_version(block_number: int) -> int:
    """Row version of replayed history: final at block event ``block_number`` (docs/store.md)."""
    return ((block_number + 1) << 3) | 3


class StoreWriter:
    """Replayed alerts (at stage final: history is settled), swaps and blocks into the evidence
    store, in batches of about ``batch_blocks`` blocks, through the daemon's own write path."""

    def __init__(self, store: Any, batch_blocks: int = 500):
        from monitor.store.store import StoreBatch

        self.store, self.batch_blocks = store, batch_blocks
        self._new = StoreBatch
        self.batch = StoreBatch()
        self.blocks = 0
        self.alerts = 0

    def add(self, alerts: list[Alert], rows: tuple[list, list] | None, block_number: int | None) -> None:
        from monitor.alerts import AlertEvent, with_stage

        for a in alerts:
            if a.stage == "pending":
                self.batch.alerts.append(AlertEvent(a, 1))
            else:
                self.batch.alerts.append(AlertEvent(with_stage(a, "final"), replay_version(a.block_number or 0)))
        self.alerts += len(alerts)
        if rows is not None:
            self.batch.blocks += rows[0]
            self.batch.swaps += rows[1]
            self.blocks += 1
            if len(self.batch.blocks) >= self.batch_blocks:
                self.flush()

    def flush(self) -> None:
        if len(self.batch):
            self.store.write(self.batch)
        self.batch = self._new()


# --- driver --------------------------------------------------------------------------------
def default_workers() -> int:
    return max(1, min(os.cpu_count() or 1, 8))


def replay_files(
    paths: list[Path],
    *,
    fmt: str = "auto",
    out: IO[bytes] | None = None,
    workers: int | None = None,
    chain_id: int = 1,
    on_block: Callable[[int], None] | None = None,
    on_alert: Callable[[bytes], None] | None = None,
    store: Any = None,
    scorer: Any = None,
    batch: int = 64,
) -> ReplaySummary:
    """Replay ``paths``; write alert lines to ``out`` (and, given ``store``, alerts, swaps and
    blocks to the evidence store); call ``on_block`` after each block."""
    writer = StoreWriter(store) if store is not None else None
    files = discover(paths, fmt)
    summary = ReplaySummary()
    started = time.perf_counter()

    def emit(lines: Iterable[bytes]) -> None:
        for line in lines:
            if out is not None:
                out.write(line)
            if on_alert is not None:
                on_alert(line)

    mev = [str(p) for p, f in files if f == "mev-inspect"]
    jsonl = [p for p, f in files if f == "jsonl"]
    n_workers = workers or default_workers()
    source = _map_files(mev, chain_id, n_workers, writer is not None) if scorer is None else \
        _scored_files(mev, chain_id, scorer, batch, writer is not None)
    for kind, payload in source:
        if kind == "error":
            src, pos, reason = payload
            summary.problems.append(InputProblem(src, str(pos) if pos is not None else None, reason))
            continue
        number, n_txs, stats, lines, kinds, rows = payload
        summary.add_block(number, n_txs, stats, kinds)
        emit(lines)
        if writer is not None:
            from monitor.alerts import alert_from_json

            writer.add([alert_from_json(orjson.loads(x)) for x in lines], rows, number)
        if on_block:
            on_block(number)
    if jsonl:
        from monitor.detect.pending import MempoolWatcher

        decoder = BlockDecoder()
        watcher = MempoolWatcher(chain_id=chain_id)
        for path in jsonl:
            for n, msg in iter_jsonl(path):
                if isinstance(msg, Exception):
                    summary.problems.append(InputProblem(str(path), f"line {n}", getattr(msg, "reason", str(msg)), getattr(msg, "raw", None)))
                    continue
                if isinstance(msg, envelope.PendingTx):
                    summary.pending += 1
                    pending_alerts = watcher.on_pending(msg)
                    summary.alerts_by_kind.update(a.kind for a in pending_alerts)
                    emit(a.to_jsonl() for a in pending_alerts)
                    if writer is not None:
                        writer.add(pending_alerts, None, None)
                    continue
                if isinstance(msg, envelope.RevertEvent):
                    summary.reverts += 1
                    continue
                decoded = decoder.decode(msg)
                watcher.observe_block(decoded)
                stats, alerts = decoded.stats, detect_block(decoded)
                if scorer is not None:
                    scorer.fuse(alerts, scorer.score_block(decoded))
                summary.add_block(msg.number, len(msg.transactions), stats, [a.kind for a in alerts])
                emit(a.to_jsonl() for a in alerts)
                if writer is not None:
                    from monitor.store.store import StoreBatch

                    sb = StoreBatch()
                    sb.add_block(decoded, replay_version(msg.number))
                    writer.add(alerts, (sb.blocks, sb.swaps), msg.number)
                if on_block:
                    on_block(msg.number)
    if writer is not None:
        writer.flush()
    summary.elapsed_s = time.perf_counter() - started
    return summary


def _scored_files(paths: list[str], chain_id: int, scorer: Any, batch: int, rows: bool) -> Iterator[tuple[str, Any]]:
    """Like :func:`_map_files`, in this process, with the graph model scoring ``batch`` blocks per
    forward pass (replays are always behind: batching is what makes them fast)."""
    decoder = BlockDecoder()
    for start in range(0, len(paths), batch):
        chunk: list[tuple[str, Any]] = []
        decoded = []
        for path in paths[start:start + batch]:
            try:
                db = decoder.decode(read_mev_inspect(Path(path), chain_id))
            except InputError as exc:
                chunk.append(("error", (path, exc.position, exc.reason)))
                continue
            chunk.append(("ok", db))
            decoded.append(db)
        probs = iter(scorer.score_blocks(decoded)) if decoded else iter(())
        for kind, item in chunk:
            if kind == "error":
                yield kind, item
                continue
            db = item
            alerts = detect_block(db)
            scorer.fuse(alerts, next(probs))
            store_rows = None
            if rows:
                from monitor.store.store import StoreBatch

                sb = StoreBatch()
                sb.add_block(db, replay_version(db.block.number))
                store_rows = (sb.blocks, sb.swaps)
            yield "ok", (db.block.number, len(db.block.transactions), db.stats, [a.to_jsonl() for a in alerts],
                         [a.kind for a in alerts], store_rows)


def _map_files(paths: list[str], chain_id: int, workers: int, rows: bool = False) -> Iterator[tuple[str, Any]]:
    items = [(p, chain_id, rows) for p in paths]
    if workers <= 1 or len(items) < 4:
        _worker_init()
        for it in items:
            yield _process_file(it)
        return
    ctx = mp.get_context("fork") if hasattr(os, "fork") else mp.get_context()
    with ctx.Pool(workers, initializer=_worker_init) as pool:
        yield from pool.imap(_process_file, items, chunksize=4)
