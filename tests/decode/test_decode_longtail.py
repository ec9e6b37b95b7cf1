"""Long-tail venues on real mainnet calls: 1inch Mooniswap pools.

Block 11935012, tx 0x496836e0bd: WETH -> INJ (Uniswap V2) -> USDT (Mooniswap pool 0xd25fa06c,
``swap(src, dst, amount, minReturn, referral)``, 0xd5bcb9b5) -> WETH (Uniswap V2). Expected
amounts are the token transfers in the call's subtree, read with eth_abi from the raw traces.

Block 10921991, tx 0xe6c0e3ef04 closes a token loop through an Aave V1 liquidation
(``liquidationCall`` 0x00a718a9 on the LendingPool 0x398ec734) inside a Uniswap V2 flash swap: a
liquidation, which the reference tools report as its own kind, not as an arbitrage. mevwatch has
no liquidation kind yet, so the call stays undecoded rather than being read as a swap (a
liquidation counted as an arbitrage leg would be a false arbitrage by their labels).
"""

from __future__ import annotations

import copy

import pytest
from conftest import raw_block
from eth_abi import decode as abi
from eth_utils import keccak

from mevwatch.monitor.decode import BlockDecoder
from mevwatch.monitor.decode.mooniswap import SEL_SWAP, SEL_SWAP_FOR
from mevwatch.monitor.detect import detect_block
from mevwatch.monitor.types import ETH_ADDRESS, ZERO_ADDRESS, Block, DecodedBlock, Trace, Transaction

pytestmark = pytest.mark.fast

WETH = "0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2"
USDT = "0xdac17f958d2ee523a2206206994597c13d831ec7"
INJ = "0x054d64b73d3d8a21af3d764efd76bcaa774f3bb2"

MOONI_BLOCK = 11935012
MOONI_TX = "0x496836e0bd1520388e36c79d587a31d4b3306e4f25352164178ca0667c7f9c29"
MOONI_POOL = "0xd25fa06c03e806de51d2a06e0ecf5f4b8e51e491"
MOONI_BOT = "0x000000000a2daefe11b26dcdaecde7d33ad03e9d"

AAVE_BLOCK = 10921991
AAVE_TX = "0xe6c0e3ef0436cb032e1ef292141f4fc4dcd47a75a2559602133114952190e76b"


def sel(signature: str) -> str:
    return "0x" + keccak(text=signature)[:4].hex()


def test_selectors_are_the_functions_named():
    assert SEL_SWAP == sel("swap(address,address,uint256,uint256,address)") == "0xd5bcb9b5"
    assert SEL_SWAP_FOR == sel("swapFor(address,address,uint256,uint256,address,address)")
    # 10921991's loop: an Aave V1 liquidation (the LendingPoolCore's transferToUser/transferToReserve), not DODO
    assert sel("liquidationCall(address,address,address,uint256,bool)") == "0x00a718a9"
    assert sel("transferToUser(address,address,uint256)") == "0xfa93b2a5"
    assert sel("transferToReserve(address,address,uint256)") == "0x28fcf4d3"


def raw_calls(block: int, tx_hash: str) -> list[dict]:
    return [t for t in raw_block(block)["traces"] if t["transaction_hash"] == tx_hash]


def subtree_erc20(block: int, tx_hash: str, root: list[int]) -> list[tuple[str, str, str, int]]:
    """(token, from, to, amount) of every ERC-20 transfer/transferFrom call under ``root``."""
    found = []
    for t in raw_calls(block, tx_hash):
        a = t["action"]
        if t["trace_address"][: len(root)] != root or a.get("callType") != "call":
            continue
        data = bytes.fromhex(a["input"][10:])
        if a["input"][:10] == "0xa9059cbb":
            to, amt = abi(["address", "uint256"], data)
            found.append((a["to"].lower(), a["from"].lower(), to.lower(), amt))
        elif a["input"][:10] == "0x23b872dd":
            frm, to, amt = abi(["address", "address", "uint256"], data)
            found.append((a["to"].lower(), frm.lower(), to.lower(), amt))
    return found


def one(decoded, protocol: str, tx_hash: str):
    found = [s for s in decoded.swaps if s.protocol == protocol and s.transaction_hash == tx_hash]
    assert len(found) == 1, found
    return found[0]


def test_mooniswap_swap(decode_block):
    d = decode_block(MOONI_BLOCK)
    s = one(d, "mooniswap", MOONI_TX)
    (call,) = [t for t in raw_calls(MOONI_BLOCK, MOONI_TX) if t["trace_address"] == [7]]
    src, dst, amount, min_return, _ = abi(["address", "address", "uint256", "uint256", "address"],
                                         bytes.fromhex(call["action"]["input"][10:]))
    assert call["action"]["input"][:10] == SEL_SWAP and call["action"]["to"] == MOONI_POOL
    moved = subtree_erc20(MOONI_BLOCK, MOONI_TX, [7])
    assert moved == [(INJ, MOONI_BOT, MOONI_POOL, amount), (USDT, MOONI_POOL, MOONI_BOT, 871839781)]
    assert (s.pool, s.sender, s.recipient, s.payer) == (MOONI_POOL, MOONI_BOT, MOONI_BOT, MOONI_BOT)
    assert (s.token_in, s.token_out) == (src.lower(), dst.lower()) == (INJ, USDT)
    assert (s.amount_in, s.amount_out) == (4576573410819411693202, 871839781)
    assert min_return == 0 and s.amount_out == int(call["result"]["output"], 16)  # from the transfer, not minReturn
    assert s.trace_address == (7,)
    assert d.stats.swaps_by_protocol["mooniswap"] == 1
    assert SEL_SWAP not in d.stats.undecoded_by_selector  # counted undecoded before this decoder


def arbitrage_of(db, tx_hash: str):
    (arb,) = [x for x in detect_block(db) if x.kind == "arbitrage" and x.txs[0].hash == tx_hash]
    return arb


def test_arbitrage_through_mooniswap_is_reported(decode_block):
    arb = arbitrage_of(decode_block(MOONI_BLOCK), MOONI_TX)
    # WETH out of the second V2 pair less WETH paid into the first
    assert arb.profit.token == WETH and arb.profit.amount == 0x08492140AF13ECA5 - 0x07CE35A000000000 == 34599022523313317
    assert [r["protocol"] for r in arb.evidence["route"]].count("mooniswap") == 1
    assert {r["pool"] for r in arb.evidence["route"]} >= {MOONI_POOL}


def test_a_liquidation_is_not_read_as_an_arbitrage_leg(decode_block):
    """Until mevwatch has a liquidation kind, the loop through the liquidation raises no arbitrage."""
    d = decode_block(AAVE_BLOCK)
    assert not [x for x in detect_block(d) if x.kind == "arbitrage" and x.txs[0].hash == AAVE_TX]
    assert not [s for s in d.swaps if s.transaction_hash == AAVE_TX and s.pool == "0x398ec7346dcd622edc5ae82352f02be94c62d119"]


@pytest.mark.parametrize(("block", "selector", "protocol"), [
    (MOONI_BLOCK, SEL_SWAP, "mooniswap"),
])
def test_truncated_calldata_is_counted_malformed_not_raised(load_block, block, selector, protocol):
    b = copy.deepcopy(load_block(block))
    cut = 0
    for tx in b.transactions:
        for t in tx.traces:
            if t.input[:10] == selector:
                t.input = t.input[:10 + 64 * 2 + 20]  # two words and a fragment of the third
                cut += 1
    assert cut
    d = BlockDecoder().decode(b)
    assert not [s for s in d.swaps if s.protocol == protocol]
    assert d.stats.malformed_by_selector[selector] >= 1


def test_a_call_that_moved_nothing_is_malformed_not_a_swap(load_block):
    """The Mooniswap call with its token transfers removed (as if another contract shared the selector)."""
    b = copy.deepcopy(load_block(MOONI_BLOCK))
    (tx,) = [x for x in b.transactions if x.hash == MOONI_TX]
    tx.traces = [t for t in tx.traces if not (t.trace_address[:1] == (7,) and len(t.trace_address) == 2
                                              and t.input[:10] in ("0xa9059cbb", "0x23b872dd"))]
    d = BlockDecoder().decode(b)
    assert not [s for s in d.swaps if s.protocol == "mooniswap"]
    assert d.stats.malformed_by_selector[SEL_SWAP] == 1


# --- ether legs (constructed: address(0) is ether in Mooniswap) ---------------------------------------
USER = "0x6666666666666666666666666666666666666666"
POOL = "0x5555555555555555555555555555555555555555"
TOKEN = "0x7777777777777777777777777777777777777777"
TRUE = "0x" + "0" * 63 + "1"


def _w(x: int | str) -> str:
    return f"{x:064x}" if isinstance(x, int) else "0" * 24 + x[2:]


def _decode_one(top_input: str, value: int, children: list[Trace]) -> DecodedBlock:
    traces = [Trace((), "call", "call", USER, POOL, top_input, "0x", value, None, len(children)), *children]
    tx = Transaction("0x" + "ab" * 32, 0, USER, POOL, top_input, traces=traces)
    return BlockDecoder().decode(Block(1, None, None, 0, None, 0, [tx], has_traces=True))


def test_mooniswap_ether_in_and_out():
    buy = SEL_SWAP + _w(ZERO_ADDRESS) + _w(TOKEN) + _w(10**18) + _w(0) + _w(ZERO_ADDRESS)
    d = _decode_one(buy, 10**18, [Trace((0,), "call", "call", POOL, TOKEN, "0xa9059cbb" + _w(USER) + _w(500), TRUE, 0, None, 0)])
    (s,) = d.swaps
    assert (s.token_in, s.amount_in, s.token_out, s.amount_out, s.recipient) == (ETH_ADDRESS, 10**18, TOKEN, 500, USER)
    sell = SEL_SWAP + _w(TOKEN) + _w(ZERO_ADDRESS) + _w(500) + _w(0) + _w(ZERO_ADDRESS)
    d = _decode_one(sell, 0, [
        Trace((0,), "call", "call", POOL, TOKEN, "0x23b872dd" + _w(USER) + _w(POOL) + _w(500), TRUE, 0, None, 0),
        Trace((1,), "call", "call", POOL, USER, "0x", "0x", 9 * 10**17, None, 0),
    ])
    (s,) = d.swaps
    assert (s.token_in, s.amount_in, s.token_out, s.amount_out, s.recipient) == (TOKEN, 500, ETH_ADDRESS, 9 * 10**17, USER)
