"""0x v2/v3/v4 fills on real calls, and the undecoded counter on proxy-settled trades."""

from __future__ import annotations

import dataclasses

import pytest
from eth_abi import decode as abi

from mevwatch.monitor.decode import BlockDecoder, block
from mevwatch.monitor.types import Block

pytestmark = pytest.mark.fast

WETH = "0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2"
USDT = "0xdac17f958d2ee523a2206206994597c13d831ec7"
ORDER_V3 = "(address,address,address,address,uint256,uint256,uint256,uint256,uint256,uint256,bytes,bytes,bytes,bytes)"


def zerox(db, tx_hash):
    return [s for s in db.swaps if s.transaction_hash == tx_hash and s.protocol == "zerox"]


def test_v2_fill_order_through_the_asset_proxy(decode_block):
    """1inch fills a 0x v2 order (Exchange 0x080b..): WETH from the maker for USDT from the taker,
    both moved by the ERC-20 proxy, never held by the exchange."""
    tx = "0x734668180e4a1b7a748cb00e8cf54fbd42fd2f60cdd21e78dd02ca43879ccd37"
    (s,) = zerox(decode_block(11930296), tx)
    assert s.pool == "0x080bf510fcbf18b91105470639e9561022937712" and s.trace_address == (0, 2, 1)
    assert s.sender == s.recipient == "0xe069cb01d06ba617bcdf789bf2ff0d5e5ca20c71"  # the taker
    assert (s.token_in, s.amount_in) == (USDT, 5_000_000_000)
    assert (s.token_out, s.amount_out) == (WETH, 3363755575439139328)


def test_v4_fill_or_kill_limit_order_joins_an_arbitrage(decode_block):
    """13370850 tx 10: a 0x v4 fillOrKillLimitOrder leg (its taker amount is the call's argument)
    inside a four-leg nested flash-swap cycle."""
    from mevwatch.monitor.detect import detect_block

    tx = "0x27c4d02cde06d8842905c0e937a483ff07be6388b4d2508aeedaad0ebf1cb1e1"
    db = decode_block(13370850)
    (s,) = zerox(db, tx)
    assert s.amount_in == 1317606263181314723165 and s.amount_out == 34108370009
    (arb,) = [a for a in detect_block(db) if a.txs[0].hash == tx]
    assert arb.kind == "arbitrage" and len(arb.evidence["route"]) == 4 and arb.profit.token == WETH


def _v3_block(load_block) -> tuple[Block, str]:
    """13376024 tx 428 reached 0x v3 (Exchange 0x6193..) marketSellOrdersNoThrow, which fills each
    order by delegatecalling itself with fillOrder (0x9b44d556); the transaction reverted later,
    so its frames are replayed here as a successful one (the fill's frames did not revert)."""
    b = load_block(13376024)
    tx = next(t for t in b.transactions if t.hash.startswith("0xd4d10821"))
    sub = (1, 0, 1, 2, 0)
    frames = [dataclasses.replace(t, trace_address=t.trace_address[len(sub):], error=None)
              for t in tx.traces if t.trace_address[: len(sub)] == sub]
    ok = dataclasses.replace(tx, success=True, position=0, traces=frames,
                             from_address=frames[0].from_address, to_address=frames[0].to_address)
    return dataclasses.replace(b, transactions=[ok]), tx.hash


def test_v3_fill_order_in_a_self_delegatecall(load_block):
    b, tx_hash = _v3_block(load_block)
    fill = next(t for t in b.transactions[0].traces if t.input.startswith("0x9b44d556"))
    (order, taker_fill, _sig) = abi([ORDER_V3, "uint256", "bytes"], bytes.fromhex(fill.input[10:]))
    maker_token, taker_token = "0x" + order[10][16:36].hex(), "0x" + order[11][16:36].hex()
    maker_filled, taker_filled = abi(["uint256"] * 5, bytes.fromhex(fill.output[2:]))[:2]
    (s,) = zerox(BlockDecoder().decode(b), tx_hash)
    assert s.pool == "0x61935cbdd02287b511119ddb11aeb42f1593b7ef"
    assert s.sender == "0x27239549dd40e1d60f5b80b0c4196923745b1fd2"  # msg.sender kept through the delegatecall
    assert (s.token_in, s.amount_in) == (taker_token, taker_filled) and 0 < taker_filled <= taker_fill
    assert (s.token_out, s.amount_out) == (maker_token, maker_filled)


def test_undecoded_counter_sees_a_proxy_settled_fill(load_block, monkeypatch):
    """Without the v3 decoder the fill is still counted: the taker received one token and paid
    another through the asset proxy, though the exchange never held either."""
    b, _ = _v3_block(load_block)
    monkeypatch.setattr(block, "SELF_DELEGATE_HANDLERS", {})
    d = BlockDecoder().decode(b)
    assert not d.swaps
    assert d.stats.undecoded_by_selector["0x369da099"] == 1  # marketSellOrdersNoThrow, the call made
