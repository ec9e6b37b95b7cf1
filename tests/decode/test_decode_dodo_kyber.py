"""DODO (V1, V2) and KyberSwap (Elastic, DMM) pools, on constructed calls and events.

None of the shared mainnet blocks trades on these venues, so each call is built the way the
venue's contract makes it (DODO V2 ``DVMTrader``: the input sent before ``sellBase(to)``, the
output then the maintainer's fee paid; ``flashLoan`` paying first and settling after the
callback; DODO V1 paying its caller, then pulling the payment, then the fee; Kyber Elastic
returning the signed deltas like Uniswap V3), with the selectors and topics checked against the
functions' and events' signatures.
"""

from __future__ import annotations

import pytest
from eth_utils import keccak

from mevwatch.monitor.decode import BlockDecoder
from mevwatch.monitor.decode import dodo, kyber
from mevwatch.monitor.decode.uniswap_v2 import TOPIC_DMM_SWAP, TOPIC_SWAP, TOPIC_SYNC
from mevwatch.monitor.decode.uniswap_v3 import TOPIC_SWAP as V3_TOPIC_SWAP
from mevwatch.monitor.detect import detect_block
from mevwatch.monitor.types import Block, DecodedBlock, Log, Trace, Transaction

pytestmark = pytest.mark.fast

USER = "0x6666666666666666666666666666666666666666"
ROUTER = "0x1111111111111111111111111111111111111111"
POOL = "0x5555555555555555555555555555555555555555"
PAIR = "0x4444444444444444444444444444444444444444"
MAINT = "0x9999999999999999999999999999999999999999"
BASE = "0x7777777777777777777777777777777777777777"
QUOTE = "0x8888888888888888888888888888888888888888"
WETH = "0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2"
TRUE = "0x" + "0" * 63 + "1"
TRANSFER_TOPIC = "0x" + keccak(text="Transfer(address,address,uint256)").hex()


def sig(signature: str) -> str:
    return "0x" + keccak(text=signature).hex()


def test_selectors_and_topics_are_the_functions_and_events_named():
    assert dodo.SEL_V1_SELL_BASE == sig("sellBaseToken(uint256,uint256,bytes)")[:10]
    assert dodo.SEL_V1_BUY_BASE == sig("buyBaseToken(uint256,uint256,bytes)")[:10]
    assert dodo.SEL_V2_SELL_BASE == sig("sellBase(address)")[:10]
    assert dodo.SEL_V2_SELL_QUOTE == sig("sellQuote(address)")[:10]
    assert dodo.SEL_V2_FLASH_LOAN == sig("flashLoan(uint256,uint256,address,bytes)")[:10]
    assert dodo.TOPIC_DODO_SWAP == sig("DODOSwap(address,address,uint256,uint256,address,address)")
    assert dodo.TOPIC_V1_SELL_BASE == sig("SellBaseToken(address,uint256,uint256)")
    assert dodo.TOPIC_V1_BUY_BASE == sig("BuyBaseToken(address,uint256,uint256)")
    assert kyber.SEL_ELASTIC_SWAP == sig("swap(address,int256,bool,uint160,bytes)")[:10]
    assert TOPIC_DMM_SWAP == sig("Swap(address,uint256,uint256,uint256,uint256,address,uint256)")
    # Elastic's event has V3's signature: one topic, decoded by the V3 module
    assert V3_TOPIC_SWAP == sig("Swap(address,address,int256,int256,uint160,uint128,int24)")


def w(x: int | str) -> str:
    if isinstance(x, str):
        return "0" * 24 + x[2:]
    return f"{x % (1 << 256):064x}"


def call(ta: tuple[int, ...], frm: str, to: str, data: str, output: str = "0x", subtraces: int = 0,
         call_type: str = "call") -> Trace:
    return Trace(ta, "call", call_type, frm, to, data, output, 0, None, subtraces)


def transfer(ta: tuple[int, ...], token: str, frm: str, to: str, amount: int) -> Trace:
    return call(ta, frm, token, "0xa9059cbb" + w(to) + w(amount), TRUE)


def transfer_from(ta: tuple[int, ...], token: str, caller: str, frm: str, to: str, amount: int) -> Trace:
    return call(ta, caller, token, "0x23b872dd" + w(frm) + w(to) + w(amount), TRUE)


def balance_of(ta: tuple[int, ...], caller: str, token: str, who: str, amount: int) -> Trace:
    return call(ta, caller, token, "0x70a08231" + w(who), "0x" + w(amount), call_type="staticcall")


def decode_traces(traces: list[Trace], sender: str = USER, logs: list[Log] | None = None) -> DecodedBlock:
    tx = Transaction("0x" + "ab" * 32, 0, sender, traces[0].to_address, traces[0].input, traces=traces, logs=logs or [])
    return BlockDecoder().decode(Block(1, None, None, 0, None, 0, [tx], has_traces=True, has_logs=bool(logs)))


def decode_logs(logs: list[Log], sender: str = USER, to: str = ROUTER) -> DecodedBlock:
    tx = Transaction("0x" + "cd" * 32, 0, sender, to, "0x", logs=logs)
    return BlockDecoder().decode(Block(1, None, None, 0, None, 0, [tx], has_logs=True))


def fields(s) -> tuple:
    return (s.protocol, s.pool, s.token_in, s.amount_in, s.token_out, s.amount_out, s.sender, s.recipient, s.payer)


# --- DODO V2 --------------------------------------------------------------------------------------------
def test_dodo_v2_sell_base_through_a_router():
    """Router: base to the pool, then sellBase(user): the pool pays the user, then the maintainer."""
    d = decode_traces([
        call((), USER, ROUTER, "0x12345678", subtraces=2),
        transfer_from((0,), BASE, ROUTER, USER, POOL, 1000),
        call((1,), ROUTER, POOL, dodo.SEL_V2_SELL_BASE + w(USER), "0x" + w(990), subtraces=4),
        balance_of((1, 0), POOL, BASE, POOL, 51000),
        transfer((1, 1), QUOTE, POOL, USER, 990),
        transfer((1, 2), QUOTE, POOL, MAINT, 3),
        balance_of((1, 3), POOL, QUOTE, POOL, 9000),
    ])
    (s,) = d.swaps
    assert fields(s) == ("dodo_v2", POOL, BASE, 1000, QUOTE, 990, ROUTER, USER, USER)  # the fee is not output
    assert d.stats.swaps_by_protocol["dodo_v2"] == 1 and not d.stats.malformed_by_selector
    assert d.stats.coverage() == 1.0


def test_dodo_v2_flash_loan_trade_is_its_net_flow_and_a_loan_repaid_in_kind_is_no_swap():
    bot = "0x2222222222222222222222222222222222222222"
    flash = dodo.SEL_V2_FLASH_LOAN + w(0) + w(500) + w(bot) + w(128) + w(0)
    d = decode_traces([
        call((), USER, bot, "0xdeadbeef", subtraces=1),
        call((0,), bot, POOL, flash, subtraces=3),
        transfer((0, 0), QUOTE, POOL, bot, 500),
        call((0, 1), POOL, bot, "0xeb2021c3", subtraces=1),  # DVMFlashLoanCall: the bot pays in base
        transfer((0, 1, 0), BASE, bot, POOL, 700),
        transfer((0, 2), QUOTE, POOL, MAINT, 2),
    ])
    (s,) = d.swaps
    assert fields(s) == ("dodo_v2", POOL, BASE, 700, QUOTE, 500, bot, bot, bot)

    loan = dodo.SEL_V2_FLASH_LOAN + w(0) + w(500) + w(bot) + w(128) + w(0)
    d = decode_traces([
        call((), USER, bot, "0xdeadbeef", subtraces=1),
        call((0,), bot, POOL, loan, subtraces=2),
        transfer((0, 0), QUOTE, POOL, bot, 500),
        call((0, 1), POOL, bot, "0xeb2021c3", subtraces=1),
        transfer((0, 1, 0), QUOTE, bot, POOL, 500),
    ])
    assert not d.swaps and not d.stats.malformed_by_selector


def test_dodo_v1_sell_and_buy_base():
    proxy = ROUTER
    d = decode_traces([
        call((), USER, proxy, "0x12345678", subtraces=1),
        call((0,), proxy, POOL, dodo.SEL_V1_SELL_BASE + w(1000) + w(900) + w(96) + w(0), "0x" + w(950), subtraces=3),
        transfer((0, 0), QUOTE, POOL, proxy, 950),
        transfer_from((0, 1), BASE, POOL, proxy, POOL, 1000),
        transfer((0, 2), QUOTE, POOL, MAINT, 5),
    ])
    (s,) = d.swaps
    assert fields(s) == ("dodo_v1", POOL, BASE, 1000, QUOTE, 950, proxy, proxy, proxy)
    d = decode_traces([
        call((), USER, proxy, "0x12345678", subtraces=1),
        call((0,), proxy, POOL, dodo.SEL_V1_BUY_BASE + w(100) + w(2100) + w(96) + w(0), "0x" + w(2000), subtraces=3),
        transfer((0, 0), BASE, POOL, proxy, 100),
        transfer_from((0, 1), QUOTE, POOL, proxy, POOL, 2000),
        transfer((0, 2), BASE, POOL, MAINT, 1),
    ])
    (s,) = d.swaps
    assert fields(s) == ("dodo_v1", POOL, QUOTE, 2000, BASE, 100, proxy, proxy, proxy)


def test_a_dodo_call_that_paid_nothing_is_malformed_not_a_swap():
    d = decode_traces([
        call((), USER, ROUTER, "0x12345678", subtraces=2),
        transfer_from((0,), BASE, ROUTER, USER, POOL, 1000),
        call((1,), ROUTER, POOL, dodo.SEL_V2_SELL_BASE + w(USER), "0x" + w(0)),
    ])
    assert not d.swaps and d.stats.malformed_by_selector[dodo.SEL_V2_SELL_BASE] == 1
    d = decode_traces([call((), USER, POOL, dodo.SEL_V2_SELL_BASE + "00" * 10)])  # cut calldata: counted, not raised
    assert not d.swaps and d.stats.malformed_by_selector[dodo.SEL_V2_SELL_BASE] == 1


# --- Kyber Elastic -----------------------------------------------------------------------------------
@pytest.mark.parametrize(("qty", "is_token0", "d0", "d1", "expect"), [
    (1000, True, 1000, -995, (BASE, 1000, QUOTE, 995)),  # exact input of token0
    (1000, False, -995, 1000, (QUOTE, 1000, BASE, 995)),  # exact input of token1
    (-500, True, -500, 510, (QUOTE, 510, BASE, 500)),  # exact output of token0: token1 goes in
])
def test_kyber_elastic_swap_direction_follows_the_deltas(qty, is_token0, d0, d1, expect):
    token_in, amount_in, token_out, amount_out = expect
    data = kyber.SEL_ELASTIC_SWAP + w(USER) + w(qty) + w(int(is_token0)) + w(0) + w(160) + w(0)
    d = decode_traces([
        call((), USER, ROUTER, "0x12345678", subtraces=1),
        call((0,), ROUTER, POOL, data, "0x" + w(d0) + w(d1), subtraces=3),
        transfer((0, 0), token_out, POOL, USER, amount_out),
        call((0, 1), POOL, ROUTER, "0x12345678", subtraces=1),  # swapCallback: the router pays
        transfer_from((0, 1, 0), token_in, ROUTER, USER, POOL, amount_in),
        balance_of((0, 2), POOL, token_in, POOL, 10**6),
    ])
    (s,) = d.swaps
    assert fields(s) == ("kyber_elastic", POOL, token_in, amount_in, token_out, amount_out, ROUTER, USER, USER)


def test_kyber_elastic_deltas_both_in_are_malformed():
    data = kyber.SEL_ELASTIC_SWAP + w(USER) + w(1) + w(1) + w(0) + w(160) + w(0)
    d = decode_traces([call((), USER, POOL, data, "0x" + w(5) + w(7))])
    assert not d.swaps and d.stats.malformed_by_selector[kyber.SEL_ELASTIC_SWAP] == 1


# --- logs ---------------------------------------------------------------------------------------------
def xfer_log(i: int, token: str, frm: str, to: str, amount: int) -> Log:
    return Log(token, (TRANSFER_TOPIC, "0x" + w(frm), "0x" + w(to)), "0x" + w(amount), i)


def dodo_swap_log(i: int, pool: str, frm: str, to: str, a_in: int, a_out: int, trader: str, receiver: str) -> Log:
    return Log(pool, (dodo.TOPIC_DODO_SWAP,), "0x" + w(frm) + w(to) + w(a_in) + w(a_out) + w(trader) + w(receiver), i)


def test_dodo_events_backed_by_transfers_are_swaps_and_forged_ones_are_not():
    d = decode_logs([
        xfer_log(0, BASE, USER, POOL, 1000),
        xfer_log(1, QUOTE, POOL, USER, 990),
        xfer_log(2, QUOTE, POOL, MAINT, 3),
        dodo_swap_log(3, POOL, BASE, QUOTE, 1000, 990, ROUTER, USER),
    ])
    (s,) = d.swaps
    assert fields(s) == ("dodo_v2", POOL, BASE, 1000, QUOTE, 990, ROUTER, USER, USER)
    # the same event with no tokens moved, or claiming more than moved: a forgery (any contract can emit it)
    d = decode_logs([dodo_swap_log(0, POOL, BASE, QUOTE, 1000, 990, ROUTER, USER)])
    assert not d.swaps and d.stats.malformed_by_selector[dodo.TOPIC_DODO_SWAP[:10]] == 1
    d = decode_logs([xfer_log(0, BASE, USER, POOL, 1), xfer_log(1, QUOTE, POOL, USER, 1),
                     dodo_swap_log(2, POOL, BASE, QUOTE, 10**30, 10**30, ROUTER, USER)])
    assert not d.swaps and d.stats.malformed_by_selector[dodo.TOPIC_DODO_SWAP[:10]] == 1

    seller_topic = "0x" + w(ROUTER)
    d = decode_logs([
        xfer_log(0, QUOTE, POOL, ROUTER, 950),
        xfer_log(1, BASE, ROUTER, POOL, 1000),
        xfer_log(2, QUOTE, POOL, MAINT, 5),
        Log(POOL, (dodo.TOPIC_V1_SELL_BASE, seller_topic), "0x" + w(1000) + w(950), 3),
        xfer_log(4, BASE, POOL, ROUTER, 100),
        xfer_log(5, QUOTE, ROUTER, POOL, 2000),
        Log(POOL, (dodo.TOPIC_V1_BUY_BASE, seller_topic), "0x" + w(100) + w(2000), 6),
    ])
    assert [fields(s) for s in d.swaps] == [
        ("dodo_v1", POOL, BASE, 1000, QUOTE, 950, ROUTER, ROUTER, ROUTER),
        ("dodo_v1", POOL, QUOTE, 2000, BASE, 100, ROUTER, ROUTER, ROUTER),
    ]


def dmm_swap_log(i: int, a0in: int, a1in: int, a0out: int, a1out: int) -> Log:
    return Log(PAIR, (TOPIC_DMM_SWAP, "0x" + w(ROUTER), "0x" + w(USER)), "0x" + w(a0in) + w(a1in) + w(a0out) + w(a1out) + w(3 * 10**15), i)


def test_kyber_dmm_event_is_a_swap_without_constant_product_reserves():
    d = decode_logs([
        xfer_log(0, BASE, USER, PAIR, 1000),
        xfer_log(1, QUOTE, PAIR, USER, 990),
        dmm_swap_log(2, 1000, 0, 0, 990),
    ])
    (s,) = d.swaps
    assert fields(s) == ("kyber_dmm", PAIR, BASE, 1000, QUOTE, 990, ROUTER, USER, USER)
    assert s.reserves_after is None


def _pair_swap_traces() -> list[Trace]:
    return [
        call((), USER, ROUTER, "0x12345678", subtraces=2),
        transfer_from((0,), BASE, ROUTER, USER, PAIR, 1000),
        call((1,), ROUTER, PAIR, "0x022c0d9f" + w(0) + w(990) + w(USER) + w(128) + w(0), subtraces=3),
        transfer((1, 0), QUOTE, PAIR, USER, 990),
        balance_of((1, 1), PAIR, BASE, PAIR, 51000),
        balance_of((1, 2), PAIR, QUOTE, PAIR, 49010),
    ]


def test_a_dmm_pair_in_traces_is_named_by_its_event_when_the_block_has_logs():
    """Without logs the pair reads as Uniswap V2 (same call); its DMM event names it and drops reserves."""
    (s,) = decode_traces(_pair_swap_traces()).swaps
    assert (s.protocol, s.reserves_after) == ("uniswap_v2", (51000, 49010))
    logs = [xfer_log(0, BASE, USER, PAIR, 1000), xfer_log(1, QUOTE, PAIR, USER, 990), dmm_swap_log(2, 1000, 0, 0, 990)]
    (s,) = decode_traces(_pair_swap_traces(), logs=logs).swaps
    assert (s.protocol, s.reserves_after, s.amount_in, s.amount_out) == ("kyber_dmm", None, 1000, 990)


def test_arbitrage_through_a_dodo_pool_is_reported():
    """WETH -> BASE on a Uniswap V2 pair, BASE -> WETH on a DODO V2 pool, by one bot, from logs."""
    bot = "0x2222222222222222222222222222222222222222"
    # token0 of the pair is WETH (0xc02a... < 0x7777...): WETH in = amount0In, BASE out = amount1Out
    logs = [
        xfer_log(0, WETH, bot, PAIR, 10**18),
        xfer_log(1, BASE, PAIR, bot, 5000),
        Log(PAIR, (TOPIC_SYNC,), "0x" + w(101 * 10**18) + w(495000), 2),
        Log(PAIR, (TOPIC_SWAP, "0x" + w(bot), "0x" + w(bot)), "0x" + w(10**18) + w(0) + w(0) + w(5000), 3),
        xfer_log(4, BASE, bot, POOL, 5000),
        xfer_log(5, WETH, POOL, bot, 11 * 10**17),
        xfer_log(6, WETH, POOL, MAINT, 10**15),
        dodo_swap_log(7, POOL, BASE, WETH, 5000, 11 * 10**17, bot, bot),
    ]
    d = decode_logs(logs, sender=USER, to=bot)
    assert [s.protocol for s in d.swaps] == ["uniswap_v2", "dodo_v2"]
    (arb,) = [a for a in detect_block(d) if a.kind == "arbitrage"]
    assert arb.profit.token == WETH and arb.profit.amount == 10**17
    assert [r["protocol"] for r in arb.evidence["route"]] == ["uniswap_v2", "dodo_v2"]
