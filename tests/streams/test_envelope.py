"""Envelopes: exact round trips, and strict errors that name the input and field."""

from __future__ import annotations

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
