"""Minimal, fast ABI word access on 0x-hex strings, for the hot decoding path.

Calldata is read word by word from its hex string; a field is readable as long as
its 32 bytes are present, so calldata that is not 32-byte aligned (trailing bytes
cut or added) still decodes. A field that is missing raises :class:`Short`.
"""

from __future__ import annotations

_TWO_256 = 1 << 256
_TWO_255 = 1 << 255
_TWO_128 = 1 << 128
_TWO_127 = 1 << 127


class Short(ValueError):
    """A field lies past the end of the data."""


def arg(data: str, i: int) -> int:
    """Unsigned word ``i`` of calldata (after the 4-byte selector)."""
    s = data[10 + 64 * i : 74 + 64 * i]
    if len(s) != 64:
        raise Short(i)
    return int(s, 16)


def arg_addr(data: str, i: int) -> str:
    s = data[34 + 64 * i : 74 + 64 * i]
    if len(s) != 40:
        raise Short(i)
    return "0x" + s


def out(data: str, i: int) -> int:
    """Unsigned word ``i`` of return data or log data (no selector)."""
    s = data[2 + 64 * i : 66 + 64 * i]
    if len(s) != 64:
        raise Short(i)
    return int(s, 16)


def signed(v: int) -> int:
    return v - _TWO_256 if v >= _TWO_255 else v


def signed128(v: int) -> int:
    return v - _TWO_128 if v >= _TWO_127 else v


def int24(v: int) -> int:
    """The low 24 bits of ``v`` as a signed int24 (Uniswap ticks)."""
    v &= (1 << 24) - 1
    return v - (1 << 24) if v >= 1 << 23 else v


def topic_addr(topic: str) -> str:
    return "0x" + topic[-40:]


def arg_at(data: str, byte_offset: int) -> int:
    """Word at a byte offset from the start of the arguments (for dynamic types)."""
    start = 10 + 2 * byte_offset
    s = data[start : start + 64]
    if len(s) != 64:
        raise Short(byte_offset)
    return int(s, 16)


def arg_addr_at(data: str, byte_offset: int) -> str:
    start = 10 + 2 * byte_offset
    s = data[start + 24 : start + 64]
    if len(s) != 40:
        raise Short(byte_offset)
    return "0x" + s


def address_array(data: str, i: int, max_len: int = 64) -> list[str]:
    """``address[]`` whose offset is in word ``i`` of calldata."""
    off = arg(data, i)
    n = arg_at(data, off)
    if n > max_len:
        raise Short(f"array length {n}")
    return [arg_addr_at(data, off + 32 * (k + 1)) for k in range(n)]
