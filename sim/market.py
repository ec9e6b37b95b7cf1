"""Deploys the lab's market on anvil: WETH (at the mainnet address), tokens, a factory, a router
and WETH pairs with liquidity. Seeded: the same seed gives the same prices and depths."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from mevwatch.monitor.types import WETH_ADDRESS
from mevwatch.sim.contracts import at, deploy, init_code_hash, wait_receipt

MAX = 2**256 - 1


@dataclass
class Market:
    # the contracts are web3 Contract objects: their functions come from the ABI at run time (Any)
    deployer: str
    weth: Any
    tokens: list
    factory: Any
    router: Any
    pairs: dict[str, Any] = field(default_factory=dict)  # token address -> its WETH pair
    pair_init_code_hash: str = ""
    # a second venue (its own factory and router) with WETH pairs of the same tokens:
    # honest traders use the first, so prices drift apart and the arbitrageur closes the gap
    factory_b: Any = None
    router_b: Any = None
    pairs_b: dict[str, Any] = field(default_factory=dict)
    # a concentrated-liquidity pool (V3's interface, contracts/src/CLPool.sol) for WETH and the
    # first token, its router (V3's exactInputSingle) and the passive liquidity provider's contract
    cl_pool: Any = None
    cl_router: Any = None
    cl_token: Any = None
    cl_lp: Any = None

    def pair(self, token) -> Any:
        return self.pairs[token.address.lower()]


def _send(w3, fn, sender: str):
    return wait_receipt(w3, fn.transact({"from": sender, "gas": 3_000_000}))


def deploy_market(w3, *, seed: int = 0, n_tokens: int = 2) -> Market:
    rng = random.Random(seed)
    deployer = w3.eth.accounts[0]
    # WETH: our Token's runtime code placed at the mainnet WETH address, so ETH prices work
    impl = deploy(w3, "Token", "Wrapped Ether", "WETH", sender=deployer)
    code = w3.eth.get_code(impl.address)
    w3.provider.make_request("anvil_setCode", [w3.to_checksum_address(WETH_ADDRESS), "0x" + code.hex()])
    weth = at(w3, "Token", WETH_ADDRESS)
    tokens = [deploy(w3, "Token", f"Lab Token {i}", f"LAB{i}", sender=deployer) for i in range(n_tokens)]
    factory = deploy(w3, "Factory", sender=deployer)
    router = deploy(w3, "Router", factory.address, sender=deployer)
    m = Market(deployer, weth, tokens, factory, router, pair_init_code_hash=init_code_hash("Pair"))
    for t in tokens:
        _send(w3, factory.functions.createPair(weth.address, t.address), deployer)
        pair = at(w3, "Pair", factory.functions.getPair(weth.address, t.address).call())
        m.pairs[t.address.lower()] = pair
        eth_depth = rng.randint(50, 400) * 10**18
        price = rng.randint(100, 5000)  # tokens per WETH
        fund(w3, m, deployer, eth_depth, {t: eth_depth * price})
        _send(w3, router.functions.addLiquidity(weth.address, t.address, eth_depth, eth_depth * price, deployer), deployer)
    m.factory_b = deploy(w3, "Factory", sender=deployer)
    m.router_b = deploy(w3, "Router", m.factory_b.address, sender=deployer)
    for t in tokens:
        _send(w3, m.factory_b.functions.createPair(weth.address, t.address), deployer)
        m.pairs_b[t.address.lower()] = at(w3, "Pair", m.factory_b.functions.getPair(weth.address, t.address).call())
        pair_a = m.pairs[t.address.lower()]
        r0, r1, _ = pair_a.functions.getReserves().call()
        weth_is0 = pair_a.functions.token0().call().lower() == WETH_ADDRESS
        r_weth, r_tok = (r0, r1) if weth_is0 else (r1, r0)
        depth = rng.randint(50, 400) * 10**18  # same price as venue A, another depth
        fund(w3, m, deployer, depth, {t: depth * r_tok // r_weth}, approve_to=m.router_b.address)
        _send(w3, m.router_b.functions.addLiquidity(weth.address, t.address, depth, depth * r_tok // r_weth, deployer), deployer)
    deploy_cl_pool(w3, m, rng)
    return m


FULL_RANGE = (-887220, 887220)


def deploy_cl_pool(w3, m: Market, rng: random.Random) -> None:
    """WETH / first token in a CLPool at the V2 pair's price, with passive full-range liquidity."""
    import math

    deployer = m.deployer
    tok = m.tokens[0]
    m.cl_token = tok
    m.cl_pool = deploy(w3, "CLPool", m.weth.address, tok.address, sender=deployer)
    m.cl_router = deploy(w3, "CLRouter", sender=deployer)
    _send(w3, m.cl_router.functions.setPool(m.weth.address, tok.address, m.cl_pool.address), deployer)
    pair = m.pair(tok)
    r0, r1, _ = pair.functions.getReserves().call()
    weth_is0 = pair.functions.token0().call().lower() == WETH_ADDRESS
    r_weth, r_tok = (r0, r1) if weth_is0 else (r1, r0)
    cl_weth_is0 = m.cl_pool.functions.token0().call().lower() == WETH_ADDRESS
    a0, a1 = (r_weth, r_tok) if cl_weth_is0 else (r_tok, r_weth)
    _send(w3, m.cl_pool.functions.initialize(math.isqrt((a1 << 192) // a0)), deployer)
    depth = rng.randint(50, 200) * 10**18  # WETH side of the passive liquidity
    l_passive = math.isqrt(depth * (depth * r_tok // r_weth))
    m.cl_lp = deploy(w3, "JitBot", sender=deployer)
    _send(w3, m.weth.functions.mint(m.cl_lp.address, 10 * depth), deployer)
    _send(w3, tok.functions.mint(m.cl_lp.address, 10 * depth * r_tok // r_weth), deployer)
    _send(w3, m.cl_lp.functions.add(m.cl_pool.address, *FULL_RANGE, l_passive), deployer)


def fund(w3, m: Market, who: str, weth_amount: int, tokens: dict | None = None, approve_to=None) -> None:
    """Mint WETH and tokens to ``who`` and approve the router (or ``approve_to``) for all of them;
    the CL router too once it exists."""
    spenders = [approve_to or m.router.address] + ([m.cl_router.address] if m.cl_router is not None and approve_to is None else [])
    _send(w3, m.weth.functions.mint(who, weth_amount), m.deployer)
    for spender in spenders:
        _send(w3, m.weth.functions.approve(spender, MAX), who)
    for t, amount in (tokens or {}).items():
        _send(w3, t.functions.mint(who, amount), m.deployer)
        for spender in spenders:
            _send(w3, t.functions.approve(spender, MAX), who)
