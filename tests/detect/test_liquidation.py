"""Liquidations (monitor/detect/liquidation.py) on the real mainnet blocks (traces) and from the
protocols' events (logs-only blocks, constructed)."""

from __future__ import annotations

import pytest
from builders import USDC, WETH, a, decoded, transfer, tx

from mevwatch.monitor.detect import detect_block
from mevwatch.monitor.detect.common import BlockView
from mevwatch.monitor.detect.liquidation import TOPIC_AAVE_V1, TOPIC_AAVE_V2, TOPIC_COMPOUND
from mevwatch.monitor.types import Log

USDT = "0xdac17f958d2ee523a2206206994597c13d831ec7"
DAI = "0x6b175474e89094c44da98b954eedeac495271d0f"
SUSD = "0x57ab1ec28d129707052df4df418d58a2d46d5f51"
CETH_COLLATERAL = "0x35a18000230da775cac24873d00ff85bccded550"  # cUNI

# every liquidation in the shared blocks: (block, position, protocol, repaid, received), read from the call traces
EXPECTED = [
    (10921991, 90, "aave", {USDT: 1069206535}, {"0x80fb784b7ed66730e8b1dbd9820afd29931aab03": 2657946947610159065393}),
    (12498502, 142, "aave", {"0x4fabb145d64652a948d72533023f6e7a623c7c53": 228905512631913119672},
     {"0x514910771af9ca656af840dff83e8264ecf986ca": 10111753901939162887}),
    (12498502, 143, "aave", {"0x0000000000085d4780b73119b644ae5ecd22b376": 497030000000000000000},
     {"0x514910771af9ca656af840dff83e8264ecf986ca": 21996356316098208090}),
    (12498502, 144, "aave", {SUSD: 447810000000000000000}, {"0x9f8f72aa9304c8b593d555f12ef6589cc3a579a2": 121531358145247546}),
    (12674514, 4, "compound", {"0x514910771af9ca656af840dff83e8264ecf986ca": 14857434973806369550},
     {"0x44fbebd2f576670a6c33f6fc0b00aa8c5753b322": 1547215810826}),  # cTokens seized (cUSDC units)
    (13179291, 0, "aave", {USDT: 116894764635}, {DAI: 126591374723429072069472}),
    (13179291, 80, "aave", {DAI: 128362984518555820706221}, {WETH: 37818925894787751803}),
    (13207907, 100, "compound", {"0xeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee": 414547860568297082}, {CETH_COLLATERAL: 321973320649}),
    (13298725, 17, "compound", {"0xeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee": 1106497772527562662}, {CETH_COLLATERAL: 910895850496}),
    (13326607, 28, "compound", {USDC: 1207055531}, {"0x70e36f6bf80a52b3b46b3af8e106cc0ed743e8e4": 21459623305}),
    (13370850, 7, "aave", {WETH: 752044474949707219}, {"0xbcca60bb61934080951369a648fb03df4f96263c": 2835767961}),
    (13376024, 98, "aave", {WETH: 767615458043667978}, {"0xa06bc25b5805d5f8d82847d191cb4af5a3e873e0": 113993647930952952550}),
]


def _liquidations(decode_block, numbers):
    for n in sorted(set(numbers)):
        for al in detect_block(decode_block(n)):
            if al.kind == "liquidation":
                yield n, al


def test_every_liquidation_in_the_real_blocks(decode_block, all_block_numbers):
    got = []
    for n, al in _liquidations(decode_block, all_block_numbers):
        (liq,) = al.evidence["liquidations"]
        got.append((n, al.txs[0].position, liq["protocol"], {t: int(v) for t, v in liq["repaid"].items()},
                    {t: int(v) for t, v in liq["received"].items()}))
        assert al.txs[0].role == "liquidator" and al.victims == [liq["borrower"]] and al.stage == "included"
        assert liq["source"] == "traces"
        # the profit is the received minus the repaid, per token (docs/alerts.md, Amounts)
        want = {t: v for t, v in liq["received"].items()}
        assert {t: int(v) for t, v in al.profit.by_token.items()} == {
            t: int(want.get(t, 0)) - int(liq["repaid"].get(t, 0)) for t in set(want) | set(liq["repaid"])}
    assert sorted(got) == sorted(EXPECTED)


def test_priced_liquidations_earn_the_protocols_bonus(decode_block):
    """Where both tokens have a price in the block, the collateral is worth more than the debt repaid,
    by about the protocol's liquidation bonus (Aave: 5-15%)."""
    priced = 0
    for n, al in _liquidations(decode_block, [10921991, 13179291]):
        (liq,) = al.evidence["liquidations"]
        assert al.profit.eth is not None and al.profit.eth > 0, (n, al.profit)
        prices = BlockView(decode_block(n)).prices
        paid = sum(prices.eth(t, int(v)) for t, v in liq["repaid"].items())
        assert 0.01 < al.profit.eth / paid < 0.20, (n, al.profit.eth, paid)
        priced += 1
    assert priced == 3


def test_a_token_proxy_forwarding_a_transfer_is_counted_once(decode_block):
    """12498502 tx 144 repays sUSD through its proxy, which calls its implementation with the same
    transfer: one repayment, not two."""
    (al,) = [x for n, x in _liquidations(decode_block, [12498502]) if x.txs[0].position == 144]
    assert al.evidence["liquidations"][0]["repaid"] == {SUSD: "447810000000000000000"}


def _word(v: int | str) -> str:
    return f"{int(v, 16) if isinstance(v, str) else v:064x}"


def _topic(addr: str) -> str:
    return "0x" + "0" * 24 + addr[2:]


BOT, USER, POOL_V2, CTOKEN, CCOLL = a(0xB07), a(0x5E5), a(0xAA7E), a(0xC70C), a(0xC011)


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_aave_liquidation_from_its_event(version):
    t = tx(3, a(0xE0A), BOT)
    if version == "v2":  # debtToCover, liquidatedCollateralAmount, liquidator, receiveAToken
        topic, data = TOPIC_AAVE_V2, _word(500) + _word(7) + _word(BOT) + _word(0)
    else:  # purchaseAmount, liquidatedCollateralAmount, accruedBorrowInterest, liquidator, receiveAToken, timestamp
        topic, data = TOPIC_AAVE_V1, _word(500) + _word(7) + _word(3) + _word(BOT) + _word(0) + _word(1600000000)
    t.logs = [Log(POOL_V2, (topic, _topic(WETH), _topic(USDC), _topic(USER)), "0x" + data, 0)]
    moved = [transfer(t, USDC, BOT, a(0xA70C), 500, 1), transfer(t, WETH, a(0xA7E7), BOT, 7, 2)]
    (al,) = detect_block(decoded([t], [], moved, number=7, lending=[t.hash]))
    (liq,) = al.evidence["liquidations"]
    assert (liq["protocol"], liq["liquidator"], liq["borrower"], liq["source"]) == ("aave", BOT, USER, "logs")
    assert liq["repaid"] == {USDC: "500"} and liq["received"] == {WETH: "7"}
    assert al.attackers == [a(0xE0A), BOT] and al.pools == [POOL_V2]
    # the same event with nothing moving in the transaction (any contract can emit it): no liquidation
    assert detect_block(decoded([t], [], number=7, lending=[t.hash])) == []
    # malformed events of that name: skipped, never a crash (a Log's data is always a string: the
    # compiled type refuses anything else, and the envelope validates it)
    for bad in (Log(POOL_V2, (topic, "0x1", _topic(USDC), _topic(USER)), "0x" + data, 0),
                Log(POOL_V2, (topic, _topic(WETH), _topic(USDC), _topic(USER)), "0x" + data[:70], 0),
                Log(POOL_V2, (topic, _topic(WETH), _topic(USDC), _topic(USER)), "0x" + "zz" * 64 + data[128:], 0)):
        t.logs = [bad]
        assert detect_block(decoded([t], [], moved, number=7, lending=[t.hash])) == []


def test_compound_liquidation_from_its_event():
    t = tx(1, a(0xE0A), BOT)
    # liquidator, borrower, repayAmount, cTokenCollateral, seizeTokens; the debt's underlying: what the liquidator sent
    data = _word(BOT) + _word(USER) + _word(900) + _word(CCOLL) + _word(41)
    t.logs = [Log(CTOKEN, (TOPIC_COMPOUND,), "0x" + data, 4)]
    # the liquidator's share of the seized cTokens is what the cToken moved to it (41 seized, 40 kept:
    # the protocol's cut since protocolSeizeShare), read from the Transfer rather than the event
    moved = [transfer(t, USDC, BOT, CTOKEN, 900, 0), transfer(t, CCOLL, USER, BOT, 40, 1)]
    (al,) = detect_block(decoded([t], [], moved, number=8, lending=[t.hash]))
    (liq,) = al.evidence["liquidations"]
    assert liq["repaid"] == {USDC: "900"} and liq["received"] == {CCOLL: "40"} and liq["borrower"] == USER
    # a malformed event of that name (short data) is no liquidation, and no crash
    t.logs = [Log(CTOKEN, (TOPIC_COMPOUND,), "0x" + data[:100], 4)]
    assert [x for x in detect_block(decoded([t], [], moved, number=8, lending=[t.hash])) if x.kind == "liquidation"] == []


def test_malformed_calls_in_the_traces_cost_nothing_but_themselves():
    """A liquidationCall or seize with short or non-hex calldata (a hostile node, a broken recording)
    is skipped; the block's other liquidations are still read."""
    from mevwatch.monitor.decode import BlockDecoder
    from mevwatch.monitor.detect.liquidation import SEL_AAVE, SEL_COMPOUND, SEL_SEIZE
    from mevwatch.monitor.types import Block, Trace, Transaction

    def call(addr: tuple[int, ...], frm: str, to: str, inp: str, subtraces: int = 0) -> Trace:
        return Trace(addr, "call", "call", frm, to, inp, "0x", 0, None, subtraces)

    good = SEL_COMPOUND + _word(USER) + _word(900) + _word(CCOLL)
    seize_bad = SEL_SEIZE + _word(BOT) + _word(USER) + "zz" * 32
    txs = [
        Transaction("0x" + "01" * 32, 0, a(0xE0A), POOL_V2, SEL_AAVE + "zz" * 160,
                    traces=[call((), a(0xE0A), POOL_V2, SEL_AAVE + "zz" * 160)]),
        Transaction("0x" + "02" * 32, 1, a(0xE0A), POOL_V2, SEL_AAVE + "00" * 10,
                    traces=[call((), a(0xE0A), POOL_V2, SEL_AAVE + "00" * 10)]),
        Transaction("0x" + "03" * 32, 2, BOT, CTOKEN, good,
                    traces=[call((), BOT, CTOKEN, good, 1), call((0,), CTOKEN, CCOLL, seize_bad)]),
    ]
    block = Block(9, "0x" + "aa" * 32, None, 0, a(0xFEE), None, txs, 1, has_traces=True)
    (al,) = [x for x in detect_block(BlockDecoder().decode(block)) if x.kind == "liquidation"]
    assert al.txs[0].position == 2 and al.evidence["liquidations"][0]["received"] == {}  # the bad seize is not read


def test_the_decoder_marks_a_logs_only_liquidation_and_the_rule_reads_it():
    """Without traces (receipts and logs only): the decoder marks the transaction by its event and the
    rule reads it, backed by the Transfer logs the decoder turned into transfers."""
    from mevwatch.monitor.decode import BlockDecoder
    from mevwatch.monitor.decode.transfers import TOPIC_TRANSFER
    from mevwatch.monitor.types import Block, Transaction

    data = "0x" + _word(500) + _word(7) + _word(BOT) + _word(0)
    logs = [Log(USDC, (TOPIC_TRANSFER, _topic(BOT), _topic(a(0xA70C))), "0x" + _word(500), 0),
            Log(WETH, (TOPIC_TRANSFER, _topic(a(0xA7E7)), _topic(BOT)), "0x" + _word(7), 1),
            Log(POOL_V2, (TOPIC_AAVE_V2, _topic(WETH), _topic(USDC), _topic(USER)), data, 2)]
    txs = [Transaction("0x" + "05" * 32, 0, a(0xE0A), BOT, "0x12345678", logs=logs),
           Transaction("0x" + "06" * 32, 1, a(0xE0B), BOT, "0x12345678")]
    db = BlockDecoder().decode(Block(9, "0x" + "aa" * 32, None, 0, a(0xFEE), None, txs, 1, has_traces=False, has_logs=True))
    assert db.lending_txs == ["0x" + "05" * 32]
    (al,) = [x for x in detect_block(db) if x.kind == "liquidation"]
    assert al.evidence["liquidations"][0]["source"] == "logs" and al.profit.by_token == {USDC: -500, WETH: 7}


def test_a_reverted_call_before_the_liquidation_does_not_shift_its_transfers():
    """Transfer.trace_index counts the calls the decoder kept (a reverted subtree is skipped): a
    reverted call earlier in the transaction must not make the rule read another call's transfer."""
    from mevwatch.monitor.decode import BlockDecoder
    from mevwatch.monitor.detect.liquidation import SEL_COMPOUND, SEL_SEIZE
    from mevwatch.monitor.types import Block, Trace, Transaction

    def call(addr, frm, to, inp, subtraces=0, error=None):
        return Trace(addr, "call", "call", frm, to, inp, "0x", 0, error, subtraces)

    liq = SEL_COMPOUND + _word(USER) + _word(900) + _word(CCOLL)
    pull = "0x23b872dd" + _word(BOT) + _word(CTOKEN) + _word(900)  # transferFrom(BOT, cToken, 900) on USDC
    seize = SEL_SEIZE + _word(BOT) + _word(USER) + _word(41)
    traces = [call((), a(0xE0A), BOT, "0x12345678", 2),
              call((0,), BOT, a(0xBAD), "0xdeadbeef", 1, error="Reverted"),
              call((0, 0), a(0xBAD), USDC, "0x23b872dd" + _word(BOT) + _word(a(0xBAD)) + _word(5)),
              call((1,), BOT, CTOKEN, liq, 2), call((1, 0), CTOKEN, USDC, pull), call((1, 1), CTOKEN, CCOLL, seize)]
    tx = Transaction("0x" + "07" * 32, 0, a(0xE0A), BOT, "0x12345678", traces=traces)
    db = BlockDecoder().decode(Block(9, "0x" + "aa" * 32, None, 0, a(0xFEE), None, [tx], 1, has_traces=True))
    (al,) = [x for x in detect_block(db) if x.kind == "liquidation"]
    (liq_ev,) = al.evidence["liquidations"]
    assert liq_ev["repaid"] == {USDC: "900"} and liq_ev["received"] == {CCOLL: "41"}
