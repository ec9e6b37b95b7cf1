"""Geth's ``callTracer`` call frames as the flat, parity-style trace records ``trace_block`` yields.

``debug_traceBlockByNumber(n, {"tracer": "callTracer"})`` answers one entry per transaction, in
block order: ``{"txHash": ..., "result": frame}`` (older Geth: ``{"result": frame}``), or
``{"txHash": ..., "error": "..."}`` when tracing that transaction failed. A frame is a tree::

    {"type": "CALL", "from", "to", "value", "gas", "gasUsed", "input", "output",
     "error", "revertReason", "calls": [frame, ...]}

:func:`block_traces` walks each tree depth first (parents before children, children in call
order: the order ``trace_block`` lists them in) and makes one :class:`~monitor.types.Trace` per
frame, as :func:`streams.mevinspect._trace` makes one per ``trace_block`` entry:

- ``trace_address``: the child indices from the top frame (``()`` for the top, ``(2, 0)`` for the
  first call of its third call), ``subtraces`` the number of children;
- ``CALL``/``STATICCALL``/``DELEGATECALL``/``CALLCODE``: type ``call`` with the lower-case call
  type, value (a ``STATICCALL`` has none: 0), input and output (a reverted frame keeps its revert
  data, as Reth and anvil report it);
- ``CREATE``/``CREATE2``: type ``create``, the new contract as ``to`` (none when it failed),
  empty input and output (``trace_block`` puts init code and code elsewhere);
- ``SELFDESTRUCT``: type ``suicide``, from the destroyed contract to the beneficiary, value the
  balance moved;
- ``error``: Geth's messages in ``trace_block``'s words (``execution reverted`` -> ``Reverted``,
  ``out of gas`` -> ``Out of gas``, ...), others as Geth wrote them.

So a block decodes to the same swaps and transfers with either tracer
(tests/streams/test_geth_trace_live.py checks it on anvil, which serves both).
"""

from __future__ import annotations

from typing import Any

from mevwatch.monitor.types import Trace

MAX_DEPTH = 1024  # deeper nesting than the EVM allows is not a real trace (same cap as trace_block input)

CALL_TYPES = {"CALL": "call", "STATICCALL": "staticcall", "DELEGATECALL": "delegatecall", "CALLCODE": "callcode"}
CREATE_TYPES = ("CREATE", "CREATE2")
SELFDESTRUCT_TYPES = ("SELFDESTRUCT", "SUICIDE")

# Geth's error text (prefix, lower case) -> trace_block's (OpenEthereum, Erigon, Reth)
_ERRORS = (
    ("execution reverted", "Reverted"),
    ("out of gas", "Out of gas"),
    ("invalid jump destination", "Bad jump destination"),
    ("invalid opcode", "Bad instruction"),
    ("stack underflow", "Stack underflow"),
    ("stack limit reached", "Out of stack"),
    ("max call depth exceeded", "Out of stack"),
    ("write protection", "Mutable Call In Static Context"),
)


class GethTraceError(ValueError):
    """A ``debug_traceBlockByNumber`` answer that cannot be read as call frames, or names a failed transaction."""


def parity_error(error: Any) -> str | None:
    """Geth's frame error in ``trace_block``'s words (None: the frame succeeded)."""
    if not error:
        return None
    text = str(error)
    low = text.lower()
    for prefix, parity in _ERRORS:
        if low.startswith(prefix):
            return parity
    return text


def _int(v: Any) -> int:
    if v is None:
        return 0
    if isinstance(v, int):
        return v
    return int(v, 16) if isinstance(v, str) and v.startswith("0x") else int(v)


def _addr(v: Any) -> str:
    return str(v).lower() if v else ""


def frame_traces(frame: dict) -> list[Trace]:
    """One transaction's call frame tree as trace records, depth first."""
    out: list[Trace] = []
    stack: list[tuple[dict, tuple[int, ...]]] = [(frame, ())]
    while stack:
        f, address = stack.pop()
        if not isinstance(f, dict):
            raise GethTraceError(f"call frame at {list(address)} is not an object")
        if len(address) > MAX_DEPTH:
            raise GethTraceError(f"call frames nested deeper than {MAX_DEPTH}")
        calls = f.get("calls") or []
        if not isinstance(calls, list):
            raise GethTraceError(f"'calls' at {list(address)} is not a list")
        kind = str(f.get("type", "CALL")).upper()
        error = parity_error(f.get("error"))
        if kind in CALL_TYPES:
            trace = Trace(address, "call", CALL_TYPES[kind], _addr(f["from"]), _addr(f.get("to")),
                          f.get("input") or "0x", f.get("output") or "0x", _int(f.get("value")), error, len(calls))
        elif kind in CREATE_TYPES:
            trace = Trace(address, "create", "", _addr(f["from"]), "" if error else _addr(f.get("to")),
                          "0x", "0x", _int(f.get("value")), error, len(calls))
        elif kind in SELFDESTRUCT_TYPES:
            trace = Trace(address, "suicide", "", _addr(f["from"]), _addr(f.get("to")), "0x", "0x",
                          _int(f.get("value")), error, len(calls))
        else:
            raise GethTraceError(f"unknown call frame type {kind[:40]!r} at {list(address)}")
        out.append(trace)
        for i in range(len(calls) - 1, -1, -1):  # reversed onto the stack: popped in call order
            stack.append((calls[i], (*address, i)))
    return out


def block_traces(answer: Any, tx_hashes: list[str]) -> dict[int, list[Trace]]:
    """``debug_traceBlockByNumber``'s answer for a block whose transactions are ``tx_hashes`` (in
    order) as trace records by transaction position. Raises :class:`GethTraceError` when it does
    not match the block or a transaction could not be traced."""
    if not isinstance(answer, list):
        raise GethTraceError("the answer is not a list")
    if len(answer) != len(tx_hashes):
        raise GethTraceError(f"{len(answer)} traced transactions for a block of {len(tx_hashes)}")
    out: dict[int, list[Trace]] = {}
    for pos, (entry, tx_hash) in enumerate(zip(answer, tx_hashes)):
        if not isinstance(entry, dict):
            raise GethTraceError(f"entry {pos} is not an object")
        named = entry.get("txHash")
        if named and str(named).lower() != tx_hash.lower():
            raise GethTraceError(f"entry {pos} traces {named}, not the block's transaction {tx_hash}")
        if entry.get("error") and entry.get("result") is None:
            raise GethTraceError(f"transaction {pos} could not be traced: {str(entry['error'])[:200]}")
        frame = entry.get("result", entry if "type" in entry else None)
        if frame is None:
            raise GethTraceError(f"entry {pos} has no call frame")
        try:
            out[pos] = frame_traces(frame)
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, GethTraceError):
                raise GethTraceError(f"transaction {pos}: {exc}") from None
            raise GethTraceError(f"transaction {pos}: unreadable call frame ({exc!r})") from None
    return out
