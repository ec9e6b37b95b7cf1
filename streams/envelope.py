"""Versioned message envelopes: pending transactions, blocks and revert events.

One JSON object per message (a Kafka record value, or a line of a JSONL recording).
``schema`` names the kind and version: ``mevwatch.pending.v1``, ``mevwatch.block.v1``,
``mevwatch.revert.v1``. Field names follow Ethereum JSON-RPC / cryo. Amounts and
other 256-bit quantities (value, gas prices) are decimal strings, because JSON
readers lose integers past 2^53 (orjson refuses past 2^64); hex data stays 0x-hex.
See docs/envelopes.md.

``decode`` validates strictly and raises :class:`EnvelopeError` naming the source
and position (file:line or topic/partition@offset) and the field at fault.
"""

from __future__ import annotations

from typing import Any

import re

import orjson

from mevwatch.monitor.errors import EnvelopeError
from mevwatch.monitor.types import Block, Log, Message, PendingTx, RevertEvent, Trace, Transaction  # noqa: F401 - re-exported

PENDING = "mevwatch.pending.v1"
BLOCK = "mevwatch.block.v1"
REVERT = "mevwatch.revert.v1"
SCHEMAS = (PENDING, BLOCK, REVERT)
U32 = 2**32
U64 = 2**64  # every integer field (numbers, indexes, nonces, nanoseconds) fits an unsigned 64-bit column
U256 = 2**256  # every quantity (values, fees) fits a uint256
MAX_TIMESTAMP = 2**32  # block timestamps: the store's DateTime ends in 2106
MAX_TRACE_DEPTH = 1024  # a call stack deeper than the EVM's own limit is not a real trace
_HEX = re.compile(r"0x[0-9a-fA-F]*")




def _s(v: int | None) -> str | None:
    return None if v is None else str(v)


def encode_pending(p: PendingTx) -> bytes:
    return orjson.dumps({
        "schema": PENDING, "chain_id": p.chain_id, "hash": p.hash, "from_address": p.from_address,
        "to_address": p.to_address, "nonce": p.nonce, "input": p.input, "value": str(p.value), "gas": p.gas,
        "gas_price": _s(p.gas_price), "max_fee_per_gas": _s(p.max_fee_per_gas),
        "max_priority_fee_per_gas": _s(p.max_priority_fee_per_gas), "type": p.type,
        "first_seen_ns": p.first_seen_ns, "source_node": p.source_node, "replaces": p.replaces,
    })


def encode_revert(r: RevertEvent) -> bytes:
    return orjson.dumps({
        "schema": REVERT, "chain_id": r.chain_id, "block_number": r.block_number, "block_hash": r.block_hash,
        "replaced_by": r.replaced_by, "depth": r.depth,
    })


def _trace_json(t: Trace) -> dict[str, Any]:
    return {
        "trace_address": list(t.trace_address), "type": t.type, "call_type": t.call_type,
        "from_address": t.from_address, "to_address": t.to_address, "input": t.input, "output": t.output,
        "value": str(t.value), "error": t.error, "subtraces": t.subtraces,
    }


def _tx_json(tx: Transaction) -> dict[str, Any]:
    return {
        "hash": tx.hash, "transaction_index": tx.position, "from_address": tx.from_address,
        "to_address": tx.to_address, "input": tx.input, "value": str(tx.value), "nonce": tx.nonce,
        "gas_used": tx.gas_used, "effective_gas_price": _s(tx.effective_gas_price),
        "max_priority_fee_per_gas": _s(tx.max_priority_fee_per_gas), "success": tx.success,
        "logs": [{"address": lg.address, "topics": list(lg.topics), "data": lg.data, "log_index": lg.log_index} for lg in tx.logs],
        "traces": [_trace_json(t) for t in tx.traces],
    }


def block_json(b: Block) -> dict[str, Any]:
    """The envelope of a block as a JSON object (:func:`encode_block` writes it; a caller holding a
    block from elsewhere can check it with ``decode(json.dumps(block_json(b)))``)."""
    return {
        "schema": BLOCK, "chain_id": b.chain_id, "block_number": b.number, "block_hash": b.hash,
        "parent_hash": b.parent_hash, "timestamp": b.timestamp, "miner": b.miner,
        "base_fee_per_gas": _s(b.base_fee_per_gas), "has_traces": b.has_traces, "has_logs": b.has_logs,
        "transactions": [_tx_json(tx) for tx in b.transactions],
    }


def encode_block(b: Block) -> bytes:
    return orjson.dumps(block_json(b))


def encode(msg: Message) -> bytes:
    if isinstance(msg, Block):
        return encode_block(msg)
    if isinstance(msg, PendingTx):
        return encode_pending(msg)
    return encode_revert(msg)


# --- decoding -----------------------------------------------------------------------
class _Reader:
    """Typed field access that reports the path of a bad field."""

    __slots__ = ("source", "position")

    def __init__(self, source: str, position: int | str | None):
        self.source, self.position = source, position

    def fail(self, path: str, why: str) -> EnvelopeError:
        return EnvelopeError(f"field {path!r}: {why}", source=self.source, position=self.position)

    def get(self, obj: dict, key: str, path: str, kind: type | tuple[type, ...], optional: bool = False) -> Any:
        if key not in obj:
            if optional:
                return None
            raise self.fail(f"{path}{key}", "missing")
        v = obj[key]
        if v is None and optional:
            return None
        if not isinstance(v, kind) or (kind is int and isinstance(v, bool)):
            raise self.fail(f"{path}{key}", f"expected {getattr(kind, '__name__', kind)}, got {type(v).__name__}")
        if kind is int and isinstance(v, int) and not 0 <= v < U64:
            raise self.fail(f"{path}{key}", f"{str(v)[:40]} is out of range (0 to 2^64-1)")
        return v

    def hexstr(self, obj: dict, key: str, path: str, optional: bool = False) -> Any:
        v = self.get(obj, key, path, str, optional)
        if v is not None and not _HEX.fullmatch(v):
            raise self.fail(f"{path}{key}", "expected 0x-prefixed hex" if not v.startswith("0x") else "non-hex characters")
        return v.lower() if v is not None else None

    def quantity(self, obj: dict, key: str, path: str, optional: bool = False, limit: int = U256) -> Any:
        v = self.get(obj, key, path, (str, int), optional)
        if v is None:
            return None
        if isinstance(v, bool):
            raise self.fail(f"{path}{key}", "expected an integer, got bool")
        if not isinstance(v, int):
            try:
                v = int(v, 16) if v.startswith("0x") else int(v)
            except ValueError:
                raise self.fail(f"{path}{key}", f"not an integer: {v[:40]!r}") from None
        if not 0 <= v < limit:
            raise self.fail(f"{path}{key}", f"{str(v)[:40]} is out of range (0 to 2^{limit.bit_length() - 1}-1)")
        return v


def decode(data: bytes | str, *, source: str = "<message>", position: int | str | None = None) -> Message:
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        try:  # orjson refuses integers beyond 64 bits: read them to name the field that holds one
            import json

            obj = json.loads(data)
        except (ValueError, RecursionError):
            raise EnvelopeError(f"malformed JSON: {exc}", source=source, position=position) from None
    if not isinstance(obj, dict):
        raise EnvelopeError("expected a JSON object", source=source, position=position)
    r = _Reader(source, position)
    schema = obj.get("schema")
    if schema == BLOCK:
        return _decode_block(obj, r)
    if schema == PENDING:
        return _decode_pending(obj, r)
    if schema == REVERT:
        return RevertEvent(
            r.get(obj, "chain_id", "", int), r.get(obj, "block_number", "", int), r.hexstr(obj, "block_hash", ""),
            r.hexstr(obj, "replaced_by", "", optional=True), r.get(obj, "depth", "", int),
        )
    raise EnvelopeError(f"unknown schema {schema!r} (expected one of {', '.join(SCHEMAS)})", source=source, position=position)


def _quantity(v: Any, limit: int) -> int:
    """A quantity as :meth:`_Reader.quantity` reads it, where it is plainly one (an int, or a string of
    ASCII digits) and in range; -1 for anything else (the reader then decides, naming the field)."""
    if type(v) is int:
        return v if 0 <= v < limit else -1
    if type(v) is str and len(v) <= 78 and v.isascii() and v.isdigit():  # 2^256 has 78 digits; int() refuses 4,300+
        n = int(v)
        return n if n < limit else -1
    return -1


def _hex(v: Any) -> bool:
    return type(v) is str and _HEX.fullmatch(v) is not None


def _pending_at_a_glance(obj: dict) -> PendingTx | None:
    """The pending transaction of a well-formed envelope, checked as the field-by-field reader checks it
    but in one pass (a member reads tens of thousands a second); None where any field is not plainly
    valid: then :func:`_decode_pending`'s reader reads it again and names what is wrong."""
    try:
        chain_id, h, frm, inp = obj["chain_id"], obj["hash"], obj["from_address"], obj["input"]
        typ, seen, src = obj["type"], obj["first_seen_ns"], obj["source_node"]
        nonce, value, gas = obj["nonce"], obj["value"], obj["gas"]
    except KeyError:
        return None
    to, rep = obj.get("to_address"), obj.get("replaces")
    gp, mf, mp = obj.get("gas_price"), obj.get("max_fee_per_gas"), obj.get("max_priority_fee_per_gas")
    if not (type(chain_id) is int and type(typ) is int and type(seen) is int and type(src) is str
            and 0 <= chain_id < U64 and 0 <= typ < U64 and 0 <= seen < U64
            and _hex(h) and _hex(frm) and _hex(inp) and (to is None or _hex(to)) and (rep is None or _hex(rep))):
        return None
    n, v, g = _quantity(nonce, U64), _quantity(value, U256), _quantity(gas, U64)
    fees = [None if x is None else _quantity(x, U256) for x in (gp, mf, mp)]
    if n < 0 or v < 0 or g < 0 or -1 in fees:
        return None
    return PendingTx(chain_id, h.lower(), frm.lower(), to.lower() if to is not None else None, n, inp.lower(), v, g,
                     fees[0], fees[1], fees[2], typ, seen, src, rep.lower() if rep is not None else None)


def _decode_pending(obj: dict, r: _Reader) -> PendingTx:
    fast = _pending_at_a_glance(obj)
    return fast if fast is not None else _read_pending(obj, r)


def _read_pending(obj: dict, r: _Reader) -> PendingTx:
    return PendingTx(
        chain_id=r.get(obj, "chain_id", "", int), hash=r.hexstr(obj, "hash", ""),
        from_address=r.hexstr(obj, "from_address", ""), to_address=r.hexstr(obj, "to_address", "", optional=True),
        nonce=r.quantity(obj, "nonce", "", limit=U64), input=r.hexstr(obj, "input", ""), value=r.quantity(obj, "value", ""),
        gas=r.quantity(obj, "gas", "", limit=U64), gas_price=r.quantity(obj, "gas_price", "", optional=True),
        max_fee_per_gas=r.quantity(obj, "max_fee_per_gas", "", optional=True),
        max_priority_fee_per_gas=r.quantity(obj, "max_priority_fee_per_gas", "", optional=True),
        type=r.get(obj, "type", "", int), first_seen_ns=r.get(obj, "first_seen_ns", "", int),
        source_node=r.get(obj, "source_node", "", str), replaces=r.hexstr(obj, "replaces", "", optional=True),
    )


def _timestamp(obj: dict, r: _Reader) -> int:
    ts = r.get(obj, "timestamp", "", int)
    if ts >= MAX_TIMESTAMP:
        raise r.fail("timestamp", f"{ts} is out of range (before 2106: under 2^32 seconds)")
    return ts


def _decode_block(obj: dict, r: _Reader) -> Block:
    number = r.get(obj, "block_number", "", int)
    txs = []
    hashes: dict[str, int] = {}
    for i, t in enumerate(r.get(obj, "transactions", "", list)):
        p = f"transactions[{i}]."
        if not isinstance(t, dict):
            raise r.fail(p[:-1], "expected an object")
        h = r.hexstr(t, "hash", p)
        if h in hashes:  # would silently drop a victim or a whole sandwich
            raise r.fail(f"{p}hash", f"duplicate transaction hash (also transactions[{hashes[h]}])")
        hashes[h] = i
        logs = []
        for k, lg in enumerate(r.get(t, "logs", p, list)):
            lp = f"{p}logs[{k}]."
            if not isinstance(lg, dict):
                raise r.fail(lp[:-1], "expected an object")
            topics = r.get(lg, "topics", lp, list)
            if not all(isinstance(x, str) for x in topics):
                raise r.fail(f"{lp}topics", "expected strings")
            logs.append(Log(r.hexstr(lg, "address", lp), tuple(x.lower() for x in topics), r.hexstr(lg, "data", lp),
                            r.get(lg, "log_index", lp, int)))
        traces = []
        for k, tr in enumerate(r.get(t, "traces", p, list)):
            tp = f"{p}traces[{k}]."
            if not isinstance(tr, dict):
                raise r.fail(tp[:-1], "expected an object")
            addr = r.get(tr, "trace_address", tp, list)
            if len(addr) > MAX_TRACE_DEPTH:
                raise r.fail(f"{tp}trace_address", f"nesting {len(addr)} deep exceeds the cap of {MAX_TRACE_DEPTH}")
            if not all(isinstance(x, int) and not isinstance(x, bool) and 0 <= x < U64 for x in addr):
                raise r.fail(f"{tp}trace_address", "expected non-negative integers")
            traces.append(Trace(
                tuple(addr), r.get(tr, "type", tp, str), r.get(tr, "call_type", tp, str),
                r.hexstr(tr, "from_address", tp), r.get(tr, "to_address", tp, str).lower(), r.hexstr(tr, "input", tp),
                r.hexstr(tr, "output", tp), r.quantity(tr, "value", tp), r.get(tr, "error", tp, str, optional=True),
                r.get(tr, "subtraces", tp, int),
            ))
        pos = r.get(t, "transaction_index", p, int)
        if pos >= U32:  # the store's column is UInt32 (no block holds 4 billion transactions)
            raise r.fail(f"{p}transaction_index", f"{pos} is out of range (0 to 2^32-1)")
        txs.append(Transaction(
            hash=r.hexstr(t, "hash", p), position=pos,
            from_address=r.hexstr(t, "from_address", p), to_address=r.hexstr(t, "to_address", p, optional=True),
            input=r.hexstr(t, "input", p), value=r.quantity(t, "value", p), nonce=r.get(t, "nonce", p, int, optional=True),
            gas_used=r.get(t, "gas_used", p, int, optional=True),
            effective_gas_price=r.quantity(t, "effective_gas_price", p, optional=True),
            max_priority_fee_per_gas=r.quantity(t, "max_priority_fee_per_gas", p, optional=True),
            success=r.get(t, "success", p, bool), traces=traces, logs=logs,
        ))
    return Block(
        number=number, hash=r.hexstr(obj, "block_hash", "", optional=True),
        parent_hash=r.hexstr(obj, "parent_hash", "", optional=True), timestamp=_timestamp(obj, r),
        miner=r.hexstr(obj, "miner", "", optional=True),
        base_fee_per_gas=r.quantity(obj, "base_fee_per_gas", "", optional=True), transactions=txs,
        chain_id=r.get(obj, "chain_id", "", int), has_traces=r.get(obj, "has_traces", "", bool),
        has_logs=r.get(obj, "has_logs", "", bool),
    )
