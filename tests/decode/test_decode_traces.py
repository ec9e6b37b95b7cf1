"""Trace decoders on real mainnet calls, one per protocol family.

Each expected amount was read by hand from the call's calldata and return data, and
is cross-checked here against eth_abi, an independent ABI decoder, on the raw trace.
"""

from __future__ import annotations

import pytest
from conftest import raw_block
from eth_abi import decode as abi

pytestmark = pytest.mark.fast


def raw_trace(block: int, tx_hash: str, trace_address: list[int]) -> dict:
    for t in raw_block(block)["traces"]:
        if t["transaction_hash"] == tx_hash and t["trace_address"] == trace_address:
            return t
    raise AssertionError("trace not in fixture")


def one(decoded, tx_hash, trace_address):
    found = [s for s in decoded.swaps if s.transaction_hash == tx_hash and s.trace_address == tuple(trace_address)]
    assert len(found) == 1, found
    return found[0]


def test_uniswap_v2_swap_router_buy(decode_block):
    tx = "0x708bd389fc5e2cb917f3ccf61e4822d771334fa4a76315d59098aac634c83f5d"
    s = one(decode_block(10921991), tx, [3])
    raw = raw_trace(10921991, tx, [3])["action"]["input"]
    a0out, a1out, to, _ = abi(["uint256", "uint256", "address", "bytes"], bytes.fromhex(raw[10:]))
    assert s.protocol == "uniswap_v2"
    assert s.pool == "0xab659dee3030602c1af8c29d146facd4aed6ec85"
    assert (s.token_in, s.amount_in) == ("0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2", 20 * 10**18)
    assert s.token_out == "0x3f382dbd960e3a9bbceae22651e88158d2791550"
    assert s.amount_out == 8787777219377014548630 == max(a0out, a1out)
    assert s.recipient == to.lower() == "0x30391a4f9d2f099d41888f811784281cba4097f0"
    assert s.sender == "0x7a250d5630b4cf539739df2c5dacb4c659f2488d"  # Router02 called the pair
    assert s.reserves_after is not None and all(r > 0 for r in s.reserves_after)


def test_uniswap_v3_swap(decode_block):
    tx = "0x22540e530a33a8f4cf4fd69a468323df349bdb1b1cb0efe9da6e59470506e7a1"
    ta = [0, 0, 1, 0, 3, 1, 1, 0]
    s = one(decode_block(12483198), tx, ta)
    t = raw_trace(12483198, tx, ta)
    d0, d1 = abi(["int256", "int256"], bytes.fromhex(t["result"]["output"][2:]))
    assert s.protocol == "uniswap_v3" and s.pool == "0xf87bb87fd9ea1c260ddf77b9c707ad9437ff8364"
    assert (s.token_in, s.amount_in) == ("0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2", 450051102699999985664)
    assert (s.token_out, s.amount_out) == ("0xc7283b66eb1eb5fb86327f08e1b5816b0720212b", 1066359921484761926732829)
    assert {s.amount_in, -s.amount_out} == {d0, d1}


def test_balancer_v1_swap_exact_amount_in(decode_block):
    tx = "0xe3d1e9f3220f979ede68f3593a58f4cf1b1d36ce609082d76b9a7e57a84c0731"
    s = one(decode_block(10921991), tx, [2, 1])
    t = raw_trace(10921991, tx, [2, 1])
    tin, ain, tout, _, _ = abi(["address", "uint256", "address", "uint256", "uint256"], bytes.fromhex(t["action"]["input"][10:]))
    (aout, _) = abi(["uint256", "uint256"], bytes.fromhex(t["result"]["output"][2:]))
    assert s.protocol == "balancer_v1" and s.pool == "0x77f5f3dfd95d0b061c9ef47c4f4ca4681d807776"
    assert (s.token_in, s.amount_in, s.token_out, s.amount_out) == (tin.lower(), ain, tout.lower(), aout)
    assert (s.amount_in, s.amount_out) == (3660139978234200576, 157284969303422644801)


def test_balancer_v2_on_swap(decode_block):
    tx = "0x4033a69f87bb307e938af5184496ddee71df13201b28ecdaa5ecc6b89ff8b876"
    s = one(decode_block(13207907), tx, [0, 0])
    assert s.protocol == "balancer_v2" and s.pool == "0xf5aaf7ee8c39b651cebf5f1f50c10631e78e0ef9"
    assert (s.token_in, s.amount_in) == ("0x04fa0d235c4abf4bcf4787af4cf447de572ef828", 723234510959818571776)
    assert (s.token_out, s.amount_out) == ("0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48", 7532050450)


def test_curve_exchange_without_return_value(decode_block):
    tx = "0x0fe21e34cdd5af86c63e4a83e0ee8b67e8644defb563a55e1c70bd6284f8b7fa"
    s = one(decode_block(11931272), tx, [1, 5, 2])
    t = raw_trace(11931272, tx, [1, 5, 2])
    i, j, dx, min_dy = abi(["int128", "int128", "uint256", "uint256"], bytes.fromhex(t["action"]["input"][10:]))
    assert s.protocol == "curve" and s.pool == "0x329239599afb305da0a2ec69c58f8a6697f9f88d"
    assert s.amount_in == dx == 145733097437042200684226
    assert s.token_in == "0x6b175474e89094c44da98b954eedeac495271d0f"  # DAI
    assert s.token_out == "0x0000000000085d4780b73119b644ae5ecd22b376"  # TUSD
    assert s.amount_out == 145698250877346929489891 >= min_dy


def test_zerox_rfq_fill(decode_block):
    tx = "0x1c948eb7c59ddbe6b916cf68f5df86eb44a7c9e728221fcd8ab750f137fd2a0f"
    s = one(decode_block(13666326), tx, [0, 1, 13, 0, 1])
    assert s.protocol == "zerox" and s.pool == "0xdef1c0ded9bec7f1a1670819833240f027b25eff"
    assert (s.token_in, s.amount_in) == ("0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2", 70500000000000000000)
    assert (s.token_out, s.amount_out) == ("0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48", 288948250430)


def test_bancor_convert_by_path(decode_block):
    tx = "0x46343ec64f36dd81788667d3baad14a04ad972567ce52268b280836742562378"
    s = one(decode_block(12914944), tx, [0, 6])
    t = raw_trace(12914944, tx, [0, 6])
    path, amount, _min, _b, _a, _f = abi(["address[]", "uint256", "uint256", "address", "address", "uint256"], bytes.fromhex(t["action"]["input"][10:]))
    assert s.protocol == "bancor"
    assert (s.token_in, s.token_out) == (path[0].lower(), path[-1].lower())
    assert s.amount_in == amount == 7533754920051278052285
    assert s.amount_out == 336041015624999999999987


def test_v2_and_v3_liquidity(decode_block):
    add = [lc for lc in decode_block(12775690).liquidity if lc.transaction_hash == "0x1878d79f8b4d540445b49b53c86faf543d97fff428ccdfc13c82d91ecea1dcf1"]
    assert len(add) == 1
    lc = add[0]
    assert (lc.protocol, lc.kind, lc.pool) == ("uniswap_v3", "add", "0xa6cc3c2531fdaa6ae1a3ca84c2855806728693e8")
    assert (lc.tick_lower, lc.tick_upper, lc.liquidity) == (-47880, -47100, 557456587432155455901)
    assert (lc.amount0, lc.amount1) == (115875558225718409682, 10**18)
    rem = [lc for lc in decode_block(11931272).liquidity if lc.kind == "remove"]
    assert rem and rem[0].protocol == "uniswap_v2" and rem[0].amount0 == 28387577008375748 and rem[0].amount1 == 5746414888836374


def test_reverted_calls_are_excluded_and_counted(load_block, decode_block):
    block = load_block(12914944)
    failed = [tx for tx in block.transactions if not tx.success]
    assert failed, "fixture has failed transactions"
    d = decode_block(12914944)
    failed_hashes = {tx.hash for tx in failed}
    assert not [s for s in d.swaps if s.transaction_hash in failed_hashes]
    assert d.stats.reverted_calls >= sum(1 for tx in failed for t in tx.traces if t.type == "call")


def test_every_recorded_block_decodes_with_swaps(all_block_numbers, decode_block):
    protocols = set()
    for n in all_block_numbers:
        d = decode_block(n)
        assert d.swaps, n
        for s in d.swaps:
            assert s.amount_in > 0 and s.amount_out > 0 and s.token_in != s.token_out
        protocols |= set(d.stats.swaps_by_protocol)
    assert {"uniswap_v2", "uniswap_v3", "balancer_v1", "balancer_v2", "curve", "zerox", "bancor"} <= protocols


def test_fee_taking_token_that_swaps_inside_its_own_transfer(decode_block):
    """Tax token 0x9f91..: its transferFrom swaps the collected fee on the same pair *inside*
    the user's transfer. Both the nested fee swap and the user's swap must decode, and the
    user's transfer (which completes after the nested swap) counts only for the user's swap."""
    tx = "0xdb57297aa32d05d49747db4aea419b43c58f85594f606326214a6d02147a949d"
    pool = "0x1b9d2d38a43e29223e4716f49b48547820760a6a"
    token = "0x9f91d9f9070b0478abb5a9918c79b5dd533f672c"
    on_pool = [s for s in decode_block(13298725).swaps if s.transaction_hash == tx and s.pool == pool]
    assert [(s.trace_address, s.token_in, s.amount_in, s.amount_out) for s in on_pool] == [
        ((0, 1, 3), token, 13129613267669115065226, 34022625747178526),  # the token's own fee swap
        ((4,), token, 468168971895343494728862, 1187127209667796676),  # the user's swap
    ]


def test_no_known_swap_call_is_left_malformed_in_the_recorded_blocks(all_block_numbers, decode_block):
    for n in all_block_numbers:
        assert not decode_block(n).stats.malformed_by_selector, n
