"""One bad block costs one block in a mev-inspect replay (one process and worker processes, plain
and gzip): a real mainnet block with one malformed or out-of-range value (hypothesis picks which)
is a named rejection; the other blocks are replayed. A gzip bomb and a deep trace nesting are capped."""

from __future__ import annotations

import copy
import gzip
import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import raw_block
from mevwatch.monitor.replay import replay_files
from mevwatch.streams import files as files_mod

BLOCK = 12775690


def _first_call(b: dict) -> dict:
    return next(t for t in b["traces"] if t.get("type") == "call" and t.get("transaction_hash"))


def _dup(b: dict) -> None:
    ts = [t for t in b["traces"] if t.get("transaction_hash")]
    other = next(t for t in ts if t["transaction_position"] != ts[0]["transaction_position"])
    for t in b["traces"]:
        if t.get("transaction_position") == other["transaction_position"]:
            t["transaction_hash"] = ts[0]["transaction_hash"]
    for r in b.get("receipts") or ():
        if r.get("transaction_index") == other["transaction_position"]:
            r["transaction_hash"] = ts[0]["transaction_hash"]


MUTATIONS = st.sampled_from([
    ("block_number", lambda b: b.__setitem__("block_number", -1)),
    ("block_number", lambda b: b.__setitem__("block_number", 2**64)),
    ("block_timestamp", lambda b: b.__setitem__("block_timestamp", 2**40)),
    ("input", lambda b: _first_call(b)["action"].__setitem__("input", "0xa9059cbbZZ")),
    ("value", lambda b: _first_call(b)["action"].__setitem__("value", hex(2**300))),
    ("transaction_hash", _dup),
    ("trace_address", lambda b: _first_call(b).__setitem__("trace_address", [0] * 5000)),
    ("trace_address", lambda b: _first_call(b).__setitem__("trace_address", [-2])),
])


@pytest.fixture(scope="module")
def good() -> dict:
    return raw_block(BLOCK)


@settings(max_examples=24, deadline=None)
@given(MUTATIONS, st.sampled_from([1, 2]), st.booleans())
def test_a_malformed_mev_inspect_block_is_one_named_rejection(good, mutation, workers, gz):
    field, mutate = mutation
    bad = copy.deepcopy(good)
    mutate(bad)
    with tempfile.TemporaryDirectory() as d:
        paths = []
        for i, obj in enumerate([good, bad, good, good]):
            p = Path(d) / f"{i}.json{'.gz' if gz else ''}"
            data = json.dumps(obj).encode()
            p.write_bytes(gzip.compress(data) if gz else data)
            paths.append(p)
        summary = replay_files(paths, workers=workers)
    assert summary.blocks == 3, summary.problems
    assert len(summary.problems) == 1
    p = summary.problems[0]
    assert p.source.endswith(f"1.json{'.gz' if gz else ''}") and field in p.reason + (p.position or ""), p


def test_gzip_bomb_is_capped_and_costs_one_file(good, tmp_path, monkeypatch):
    monkeypatch.setattr(files_mod, "MAX_DECOMPRESSED", 4 << 20)
    (tmp_path / "0.json.gz").write_bytes(gzip.compress(json.dumps(good).encode()))
    (tmp_path / "1.json.gz").write_bytes(gzip.compress(b" " * (64 << 20)))  # 64 MiB of nothing in ~64 KiB
    summary = replay_files([tmp_path], workers=1)
    assert summary.blocks == 1
    assert len(summary.problems) == 1 and "cap on a gzip input" in summary.problems[0].reason


def test_gzip_bomb_in_jsonl_is_capped_and_keeps_the_lines_before(tmp_path, monkeypatch):
    monkeypatch.setattr(files_mod, "MAX_DECOMPRESSED", 1 << 20)
    with gzip.open(tmp_path / "r.jsonl.gz", "wb") as fh:
        fh.write(b"{}\n" + b" " * (8 << 20) + b"\n")
    summary = replay_files([tmp_path / "r.jsonl.gz"])
    reasons = [p.reason for p in summary.problems]
    assert any("cap on one input" in r for r in reasons), reasons


def _receipt(b: dict) -> dict:
    return next(r for r in b["receipts"] if r.get("to"))


def _move_tx0(b: dict, pos: int) -> None:
    for t in b["traces"]:
        if t.get("transaction_position") == 0:
            t["transaction_position"] = pos
    for r in b["receipts"]:
        if r.get("transaction_index") == 0:
            r["transaction_index"] = pos


def _conflicting_hash(b: dict) -> None:
    first = _first_call(b)
    other = next(t for t in b["traces"] if t is not first and t.get("transaction_position") == first["transaction_position"])
    other["transaction_hash"] = "0x" + "ab" * 32


@pytest.mark.fast
@pytest.mark.parametrize("field, mutate", [
    ("block_number", lambda b: b.__setitem__("block_number", True)),
    ("block_number", lambda b: b.__setitem__("block_number", 12.7)),
    ("block_timestamp", lambda b: b.__setitem__("block_timestamp", 1.6e9)),
    ("base_fee_per_gas", lambda b: b.__setitem__("base_fee_per_gas", [1])),
    ("parent_hash", lambda b: b.__setitem__("parent_hash", ["0x01"])),
    ("miner", lambda b: b.__setitem__("miner", "0xzz")),
    ("block_hash", lambda b: _first_call(b).__setitem__("block_hash", {"a": 1})),
    ("transaction_position", lambda b: _move_tx0(b, 2**32)),
    ("transaction_position", lambda b: _first_call(b).__setitem__("transaction_position", 1.5)),
    ("transaction_position", lambda b: _first_call(b).__setitem__("transaction_position", 0.0)),
    ("to", lambda b: _receipt(b).__setitem__("to", "0x\u202egnp.exe")),
    ("to", lambda b: _receipt(b).__setitem__("to", 12)),
    ("gas_used", lambda b: _receipt(b).__setitem__("gas_used", True)),
    ("effective_gas_price", lambda b: _receipt(b).__setitem__("effective_gas_price", 2.5)),
    ("transaction_hash", _conflicting_hash),
])
def test_a_value_of_the_wrong_kind_is_a_named_rejection(good, field, mutate):
    """Values ``int()`` or a truthiness test would let through (True, 12.7, a list as a hash, a
    position past the store's UInt32, a bidi-laden receipt address, two hashes for one transaction)."""
    from mevwatch.monitor.errors import InputError
    from mevwatch.streams.mevinspect import parse_block

    bad = copy.deepcopy(good)
    mutate(bad)
    with pytest.raises(InputError) as exc:
        parse_block(bad, source="b.json")
    msg = f"{exc.value.reason} {exc.value.position}"
    assert field in msg, msg
    parse_block(copy.deepcopy(good), source="b.json")  # the intact block parses


@pytest.mark.fast
def test_integers_as_hex_or_decimal_text_are_accepted(good):
    from mevwatch.streams.mevinspect import parse_block

    b = copy.deepcopy(good)
    b["block_number"] = str(b["block_number"])
    b["block_timestamp"] = hex(int(b["block_timestamp"]))
    blk = parse_block(b, source="b.json")
    assert blk.number == BLOCK and blk.timestamp == int(good["block_timestamp"])
