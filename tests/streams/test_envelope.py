"""Envelopes: exact round trips, and strict errors that name the input and field."""

from __future__ import annotations

import orjson
import pytest

from mevwatch.monitor.errors import EnvelopeError
from mevwatch.streams import envelope
from mevwatch.monitor.types import PendingTx, RevertEvent

pytestmark = pytest.mark.fast


def test_block_round_trip_is_exact(load_block):
    b = load_block(12775690)
    again = envelope.decode(envelope.encode(b))
    assert again == b


def test_pending_and_revert_round_trip_keep_big_integers():
    p = PendingTx(1, "0x" + "aa" * 32, "0x" + "bb" * 20, None, 7, "0x", 2**255 + 1, 21000, None, 3 * 10**12, 2 * 10**9, 2,
                  1_700_000_000_123_456_789, "anvil", replaces="0x" + "cc" * 32)
    assert envelope.decode(envelope.encode(p)) == p
    r = RevertEvent(1, 100, "0x" + "dd" * 32, "0x" + "ee" * 32, 2)
    assert envelope.decode(envelope.encode(r)) == r


@pytest.mark.parametrize(
    "raw, needle",
    [
        (b"{not json", "malformed JSON"),
        (b"[1, 2]", "expected a JSON object"),
        (b'{"schema": "mevwatch.block.v9"}', "unknown schema"),
        (b'{"schema": "mevwatch.pending.v1", "chain_id": 1}', "'hash': missing"),
        (b'{"schema": "mevwatch.revert.v1", "chain_id": "1", "block_number": 1, "block_hash": "0x", "depth": 1}', "expected int"),
    ],
)
def test_errors_name_source_position_and_field(raw, needle):
    with pytest.raises(EnvelopeError) as exc:
        envelope.decode(raw, source="mevwatch.mempool.v1/3", position="offset 42")
    msg = str(exc.value)
    assert needle in msg and "mevwatch.mempool.v1/3 at offset 42" in msg


def test_nested_field_path_in_error(load_block):
    import orjson

    obj = orjson.loads(envelope.encode(load_block(12674514)))
    obj["transactions"][3]["traces"][0]["value"] = "twelve"
    with pytest.raises(EnvelopeError, match=r"transactions\[3\]\.traces\[0\]\.value"):
        envelope.decode(orjson.dumps(obj))


def _pending_fields() -> dict:
    return orjson.loads(envelope.encode(PendingTx(1, "0x" + "aA" * 32, "0x" + "bB" * 20, "0x" + "Cc" * 20, 7, "0xA9059cbb",
                                                  10**18, 21000, None, 3 * 10**12, 2 * 10**9, 2, 1_700_000_000_123_456_789,
                                                  "node-1", replaces="0x" + "cc" * 32)))


# what each field may hold in hostile or sloppy envelopes: well-formed values and near misses
ODD_VALUES = [None, True, False, 0, -1, 7, 2**64 - 1, 2**64, 2**256 - 1, 2**256, 1.5, "", "0", "12", "0x1f", "0X1F", " 12",
              "1_000", "١٢", "²", "-3", "0x", "0xzz", "0xAbC", "abc", [], {}, "9" * 78, "1" + "0" * 77, "1" * 5000]


def test_the_fast_pending_reader_reads_exactly_as_the_field_reader():
    """A member reads pending envelopes in one pass (streams/envelope.py _pending_at_a_glance); whenever
    it accepts an envelope, the field-by-field reader (which names a bad field) must read the same
    transaction, and where that reader refuses one, the fast one must refuse it too."""
    import json
    import random

    rng = random.Random(7)
    base = _pending_fields()
    accepted = refused = 0
    cases = [dict(base)]
    for key in base:
        if key == "schema":
            continue
        for v in ODD_VALUES:
            cases.append({**base, key: v})
        cases.append({k: x for k, x in base.items() if k != key})  # missing
    for _ in range(2000):  # several fields odd at once
        c = dict(base)
        for key in rng.sample([k for k in base if k != "schema"], 3):
            c[key] = rng.choice(ODD_VALUES)
        cases.append(c)
    for c in cases:
        fast = envelope._pending_at_a_glance(c)
        try:
            slow = envelope._read_pending(c, envelope._Reader("test", 0))
        except EnvelopeError:
            slow = None
        if fast is not None:
            accepted += 1
            assert fast == slow, c
        else:
            refused += 1
        if slow is None:
            assert fast is None, c
            with pytest.raises(EnvelopeError, match="field"):  # and the whole decode names the field
                envelope.decode(json.dumps(c), source="test")
    assert accepted > 100 and refused > 100, (accepted, refused)
