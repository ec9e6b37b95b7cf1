"""Canonical bytes of an alert: what an attestation leaf commits to.

The encoding is the JSON Canonicalization Scheme (RFC 8785, "JCS") of the alert record
of docs/alerts.md at its ``final`` stage: object members sorted by their keys' UTF-16
code units, no whitespace, strings escaped as ECMAScript's ``JSON.stringify`` does,
numbers written as ECMAScript's ``Number.prototype.toString`` writes them, UTF-8.
In JavaScript, ``canonicalize(record)`` from any JCS library gives the same bytes; see
docs/attestation.md. The record's 256-bit amounts are decimal strings already, so no
number in it needs more than a double's precision.
"""

from __future__ import annotations

import math
from typing import Any

from mevwatch.monitor.errors import InputError

_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _string(s: str) -> str:
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif o < 0x20 or 0xD800 <= o <= 0xDFFF:  # control characters and lone surrogates
            out.append(f"\\u{o:04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _number(x: float) -> str:
    """ECMAScript Number::toString for a finite double (RFC 8785 section 3.2.2.3)."""
    if not math.isfinite(x):
        raise InputError(f"canonical encoding has no form for {x!r}")
    if x == 0:
        return "0"
    if x < 0:
        return "-" + _number(-x)
    r = repr(float(x))  # shortest round-trip digits
    mant, _, exp = r.partition("e")
    int_part, _, frac = mant.partition(".")
    digits = (int_part + frac).lstrip("0")
    # decimal exponent n: value = 0.d1d2... * 10^n
    n = len(int_part.lstrip("0")) if int_part.strip("0") else -(len(frac) - len(frac.lstrip("0")))
    n += int(exp) if exp else 0
    digits = digits.rstrip("0") or "0"
    k = len(digits)
    if k <= n <= 21:
        return digits + "0" * (n - k)
    if 0 < n <= 21:
        return digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return "0." + "0" * (-n) + digits
    e = n - 1
    sign = "+" if e >= 0 else "-"
    return (digits[0] + ("." + digits[1:] if k > 1 else "")) + "e" + sign + str(abs(e))


def _value(v: Any, out: list[str]) -> None:
    if v is None:
        out.append("null")
    elif v is True:
        out.append("true")
    elif v is False:
        out.append("false")
    elif isinstance(v, str):
        out.append(_string(v))
    elif isinstance(v, int):
        if abs(v) > 2**53:
            raise InputError(f"integer {v} is beyond a double's exact range: alert records carry such numbers as strings")
        out.append(str(int(v)))
    elif isinstance(v, float):
        out.append(_number(v))
    elif isinstance(v, dict):
        out.append("{")
        for i, key in enumerate(sorted(v, key=lambda s: str(s).encode("utf-16-be", "surrogatepass"))):
            if not isinstance(key, str):
                raise InputError(f"object key {key!r} is not a string")
            if i:
                out.append(",")
            out.append(_string(key))
            out.append(":")
            _value(v[key], out)
        out.append("}")
    elif isinstance(v, (list, tuple)):
        out.append("[")
        for i, item in enumerate(v):
            if i:
                out.append(",")
            _value(item, out)
        out.append("]")
    else:
        raise InputError(f"canonical encoding has no form for {type(v).__name__}")


def canonical_json(value: Any) -> bytes:
    """RFC 8785 bytes of a JSON value."""
    out: list[str] = []
    _value(value, out)
    return "".join(out).encode("utf-8", "surrogatepass")


def alert_bytes(record: dict[str, Any]) -> bytes:
    """The canonical bytes of one alert record (``Alert.to_json()``); it must be at stage final."""
    if record.get("stage") != "final":
        raise InputError(f"only final alerts are attested; alert {record.get('alert_id')} is {record.get('stage')}")
    return canonical_json(record)
