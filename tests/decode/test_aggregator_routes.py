"""Aggregator routes on real mainnet calls: 1inch (v2, v3, v4) and Paraswap v5 transactions in the
shared blocks are reported as the legs they trade on the pools (Uniswap V2/V3, Balancer V1, Curve,
0x, Mooniswap), never as one swap by the router and never as an arbitrage; a Balancer V2
single-sided join (the Vault's ``joinPool``, the pool's ``onJoinPool``) is liquidity, not a swap, in
both decoder modes."""

from __future__ import annotations

import pytest

from mevwatch.monitor.decode.tokenflow import make_decoder
from mevwatch.monitor.detect import detect_block

pytestmark = pytest.mark.fast

ROUTERS = {
    "0x111111125434b319222cdbf8c261674adb56f3ae": "1inch v2",
    "0x11111112542d85b3ef69ae05771c2dccff4faa26": "1inch v3",
    "0x1111111254fb6c44bac0bed2854e76f90643097d": "1inch v4",
    "0xdef171fe48cf0115b1d80b88dc8eab59176fee57": "paraswap v5",
}
# block -> (tx hash prefix, the protocols of its decoded legs, in order), read from the raw traces
ROUTES = {
    11930296: [("0x73466818", ["zerox", "uniswap_v2"])],
    11931272: [("0x0fe21e34", ["uniswap_v2", "uniswap_v2", "curve"])],
    12498502: [("0x584fe23a", ["uniswap_v2", "balancer_v1", "uniswap_v3"])],  # a split, then a hop
    12674514: [("0xa1c77ef1", ["zerox"])],
    12914944: [("0x614ab199", ["uniswap_v3"])],
    13298725: [("0xfb24bc8a", ["uniswap_v3"]), ("0xcb5de188", ["zerox", "uniswap_v3", "mooniswap", "uniswap_v3"])],
    13326607: [("0x9d24946b", ["uniswap_v2"])],
    13376024: [("0x1b8edf65", ["uniswap_v2"]), ("0xc406f4b3", ["uniswap_v2"]), ("0x28d8ae7b", ["uniswap_v2"])],
    13666326: [("0xc0814d4f", ["uniswap_v2"]), ("0xe662c6eb", ["uniswap_v2", "uniswap_v2"]), ("0x5508cfc9", ["uniswap_v3"]),
               ("0x589a2258", ["uniswap_v2", "uniswap_v2"])],
}
BALANCER_JOIN = (13326607, "0x497a5761b8625a7a403bcb5641b58f7640997a9047067db3ffe6718cac093920")


@pytest.mark.parametrize("number", sorted(ROUTES))
def test_aggregator_routes_are_their_pool_legs_never_an_arbitrage(decode_block, number):
    d = decode_block(number)
    alerts = detect_block(d)
    by_prefix = {tx.hash[:10]: tx for tx in d.block.transactions if tx.to_address in ROUTERS}
    for prefix, protocols in ROUTES[number]:
        tx = by_prefix[prefix]
        legs = sorted((s for s in d.swaps if s.transaction_hash == tx.hash), key=lambda s: s.order)
        assert [s.protocol for s in legs] == protocols, (ROUTERS[tx.to_address], prefix)
        assert all(s.pool not in ROUTERS and s.tx_to == tx.to_address for s in legs)
        assert not [a for a in alerts if any(t.hash == tx.hash for t in a.txs)], (prefix, [a.kind for a in alerts])


def test_a_balancer_v2_single_sided_join_is_liquidity_not_a_swap(load_block):
    number, tx_hash = BALANCER_JOIN
    block = load_block(number)
    (tx,) = [t for t in block.transactions if t.hash == tx_hash]
    assert tx.input[:10] == "0xb95cac28"  # Vault.joinPool(bytes32,address,address,(address[],uint256[],bytes,bool))
    assert any(t.input[:10] == "0xd5c096c4" for t in tx.traces)  # the pool's onJoinPool
    for mode in ("full", "transfers"):
        d = make_decoder(mode).decode(block)
        assert not [s for s in d.swaps if s.transaction_hash == tx_hash], mode


def test_a_balancer_v1_single_sided_exit_from_logs_is_no_undecoded_trade():
    """``exitswapPoolAmountIn`` from logs: the user's pool shares move into the pool (the pool's own
    token, not a mint or burn) and one token comes out. Liquidity: not counted as a swap the decoders
    missed, and not inferred as a swap from transfers."""
    from mevwatch.monitor.decode import BlockDecoder
    from mevwatch.monitor.types import Block, Log, Transaction

    user, pool, dai = "0x" + "66" * 20, "0x" + "55" * 20, "0x6b175474e89094c44da98b954eedeac495271d0f"
    topic = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"

    def xfer(i: int, token: str, frm: str, to: str, amount: int) -> Log:
        return Log(token, (topic, "0x" + "0" * 24 + frm[2:], "0x" + "0" * 24 + to[2:]), "0x" + f"{amount:064x}", i)

    tx = Transaction("0x" + "ab" * 32, 0, user, pool, "0x02c96748", logs=[xfer(0, pool, user, pool, 10**18),
                                                                          xfer(1, dai, pool, user, 500 * 10**18)])
    block = Block(1, None, None, 0, None, 0, [tx], has_logs=True)
    d = BlockDecoder().decode(block)
    assert not d.swaps and not d.stats.undecoded_by_selector and d.stats.coverage() is None  # no swap-like call
    assert not make_decoder("transfers").decode(block).swaps
