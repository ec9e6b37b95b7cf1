"""A strict ABI decoder for the few argument types of router calls, on the detect path.

eth-abi decodes router calldata in 40-100 us a call, most of it in its generic machinery and in
checksumming every address; this decoder reads the words it needs (a few microseconds). It accepts
only what eth-abi's strict decoding accepts, and gives the same values, with two differences in form:
addresses come back as lower-case ``0x`` strings (the pending decoder lower-cases eth-abi's
checksummed ones anyway) and arrays as lists. Anything it does not accept raises :class:`AbiError`;
the caller (monitor/decode/pending.py ``abi_decode``) then asks eth-abi, so that calldata this decoder
refuses is never decoded differently from before, only more slowly. tests/decode/test_abi.py checks
both on real router calldata and on many mutations of it.

Types are given as small specs (:func:`spec` parses the ABI names used): ``"uint"`` with its bit size,
``"address"``, ``"bool"``, ``"bytes32"``, ``"bytes"``, ``"address[]"``, ``"bytes[]"`` and tuples of them.
"""

from __future__ import annotations

from typing import Any

_WORD = 32
_MAX_ITEMS = 1 << 16  # an array longer than this is refused here (eth-abi decides)


class AbiError(ValueError):
    """Calldata this decoder does not accept (eth-abi may still, or may refuse it too)."""


class Spec:
    """One ABI type: ``kind`` is uint | address | bool | bytes32 | bytes | address[] | bytes[] | tuple.

    Worked out once, when the spec is built: ``dynamic``; ``words``, the head words it takes where it is
    an item (1 for a dynamic type, its pointer); and for a tuple, ``head``, the bytes of its items' head."""

    __slots__ = ("kind", "bits", "items", "dynamic", "words", "head")

    def __init__(self, kind: str, bits: int = 256, items: list[Spec] | None = None):
        self.kind = kind
        self.bits = bits
        self.items: list[Spec] = items if items is not None else []
        self.dynamic: bool = kind in ("bytes", "address[]", "bytes[]") or any(i.dynamic for i in self.items)
        self.head: int = _WORD * sum(i.words for i in self.items)
        self.words: int = self.head // _WORD if kind == "tuple" and not self.dynamic else 1


def _split(inner: str) -> list[str]:
    out, depth, cur = [], 0, ""
    for ch in inner:
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
            continue
        depth += (ch == "(") - (ch == ")")
        cur += ch
    out.append(cur)
    return out


def spec(name: str) -> Spec:
    """The spec of an ABI type name such as ``uint24``, ``address[]`` or ``(bytes,address,uint256)``."""
    if name.startswith("(") and name.endswith(")"):
        return Spec("tuple", items=[spec(n) for n in _split(name[1:-1])])
    if name.startswith("uint") and name[4:].isdigit():
        bits = int(name[4:])
        if bits % 8 or not 8 <= bits <= 256:
            raise ValueError(f"unsupported ABI type {name}")
        return Spec("uint", bits)
    if name in ("address", "bool", "bytes32", "bytes", "address[]", "bytes[]"):
        return Spec(name)
    raise ValueError(f"unsupported ABI type {name}")


def arguments(types: list[str]) -> Spec:
    """The spec of a function's argument list (encoded as a tuple of them); raises ValueError for a type
    this decoder does not know."""
    return Spec("tuple", items=[spec(t) for t in types])


def decode(args: Spec, data: bytes) -> tuple[Any, ...]:
    """The values of ``args`` (an argument list, :func:`arguments`) encoded in ``data``."""
    return tuple(_tuple(args, data, 0))


def _word(data: bytes, at: int) -> int:
    if at < 0 or at + _WORD > len(data):
        raise AbiError(f"a word at {at} lies past the end ({len(data)} bytes)")
    return int.from_bytes(data[at : at + _WORD], "big")


def _pointer(data: bytes, at: int, base: int, head_end: int) -> int:
    """A dynamic value's position: the offset stored at ``at``, from ``base``; it must lie after the
    head it is in (``head_end``) and before the end of the data (as eth-abi's strict decoder checks)."""
    off = _word(data, at)
    if off >= len(data) or not head_end <= base + off < len(data):
        raise AbiError(f"an offset at {at} points into its head or past the end")
    return base + off


def _tuple(t: Spec, data: bytes, start: int) -> list[Any]:
    out: list[Any] = []
    at = start
    head_end = start + t.head
    for s in t.items:
        if s.dynamic:
            out.append(_dynamic(s, data, _pointer(data, at, start, head_end)))
            at += _WORD
        elif s.kind == "tuple":
            out.append(tuple(_tuple(s, data, at)))
            at += _WORD * s.words
        else:
            out.append(_static(s, _word(data, at)))
            at += _WORD
    return out


def _static(s: Spec, w: int) -> Any:
    k = s.kind
    if k == "uint":
        if s.bits < 256 and w >> s.bits:
            raise AbiError(f"uint{s.bits} with bits set above its size")
        return w
    if k == "address":
        return _address(w)
    if k == "bool":
        if w > 1:
            raise AbiError("a bool neither 0 nor 1")
        return w == 1
    if k == "bytes32":
        return w.to_bytes(32, "big")
    raise AbiError(f"not a static type: {k}")


def _bytes(data: bytes, at: int) -> bytes:
    n = _word(data, at)
    begin = at + _WORD
    padded = (n + _WORD - 1) // _WORD * _WORD
    if begin + padded > len(data):
        raise AbiError(f"bytes of length {n} at {at} run past the end")
    if any(data[begin + n : begin + padded]):
        raise AbiError("bytes with non-zero padding")
    return data[begin : begin + n]


def _count(data: bytes, at: int) -> int:
    n = _word(data, at)
    if n > _MAX_ITEMS or at + _WORD + n * _WORD > len(data):
        raise AbiError(f"an array of {n} items at {at} runs past the end")
    return n


def _dynamic(s: Spec, data: bytes, at: int) -> Any:
    k = s.kind
    if k == "bytes":
        return _bytes(data, at)
    if k == "address[]":
        n = _count(data, at)
        return [_address(_word(data, at + _WORD * (i + 1))) for i in range(n)]
    if k == "bytes[]":
        n = _count(data, at)
        base = at + _WORD
        return [_bytes(data, _pointer(data, base + _WORD * i, base, base + _WORD * n)) for i in range(n)]
    if k == "tuple":
        return tuple(_tuple(s, data, at))
    raise AbiError(f"not a dynamic type: {k}")


def _address(w: int) -> str:
    if w >> 160:
        raise AbiError("an address with bytes set before it")
    return "0x" + w.to_bytes(20, "big").hex()
