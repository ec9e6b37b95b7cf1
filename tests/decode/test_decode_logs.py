"""Log decoders, as eth_getBlockReceipts returns logs.

The logs are ABI-encoded here with eth_abi from the numbers of a real swap (block
12775690's front-run), so the log path must reproduce what the trace path decoded.
"""

from __future__ import annotations

import pytest
from eth_abi import encode
from eth_utils import keccak

from mevwatch.monitor.decode import BlockDecoder
from mevwatch.monitor.decode.uniswap_v4 import TOPIC_INITIALIZE
from mevwatch.monitor.types import Block, Log, Transaction

pytestmark = pytest.mark.fast

WETH = "0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2"
TKN = "0x9813037ee2218799597d83d4a5b6f3b6778218d9"
PAIR = "0xefb47fcfcad4f96c83d4ca676842fb03ef20a477"
BOT = "0x000000000027d2efc283613d0c3e24a8b430c4d8"


def topic(sig: str) -> str:
    return "0x" + keccak(text=sig).hex()


def word(addr: str) -> str:
    return "0x" + "0" * 24 + addr[2:]


def data(types, values) -> str:
    return "0x" + encode(types, values).hex()


def block_with(logs: list[Log]) -> Block:
    tx = Transaction(hash="0x" + "ab" * 32, position=2, from_address="0x0000000000c521824eaff97eac7b73b084ef9306",
                     to_address=BOT, input="0x", logs=logs)
    return Block(1, "0x" + "cd" * 32, None, 0, None, 0, [tx], has_logs=True)


TRANSFER = topic("Transfer(address,address,uint256)")


def v2_logs(amount_in=12108789017249529876, amount_out=1114969767487478978357):
    # token0 = TKN (0x98..) < token1 = WETH (0xc0..): WETH in is amount1In
    return [
        Log(WETH, (TRANSFER, word(BOT), word(PAIR)), data(["uint256"], [amount_in]), 10),
        Log(TKN, (TRANSFER, word(PAIR), word(BOT)), data(["uint256"], [amount_out]), 11),
        Log(PAIR, (topic("Sync(uint112,uint112)"),), data(["uint112", "uint112"], [563441759503361884819996, 6112838867550472641025]), 12),
        Log(PAIR, (topic("Swap(address,uint256,uint256,uint256,uint256,address)"), word(BOT), word(BOT)),
            data(["uint256"] * 4, [0, amount_in, amount_out, 0]), 13),
    ]


def test_v2_swap_from_logs_matches_trace_decoding(decode_block):
    d = BlockDecoder().decode(block_with(v2_logs()))
    assert d.source == "logs" and len(d.swaps) == 1
    s = d.swaps[0]
    from_traces = next(x for x in decode_block(12775690).swaps if x.transaction_position == 2 and x.pool == PAIR)
    for field in ("pool", "token_in", "token_out", "amount_in", "amount_out", "recipient", "reserves_after"):
        assert getattr(s, field) == getattr(from_traces, field), field
    assert s.log_index == 13 and s.payer == BOT


def test_v3_swap_from_logs():
    pool = "0x8ad599c3a0ff1de082011efddc58f1908eb6e6d8"
    usdc = "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48"
    logs = [
        Log(WETH, (TRANSFER, word(pool), word(BOT)), data(["uint256"], [5 * 10**17]), 0),
        Log(usdc, (TRANSFER, word(BOT), word(pool)), data(["uint256"], [2_000_000_000]), 1),
        Log(pool, (topic("Swap(address,address,int256,int256,uint160,uint128,int24)"), word(BOT), word(BOT)),
            data(["int256", "int256", "uint160", "uint128", "int24"], [2_000_000_000, -5 * 10**17, 2**96, 10**20, 200000]), 2),
    ]
    (s,) = BlockDecoder().decode(block_with(logs)).swaps
    assert (s.protocol, s.token_in, s.amount_in, s.token_out, s.amount_out) == ("uniswap_v3", usdc, 2_000_000_000, WETH, 5 * 10**17)
    assert s.sqrt_price_x96 == 2**96 and s.liquidity == 10**20


def test_v4_swap_needs_the_pool_key_and_gets_it_from_initialize():
    manager = "0x000000000004444c5dc75cb358380d2e3de08a90"
    usdc = "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48"
    pid = "0x" + "11" * 32
    swap = Log(manager, (topic("Swap(bytes32,address,int128,int128,uint160,uint128,int24,uint24)"), pid, word(BOT)),
               data(["int128", "int128", "uint160", "uint128", "int24", "uint24"], [-(10**18), 3_000_000_000, 2**96, 10**18, 1, 500]), 5)
    dec = BlockDecoder()
    unknown = dec.decode(block_with([swap]))
    assert unknown.swaps == [] and unknown.stats.malformed_by_selector["v4_unknown_pool"] == 1
    init = Log(manager, (TOPIC_INITIALIZE, pid, word("0x0000000000000000000000000000000000000000"), word(usdc)),
               data(["uint24", "int24", "address", "uint160", "int24"], [500, 10, "0x" + "00" * 20, 2**96, 0]), 4)
    (s,) = dec.decode(block_with([init, swap])).swaps
    assert (s.protocol, s.pool, s.amount_in, s.token_out, s.amount_out) == ("uniswap_v4", pid, 10**18, usdc, 3_000_000_000)
    assert s.token_in == "0x0000000000000000000000000000000000000000"  # native ether


def test_balancer_v2_vault_swap_log():
    vault = "0xba12222222228d8ba445958a75a0704d566bf2c8"
    pool_id = "0x5c6ee304399dbdb9c8ef030ab642b10820db8f56000200000000000000000014"
    bal = "0xba100000625a3754423978a60c9317c58a424e3d"
    log = Log(vault, (topic("Swap(bytes32,address,address,uint256,uint256)"), pool_id, word(WETH), word(bal)),
              data(["uint256", "uint256"], [10**18, 123 * 10**18]), 7)
    (s,) = BlockDecoder().decode(block_with([log])).swaps
    assert (s.protocol, s.pool, s.token_in, s.token_out, s.amount_in, s.amount_out) == (
        "balancer_v2", "0x5c6ee304399dbdb9c8ef030ab642b10820db8f56", WETH, bal, 10**18, 123 * 10**18)


def test_curve_token_exchange_log_takes_tokens_from_transfers():
    pool = "0xbebc44782c7db0a1a60cb6fe97d0b483032ff1c7"
    dai, usdc = "0x6b175474e89094c44da98b954eedeac495271d0f", "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48"
    logs = [
        Log(dai, (TRANSFER, word(BOT), word(pool)), data(["uint256"], [1000 * 10**18]), 0),
        Log(usdc, (TRANSFER, word(pool), word(BOT)), data(["uint256"], [999_000_000]), 1),
        Log(pool, (topic("TokenExchange(address,int128,uint256,int128,uint256)"), word(BOT)),
            data(["int128", "uint256", "int128", "uint256"], [0, 1000 * 10**18, 1, 999_000_000]), 2),
    ]
    (s,) = BlockDecoder().decode(block_with(logs)).swaps
    assert (s.protocol, s.token_in, s.token_out, s.amount_in, s.amount_out) == ("curve", dai, usdc, 1000 * 10**18, 999_000_000)


def test_v3_liquidity_logs():
    pool = "0x8ad599c3a0ff1de082011efddc58f1908eb6e6d8"
    owner = "0xc36442b4a4522e871399cd717abdd847ab11fe88"

    def tick(t):
        return "0x" + (t & (2**256 - 1)).to_bytes(32, "big").hex()

    mint = Log(pool, (topic("Mint(address,address,int24,int24,uint128,uint256,uint256)"), word(owner), tick(-100), tick(100)),
               data(["address", "uint128", "uint256", "uint256"], [owner, 5 * 10**15, 7, 9]), 0)
    burn = Log(pool, (topic("Burn(address,int24,int24,uint128,uint256,uint256)"), word(owner), tick(-100), tick(100)),
               data(["uint128", "uint256", "uint256"], [5 * 10**15, 6, 8]), 1)
    d = BlockDecoder().decode(block_with([mint, burn]))
    assert [(lc.kind, lc.tick_lower, lc.tick_upper, lc.liquidity, lc.amount0, lc.amount1) for lc in d.liquidity] == [
        ("add", -100, 100, 5 * 10**15, 7, 9), ("remove", -100, 100, 5 * 10**15, 6, 8)]


def test_erc721_transfer_is_not_an_erc20_transfer():
    nft = Log(TKN, (TRANSFER, word(BOT), word(PAIR), "0x" + "00" * 31 + "07"), "0x", 0)
    assert BlockDecoder().decode(block_with([nft])).transfers == []
