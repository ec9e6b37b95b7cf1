"""Parse recorded blocks in mev-inspect-py's JSON layout into :class:`monitor.types.Block`.

Layout: ``{block_number, block_timestamp, miner, base_fee_per_gas, traces, receipts}``
with parity-style ``trace_block`` entries. Both snake_case keys (as mev-inspect-py
stores them) and camelCase keys (as a node returns them) are accepted.
"""

from __future__ import annotations

import re
from binascii import unhexlify
from typing import Any

from mevwatch.monitor.errors import InputError
from mevwatch.monitor.types import Block, Trace, Transaction

U32, U64, U256, MAX_TIMESTAMP = 2**32, 2**64, 2**256, 2**32
MAX_TRACE_DEPTH = 1024  # deeper call nesting than the EVM allows is not a real trace (and costs memory)
_HEX = re.compile(r"0x[0-9a-fA-F]*")


def _int(v: Any) -> int:
    """An integer field: a JSON integer, ``0x`` hex or decimal digits; None is 0. Booleans, floats and
    anything else are refused (``int()`` would take ``True`` and ``12.7``)."""
    if v is None:
        return 0
    if isinstance(v, int) and not isinstance(v, bool):
        return v
    if isinstance(v, str):
        if v.startswith("0x"):
            return int(v, 16)
        if v.isascii() and v.isdigit():
            return int(v)
    raise ValueError(f"expected an integer, got {str(v)[:40]!r}")


def _trace(raw: dict) -> tuple[Any, Any, Trace]:  # hash and position checked by the caller, by name
    action = raw.get("action") or {}
    result = raw.get("result") or {}
    kind = raw.get("type", "call")
    ta = raw.get("trace_address")
    if ta is None:
        ta = raw.get("traceAddress", [])
    if not isinstance(ta, list) or len(ta) > MAX_TRACE_DEPTH:
        raise ValueError(f"trace_address: nesting deeper than {MAX_TRACE_DEPTH} or not a list")
    tx_hash = raw.get("transaction_hash") or raw.get("transactionHash")
    pos = raw.get("transaction_position")
    if pos is None:
        pos = raw.get("transactionPosition")
    if kind == "call":
        trace = Trace(
            tuple(ta), kind, action.get("callType", "call"), action["from"].lower(), action["to"].lower(),
            action.get("input", "0x"), result.get("output", "0x") if result else "0x",
            _int(action.get("value")), raw.get("error"), raw.get("subtraces", 0),
        )
    elif kind == "create":
        trace = Trace(
            tuple(ta), kind, "", action["from"].lower(), (result.get("address") or "").lower(),
            "0x", "0x", _int(action.get("value")), raw.get("error"), raw.get("subtraces", 0),
        )
    elif kind == "suicide":
        trace = Trace(
            tuple(ta), kind, "", action.get("address", "").lower(), action.get("refundAddress", "").lower(),
            "0x", "0x", _int(action.get("balance")), raw.get("error"), raw.get("subtraces", 0),
        )
    else:  # reward and anything newer: not part of a transaction
        return None, None, Trace(tuple(ta), kind, "", "", "", "0x", "0x", 0, None, 0)
    return tx_hash, pos, trace


def parse_block(raw: dict, *, source: str = "<block>", chain_id: int = 1) -> Block:
    """Build a Block from one mev-inspect-py JSON object. Raises InputError naming ``source``."""
    try:
        number = _field_int(raw, "block_number", source)
        by_pos: dict[int, list[Trace]] = {}
        hashes: dict[int, str] = {}
        block_hash = None
        for i, t in enumerate(raw.get("traces") or ()):
            try:
                tx_hash, pos, trace = _trace(t)
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                raise InputError(f"malformed trace: {exc!r}", source=source, position=f"traces[{i}]") from None
            if block_hash is None:
                block_hash = t.get("block_hash") or t.get("blockHash")
            if tx_hash is None or pos is None:
                continue
            if not isinstance(tx_hash, str):
                raise InputError("transaction_hash: expected 0x-prefixed hex", source=source, position=f"traces[{i}]")
            if not (_is_index(pos) and pos < U32):  # a float or bool key would merge with an int one
                raise InputError(f"transaction_position: {str(pos)[:40]} is not an integer from 0 to 2^32-1", source=source,
                                 position=f"traces[{i}]")
            by_pos.setdefault(pos, []).append(trace)
            known = hashes.setdefault(pos, tx_hash)
            if known != tx_hash:
                raise InputError(f"transaction_hash: {str(tx_hash)[:80]!r} differs from this transaction's other traces "
                                 f"({str(known)[:80]!r})", source=source, position=f"traces[{i}]")
        receipts = {}
        for i, r in enumerate(raw.get("receipts") or ()):
            try:
                receipts[_int(r["transaction_index"])] = r
            except (KeyError, TypeError, ValueError) as exc:
                raise InputError(f"malformed receipt: {exc!r}", source=source, position=f"receipts[{i}]") from None
        txs = []
        for pos in sorted(set(by_pos) | set(receipts)):
            traces = by_pos.get(pos, [])
            traces.sort(key=lambda tr: tr.trace_address)
            root = traces[0] if traces and traces[0].trace_address == () else None
            rec = receipts.get(pos, {})
            tx_hash = hashes.get(pos) or rec.get("transaction_hash")
            if tx_hash is None:
                raise InputError("transaction without a hash", source=source, position=f"transaction {pos}")
            to = rec.get("to") or (root.to_address if root else None)
            if to is not None and not isinstance(to, str):
                raise InputError("to: expected 0x-prefixed hex", source=source, position=f"transaction {pos}")
            txs.append(
                Transaction(
                    hash=tx_hash,
                    position=pos,
                    from_address=root.from_address if root else "",
                    to_address=to.lower() if to else None,
                    input=root.input if root else "0x",
                    value=root.value if root else 0,
                    gas_used=_receipt_int(rec, "gas_used", source, pos),
                    effective_gas_price=_receipt_int(rec, "effective_gas_price", source, pos),
                    success=(root.error is None) if root else True,
                    traces=traces,
                )
            )
        miner = raw.get("miner")
        _validate(number, raw, txs, source)
        return Block(
            number=number,
            hash=block_hash,
            parent_hash=raw.get("parent_hash"),
            timestamp=_field_int(raw, "block_timestamp", source),
            miner=miner.lower() if miner else None,
            base_fee_per_gas=_int(raw.get("base_fee_per_gas")),
            transactions=txs,
            chain_id=chain_id,
            has_traces=True,
            has_logs=False,
        )
    except InputError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InputError(f"not a mev-inspect block: {exc!r}", source=source) from None


def _receipt_int(rec: dict, name: str, source: str, pos: int) -> int | None:
    if rec.get(name) is None:  # absent or null: unknown, never 0 (a gas cost of 0 would be a claim)
        return None
    try:
        return _int(rec[name])
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name}: {exc}", source=source, position=f"transaction {pos}") from None


def _field_int(raw: dict, name: str, source: str) -> int:
    try:
        return _int(raw[name] if name == "block_number" else raw.get(name))
    except KeyError:
        raise InputError(f"{name}: missing", source=source, position=name) from None
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name}: {exc}", source=source, position=name) from None


def _validate(number: int, raw: dict, txs: list[Transaction], source: str) -> None:
    """Range and format checks: a value the store or the alert cannot hold is a named rejection."""
    def bad(position: str, why: str) -> InputError:
        return InputError(why, source=source, position=position)

    if not 0 <= number < U64:
        raise bad("block_number", f"{str(number)[:40]} is out of range (0 to 2^64-1)")
    ts = _field_int(raw, "block_timestamp", source)
    if not 0 <= ts < MAX_TIMESTAMP:
        raise bad("block_timestamp", f"{str(ts)[:40]} is out of range (before 2106)")
    fee = _field_int(raw, "base_fee_per_gas", source)
    for name in ("parent_hash", "miner"):
        v = raw.get(name)
        if v is not None and not (isinstance(v, str) and _HEX.fullmatch(v)):
            raise bad(name, "expected 0x-prefixed hex")
    for t in raw.get("traces") or ():
        v = t.get("block_hash") or t.get("blockHash")
        if v is not None and not (isinstance(v, str) and _HEX.fullmatch(v)):
            raise bad("block_hash", "expected 0x-prefixed hex")
        break  # the block's hash is read from its first trace
    if not 0 <= fee < U256:
        raise bad("base_fee_per_gas", "out of range (0 to 2^256-1)")
    seen: dict[str, int] = {}
    hexes: list[str] = []  # the digits of every 0x-prefixed hex field, checked together after the loop
    for tx in txs:
        where = f"transaction {tx.position}"
        if not isinstance(tx.hash, str) or not tx.hash.startswith("0x"):
            raise bad(where, "transaction_hash: expected 0x-prefixed hex")
        hexes.append(tx.hash[2:])
        h = tx.hash.lower()
        if h in seen:
            raise bad(where, f"transaction_hash: duplicate (also transaction {seen[h]})")
        seen[h] = tx.position
        if not (_is_index(tx.position) and tx.position < U32):
            raise bad(where, "transaction_position: out of range (0 to 2^32-1)")
        to = tx.to_address
        if to is not None and not (isinstance(to, str) and to.startswith("0x")):
            raise bad(where, "to: expected 0x-prefixed hex")
        if to:
            hexes.append(to[2:])
        for name in ("gas_used", "effective_gas_price"):
            v = getattr(tx, name)
            if v is not None and not 0 <= v < U256:
                raise bad(where, f"{name}: out of range")
        for k, tr in enumerate(tx.traces):
            # one cheap test per trace on the hot path (replay reads ~1,000 traces a block); the hex
            # digits of every trace are checked together below; the precise, named check runs only
            # when a test fails
            ta = tr.trace_address
            fa, to = tr.from_address, tr.to_address
            if ((ta and not (_is_index(min(ta)) and _is_index(max(ta)))) or not 0 <= tr.value < U256
                    or not tr.input.startswith("0x") or not tr.output.startswith("0x")
                    or (fa and not fa.startswith("0x")) or (to and not to.startswith("0x"))):
                raise _trace_problem(bad, f"{where} trace {k}", tr)
            hexes += [tr.input[2:], tr.output[2:], fa[2:], to[2:]]
    if not _all_hex(hexes):
        for tx in txs:
            if not _HEX.fullmatch(tx.hash):
                raise bad(f"transaction {tx.position}", "transaction_hash: expected 0x-prefixed hex")
            if tx.to_address and not _HEX.fullmatch(tx.to_address):
                raise bad(f"transaction {tx.position}", "to: expected 0x-prefixed hex")
            for k, tr in enumerate(tx.traces):
                if not _HEX.fullmatch(f"{tr.input}{tr.output[2:]}{tr.from_address[2:]}{tr.to_address[2:]}"):
                    raise _trace_problem(bad, f"transaction {tx.position} trace {k}", tr)
        raise bad("traces", "expected 0x-prefixed hex")  # not reached: the loop names the field


def _all_hex(parts: list[str]) -> bool:
    """Whether the strings hold only hex digits, in one C-speed pass over the whole block: a regex
    per trace cost ~1.5 ms a block, ``unhexlify`` checks the block's ~400 KB of digits in ~0.15 ms."""
    s = "".join(parts)
    try:
        unhexlify(s if len(s) % 2 == 0 else s + "0")
    except ValueError:  # binascii.Error, or a non-ASCII character
        return False
    return True


def _is_index(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and 0 <= x < U64


def _trace_problem(bad, tw: str, tr: Trace) -> InputError:
    """The named rejection of a trace that failed the cheap test."""
    if not all(_is_index(x) for x in tr.trace_address):
        return bad(tw, "trace_address: expected non-negative integers")
    if not 0 <= tr.value < U256:
        return bad(tw, "value: out of range (0 to 2^256-1)")
    for name in ("input", "output"):
        v = getattr(tr, name)
        if not isinstance(v, str) or not _HEX.fullmatch(v):
            return bad(tw, f"{name}: expected 0x-prefixed hex")
    for name in ("from_address", "to_address"):
        v = getattr(tr, name)
        if v and not _HEX.fullmatch(v):
            return bad(tw, f"{name}: expected 0x-prefixed hex")
    return bad(tw, "malformed trace")
