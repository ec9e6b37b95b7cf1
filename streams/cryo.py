"""cryo parquet datasets (https://github.com/paradigmxyz/cryo): read them as blocks, write them from blocks.

A cryo dataset is a folder of parquet files named ``NETWORK__DATASET__START_to_END.parquet`` (or
``NETWORK__DATASET__SUFFIX__START_to_END.parquet``), one file per dataset and block range. mevwatch
reads four datasets, with cryo's column names and types (``crates/freeze/src/datasets/*.rs``):

- ``blocks``: block_number, timestamp; block_hash, parent_hash, author, base_fee_per_gas, chain_id
  when present;
- ``transactions``: block_number, transaction_index, transaction_hash, from_address, to_address,
  value, input, success; nonce, gas_used, gas_price (the effective price), max_priority_fee_per_gas,
  chain_id when present. ``value`` is a u256: cryo writes it by default as ``value_binary`` (32 bytes,
  big-endian), ``value_string`` (decimal) and ``value_f64``; the exact two are read (``value_string``
  first), a plain ``value`` column (string, binary or integer) too; ``value_f64`` alone is refused;
- ``logs`` (optional): block_number, transaction_index, log_index, address, topic0..topic3, data;
- ``traces`` (optional): block_number, transaction_index (``transaction_position`` in older cryo),
  action_type, action_call_type, action_from, action_to, action_value (decimal string), action_input,
  result_output, result_address, trace_address (``0_1_2``), subtraces, error; transaction_hash when
  present (checked against the transaction's).

The files of one range (the same name after the dataset) are read together; their rows are grouped
by block_number and assembled into :class:`~monitor.types.Block` objects in block order. A range with
traces gives blocks decoded from the traces (``has_traces``); without, from the logs, as mevwatch does
for nodes without tracers. Binary columns (cryo's default) become ``0x`` hex; hex strings (cryo
``--hex``) are read as well. A range needs blocks, transactions and logs or traces.

A file that is not cryo's schema (a missing column, a column of the wrong type) is an
:class:`InputError` naming the file and the column, raised by :func:`open_cryo` before any block is
read. A bad row (a hash of the wrong length, a negative number, a trace pointing to no transaction)
costs its block: :meth:`CryoDataset.blocks` yields an :class:`InputError` naming the file, the block
and the row, and goes on.

pyarrow (the ``embedded`` extra) is imported only when a cryo input is read or written.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mevwatch.monitor.errors import InputError
from mevwatch.monitor.types import Block, Log, Trace, Transaction

DATASETS = ("blocks", "transactions", "logs", "traces")
ALIASES = {"txs": "transactions", "events": "logs"}
EXTRA = "reading or writing cryo parquet datasets needs pyarrow: pip install 'mevwatch[embedded]'"
U32, U64, U256 = 2**32, 2**64, 2**256
MAX_TRACE_DEPTH = 1024
BATCH_BLOCKS = 64  # blocks turned into Python objects at a time (the arrow tables stay columnar)
_LABEL = re.compile(r"(\d+)_to_(\d+)")
_HEX = re.compile(r"0x[0-9a-f]*")
# cryo's call types (alloy's CallType) -> mevwatch's (parity's, as the decoders compare them)
_CALL_TYPES = {"call": "call", "delegate_call": "delegatecall", "static_call": "staticcall", "call_code": "callcode",
               "auth_call": "authcall", "none": ""}
_CRYO_CALL_TYPES = {v: k for k, v in _CALL_TYPES.items() if v}

# column -> kind: int, bin (binary or hex string), str, bool, u256 (string, binary or int)
_REQUIRED: dict[str, dict[str, str]] = {
    "blocks": {"block_number": "int", "timestamp": "int"},
    "transactions": {"block_number": "int", "transaction_index": "int", "transaction_hash": "bin",
                     "from_address": "bin", "to_address": "bin", "input": "bin", "success": "bool"},
    "logs": {"block_number": "int", "transaction_index": "int", "log_index": "int", "address": "bin",
             "topic0": "bin", "topic1": "bin", "topic2": "bin", "topic3": "bin", "data": "bin"},
    "traces": {"block_number": "int", "action_type": "str", "action_call_type": "str", "action_from": "bin",
               "action_to": "bin", "action_value": "u256", "action_input": "bin", "result_output": "bin",
               "trace_address": "trace_address", "subtraces": "int", "error": "str"},
}
_OPTIONAL: dict[str, dict[str, str]] = {
    "blocks": {"block_hash": "bin", "parent_hash": "bin", "author": "bin", "base_fee_per_gas": "int", "chain_id": "int"},
    "transactions": {"nonce": "int", "gas_used": "int", "gas_price": "int", "max_priority_fee_per_gas": "int",
                     "chain_id": "int"},
    "logs": {"transaction_hash": "bin"},
    "traces": {"transaction_hash": "bin", "result_address": "bin"},
}


def _pyarrow() -> Any:
    try:
        import pyarrow
        import pyarrow.compute
        import pyarrow.parquet
    except ImportError:
        raise InputError(EXTRA) from None
    return pyarrow


# --- names -----------------------------------------------------------------------------------------
def parse_name(path: Path) -> tuple[str, tuple[str, str, str]] | None:
    """(dataset, range key) of a cryo file name, or None when the name is not cryo's."""
    name = path.name
    if not name.lower().endswith(".parquet"):
        return None
    parts = name[: -len(".parquet")].split("__")
    if len(parts) not in (3, 4) or not all(parts):
        return None
    dataset = ALIASES.get(parts[1], parts[1])
    return dataset, (parts[0], parts[2] if len(parts) == 4 else "", parts[-1])


def is_cryo_file(path: Path) -> bool:
    p = parse_name(path)
    return p is not None and p[0] in DATASETS


def _range_order(key: tuple[str, str, str]) -> tuple[float, float, str, str, str]:
    m = _LABEL.fullmatch(key[2])
    return (int(m.group(1)), int(m.group(2)), *key) if m else (math.inf, math.inf, *key)


# --- schema ----------------------------------------------------------------------------------------
def _kind_ok(pa: Any, kind: str, t: Any) -> bool:
    types = pa.types
    binary = types.is_binary(t) or types.is_large_binary(t) or types.is_fixed_size_binary(t)
    string = types.is_string(t) or types.is_large_string(t)
    if types.is_dictionary(t):
        return _kind_ok(pa, kind, t.value_type)
    if kind == "int":
        return bool(types.is_integer(t))
    if kind == "bin":
        return bool(binary or string)
    if kind == "str":
        return bool(string or types.is_null(t))
    if kind == "bool":
        return bool(types.is_boolean(t))
    if kind == "u256":
        return bool(binary or string or types.is_integer(t))
    if kind == "trace_address":
        return bool(string or ((types.is_list(t) or types.is_large_list(t)) and types.is_integer(t.value_type)))
    return False


@dataclass
class _File:
    path: Path
    dataset: str
    columns: dict[str, str]  # the column read -> the field it gives (value_string -> value, ...)
    rows: int


def _open_file(pa: Any, path: Path, dataset: str) -> _File:
    try:
        meta = pa.parquet.read_metadata(path)
        schema = meta.schema.to_arrow_schema()
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}", source=str(path)) from None
    except Exception as exc:  # noqa: BLE001 - pyarrow raises ArrowInvalid and friends for a file that is not parquet
        raise InputError(f"not a parquet file: {str(exc)[:200]}", source=str(path)) from None
    names = set(schema.names)
    need = dict(_REQUIRED[dataset])
    if dataset == "traces" and "transaction_index" not in names and "transaction_position" in names:
        need["transaction_position"] = "int"  # cryo before 0.3 named it so
    else:
        need["transaction_index" if dataset == "traces" else "block_number"] = "int"
    columns: dict[str, str] = {}
    if dataset == "transactions":
        value = next((c for c in ("value_string", "value_binary", "value") if c in names), None)
        if value is None:
            why = ("only value_f64, which is not exact; run cryo with --u256-types binary or string" if "value_f64" in names
                   else "missing column 'value_string' (or value_binary, or value): cryo's transactions dataset has it")
            raise InputError(f"not cryo's transactions schema: {why}", source=str(path))
        need[value] = "u256"
        columns[value] = "value"
    for col, kind in need.items():
        if col not in names:
            raise InputError(f"not cryo's {dataset} schema: missing column {col!r} (cryo's {dataset} dataset has it)",
                             source=str(path))
        if not _kind_ok(pa, kind, schema.field(col).type):
            raise InputError(f"not cryo's {dataset} schema: column {col!r} is {schema.field(col).type}, expected "
                             f"{_KIND_NAMES[kind]}", source=str(path))
        columns.setdefault(col, "transaction_index" if col == "transaction_position" else col)
    for col, kind in _OPTIONAL[dataset].items():
        if col in names:
            if not _kind_ok(pa, kind, schema.field(col).type):
                raise InputError(f"not cryo's {dataset} schema: column {col!r} is {schema.field(col).type}, expected "
                                 f"{_KIND_NAMES[kind]}", source=str(path))
            columns[col] = col
    return _File(path, dataset, columns, meta.num_rows)


_KIND_NAMES = {"int": "an integer", "bin": "binary (or 0x hex strings)", "str": "a string", "bool": "a boolean",
               "u256": "binary, a decimal string or an integer", "trace_address": "a string such as 0_1_2 (or a list of integers)"}


# --- reading ---------------------------------------------------------------------------------------
class _Bad(Exception):
    def __init__(self, dataset: str, row: int | None, why: str):
        super().__init__(why)
        self.dataset, self.row, self.why = dataset, row, why


@dataclass
class CryoRange:
    """The files of one block range (one per dataset)."""

    key: tuple[str, str, str]
    files: dict[str, _File]

    @property
    def label(self) -> str:
        return self.key[2]


@dataclass
class CryoDataset:
    """cryo files grouped by range, their schemas checked (:func:`open_cryo`); :meth:`blocks` reads them."""

    ranges: list[CryoRange]
    chain_id: int = 1
    batch_blocks: int = BATCH_BLOCKS

    @property
    def n_blocks(self) -> int:
        """Rows in the blocks files (the blocks a replay will see, less rejected ones)."""
        return sum(r.files["blocks"].rows for r in self.ranges)

    def blocks(self) -> Iterator[tuple[str, str, Block | InputError]]:
        """(file, position, block or the error that block raised), in block order within each range."""
        pa = _pyarrow()
        for r in self.ranges:
            yield from _read_range(pa, r, self.chain_id, self.batch_blocks)


def open_cryo(paths: Iterable[Path], chain_id: int = 1) -> CryoDataset:
    """Group cryo files (folders are expanded) by range and check their schemas. Raises InputError
    naming the file for a name that is not cryo's, a schema that is not, or a range missing a dataset."""
    pa = _pyarrow()
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            files += sorted(c for c in p.iterdir() if c.is_file() and c.name.lower().endswith(".parquet"))
        else:
            files.append(p)
    groups: dict[tuple[str, str, str], dict[str, _File]] = {}
    for path in files:
        parsed = parse_name(path)
        if parsed is None:
            raise InputError("not a cryo file name: expected NETWORK__DATASET__START_to_END.parquet "
                             "(as cryo names its files)", source=str(path))
        dataset, key = parsed
        if dataset not in DATASETS:
            continue  # another cryo dataset (balance_diffs, erc20_transfers, ...): not read
        got = groups.setdefault(key, {})
        if dataset in got:
            raise InputError(f"two {dataset} files for range {key[2]}: also {got[dataset].path}", source=str(path))
        got[dataset] = _open_file(pa, path, dataset)
    if not groups:
        raise InputError("no cryo blocks, transactions, logs or traces files", source=", ".join(str(p) for p in paths)[:300])
    ranges = []
    for key in sorted(groups, key=_range_order):
        got = groups[key]
        some = next(iter(got.values())).path
        for need in ("blocks", "transactions"):
            if need not in got:
                raise InputError(f"range {key[2]} has no {need} file (cryo's {need} dataset: "
                                 f"{key[0]}__{need}__{key[2]}.parquet); mevwatch needs blocks, transactions, and logs or traces",
                                 source=str(some))
        if "logs" not in got and "traces" not in got:
            raise InputError(f"range {key[2]} has neither logs nor traces: nothing to decode swaps from "
                             "(cryo blocks transactions logs [traces])", source=str(some))
        ranges.append(CryoRange(key, got))
    return CryoDataset(ranges, chain_id)


def blocks_chain_id(path: Path) -> int | None:
    """The chain_id of the first row of a cryo blocks file; None for another file, or no such column or row."""
    parsed = parse_name(path)
    if parsed is None or parsed[0] != "blocks":
        return None
    pa = _pyarrow()
    f = _open_file(pa, path, "blocks")
    if "chain_id" not in f.columns or not f.rows:
        return None
    try:
        v = pa.parquet.ParquetFile(path).read_row_group(0, columns=["chain_id"]).column(0)[0].as_py()
    except Exception:  # noqa: BLE001 - the replay names this file's problem
        return None
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def iter_cryo(paths: Iterable[Path], chain_id: int = 1) -> Iterator[tuple[str, str, Block | InputError]]:
    """(file, position, block or the InputError that block raised) for a cryo dataset, in block order.
    A bad schema raises InputError (naming file and column) before the first block."""
    return open_cryo(paths, chain_id).blocks()


def _read_table(pa: Any, f: _File) -> Any:
    try:
        table = pa.parquet.read_table(f.path, columns=list(f.columns))
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}", source=str(f.path)) from None
    except Exception as exc:  # noqa: BLE001 - a corrupt file
        raise InputError(f"cannot read this parquet file: {str(exc)[:200]}", source=str(f.path)) from None
    table = table.rename_columns([f.columns[c] for c in table.column_names])
    numbers = table.column("block_number")
    if numbers.null_count:
        table = table.filter(pa.compute.is_valid(numbers))  # rows of no block: reported by the caller
    if len(table) > 1:
        nums = table.column("block_number")
        if not pa.compute.all(pa.compute.greater_equal(nums[1:], nums[:-1])).as_py():
            table = table.sort_by([("block_number", "ascending")])
    return table


def _spans(table: Any) -> dict[int, tuple[int, int]]:
    """block_number -> (first row, end row) of a table sorted by block_number."""
    out: dict[int, tuple[int, int]] = {}
    nums = table.column("block_number").to_pylist()
    start = 0
    for i in range(1, len(nums) + 1):
        if i == len(nums) or nums[i] != nums[start]:
            out[nums[start]] = (start, i)
            start = i
    return out


@dataclass
class LoadedRange:
    """One range's tables read (columnar, sorted by block), the problems met reading them, and its block numbers."""

    range: CryoRange
    tables: dict[str, Any]
    spans: dict[str, dict[int, tuple[int, int]]]
    problems: list[tuple[str, str, InputError]]
    numbers: list[int]


def load_range(r: CryoRange, pa: Any = None) -> LoadedRange:
    """Read a range's files. An unreadable file costs the range (no numbers, the problem kept)."""
    pa = pa if pa is not None else _pyarrow()
    tables: dict[str, Any] = {}
    spans: dict[str, dict[int, tuple[int, int]]] = {}
    problems: list[tuple[str, str, InputError]] = []
    for name, f in r.files.items():
        try:
            t = _read_table(pa, f)
        except InputError as exc:  # an unreadable file costs its range
            return LoadedRange(r, {}, {}, problems + [(str(f.path), f"range {r.label}", exc)], [])
        nulls = f.rows - len(t)
        if nulls:
            problems.append((str(f.path), f"range {r.label}", InputError(f"{nulls} rows with no block_number: skipped",
                                                                          source=str(f.path), position=f"range {r.label}")))
        tables[name], spans[name] = t, _spans(t)
    return LoadedRange(r, tables, spans, problems, sorted(set().union(*(s.keys() for s in spans.values()))))


def part_blocks(loaded: LoadedRange, index: int, parts: int, chain_id: int,
                batch_blocks: int = BATCH_BLOCKS) -> Iterator[tuple[str, str, Block | InputError]]:
    """The blocks of part ``index`` of ``parts`` of a loaded range (that share of its block numbers, in order):
    replay workers each assemble and decode parts of a range. Part 0 reports the range's reading problems, and
    so does every part of a range that could not be read (its blocks are lost: never silently; the replay
    keeps one report of each problem)."""
    if index == 0 or not loaded.tables:
        yield from loaded.problems
    n = len(loaded.numbers)
    yield from _range_blocks(loaded, loaded.numbers[n * index // parts:n * (index + 1) // parts], chain_id, batch_blocks)


def range_paths(r: CryoRange) -> tuple[str, ...]:
    """The files of a range, as :func:`open_cryo` takes them back (a worker process opens its range by them)."""
    return tuple(str(f.path) for f in r.files.values())


def _read_range(pa: Any, r: CryoRange, chain_id: int, batch_blocks: int) -> Iterator[tuple[str, str, Block | InputError]]:
    loaded = load_range(r, pa)
    yield from loaded.problems
    yield from _range_blocks(loaded, loaded.numbers, chain_id, batch_blocks)


def _range_blocks(loaded: LoadedRange, numbers: list[int], chain_id: int,
                  batch_blocks: int) -> Iterator[tuple[str, str, Block | InputError]]:
    r, tables, spans = loaded.range, loaded.tables, loaded.spans
    if not tables:
        return
    blocks_file = str(r.files["blocks"].path)
    has_logs, has_traces = "logs" in tables, "traces" in tables
    for i in range(0, len(numbers), batch_blocks):
        todo = numbers[i:i + batch_blocks]
        cols: dict[str, dict[str, list[Any]]] = {}
        base: dict[str, int] = {}
        for name, t in tables.items():
            present = [spans[name][n] for n in todo if n in spans[name]]
            if not present:
                cols[name], base[name] = {}, 0
                continue
            lo, hi = present[0][0], present[-1][1]
            part = t.slice(lo, hi - lo)
            cols[name] = {c: part.column(c).to_pylist() for c in part.column_names}
            base[name] = lo
        for n in todo:
            rows = {name: (spans[name][n][0] - base[name], spans[name][n][1] - base[name]) if n in spans[name] else None
                    for name in tables}
            where = f"block {n}"
            if rows["blocks"] is None:
                name = next(nm for nm in ("transactions", "logs", "traces") if rows.get(nm) is not None)
                counts = ", ".join(f"{b - a} {nm}" for nm, sp in rows.items() if sp is not None for a, b in (sp,))
                yield str(r.files[name].path), where, InputError(
                    f"rows for this block ({counts}) but no row in the blocks dataset", source=str(r.files[name].path), position=where)
                continue
            try:
                block = _assemble(n, cols, rows, has_logs, has_traces, chain_id)
            except _Bad as bad:
                path = str(r.files[bad.dataset].path)
                row = f", {bad.dataset} row {rows[bad.dataset][0] + base[bad.dataset] + bad.row}" if bad.row is not None and rows.get(bad.dataset) else ""  # type: ignore[index]
                yield path, where + row, InputError(bad.why, source=path, position=where + row)
                continue
            yield blocks_file, where, block


# --- assembling one block ----------------------------------------------------------------------------
def _hex(v: Any, name: str, size: int | None, ds: str, k: int, empty: str | None = None) -> str:
    if type(v) is bytes and (size is None or len(v) == size):  # the common case first
        return "0x" + v.hex()
    if isinstance(v, bytes):
        if size is not None and len(v) != size:
            if not v and empty is not None:
                return empty
            raise _Bad(ds, k, f"{name}: {len(v)} bytes, expected {size}")
        return "0x" + v.hex()
    if isinstance(v, str):
        s = v.lower()
        if not s.startswith("0x"):
            s = "0x" + s
        if not _HEX.fullmatch(s) or len(s) % 2:
            raise _Bad(ds, k, f"{name}: {v[:80]!r} is not hex")
        if size is not None and len(s) != 2 + 2 * size:
            if s == "0x" and empty is not None:
                return empty
            raise _Bad(ds, k, f"{name}: {(len(s) - 2) // 2} bytes, expected {size}")
        return s
    if v is None:
        if empty is not None:
            return empty
        raise _Bad(ds, k, f"{name}: missing (null)")
    raise _Bad(ds, k, f"{name}: expected bytes, got {type(v).__name__}")


def _opt_hex(v: Any, name: str, size: int | None, ds: str, k: int) -> str | None:
    return None if v is None else _hex(v, name, size, ds, k)


def _uint(v: Any, name: str, limit: int, ds: str, k: int | None) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise _Bad(ds, k, f"{name}: missing (null)" if v is None else f"{name}: expected an integer, got {type(v).__name__}")
    if not 0 <= v < limit:
        raise _Bad(ds, k, f"{name}: {v} is out of range (0 to 2^{limit.bit_length() - 1}-1)")
    return v


def _opt_uint(v: Any, name: str, limit: int, ds: str, k: int) -> int | None:
    return None if v is None else _uint(v, name, limit, ds, k)


def _u256(v: Any, name: str, ds: str, k: int) -> int:
    if isinstance(v, str):
        if not (v.isascii() and v.isdigit()):
            if v.startswith("0x") and _HEX.fullmatch(v.lower()) and len(v) > 2:
                return _uint(int(v, 16), name, U256, ds, k)
            raise _Bad(ds, k, f"{name}: {v[:80]!r} is not a decimal number")
        return _uint(int(v), name, U256, ds, k)
    if isinstance(v, bytes):
        if len(v) > 32:
            raise _Bad(ds, k, f"{name}: {len(v)} bytes, more than a u256's 32")
        return int.from_bytes(v, "big")
    return _uint(v, name, U256, ds, k)


_TRACE_ADDRESS = re.compile(r"[0-9]{1,19}(?:_[0-9]{1,19})*")  # up to 19 digits: below 2^64, no range check needed


_TRACE_ADDRESSES: dict[str, tuple[int, ...]] = {}  # the few distinct addresses a dataset has, parsed once each (bounded)


def _trace_address(v: Any, k: int) -> tuple[int, ...]:
    if isinstance(v, str):
        known = _TRACE_ADDRESSES.get(v)
        if known is not None:
            return known
        if not v:
            return ()
        if _TRACE_ADDRESS.fullmatch(v) and v.count("_") < MAX_TRACE_DEPTH:  # the common case, checked at once
            known = tuple(map(int, v.split("_")))
            if len(v) <= 64:  # real ones are short; a hostile dataset's long ones must not stay in memory
                if len(_TRACE_ADDRESSES) >= 100_000:
                    _TRACE_ADDRESSES.clear()
                _TRACE_ADDRESSES[v] = known
            return known
        parts = v.split("_")
        if not all(p.isascii() and p.isdigit() for p in parts):
            raise _Bad("traces", k, f"trace_address: {v[:80]!r} is not numbers joined by _")
        out = tuple(int(p) for p in parts)
    elif isinstance(v, list):
        out = tuple(v)
        if not all(isinstance(x, int) and 0 <= x < U64 for x in out):
            raise _Bad("traces", k, "trace_address: expected non-negative integers")
    else:
        raise _Bad("traces", k, "trace_address: missing (null)")
    if len(out) > MAX_TRACE_DEPTH:
        raise _Bad("traces", k, f"trace_address: nesting {len(out)} deep exceeds the cap of {MAX_TRACE_DEPTH}")
    if not all(x < U64 for x in out):
        raise _Bad("traces", k, "trace_address: out of range")
    return out


def _assemble(n: int, cols: dict[str, dict[str, list[Any]]], rows: dict[str, tuple[int, int] | None], has_logs: bool,
              has_traces: bool, chain_id: int) -> Block:
    a, b = rows["blocks"]  # type: ignore[misc]
    if b - a != 1:
        raise _Bad("blocks", None, f"{b - a} rows in the blocks dataset for this block")
    h = {c: v[a] for c, v in cols["blocks"].items()}
    _uint(n, "block_number", U64, "blocks", 0)
    cid = h.get("chain_id")
    block = Block(
        number=n,
        hash=_opt_hex(h.get("block_hash"), "block_hash", 32, "blocks", 0),
        parent_hash=_opt_hex(h.get("parent_hash"), "parent_hash", 32, "blocks", 0),
        timestamp=_uint(h["timestamp"], "timestamp", U32, "blocks", 0),
        miner=_opt_hex(h.get("author"), "author", 20, "blocks", 0),
        base_fee_per_gas=_opt_uint(h.get("base_fee_per_gas"), "base_fee_per_gas", U256, "blocks", 0),
        transactions=[],
        chain_id=_uint(cid, "chain_id", U64, "blocks", 0) if cid is not None else chain_id,
        has_traces=has_traces,
        has_logs=has_logs,
    )
    txs: dict[int, Transaction] = {}
    sp = rows["transactions"]
    if sp is not None:
        c = cols["transactions"]
        seen: dict[str, int] = {}
        get = {k: c.get(k) for k in ("nonce", "gas_used", "gas_price", "max_priority_fee_per_gas")}
        for k, j in enumerate(range(*sp)):
            pos = _uint(c["transaction_index"][j], "transaction_index", U32, "transactions", k)
            tx_hash = _hex(c["transaction_hash"][j], "transaction_hash", 32, "transactions", k)
            if pos in txs:
                raise _Bad("transactions", k, f"transaction_index {pos}: two rows for it")
            if tx_hash in seen:
                raise _Bad("transactions", k, f"transaction_hash: duplicate (also transaction {seen[tx_hash]})")
            seen[tx_hash] = pos
            success = c["success"][j]
            if not isinstance(success, bool):
                raise _Bad("transactions", k, "success: missing (null)")
            opt = {name: (_opt_uint(vals[j], name, U256, "transactions", k) if vals is not None else None) for name, vals in get.items()}
            txs[pos] = Transaction(
                hash=tx_hash, position=pos,
                from_address=_hex(c["from_address"][j], "from_address", 20, "transactions", k, empty=""),
                to_address=_opt_hex(c["to_address"][j] or None, "to_address", 20, "transactions", k),
                input=_hex(c["input"][j], "input", None, "transactions", k, empty="0x"),
                value=_u256(c["value"][j], "value", "transactions", k),
                nonce=_opt_uint(opt["nonce"], "nonce", U64, "transactions", k),
                gas_used=opt["gas_used"], effective_gas_price=opt["gas_price"],
                max_priority_fee_per_gas=opt["max_priority_fee_per_gas"], success=success,
            )
    sp = rows.get("traces")
    if sp is not None:
        c = cols["traces"]
        hashes = c.get("transaction_hash")
        result_address = c.get("result_address")
        # the columns as locals: this loop runs once per call frame (about a thousand a block)
        c_pos, c_kind, c_ta, c_value, c_err = (c["transaction_index"], c["action_type"], c["trace_address"],
                                               c["action_value"], c["error"])
        c_sub, c_from, c_to, c_input, c_output, c_call = (c["subtraces"], c["action_from"], c["action_to"], c["action_input"],
                                                          c["result_output"], c["action_call_type"])
        for k, j in enumerate(range(*sp)):
            pos = c_pos[j]
            if pos is None:
                continue  # a block or uncle reward: not part of a transaction
            tx = txs.get(pos)
            if tx is None:
                raise _Bad("traces", k, f"transaction_index {pos}: no row in the transactions dataset")
            if hashes is not None and hashes[j] is not None and _hex(hashes[j], "transaction_hash", 32, "traces", k) != tx.hash:
                raise _Bad("traces", k, f"transaction_hash differs from transaction {pos}'s ({tx.hash})")
            kind = c_kind[j]
            ta = _trace_address(c_ta[j], k)
            v = c_value[j]
            value = 0 if not v or v == "0" else _u256(v, "action_value", "traces", k)
            err = c_err[j]
            subtraces = c_sub[j]
            if type(subtraces) is not int or not 0 <= subtraces < U64:
                subtraces = _uint(subtraces, "subtraces", U64, "traces", k)
            frm = _hex(c_from[j], "action_from", 20, "traces", k, empty="")
            if kind == "call":
                call_type = c_call[j] or "none"
                tr = Trace(ta, "call", _CALL_TYPES.get(call_type, call_type.replace("_", "")), frm,
                           _hex(c_to[j], "action_to", 20, "traces", k, empty=""),
                           _hex(c_input[j], "action_input", None, "traces", k, empty="0x"),
                           _hex(c_output[j], "result_output", None, "traces", k, empty="0x"), value, err, subtraces)
            elif kind == "create":
                to = result_address[j] if result_address is not None else None
                tr = Trace(ta, "create", "", frm, _hex(to, "result_address", 20, "traces", k, empty=""), "0x", "0x", value,
                           err, subtraces)
            elif kind == "suicide":
                tr = Trace(ta, "suicide", "", frm, _hex(c_to[j], "action_to", 20, "traces", k, empty=""), "0x", "0x",
                           value, err, subtraces)
            elif kind == "reward":
                continue
            else:
                raise _Bad("traces", k, f"action_type: unknown {str(kind)[:40]!r}")
            tx.traces.append(tr)
    sp = rows.get("logs")
    if sp is not None:
        c = cols["logs"]
        hashes = c.get("transaction_hash")
        for k, j in enumerate(range(*sp)):
            pos = _uint(c["transaction_index"][j], "transaction_index", U32, "logs", k)
            tx = txs.get(pos)
            if tx is None:
                raise _Bad("logs", k, f"transaction_index {pos}: no row in the transactions dataset")
            if hashes is not None and hashes[j] is not None and _hex(hashes[j], "transaction_hash", 32, "logs", k) != tx.hash:
                raise _Bad("logs", k, f"transaction_hash differs from transaction {pos}'s ({tx.hash})")
            topics: list[str] = []
            for t in ("topic0", "topic1", "topic2", "topic3"):
                v = c[t][j]
                if v is None:
                    break
                topics.append(_hex(v, t, 32, "logs", k))
            if any(c[t][j] is not None for t in ("topic0", "topic1", "topic2", "topic3")[len(topics):]):
                raise _Bad("logs", k, f"topic{len(topics)} is null but a later topic is not")
            tx.logs.append(Log(_hex(c["address"][j], "address", 20, "logs", k),
                               tuple(topics), _hex(c["data"][j], "data", None, "logs", k, empty="0x"),
                               _uint(c["log_index"][j], "log_index", U64, "logs", k)))
    for tx in txs.values():
        if len(tx.traces) > 1:
            tx.traces.sort(key=lambda tr: tr.trace_address)
        if len(tx.logs) > 1:
            tx.logs.sort(key=lambda lg: lg.log_index)
    block.transactions = [txs[p] for p in sorted(txs)]
    return block


# --- writing ---------------------------------------------------------------------------------------
def _schemas(pa: Any) -> dict[str, Any]:
    b, s, u32, u64 = pa.binary(), pa.string(), pa.uint32(), pa.uint64()
    return {
        "blocks": pa.schema([("block_number", u32), ("block_hash", b), ("parent_hash", b), ("timestamp", u32), ("author", b),
                             ("base_fee_per_gas", u64), ("chain_id", u64)]),
        "transactions": pa.schema([
            ("block_number", u32), ("transaction_index", u64), ("transaction_hash", b), ("nonce", u64), ("from_address", b),
            ("to_address", b), ("value_binary", b), ("value_string", s), ("value_f64", pa.float64()), ("input", b),
            ("gas_limit", u64), ("gas_used", u64), ("gas_price", u64), ("transaction_type", u32),
            ("max_priority_fee_per_gas", u64), ("max_fee_per_gas", u64), ("success", pa.bool_()), ("n_input_bytes", u32),
            ("n_input_zero_bytes", u32), ("n_input_nonzero_bytes", u32), ("chain_id", u64)]),
        "logs": pa.schema([("block_number", u32), ("transaction_index", u32), ("log_index", u32), ("transaction_hash", b),
                           ("address", b), ("topic0", b), ("topic1", b), ("topic2", b), ("topic3", b), ("data", b),
                           ("n_data_bytes", u32), ("chain_id", u64)]),
        "traces": pa.schema([
            ("action_from", b), ("action_to", b), ("action_value", s), ("action_gas", u32), ("action_input", b),
            ("action_call_type", s), ("action_init", b), ("action_reward_type", s), ("action_type", s),
            ("result_gas_used", u32), ("result_output", b), ("result_code", b), ("result_address", b),
            ("trace_address", s), ("subtraces", u32), ("transaction_index", u32), ("transaction_hash", b),
            ("block_number", u32), ("block_hash", b), ("error", s), ("chain_id", u64)]),
    }


class _Unfit(Exception):
    pass


def _bytes(v: str | None, name: str, size: int | None = None, null_empty: bool = False) -> bytes | None:
    if v is None or (null_empty and v == ""):
        return None
    if not isinstance(v, str) or not v.startswith("0x"):
        raise _Unfit(f"{name}: expected 0x-prefixed hex")
    try:
        out = bytes.fromhex(v[2:])
    except ValueError:
        raise _Unfit(f"{name}: {v[:80]!r} is not hex") from None
    if size is not None and len(out) != size:
        raise _Unfit(f"{name}: {len(out)} bytes, expected {size}")
    return out


def _fits(v: int | None, name: str, limit: int) -> int | None:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < limit:
        raise _Unfit(f"{name}: {str(v)[:40]} does not fit cryo's u{limit.bit_length() - 1} column")
    return v


def block_rows(block: Block) -> dict[str, list[tuple[Any, ...]]]:
    """The rows ``block`` gives in each cryo dataset (columns in :func:`_schemas` order). Raises
    InputError naming the field when a value does not fit cryo's columns (nothing is written then)."""
    try:
        return _block_rows(block)
    except _Unfit as exc:
        raise InputError(str(exc), source=f"block {block.number}") from None


def _block_rows(block: Block) -> dict[str, list[tuple[Any, ...]]]:
    n = _fits(block.number, "block_number", U32)
    cid = _fits(block.chain_id, "chain_id", U64)
    bhash = _bytes(block.hash, "block_hash", 32)
    out: dict[str, list[tuple[Any, ...]]] = {
        "blocks": [(n, bhash, _bytes(block.parent_hash, "parent_hash", 32), _fits(block.timestamp, "timestamp", U32),
                    _bytes(block.miner, "author", 20, null_empty=True), _fits(block.base_fee_per_gas, "base_fee_per_gas", U64),
                    cid)],
        "transactions": [], "logs": [], "traces": []}
    for tx in block.transactions:
        where = f"transaction {tx.position}: "
        try:
            pos = _fits(tx.position, "transaction_index", U32)
            h = _bytes(tx.hash, "transaction_hash", 32)
            data = _bytes(tx.input or "0x", "input") or b""
            value = _fits(tx.value, "value", U256) or 0
            zeros = data.count(0)
            frm = b"" if tx.from_address == "" else _bytes(tx.from_address, "from_address", 20)
            out["transactions"].append((
                n, pos, h, _fits(tx.nonce, "nonce", U64), frm, _bytes(tx.to_address, "to_address", 20, null_empty=True),
                value.to_bytes(32, "big"), str(value), float(value), data, None, _fits(tx.gas_used, "gas_used", U64),
                _fits(tx.effective_gas_price, "gas_price", U64), None,
                _fits(tx.max_priority_fee_per_gas, "max_priority_fee_per_gas", U64), None, bool(tx.success), len(data), zeros,
                len(data) - zeros, cid))
            for lg in tx.logs:
                if len(lg.topics) > 4:
                    raise _Unfit(f"log {lg.log_index}: {len(lg.topics)} topics (cryo has topic0..topic3)")
                topics = [_bytes(t, "topic", 32) for t in lg.topics] + [None] * (4 - len(lg.topics))
                d = _bytes(lg.data or "0x", "data") or b""
                out["logs"].append((n, pos, _fits(lg.log_index, "log_index", U32), h, _bytes(lg.address, "address", 20),
                                    *topics, d, len(d), cid))
            for tr in tx.traces:
                if tr.type == "call":
                    call_type = _CRYO_CALL_TYPES.get(tr.call_type, tr.call_type or "none")
                    to, inp, outp, addr = (_bytes(tr.to_address, "action_to", 20, null_empty=True),
                                           _bytes(tr.input or "0x", "action_input"), _bytes(tr.output or "0x", "result_output"), None)
                elif tr.type == "create":
                    call_type, to, inp, outp, addr = None, None, None, None, _bytes(tr.to_address, "result_address", 20, null_empty=True)
                else:  # suicide (rewards are not part of a transaction)
                    call_type, to, inp, outp, addr = None, _bytes(tr.to_address, "action_to", 20, null_empty=True), None, None, None
                out["traces"].append((
                    _bytes(tr.from_address, "action_from", 20, null_empty=True), to, str(_fits(tr.value, "action_value", U256)),
                    None, inp, call_type, None, None, tr.type, None, outp, None, addr,
                    "_".join(str(x) for x in tr.trace_address), _fits(tr.subtraces, "subtraces", U32), pos, h, n, bhash,
                    tr.error, cid))
        except _Unfit as exc:
            raise _Unfit(where + str(exc)) from None
    return out


@dataclass
class WriteSummary:
    blocks: int = 0
    files: list[Path] = field(default_factory=list)
    replaced: int = 0  # blocks given twice (a reorganisation in a recording): the later one is kept


class CryoWriter:
    """Writes blocks as a cryo dataset: ``CHAIN__DATASET__FIRST_to_LAST.parquet`` per dataset and
    range of ``chunk_size`` block numbers (aligned, as cryo's chunks; the label names the first and
    last block in the file). ``traces`` is written for ranges whose blocks all carry traces, ``logs``
    for those whose blocks carry logs; a change of either starts a new file. Blocks should come in
    block order; a block for a range already written is refused (InputError)."""

    def __init__(self, folder: Path, chain: str = "ethereum", chunk_size: int = 1000):
        if chunk_size < 1:
            raise InputError("chunk size must be at least 1")
        if "__" in chain or "/" in chain or not chain:
            raise InputError(f"chain name {chain!r}: no '__' or '/' (it starts cryo's file names)")
        self.pa = _pyarrow()
        self.folder, self.chain, self.chunk_size = folder, chain, chunk_size
        self.schemas = _schemas(self.pa)
        self.summary = WriteSummary()
        self._key: tuple[int, bool, bool] | None = None
        self._blocks: dict[int, dict[str, list[tuple[Any, ...]]]] = {}
        self._written: set[int] = set()  # chunk indexes written
        folder.mkdir(parents=True, exist_ok=True)

    def add(self, block: Block) -> None:
        """Add one block. Raises InputError (naming the block and field) for a block cryo's columns
        cannot hold, or one out of block order; the writer goes on with the next."""
        rows = block_rows(block)
        chunk = block.number // self.chunk_size
        key = (chunk, block.has_traces, block.has_logs or not block.has_traces)
        if chunk in self._written and (self._key is None or self._key[0] != chunk):
            raise InputError(f"out of block order: blocks {chunk * self.chunk_size} to {(chunk + 1) * self.chunk_size - 1} "
                             "were written already; give the inputs in block order", source=f"block {block.number}")
        if key != self._key:
            self.flush()
            self._key = key
        if block.number in self._blocks:
            self.summary.replaced += 1
        else:
            self.summary.blocks += 1
        self._blocks[block.number] = rows

    def flush(self) -> None:
        if not self._blocks or self._key is None:
            return
        chunk, traces, logs = self._key
        numbers = sorted(self._blocks)
        label = f"{numbers[0]:08d}_to_{numbers[-1]:08d}"
        datasets = ["blocks", "transactions"] + (["logs"] if logs else []) + (["traces"] if traces else [])
        for name in datasets:
            rows = [r for n in numbers for r in self._blocks[n][name]]
            schema = self.schemas[name]
            columns: list[Any] = list(zip(*rows)) if rows else [[] for _ in schema]
            table = self.pa.table([self.pa.array(col, type=f.type) for col, f in zip(columns, schema)], schema=schema)
            path = self.folder / f"{self.chain}__{name}__{label}.parquet"
            tmp = path.with_name(path.name + ".tmp")
            try:
                self.pa.parquet.write_table(table, tmp, compression="zstd")
                os.replace(tmp, path)
            except OSError as exc:
                raise InputError(f"cannot write: {exc.strerror or exc}", source=str(path)) from None
            self.summary.files.append(path)
        self._written.add(chunk)
        self._blocks = {}

    def close(self) -> WriteSummary:
        self.flush()
        return self.summary


def write_cryo(blocks: Iterable[Block], folder: Path, chain: str = "ethereum", chunk_size: int = 1000,
               on_block: Callable[[int], None] | None = None) -> WriteSummary:
    """Write ``blocks`` (in block order) as a cryo dataset in ``folder``. Raises InputError for a
    block cryo's columns cannot hold."""
    w = CryoWriter(folder, chain, chunk_size)
    for b in blocks:
        w.add(b)
        if on_block is not None:
            on_block(b.number)
    return w.close()
