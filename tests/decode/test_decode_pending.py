"""Router calldata -> intended swap, on real pending calls (their roots in recorded blocks)."""

from __future__ import annotations

import pytest
from conftest import raw_block
from eth_abi import encode

from mevwatch.monitor.decode.pending import decode_pending

pytestmark = pytest.mark.fast
WETH = "0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2"
USDC = "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48"


def root(block: int, tx_hash: str) -> dict:
    return next(t["action"] for t in raw_block(block)["traces"] if t["transaction_hash"] == tx_hash and t["trace_address"] == [])


def intents(block, tx_hash):
    a = root(block, tx_hash)
    return decode_pending(a["to"], a["input"], int(a["value"], 16))


def test_router02_exact_out_eth_victim_of_12775690():
    (s,) = intents(12775690, "0x9b40deca1f53593b7631ca25485d0c6faf90279b9872845acfd5c98afb185934")
    assert (s.protocol, s.exact, s.path) == ("uniswap_v2", "out", [WETH, "0x9813037ee2218799597d83d4a5b6f3b6778218d9"])
    assert s.amount_out == 60 * 10**18 and s.amount_in_max == 654385464671327037 and s.pays_eth


def test_router02_exact_in_eth_victim_of_12775690():
    (s,) = intents(12775690, "0xf8e45a291cdab5e456375e4d7df30771670d504835c9332b32114e5bc4e315f9")
    assert (s.exact, s.amount_in, s.amount_out_min) == ("in", 3 * 10**17, 27544409821205632837)


def test_v3_exact_input_single():
    (s,) = intents(12483198, "0x582eb358a08d486822ee0edfce962257a82fb6abad69dbaee996b02fc0d88357")
    assert (s.protocol, s.path, s.fees, s.amount_in, s.amount_out_min, s.deadline) == (
        "uniswap_v3", [WETH, USDC], [3000], 48285214984189009920, 113222649743, 1621674633)


def test_v3_exact_input_multihop_path():
    (s,) = intents(12914944, "0xe24514803343b5c56a8131ae8e4d8d77d75fe790b7cde70be5fd0519c66ca24a")
    assert s.path == [WETH, USDC, "0x25f8087ead173b73d6e8b84329989a8eea16cf73"] and s.fees == [500, 10000]
    assert (s.amount_in, s.amount_out_min) == (10 * 10**18, 13513615170844976717465)


def test_v3_exact_output_single_and_multicall_exact_output():
    (s,) = intents(12914944, "0x71f6ee490810e448267f27136eb29c5ccafb590fc293f1bc483668a3610601dc")
    assert (s.exact, s.path, s.amount_out, s.amount_in_max) == ("out", [USDC, "0x25f8087ead173b73d6e8b84329989a8eea16cf73"], 1000 * 10**18, 1693284778)
    (m,) = intents(13370850, "0x02d3f777fc73890d329541e518bd8fc3c6c13bb78e45a2e2768aed69bc8128bb")
    assert (m.exact, m.path[0], m.amount_out, m.amount_in_max) == ("out", WETH, 5 * 10**17, 192092640301818195)


def test_universal_router_v2_and_v3_commands():
    tkn = "0x1111111111111111111111111111111111111111"
    v3path = bytes.fromhex(WETH[2:]) + (500).to_bytes(3, "big") + bytes.fromhex(USDC[2:])
    inputs = [
        encode(["address", "uint256", "uint256", "bytes", "bool"], ["0x" + "22" * 20, 10**18, 3_000_000_000, v3path, True]),
        encode(["address", "uint256", "uint256", "address[]", "bool"], ["0x" + "22" * 20, 5 * 10**6, 10**18, [USDC, tkn], True]),
    ]
    data = "0x3593564c" + encode(["bytes", "bytes[]", "uint256"], [bytes([0x00, 0x09]), inputs, 1_700_000_000]).hex()
    v3, v2 = decode_pending("0x3fc91a3afd70395cd496c647d5a6cc9d4b2b7fad", data)
    assert (v3.protocol, v3.exact, v3.path, v3.fees, v3.amount_in, v3.amount_out_min, v3.deadline) == (
        "uniswap_v3", "in", [WETH, USDC], [500], 10**18, 3_000_000_000, 1_700_000_000)
    assert (v2.protocol, v2.exact, v2.path, v2.amount_out, v2.amount_in_max) == ("uniswap_v2", "out", [USDC, tkn], 5 * 10**6, 10**18)


def test_non_router_calls_yield_nothing():
    assert decode_pending("0x" + "33" * 20, "0xa9059cbb" + "00" * 64) == []
    assert decode_pending(None, "0x38ed1739") == []
    assert decode_pending("0x" + "33" * 20, "0x38ed1739zz") == []
