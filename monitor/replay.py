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

One bad input costs one input: a block whose analysis fails, or (with the store) holds a value
the store's columns cannot (:func:`store_problem`), is rejected by name; a write the store refuses
is retried block by block, and only the blocks it still refuses are rejected
(:meth:`Replayer._write`); a worker process that dies (the out-of-memory killer) costs the file it
was on, retried once in a fresh process (:class:`WorkerPool`). The summary counts the rejected
inputs and what reached the store.
"""

from __future__ import annotations

import gc
import heapq
import math
import multiprocessing as mp
import multiprocessing.connection as mp_connection
import os
import signal
import threading
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from mevwatch.monitor.alerts import AlertEvent
from mevwatch.monitor.batch import Batch
from mevwatch.monitor.decode.tokenflow import AnyDecoder, make_decoder
from mevwatch.monitor.engine import Analysed, Engine, analyse
from mevwatch.monitor.errors import InputError, MevwatchError
from mevwatch.monitor.kinds import Stage
from mevwatch.monitor.log import get_logger
from mevwatch.monitor.shard import Shard
from mevwatch.monitor.sinks.base import SinkChain, retriable
from mevwatch.monitor.types import WETH_ADDRESS, Block, DecodeStats, Message, PendingTx
from mevwatch.streams.cryo import CryoDataset, LoadedRange, load_range, open_cryo, part_blocks, range_paths
from mevwatch.streams.files import discover, iter_jsonl, read_mev_inspect

STORE_BATCH_BLOCKS = 500  # blocks per write to the store
REPLAY_CONFIRMATIONS = 12  # finality depth while replaying (everything is final at the end anyway)
ORIGINS_KEPT = 4096  # blocks whose file and position are remembered, to name them when the store refuses them
U64, U32 = 2**64, 2**32

Origin = tuple[str, str | None]  # (file, position) of an input, as a rejection names it
log = get_logger("mevwatch.replay")


class ReplayWorkerError(MevwatchError):
    """The replay's worker processes cannot run at all (they die as they start)."""


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
    stored: Counter = field(default_factory=Counter)  # rows that reached the store: alerts (stage events), swaps, blocks, ...

    @property
    def rejected(self) -> int:
        """Inputs rejected (each named in ``problems``; the dead-letter file holds them all)."""
        return len(self.problems)

    def add_block(self, number: int, n_txs: int, stats: DecodeStats) -> None:
        self.blocks += 1
        self.transactions += n_txs
        self.stats.merge(stats)
        self.first_block = number if self.first_block is None else min(self.first_block, number)
        self.last_block = number if self.last_block is None else max(self.last_block, number)

    def coverage(self) -> tuple[int, int, float | None]:
        """Swap-like calls the decoders explained, those they did not, and the share explained."""
        decoded, undecoded = self.stats.swap_calls()
        return decoded, undecoded, self.stats.coverage()


class Replayer:
    """An engine over recorded messages, its output lines and (optionally) the store's sinks.

    Each message is isolated: a block the store cannot hold (a value that does not fit its column),
    or one whose analysis fails, is rejected (:meth:`problem`, naming its file and position) and the
    rest goes on; a write the store refuses is retried block by block, and only the blocks it still
    refuses are rejected (:meth:`_write`)."""

    def __init__(self, *, chain_id: int = 1, out: IO[bytes] | None = None, on_block: Callable[[int], None] | None = None,
                 on_alert: Callable[[bytes], None] | None = None, on_event: Callable[[AlertEvent], None] | None = None,
                 sinks: SinkChain | None = None, scorer: Any = None, confirmations: int = REPLAY_CONFIRMATIONS,
                 engine: Engine | None = None, decoders: str = "full", oracle: Any = None, by_block: bool = False,
                 on_written: Callable[[int], None] | None = None, native_wrapper: str | None = None):
        self.engine = engine or Engine(chain_id=chain_id, confirmations=confirmations, scorers=[scorer] if scorer else [],
                                       decoders=decoders, oracle=oracle, final_by_block=by_block, native_wrapper=native_wrapper)
        self.out, self.on_block, self.on_alert, self.on_event = out, on_block, on_alert, on_event
        self.sinks = sinks
        # block-numbered versions (settled history: node ranges, mev-inspect files, cryo datasets; never
        # recordings): a block's event is its number (monitor/lifecycle.py), so shards write one run's rows
        self.by_block = by_block
        self.on_written = on_written  # after each write to the store: the first block not yet settled there
        self._next_block: int | None = None  # the block after the highest one processed
        self.lowest_rejected: int | None = None  # a checkpoint never passes a rejected block (a resumed run retries it)
        self.summary = ReplaySummary()
        self.batch = Batch()
        self.offset = 0  # the next block event's number
        self._emitted = 0
        self._blocks_in_batch = 0
        self._origins: OrderedDict[int, list[Origin]] = OrderedDict()  # recent block numbers -> where they came from
        self._started = time.perf_counter()

    # --- input -------------------------------------------------------------------------------
    def message(self, msg: Message, origin: Origin | None = None) -> None:
        """One recorded message; ``origin`` (file, position) names it in a rejection."""
        if isinstance(msg, Block):
            self.blocks([(msg, None)], [origin] if origin is not None else None)
            return
        if self.by_block:  # recordings are replayed in input order (replay_files never sets by_block for them)
            self.problem(*(origin or ("<message>", None)), "a pending transaction or revert in a replay of settled "
                         "history (block-numbered versions): not processed")
            return
        marks = self._marks()
        try:
            if isinstance(msg, PendingTx):
                self.engine.pending(msg, self.batch)
            else:
                self.engine.revert(msg, self.offset, self.batch)
        except Exception as exc:  # noqa: BLE001 - a bug must cost one message, not the whole replay
            self._rollback(marks)
            self.problem(*(origin or ("<message>", None)), f"internal error while processing this message: {exc!r} (please report it)")
            return
        if isinstance(msg, PendingTx):
            self.summary.pending += 1
        else:
            self.summary.reverts += 1
            self._next_offset()
        self._drain()

    def blocks(self, items: list[tuple[Block, Analysed | None]], origins: list[Origin | None] | None = None) -> None:
        """Blocks in input order (given their analysis when a worker made it; else made here);
        ``origins``: where each came from (file, position), for rejections."""
        if not items:
            return
        todo: list[tuple[Block, Analysed, Origin | None]] = []
        for i, (b, a) in enumerate(items):
            origin = origins[i] if origins is not None else None
            if self.sinks is not None:
                unfit = store_problem(b)
                if unfit is not None:
                    self.problem(*self._named(origin, b), f"field {unfit[0]!r}: {unfit[1]}")
                    self.rejected_block(b.number)
                    continue
            if a is None:
                try:
                    a = analyse(self.engine.decoder, b, self.engine.registry, self.engine.oracle)
                except Exception as exc:  # noqa: BLE001 - a bug must cost one block, not the whole replay
                    self.problem(*self._named(origin, b), f"internal error while processing this block: {exc!r} (please report it)")
                    self.rejected_block(b.number)
                    continue
            todo.append((b, a, origin))
        if not todo:
            return
        marks = self._marks()
        done = [(b, b.number if self.by_block else self._next_offset(), a) for b, a, _o in todo]
        try:
            self.engine.blocks(done, self.batch)
        except Exception as exc:  # noqa: BLE001
            self._rollback(marks)
            if not self.by_block:
                self.offset -= len(done)
            together = f" (one of {len(done)} blocks scored together)" if len(done) > 1 else ""
            for b, _a, origin in todo:
                self.problem(*self._named(origin, b), f"internal error while processing this block{together}: {exc!r} (please report it)")
                self.rejected_block(b.number)
            return
        for block, an, origin in todo:
            self.summary.add_block(block.number, len(block.transactions), an.decoded.stats)
            self._next_block = max(self._next_block or 0, block.number + 1)
            if self.sinks is not None:
                self._remember(block.number, self._named(origin, block))
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

    @staticmethod
    def _named(origin: Origin | None, block: Block) -> Origin:
        return origin if origin is not None else (f"block {block.number}", None)

    def _remember(self, number: int, origin: Origin) -> None:
        """Where a block came from, for a store rejection (the newest blocks only: bounded memory)."""
        self._origins.setdefault(number, []).append(origin)
        self._origins.move_to_end(number)
        while len(self._origins) > ORIGINS_KEPT:
            self._origins.popitem(last=False)

    def _marks(self) -> tuple[int, ...]:
        b = self.batch
        return len(b.alerts), len(b.swaps), len(b.pending), len(b.fates), len(b.blocks)

    def _rollback(self, marks: tuple[int, ...]) -> None:
        """Undo what a failed step appended to the batch (its rows must not reach the store)."""
        b = self.batch
        lists: tuple[list[Any], ...] = (b.alerts, b.swaps, b.pending, b.fates, b.blocks)
        for rows, n in zip(lists, marks):
            del rows[n:]

    def _drain(self) -> None:
        for ev in self.batch.alerts[self._emitted:]:
            if self.on_event is not None:
                self.on_event(ev)
            if ev.alert.stage == Stage.FINAL:
                continue
            try:
                line = ev.alert.to_jsonl()
            except (TypeError, ValueError, OverflowError) as exc:  # a value JSON cannot hold: this alert, not the run
                n = ev.alert.block_number
                source, position = (self._origins.get(n) or [(f"block {n}", None)])[-1] if isinstance(n, int) else ("<alert>", None)
                self.problem(source, position, f"alert {ev.alert.alert_id} ({ev.alert.kind}, {ev.alert.stage}) cannot be written: {exc}")
                continue
            self.summary.alerts_by_kind[ev.alert.kind] += 1
            if self.out is not None:
                self.out.write(line)
            if self.on_alert is not None:
                self.on_alert(line)
        self._emitted = len(self.batch.alerts)

    def _write(self) -> None:
        batch = self.batch
        self.batch = Batch()
        self._emitted = 0
        self._blocks_in_batch = 0
        if self.sinks is None or not len(batch):
            self._written()
            return
        try:
            self.sinks.write(batch)
        except Exception as exc:  # noqa: BLE001 - refused rows: find the blocks they belong to
            if retriable(exc):
                raise  # the store is away: the run stops (nothing here is wrong with the input)
            self._write_each(batch, exc)
            self._written()
            return
        self.summary.stored.update(_counts(batch))
        self._written()

    def rejected_block(self, number: Any) -> None:
        """Block ``number`` was rejected: progress recorded for a checkpoint stops below it."""
        if isinstance(number, int) and not isinstance(number, bool):
            self.lowest_rejected = number if self.lowest_rejected is None else min(self.lowest_rejected, number)

    def _written(self) -> None:
        """Tell ``on_written`` the first block not yet settled in the store: below it every block was
        written and its alerts are final (an alert still open names its block)."""
        if self.on_written is None or self._next_block is None:
            return
        opened = [a.block_number for a in self.engine.lifecycle.open.values() if a.block_number is not None]
        rejected = [self.lowest_rejected] if self.lowest_rejected is not None else []
        self.on_written(min([self._next_block, *opened, *rejected]))

    def _write_each(self, batch: Batch, first: BaseException) -> None:
        """The store refused ``batch``: write it block by block; reject the blocks it still refuses."""
        log.warning("the store refused a batch; writing it block by block", error=str(first)[:300])
        for number, part in _by_block(batch):
            try:
                self.sinks.write(part)  # type: ignore[union-attr]
            except Exception as exc:  # noqa: BLE001
                if retriable(exc):
                    raise
                why = f"the store refused this block's rows ({type(exc).__name__}: {str(exc)[:300]}); not stored"
                if number is None:
                    self.problem("<store>", None, f"{len(part)} rows of pending transactions and their fates: " + why)
                    continue
                self.rejected_block(number)
                if self.out is not None or self.on_alert is not None:
                    why += " (its alerts are in the output)"
                for source, position in self._origins.get(number) or [(f"block {number}", None)]:
                    self.problem(source, position, why)
                continue
            self.summary.stored.update(_counts(part))


def store_problem(block: Block) -> tuple[str, str] | None:
    """(field, why) for the first value of ``block`` the evidence store's columns cannot hold, or None.

    The parsers already reject values out of the 64-bit and timestamp ranges; this adds what only the
    store needs (a transaction position is a UInt32 column, hashes are strings), so that such a block
    is one named rejection instead of a refused (or silently wrapped) batch of 500."""
    n = block.number
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n < U64:
        return "block_number", f"{str(n)[:40]} does not fit the store's UInt64 column (0 to 2^64-1)"
    ts = block.timestamp
    if isinstance(ts, bool) or not isinstance(ts, int) or not 0 <= ts < U32:
        return "timestamp", f"{str(ts)[:40]} does not fit the store's DateTime column (0 to 2^32-1 seconds)"
    for name, v in (("block_hash", block.hash), ("parent_hash", block.parent_hash)):
        if v is not None and not isinstance(v, str):
            return name, f"expected a string, got {type(v).__name__}"
    for i, tx in enumerate(block.transactions):
        if not isinstance(tx.hash, str):
            return f"transactions[{i}].hash", f"expected a string, got {type(tx.hash).__name__}"
        p = tx.position
        if isinstance(p, bool) or not isinstance(p, int) or not 0 <= p < U32:
            return (f"transactions[{i}].transaction_index", f"{str(p)[:40]} (transaction {tx.hash[:66]}) does not fit the store's "
                    "UInt32 column tx_position (0 to 2^32-1)")
    return None


def _counts(batch: Batch) -> Counter:
    return Counter(alerts=len(batch.alerts), swaps=len(batch.swaps), pending=len(batch.pending), fates=len(batch.fates),
                   blocks=len(batch.blocks))


def _by_block(batch: Batch) -> list[tuple[int | None, Batch]]:
    """``batch`` split by block number (rows of no block, such as pending transactions: None, first)."""
    parts: dict[int | None, Batch] = {}

    def part(n: Any) -> Batch:
        key = n if isinstance(n, int) else None
        if key not in parts:
            parts[key] = Batch()
        return parts[key]

    for ev in batch.alerts:
        part(ev.alert.block_number).alerts.append(ev)
    for r in batch.swaps:
        part(r[0]).swaps.append(r)
    for r in batch.pending:
        part(None).pending.append(r)
    for r in batch.fates:
        part(r[2]).fates.append(r)
    for r in batch.blocks:
        part(r[0]).blocks.append(r)
    return sorted(parts.items(), key=lambda kv: (kv[0] is not None, kv[0] or 0))


# --- worker side ------------------------------------------------------------------------
_decoder: AnyDecoder | None = None
_decoders = "full"  # the decoders mode of this process's decoder (monitor/decode/tokenflow.py)
_wrapper = WETH_ADDRESS  # the chain's wrapped native token (monitor/chains.py)


def _worker_init(decoders: str = "full", wrapper: str = WETH_ADDRESS) -> None:
    global _decoder, _decoders, _wrapper
    _decoder, _decoders, _wrapper = make_decoder(decoders, native_wrapper=wrapper), decoders, wrapper
    _forget_range()
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
        _decoder = make_decoder(_decoders, native_wrapper=_wrapper)
    try:
        block = read_mev_inspect(Path(path), chain_id)
        done = analyse(_decoder, block)
    except InputError as exc:
        return "error", (path, exc.position, exc.reason)
    except Exception as exc:  # noqa: BLE001 - a bug must cost one file, not the whole replay
        return "error", (path, None, f"internal error while processing this block: {exc!r} (please report it)")
    return "ok", done.slim() if slim else done  # slim: sent back from a worker process


# A replay unit is a mev-inspect file (its path) or a part of a cryo range: ("cryo", the range's files, part
# index, parts). Worker processes analyse units; a cryo range is cut in parts of about PART_BLOCKS blocks so
# that the workers share one range (cryo writes 1,000-block files), each reading the range's tables once.
CryoUnit = tuple[str, tuple[str, ...], int, int]
Unit = str | CryoUnit
PART_BLOCKS = 16
MAX_PARTS = 256  # per range: a blocks file's row count is the file's own claim (a hostile one could claim billions)
_loaded: LoadedRange | None = None  # the cryo range this process read last (its parts come one after another)
_loaded_key: tuple[tuple[str, int, int], ...] = ()  # its files, with their sizes and modification times


def _forget_range() -> None:
    global _loaded, _loaded_key
    _loaded, _loaded_key = None, ()


def unit_name(unit: Unit) -> str:
    if isinstance(unit, str):
        return unit
    _, paths, index, parts = unit
    return f"{paths[0]} (part {index + 1} of {parts})"


def cryo_units(cryo: CryoDataset) -> list[CryoUnit]:
    out: list[CryoUnit] = []
    for r in cryo.ranges:
        k = min(MAX_PARTS, max(1, math.ceil(r.files["blocks"].rows / PART_BLOCKS)))
        out += [("cryo", range_paths(r), i, k) for i in range(k)]
    return out


def _range_key(paths: tuple[str, ...]) -> tuple[tuple[str, int, int], ...]:
    """The files with their sizes and modification times: a range rewritten since it was read is read again."""
    out = []
    for p in paths:
        try:
            st = os.stat(p)
            out.append((p, st.st_size, st.st_mtime_ns))
        except OSError:
            out.append((p, -1, -1))
    return tuple(out)


def _analyse_part(unit: CryoUnit, chain_id: int, slim: bool) -> tuple[str, Any]:
    """("cryo", [("ok", analysed, file, position) | ("error", (file, position, reason)), ...]) for a cryo part."""
    global _decoder, _loaded, _loaded_key
    if _decoder is None:
        _decoder = make_decoder(_decoders, native_wrapper=_wrapper)
    _, paths, index, parts = unit
    out: list[tuple[Any, ...]] = []
    try:
        key = _range_key(paths)
        if _loaded is None or _loaded_key != key:
            _forget_range()
            ds = open_cryo([Path(p) for p in paths], chain_id)
            loaded = load_range(ds.ranges[0])
            if loaded.tables:  # a failed read is not kept: the next part tries again (a failure may pass)
                _loaded, _loaded_key = loaded, key
        else:
            loaded = _loaded
        for where, position, item in part_blocks(loaded, index, parts, chain_id):
            if isinstance(item, InputError):
                out.append(("error", (where, position, item.reason)))
                continue
            try:
                done = analyse(_decoder, item)
            except Exception as exc:  # noqa: BLE001 - a bug must cost one block, not the whole replay
                out.append(("error", (where, position, f"internal error while processing this block: {exc!r} (please report it)")))
                continue
            out.append(("ok", done.slim() if slim else done, where, position))
    except InputError as exc:  # the range's files changed or went away since the replay checked them
        out.append(("error", (exc.source or unit_name(unit), exc.position or f"part {index + 1} of {parts}", exc.reason)))
    except Exception as exc:  # noqa: BLE001 - a bug must cost this part, named, not the whole replay
        out.append(("error", (unit_name(unit), None, f"internal error while reading this part of the range: {exc!r} "
                                                     "(please report it)")))
    return "cryo", out


def _analyse_unit(unit: Unit, chain_id: int, slim: bool) -> tuple[str, Any]:
    return _analyse_file((unit, chain_id, slim)) if isinstance(unit, str) else _analyse_part(unit, chain_id, slim)


# --- worker processes ------------------------------------------------------------------------
FAULT_ENV = "MEVWATCH_REPLAY_FAULT"


def _fault_hook() -> Callable[[str], None] | None:
    """Test-only: ``MEVWATCH_REPLAY_FAULT=kill:<substring>`` makes a replay worker process SIGKILL
    itself (as the out-of-memory killer would) when it starts on a file whose path holds
    ``<substring>``; ``kill-once:<substring>:<marker file>`` does so only while the marker file does
    not exist yet (it is created first: the retry then succeeds). Never set it outside tests."""
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return None
    kind, _, rest = spec.partition(":")
    if kind not in ("kill", "kill-once") or not rest:
        return None
    needle, _, marker = rest.partition(":") if kind == "kill-once" else (rest, "", "")

    def hook(path: str) -> None:
        if needle not in path:
            return
        if marker:
            try:
                os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                return
        os.kill(os.getpid(), signal.SIGKILL)

    return hook


def _worker_main(conn: Any, chain_id: int, decoders: str = "full", wrapper: str = WETH_ADDRESS) -> None:
    """A worker process: analyses the files the parent sends (lists of (index, path)), one message per file."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it ends the workers
    _worker_init(decoders, wrapper)
    fault = _fault_hook()
    conn.send(("ready", os.getpid()))
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        for idx, unit in task:
            if fault is not None:
                fault(unit_name(unit))
            result = _analyse_unit(unit, chain_id, True)
            try:
                conn.send((idx, result))
            except (EOFError, OSError):
                return
            except Exception as exc:  # noqa: BLE001 - a result that cannot be sent back costs its file
                conn.send((idx, ("error", (unit_name(unit), None, f"internal error: the result could not be sent back: {exc!r} "
                                                                   "(please report it)"))))


def _how(exitcode: int | None) -> str:
    if exitcode is None:
        return "it stopped answering"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"killed by {name}" + (", as the out-of-memory killer does" if -exitcode == signal.SIGKILL else "")
    return f"exit code {exitcode}"


@dataclass
class _Slot:
    proc: Any
    conn: Any
    queue: deque = field(default_factory=deque)  # indexes sent and not answered yet, in the order sent
    ready: bool = False


class WorkerPool:
    """Worker processes analysing replay units (mev-inspect files, parts of cryo ranges); :meth:`results`
    yields them in input order.

    A worker that dies (the out-of-memory killer, a crash in native code) costs only the unit it was
    on: the parent sees the process end, starts a fresh one and sends that unit once more (the units
    queued behind it go on as usual); when it kills that worker too, the unit is rejected with the
    reason. Units go out ``CHUNK`` at a time, at most two chunks queued per worker, and never more
    than ``window`` units ahead of the one the caller waits for (results that arrive early are held
    in memory: up to ``window`` files, or ``window`` parts of ``PART_BLOCKS`` blocks). A scheduler thread sends the work and receives the results, so workers never wait
    for the caller to come back for the next result.
    """

    CHUNK = 4
    START_FAILURES = 3  # workers dying before they are ready, in a row: the replay stops

    def __init__(self, paths: list[Unit], chain_id: int, workers: int, ctx: Any = None, decoders: str = "full",
                 wrapper: str = WETH_ADDRESS):
        self.paths, self.chain_id, self.decoders, self.wrapper = paths, chain_id, decoders, wrapper
        self.ctx = ctx or (mp.get_context("fork") if hasattr(os, "fork") else mp.get_context())
        self.window = max(64, workers * self.CHUNK * 8)
        self.deaths: Counter[int] = Counter()  # per file: workers that died on it
        self._todo = list(range(len(paths)))  # a heap of indexes not sent yet (or to send again)
        self._results: dict[int, tuple[str, Any]] = {}
        self._produced = 0
        self._next = 0  # the index the caller waits for
        self._cond = threading.Condition()
        self._error: BaseException | None = None
        self._closing = False
        self._start_failures = 0
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._slots: list[_Slot] = []
        try:
            self._slots = [self._spawn() for _ in range(max(1, workers))]
        except BaseException:
            self._stop_workers()
            raise
        self._thread = threading.Thread(target=self._run, name="mevwatch-replay-workers", daemon=True)
        self._thread.start()

    # --- the caller's side ------------------------------------------------------------------------
    def results(self) -> Iterator[tuple[str, Any]]:
        try:
            for i in range(len(self.paths)):
                with self._cond:
                    while i not in self._results and self._error is None:
                        self._cond.wait()
                    if i not in self._results:
                        assert self._error is not None
                        raise self._error
                    r = self._results.pop(i)
                    self._next = i + 1
                self._wake()
                yield r
        finally:
            self.close()

    def close(self) -> None:
        with self._cond:
            self._closing = True
        self._wake()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=30)
        self._stop_workers(graceful=self._produced == len(self.paths))  # stopped early (Ctrl-C, an error): at once
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass
        self._wake_r = self._wake_w = -1

    # --- the scheduler thread ---------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    if self._closing or self._produced == len(self.paths):
                        return
                    limit = self._next + self.window
                for s in list(self._slots):
                    self._assign(s, limit)
                waitable = [self._wake_r] + [s.conn for s in self._slots] + [s.proc.sentinel for s in self._slots]
                ready = set(mp_connection.wait(waitable))
                if self._wake_r in ready:
                    try:
                        os.read(self._wake_r, 4096)
                    except BlockingIOError:
                        pass
                for s in list(self._slots):
                    if s.conn in ready or s.proc.sentinel in ready:
                        self._service(s)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            with self._cond:
                self._error = exc
                self._cond.notify_all()

    def _assign(self, s: _Slot, limit: int) -> None:
        while len(s.queue) < 2 * self.CHUNK and self._todo and self._todo[0] < limit:
            chunk: list[int] = []
            while len(chunk) < self.CHUNK and self._todo and self._todo[0] < limit:
                chunk.append(heapq.heappop(self._todo))
            s.queue.extend(chunk)
            try:
                s.conn.send([(i, self.paths[i]) for i in chunk])
            except (OSError, EOFError):
                return  # it died: its sentinel says so, and the chunk is sent again

    def _service(self, s: _Slot) -> None:
        gone = False
        try:
            while s.conn.poll():
                msg = s.conn.recv()
                if msg[0] == "ready":
                    s.ready = True
                    self._start_failures = 0
                    continue
                idx, result = msg
                if s.queue and s.queue[0] == idx:
                    s.queue.popleft()
                else:
                    s.queue.remove(idx)
                self._put(idx, result)
        except (EOFError, OSError):
            gone = True  # the process closed its end: it is ending
        if gone or not s.proc.is_alive():
            self._died(s)

    def _put(self, idx: int, result: tuple[str, Any]) -> None:
        with self._cond:
            self._results[idx] = result
            self._produced += 1
            self._cond.notify_all()

    def _died(self, s: _Slot) -> None:
        s.proc.join(timeout=5)
        if s.proc.is_alive():  # its pipe closed but it lingers: end it (it is replaced)
            s.proc.kill()
            s.proc.join(timeout=5)
        how = _how(s.proc.exitcode)
        lost = list(s.queue)
        s.queue.clear()
        try:
            s.conn.close()
        except OSError:
            pass
        self._slots.remove(s)
        if not s.ready:
            self._start_failures += 1
            if self._start_failures > self.START_FAILURES:
                raise ReplayWorkerError(f"replay worker processes die as they start ({how}); try --workers 1")
        elif lost:
            first = lost[0]
            self.deaths[first] += 1
            path = unit_name(self.paths[first])
            what = "file" if isinstance(self.paths[first], str) else "part of a cryo range"
            if self.deaths[first] >= 2:
                lost = lost[1:]
                log.warning(f"a replay worker died on this {what} again; {what} rejected", file=path, exit=how)
                self._put(first, ("error", (path, None, f"the worker process died while analysing this {what} ({how}), and "
                                                        f"again when the {what} was sent once more to a fresh one; {what} skipped "
                                                        "(if memory ran out: fewer --workers, or more memory)")))
            else:
                log.warning("a replay worker died; its file goes once more to a fresh worker", file=path, exit=how)
        for i in lost:
            heapq.heappush(self._todo, i)
        with self._cond:
            if self._closing:
                return
        self._slots.append(self._spawn())

    def _spawn(self) -> _Slot:
        parent, child = self.ctx.Pipe()
        proc = self.ctx.Process(target=_worker_main, args=(child, self.chain_id, self.decoders, self.wrapper), name="mevwatch-replay-worker", daemon=True)
        proc.start()
        child.close()
        return _Slot(proc, parent)

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except (BlockingIOError, OSError):
            pass  # already woken (or closed)

    def _stop_workers(self, graceful: bool = False) -> None:
        for s in self._slots:
            try:
                if graceful:
                    s.conn.send(None)
                else:
                    s.proc.terminate()
            except (OSError, EOFError, ValueError):
                pass
        deadline = time.monotonic() + 5
        for s in self._slots:
            s.proc.join(timeout=max(0.0, deadline - time.monotonic()))
            if s.proc.is_alive():
                s.proc.terminate()
                s.proc.join(timeout=5)
            if s.proc.is_alive():
                s.proc.kill()
                s.proc.join()
            try:
                s.conn.close()
            except OSError:
                pass
        self._slots = []


def _map_files(paths: list[Unit], chain_id: int, workers: int, decoders: str = "full",
               wrapper: str = WETH_ADDRESS) -> Generator[tuple[str, Any], None, None]:
    if workers <= 1 or len(paths) < 4:
        _worker_init(decoders, wrapper)
        for p in paths:
            yield _analyse_unit(p, chain_id, False)
        return
    yield from WorkerPool(paths, chain_id, workers, decoders=decoders, wrapper=wrapper).results()


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
    decoders: str = "full",
    shard: Shard | None = None,
    native_wrapper: str | None = None,
) -> ReplaySummary:
    """Replay ``paths`` through the engine; write alert lines to ``out`` (and, given ``store``, every
    stage, swaps and blocks to the evidence store); call ``on_block`` after each block. With a
    ``scorer``, mev-inspect blocks are scored ``batch`` blocks per forward pass in this process.

    Inputs of settled history only (mev-inspect files, cryo datasets) get block-numbered versions
    (monitor/lifecycle.py); with a JSONL recording among them, versions follow the input's block
    events, as the daemon that recorded it numbered them. ``shard``: only that shard's units
    (monitor/shard.py); recordings cannot be sharded (InputError)."""
    files = discover(paths, fmt)
    by_block = not any(f == "jsonl" for _p, f in files)
    if shard is not None and not by_block:
        raise InputError("a JSONL recording cannot be sharded: it is one ordered stream of events (pending "
                         "transactions whose fates span blocks, reverts); replay it whole, or shard block files",
                         source=next(str(p) for p, f in files if f == "jsonl"))
    thresholds = _batch_gc()
    try:
        return _replay(files, rep_kw={"chain_id": chain_id, "out": out, "on_block": on_block, "on_alert": on_alert,
                                      "on_event": on_event, "scorer": scorer, "confirmations": confirmations,
                                      "decoders": decoders, "by_block": by_block, "native_wrapper": native_wrapper},
                       store=store, workers=workers, batch=batch, settle=settle, chain_id=chain_id, scorer=scorer,
                       shard=shard)
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


def shard_units(files: list[tuple[Path, str]], shard: Shard, chain_id: int = 1) -> tuple[list[str], Any]:
    """Shard ``shard``'s mev-inspect files and cryo dataset (its ranges only; None when it has none):
    the units of the input (one mev-inspect file, one cryo range) in input order, cut as
    monitor/shard.py says."""
    cryo_files = [p for p, f in files if f == "cryo"]
    cryo = open_cryo(cryo_files, chain_id) if cryo_files else None
    units: list[tuple[str, Any]] = [("mev", str(p)) for p, f in files if f == "mev-inspect"]
    units += [("cryo", r) for r in (cryo.ranges if cryo is not None else [])]
    mine = shard.units(units)
    mev = [u for k, u in mine if k == "mev"]
    if cryo is not None:
        cryo.ranges = [u for k, u in mine if k == "cryo"]
        if not cryo.ranges:
            cryo = None
    return mev, cryo


def _replay(files, *, rep_kw: dict, store: Any, workers: int | None, batch: int, settle: bool, chain_id: int,
            scorer: Any, shard: Shard | None = None) -> ReplaySummary:
    rep = Replayer(**rep_kw, sinks=store_sinks(store) if store is not None else None)
    jsonl = [p for p, f in files if f == "jsonl"]
    # cryo datasets: schemas checked now, before any work (a file that is not cryo's stops the run by name)
    mev, cryo = shard_units(files, shard or Shard(0, 1), chain_id)
    step = batch if scorer is not None else 1
    n_workers = 1 if scorer is not None else (workers or default_workers())
    units: list[Unit] = list(mev)
    if cryo is not None and n_workers > 1:  # the workers read and decode cryo ranges too, part by part
        units += cryo_units(cryo)
        cryo = None
    source = _map_files(units, chain_id, n_workers, rep.engine.decoders, rep.engine.wrapper)
    chunk: list[tuple[Block, Analysed | None]] = []
    origins: list[Origin | None] = []
    reported: set[tuple[Any, ...]] = set()

    def take(done: Analysed, origin: Origin) -> None:
        """A worker's analysed block into the next batch (a bug unpacking it costs that block)."""
        nonlocal chunk, origins
        try:
            done.unslim()
        except Exception as exc:  # noqa: BLE001 - a bug must cost one block
            rep.problem(origin[0], origin[1], f"internal error while processing this block: {exc!r} (please report it)")
            return
        chunk.append((done.decoded.block, done))
        origins.append(origin)
        if len(chunk) >= step:
            rep.blocks(chunk, origins)
            chunk, origins = [], []

    try:
        for i, (kind, payload) in enumerate(source):
            if kind == "error":
                rep.problem(*payload)
            elif kind == "cryo":
                for got in payload:
                    if got[0] == "ok":
                        take(got[1], (got[2], got[3]))
                    elif got[1] not in reported:  # a range's problem, met by each of its parts: reported once
                        reported.add(got[1])
                        rep.problem(*got[1])
            else:
                take(payload, (mev[i], None))
    finally:
        source.close()  # the worker processes end now, also when the store stops the run
        _forget_range()  # a range read in this process (few units: no workers) is not kept
    rep.blocks(chunk, origins)
    chunk, origins = [], []
    if cryo is not None:  # assembled blocks in block order, in this process; a bad row costs its block
        for where, position, item in cryo.blocks():
            if isinstance(item, InputError):
                rep.problem(where, position, item.reason)
                continue
            chunk.append((item, None))
            origins.append((where, position))
            if len(chunk) >= step:
                rep.blocks(chunk, origins)
                chunk, origins = [], []
        rep.blocks(chunk, origins)
    for path in jsonl:
        n = 0
        try:
            for n, msg in iter_jsonl(path):
                if isinstance(msg, Exception):
                    rep.problem(str(path), f"line {n}", getattr(msg, "reason", str(msg)), getattr(msg, "raw", None))
                    continue
                rep.message(msg, (str(path), f"line {n}"))
        except InputError as exc:  # the rest of this file is unreadable (corrupt gzip, a cap): the lines before it stand
            rep.problem(str(path), f"after line {n}", getattr(exc, "reason", str(exc)))
    return rep.finish(settle)
