"""Decode coverage: the share of swap-like calls the decoders explained, per block, on the real
mainnet blocks and on constructed blocks with a call no decoder reads (from traces and from logs)."""

from __future__ import annotations

import copy

import pytest

from mevwatch.monitor.decode import BlockDecoder
from mevwatch.monitor.types import Block, Log, Trace, Transaction

from test_decode_logs import TRANSFER, block_with, data, v2_logs, word

pytestmark = pytest.mark.fast

VENUE = "0x5555555555555555555555555555555555555555"  # a pool of a venue no decoder knows
USER = "0x6666666666666666666666666666666666666666"
TOKEN_A = "0x7777777777777777777777777777777777777777"
TOKEN_B = "0x8888888888888888888888888888888888888888"
SELECTOR = "0xdeadbeef"


def _pad(addr: str) -> str:
    return "0" * 24 + addr[2:]


def _call(ta: tuple[int, ...], frm: str, to: str, inp: str, out: str = "0x", subtraces: int = 0) -> Trace:
    return Trace(ta, "call", "call", frm, to, inp, out, 0, None, subtraces)


def undecodable_trade(position: int) -> Transaction:
    """USER calls VENUE (unknown selector); VENUE pulls 1000 A from USER and pays 990 B back."""
    true = "0x" + "0" * 63 + "1"
    traces = [
        _call((), USER, VENUE, SELECTOR + "0" * 64, subtraces=2),
        _call((0,), VENUE, TOKEN_A, "0x23b872dd" + _pad(USER) + _pad(VENUE) + f"{1000:064x}", true),
        _call((1,), VENUE, TOKEN_B, "0xa9059cbb" + _pad(USER) + f"{990:064x}", true),
    ]
    return Transaction("0x" + "ee" * 32, position, USER, VENUE, SELECTOR + "0" * 64, traces=traces)


def test_every_real_block_reports_coverage_consistent_with_its_counters(decode_block, all_block_numbers):
    seen_partial = False
    for n in all_block_numbers:
        d = decode_block(n)
        decoded, undecoded = d.stats.swap_calls()
        assert decoded == len(d.swaps), n
        assert undecoded == sum(d.stats.undecoded_by_selector.values()), n
        cov = d.stats.coverage()
        if decoded + undecoded == 0:
            assert cov is None
        else:
            assert cov == decoded / (decoded + undecoded)
            seen_partial |= cov < 1
    assert seen_partial, "the real blocks hold undecoded swap-like calls: some block must be below full coverage"


def test_a_block_with_an_undecodable_swap_like_call_loses_coverage(load_block):
    real = load_block(12775690)
    before = BlockDecoder().decode(real).stats
    assert before.coverage() == 1.0  # every swap-like call of this block is decoded
    b = copy.copy(real)
    b.transactions = [*real.transactions, undecodable_trade(len(real.transactions))]
    after = BlockDecoder().decode(b).stats
    decoded, undecoded = after.swap_calls()
    assert after.undecoded_by_selector[SELECTOR] == 1 and undecoded == 1
    assert decoded == before.swap_calls()[0]
    assert after.coverage() == decoded / (decoded + 1)


def _log_trade() -> list[Log]:
    return [
        Log(TOKEN_A, (TRANSFER, word(USER), word(VENUE)), data(["uint256"], [1000]), 0),
        Log(TOKEN_B, (TRANSFER, word(VENUE), word(USER)), data(["uint256"], [990]), 1),
    ]


def test_logs_count_an_account_that_traded_one_token_for_another_undecoded():
    tx = Transaction("0x" + "ee" * 32, 0, USER, VENUE, SELECTOR + "0" * 64, logs=_log_trade())
    d = BlockDecoder().decode(Block(1, "0x" + "cd" * 32, None, 0, None, 0, [tx], has_logs=True))
    assert not d.swaps and d.stats.undecoded_by_selector[SELECTOR] == 1 and d.stats.coverage() == 0.0


def test_logs_of_decoded_swaps_and_plain_moves_are_not_counted():
    # a V2 swap (its pair and its trader are named by the decoded swap)
    d = BlockDecoder().decode(block_with(v2_logs()))
    assert len(d.swaps) == 1 and not d.stats.undecoded_by_selector and d.stats.coverage() == 1.0
    # a router passing the same token through, a mint from the zero address: no trade
    zero = "0x" + "0" * 40
    logs = [
        Log(TOKEN_A, (TRANSFER, word(USER), word(VENUE)), data(["uint256"], [1000]), 0),
        Log(TOKEN_A, (TRANSFER, word(VENUE), word(TOKEN_B)), data(["uint256"], [1000]), 1),
        Log(TOKEN_B, (TRANSFER, word(zero), word(VENUE)), data(["uint256"], [5]), 2),
    ]
    tx = Transaction("0x" + "ee" * 32, 0, USER, VENUE, "0x", logs=logs)
    d = BlockDecoder().decode(Block(1, "0x" + "cd" * 32, None, 0, None, 0, [tx], has_logs=True))
    assert not d.stats.undecoded_by_selector and d.stats.coverage() is None


def test_the_detect_path_exports_coverage_to_prometheus(traces_dir, decode_block):
    from prometheus_client import REGISTRY

    from mevwatch.monitor.replay import replay_files

    def sample(name, labels=None):
        return REGISTRY.get_sample_value(name, labels or {}) or 0.0

    before = {o: sample("mevwatch_decode_swap_calls_total", {"outcome": o}) for o in ("decoded", "undecoded")}
    replay_files([traces_dir / "13666326.json.gz"], workers=1)
    decoded, undecoded = decode_block(13666326).stats.swap_calls()
    assert sample("mevwatch_decode_swap_calls_total", {"outcome": "decoded"}) - before["decoded"] == decoded > 0
    assert sample("mevwatch_decode_swap_calls_total", {"outcome": "undecoded"}) - before["undecoded"] == undecoded
    assert sample("mevwatch_decode_coverage_ratio") == decoded / (decoded + undecoded)
