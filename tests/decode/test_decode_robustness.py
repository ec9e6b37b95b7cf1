"""Decoders never crash: random and truncated calldata, return data, logs and trace trees."""

from __future__ import annotations

import copy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mevwatch.monitor.decode import LOG_HANDLERS, TRACE_HANDLERS, BlockDecoder
from mevwatch.monitor.decode.pending import decode_pending
from mevwatch.monitor.types import Block, Log, Trace, Transaction

pytestmark = pytest.mark.fast

SELECTORS = sorted(TRACE_HANDLERS) + ["0xa9059cbb", "0x23b872dd", "0xd0e30db0", "0x2e1a7d4d", "0x70a08231"]
TOPICS = sorted(LOG_HANDLERS) + ["0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"]
ADDR = "0x" + "12" * 20
hexdata = st.binary(max_size=400).map(lambda b: b.hex())


@st.composite
def random_tree(draw):
    n = draw(st.integers(1, 12))
    traces = [Trace((), "call", "call", ADDR, ADDR, draw(st.sampled_from(SELECTORS)) + draw(hexdata), "0x" + draw(hexdata), 0, None, 0)]
    for _ in range(n - 1):
        parent = draw(st.sampled_from(traces)).trace_address
        ta = parent + (draw(st.integers(0, 3)),)
        traces.append(Trace(ta, "call", draw(st.sampled_from(["call", "staticcall", "delegatecall"])),
                            draw(st.sampled_from([ADDR, "0x" + "34" * 20])), draw(st.sampled_from([ADDR, "0x" + "34" * 20])),
                            draw(st.sampled_from(SELECTORS)) + draw(hexdata), "0x" + draw(hexdata),
                            draw(st.integers(0, 10)), draw(st.sampled_from([None, None, "Reverted"])), 0))
    traces.sort(key=lambda t: t.trace_address)
    return traces


@settings(max_examples=300, deadline=None)
@given(random_tree())
def test_random_trace_trees_never_crash(traces):
    tx = Transaction(hash="0x" + "00" * 32, position=0, from_address=ADDR, to_address=ADDR, input=traces[0].input, traces=traces)
    BlockDecoder().decode(Block(1, None, None, 0, ADDR, 0, [tx], has_traces=True))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(TOPICS), st.lists(hexdata.map(lambda h: "0x" + h[:64].rjust(64, "0")), max_size=3), hexdata), max_size=6))
def test_random_logs_never_crash(raw):
    logs = [Log(ADDR, (t0, *rest), "0x" + d, i) for i, (t0, rest, d) in enumerate(raw)]
    tx = Transaction(hash="0x" + "00" * 32, position=0, from_address=ADDR, to_address=ADDR, input="0x", logs=logs)
    BlockDecoder().decode(Block(1, None, None, 0, ADDR, 0, [tx], has_logs=True))


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["0x38ed1739", "0x7ff36ab5", "0x414bf389", "0xc04b8d59", "0x3593564c", "0xac9650d8", "0x5ae401dc", "0x04e45aaf"]), hexdata)
def test_random_router_calldata_never_crashes(sel, body):
    assert isinstance(decode_pending(ADDR, sel + body), list)


def test_truncated_real_calldata_is_counted_not_raised(load_block):
    block = copy.deepcopy(load_block(12775690))
    for tx in block.transactions:
        for t in tx.traces:
            if t.input[:10] in ("0x022c0d9f", "0x128acb08"):
                t.input = t.input[:40]  # selector and a fragment of the first word
                t.output = t.output[:20]
    d = BlockDecoder().decode(block)
    assert not [s for s in d.swaps if s.protocol in ("uniswap_v2", "uniswap_v3")]
    assert sum(d.stats.malformed_by_selector.values()) > 0


def test_unaligned_v3_calldata_still_decodes(load_block):
    """mev-inspect-py drops V3 swaps whose calldata is not 32-byte aligned (block 15049646)."""
    block = copy.deepcopy(load_block(12483198))
    changed = []
    for tx in block.transactions:
        for t in tx.traces:
            if t.input[:10] == "0x128acb08":
                t.input = t.input[:-6]  # drop 3 trailing bytes of the callback data: no longer aligned
                changed.append(t.input)
    assert changed and all((len(i) - 10) % 64 != 0 for i in changed)
    before = [s for s in BlockDecoder().decode(load_block(12483198)).swaps if s.protocol == "uniswap_v3"]
    after = [s for s in BlockDecoder().decode(block).swaps if s.protocol == "uniswap_v3"]
    assert len(after) == len(before) > 0
    assert [(s.amount_in, s.amount_out) for s in after] == [(s.amount_in, s.amount_out) for s in before]
