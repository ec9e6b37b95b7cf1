"""One bad block costs one block in a JSONL replay: malformed or out-of-range values (hypothesis
generates them) are named rejections (file, line, field) that go to the dead-letter list, and the
blocks around them are replayed."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from mevwatch.monitor.replay import replay_files
from mevwatch.monitor.types import Block, Log, Trace, Transaction
from mevwatch.streams import envelope


def _block(number: int) -> dict:
    txs = [Transaction(f"0x{number:032x}{i:032x}", i, "0x" + "11" * 20, "0x" + "22" * 20, "0xa9059cbb" + "00" * 64, 0, i, 21000,
                       10**9, None, True,
                       [Trace((), "call", "call", "0x" + "11" * 20, "0x" + "22" * 20, "0x", "0x", 0, None, 0)],
                       [Log("0x" + "22" * 20, ("0x" + "33" * 32,), "0x", i)]) for i in range(3)]
    b = Block(number, f"0x{number:064x}", f"0x{number - 1:064x}", 1_700_000_000 + number, "0x" + "44" * 20, 10**9, txs, 1,
              True, True)
    return orjson.loads(envelope.encode(b))


# (path into the block object, a malformed value, the field the rejection must name)
MUTATIONS = st.sampled_from([
    (("block_number",), -1, "block_number"),
    (("block_number",), 2**64, "block_number"),
    (("block_number",), "12", "block_number"),
    (("chain_id",), -5, "chain_id"),
    (("timestamp",), 2**40, "timestamp"),
    (("timestamp",), -1, "timestamp"),
    (("transactions", 1, "input"), "0xa9059cbbzz", "transactions[1].input"),
    (("transactions", 0, "value"), "-1", "transactions[0].value"),
    (("transactions", 0, "value"), 2**256, "transactions[0].value"),
    (("transactions", 2, "nonce"), 2**70, "transactions[2].nonce"),
    (("transactions", 2, "hash"), "DUP", "transactions[2].hash"),
    (("transactions", 0, "traces", 0, "trace_address"), [0] * 5000, "transactions[0].traces[0].trace_address"),
    (("transactions", 0, "traces", 0, "trace_address"), [-1], "transactions[0].traces[0].trace_address"),
    (("transactions", 1, "logs", 0, "log_index"), -3, "transactions[1].logs[0].log_index"),
    (("transactions", 1, "logs", 0, "data"), "0xnothex", "transactions[1].logs[0].data"),
    (("miner",), "0x12g4", "miner"),
])


def _mutate(obj: dict, path: tuple, value) -> dict:
    target = obj
    for k in path[:-1]:
        target = target[k]
    if value == "DUP":
        value = obj["transactions"][0]["hash"]
    target[path[-1]] = value
    return obj


@settings(max_examples=60, deadline=None)
@given(MUTATIONS, st.integers(0, 2))
def test_a_malformed_block_is_one_named_rejection(mutation, where):
    path, value, field = mutation
    blocks = [_block(100 + i) for i in range(3)]
    _mutate(blocks[where], path, value)
    with tempfile.TemporaryDirectory() as d:
        f = Path(d) / "blocks.jsonl"
        f.write_text("\n".join(json.dumps(b) for b in blocks) + "\n")  # json: integers beyond 64 bits too
        summary = replay_files([f])
    assert summary.blocks == 2, summary.problems
    assert len(summary.problems) == 1
    p = summary.problems[0]
    assert p.source == str(f) and p.position == f"line {where + 1}"
    assert field in p.reason, p.reason
    assert p.raw is not None  # the dead-letter file gets the line itself
