"""Canonical bytes of an alert: what an attestation leaf commits to.

The encoding is the JSON Canonicalization Scheme (RFC 8785, "JCS") of the alert record
of docs/alerts.md at its ``final`` stage: object members sorted by their keys' UTF-16
code units, no whitespace, strings escaped as ECMAScript's ``JSON.stringify`` does,
numbers written as ECMAScript's ``Number.prototype.toString`` writes them, UTF-8.
In JavaScript, ``canonicalize(record)`` from any JCS library gives the same bytes; see
docs/attestation.md. The record's 256-bit amounts are decimal strings already, so no
number in it needs more than a double's precision.

The serialisation is the maintained ``rfc8785`` package (PyPI); this module only maps its
errors to :class:`InputError`. Checked against the hand-written encoder it replaced: the same
bytes for every attested alert of two real ``mevwatch demo`` runs (62 records; the test keeps one
run's bundles and the old encoder's sha256 of each), for the shipped model's metadata (its
content hash is unchanged) and for 20,000 arbitrary JSON values; the same bytes as the
JavaScript ``canonicalize`` package (tests/attest/test_encoding.py). It is faster, too: about
150 us per demo alert record against 230-340 us for the old encoder (3 runs, a shared 2-core box). Two inputs the old encoder accepted are refused now, as
RFC 8785 asks: strings with lone surrogates (section 3.2.2.2: they "MUST cause ... an error"),
and the integers 2**53 and -2**53, just outside I-JSON's exact range (RFC 7493; the old encoder
refused every integer beyond them already; alert records carry large numbers as strings).
"""

from __future__ import annotations

from typing import Any

import rfc8785

from mevwatch.monitor.errors import InputError


def canonical_json(value: Any) -> bytes:
    """RFC 8785 bytes of a JSON value."""
    try:
        return rfc8785.dumps(value)
    except rfc8785.IntegerDomainError as exc:
        raise InputError(f"canonical encoding: {exc} (alert records carry such numbers as strings)") from None
    except rfc8785.CanonicalizationError as exc:
        raise InputError(f"canonical encoding has no form for this value: {exc}") from None
    except UnicodeError:  # a lone surrogate in an object key (rfc8785 sorts keys by their UTF-16 encoding)
        raise InputError("canonical encoding: an object key is not valid Unicode (lone surrogate)") from None


def alert_bytes(record: dict[str, Any]) -> bytes:
    """The canonical bytes of one alert record (``Alert.to_json()``); it must be at stage final."""
    if record.get("stage") != "final":
        raise InputError(f"only final alerts are attested; alert {record.get('alert_id')} is {record.get('stage')}")
    return canonical_json(record)
