"""The lab's contracts: reproducible build, and real AMM trades on anvil that mevwatch's
decoders (logs and traces) and rules read exactly as they read Uniswap V2."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from web3 import HTTPProvider, Web3

from mevwatch.monitor.decode import BlockDecoder
from mevwatch.monitor.detect import detect_block
from mevwatch.monitor.detect.pending import MempoolWatcher, pair_address
from mevwatch.monitor.types import WETH_ADDRESS
from mevwatch.sim.contracts import BUILD, deploy, wait_receipt
from mevwatch.sim.market import deploy_market, fund
from mevwatch.monitor.types import PendingTx
from mevwatch.streams.node import fetch_block

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.fast
def test_build_is_reproducible(tmp_path):
    if shutil.which("node") is None or not (REPO / "contracts" / "node_modules" / "solc").exists():
        pytest.fail("solc-js not installed: run scripts/setup.sh --all (npm ci in contracts/)")
    r = subprocess.run(["node", str(REPO / "scripts" / "build_contracts.mjs"), "--out", str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    committed = REPO / "sim" / "artifacts"
    names = sorted(p.name for p in committed.glob("*.json"))
    assert names == ["Bot.json", "Bounty.json", "CLPool.json", "CLRouter.json", "Factory.json", "JitBot.json", "PackedBot.json", "Pair.json",
                     "Router.json", "Token.json"]
    for n in names:
        assert (tmp_path / n).read_bytes() == (committed / n).read_bytes(), n
    product = REPO / "monitor" / "attest" / "artifacts"  # the attestation registry ships with the monitor
    assert sorted(p.name for p in product.glob("*.json")) == ["AttestationRegistry.json"]
    assert (tmp_path / "AttestationRegistry.json").read_bytes() == (product / "AttestationRegistry.json").read_bytes()
    assert json.loads((committed / "Pair.json").read_text())["compiler"].startswith("0.8.30")
    assert (BUILD / "Pair.json").read_bytes() == (committed / "Pair.json").read_bytes()  # what the package loads


def block_from_node(url: str, number: int):
    import asyncio

    w3 = Web3(HTTPProvider(url))

    async def request(method, params):
        return w3.provider.make_request(method, params)["result"]

    block, _ = asyncio.run(fetch_block(request, number, chain_id=31337, traces=True))
    return block


@pytest.mark.anvil
def test_lab_sandwich_is_decoded_from_logs_and_traces_and_detected(anvil):
    w3 = Web3(HTTPProvider(anvil.http_url))
    m = deploy_market(w3, seed=7, n_tokens=1)
    tok = m.tokens[0]
    pair = m.pair(tok)
    assert pair.address.lower() == pair_address(m.factory.address, m.pair_init_code_hash, WETH_ADDRESS, tok.address)

    attacker, victim = w3.eth.accounts[1], w3.eth.accounts[2]
    bot = deploy(w3, "Bot", sender=attacker)
    fund(w3, m, victim, 50 * 10**18)
    wait_receipt(w3, m.weth.functions.mint(bot.address, 100 * 10**18).transact({"from": m.deployer}))

    r0, r1, _ = pair.functions.getReserves().call()
    weth_is0 = pair.functions.token0().call().lower() == WETH_ADDRESS
    r_weth, r_tok = (r0, r1) if weth_is0 else (r1, r0)
    victim_in = 20 * 10**18
    quote = victim_in * 997 * r_tok // (r_weth * 1000 + victim_in * 997)
    min_out = quote * 97 // 100  # 3% slippage: exposed
    deadline = w3.eth.get_block("latest")["timestamp"] + 600

    # the victim's router call, as it sits in the mempool
    victim_tx = m.router.functions.swapExactTokensForTokens(victim_in, min_out, [m.weth.address, tok.address], victim, deadline)
    victim_data = victim_tx.build_transaction({"from": victim, "gas": 400_000, "nonce": w3.eth.get_transaction_count(victim)})["data"]
    watcher = MempoolWatcher(chain_id=31337)
    watcher.register_router(m.router.address, m.factory.address, m.pair_init_code_hash)
    from mevwatch.monitor.detect.pending import Reserves

    t0, t1 = sorted((WETH_ADDRESS, tok.address.lower()))
    watcher.reserves[pair.address.lower()] = Reserves(t0, t1, *((r_weth, r_tok) if t0 == WETH_ADDRESS else (r_tok, r_weth)))
    (exposed,) = watcher.on_pending(PendingTx(31337, "0x" + "01" * 32, victim.lower(), m.router.address.lower(), 0,
                                              victim_data, 0, 400_000, None, 10**11, 2 * 10**9, 2, 1, "test"))
    assert exposed.kind == "exposed_swap" and exposed.pools == [pair.address.lower()] and exposed.profit.amount > 0

    # front-run (higher tip), victim, back-run (lower tip) land in one block, ordered by fee
    front_in = int(exposed.evidence["best_frontrun_in"])
    bought = front_in * 997 * r_tok // (r_weth * 1000 + front_in * 997)
    fee = lambda tip: {"maxFeePerGas": 200 * 10**9, "maxPriorityFeePerGas": tip, "gas": 400_000}  # noqa: E731
    w3.provider.make_request("evm_setAutomine", [False])
    h_front = bot.functions.leg(pair.address, m.weth.address, front_in, 0).transact({"from": attacker, **fee(30 * 10**9)})
    h_victim = victim_tx.transact({"from": victim, **fee(5 * 10**9)})
    h_back = bot.functions.leg(pair.address, tok.address, bought, 0).transact({"from": attacker, **fee(1 * 10**9)})
    w3.provider.make_request("evm_mine", [])
    receipts = [w3.eth.get_transaction_receipt(h) for h in (h_front, h_victim, h_back)]
    assert [r["status"] for r in receipts] == [1, 1, 1]
    assert len({r["blockNumber"] for r in receipts}) == 1
    assert [r["transactionIndex"] for r in receipts] == [0, 1, 2]

    block = block_from_node(anvil.http_url, receipts[0]["blockNumber"])
    assert block.has_traces and block.has_logs
    by_traces = BlockDecoder().decode(block)
    block.has_traces = False
    by_logs = BlockDecoder().decode(block)
    key = lambda s: (s.transaction_hash, s.pool, s.token_in, s.token_out, s.amount_in, s.amount_out, s.reserves_after)  # noqa: E731
    assert [key(s) for s in by_traces.swaps] == [key(s) for s in by_logs.swaps]
    assert len(by_traces.swaps) == 3 and by_logs.source == "logs"

    for decoded in (by_traces, by_logs):
        (alert,) = [a for a in detect_block(decoded) if a.kind == "sandwich"]
        assert [(t.hash, t.role) for t in alert.txs] == [("0x" + h_front.hex().removeprefix("0x"), "frontrun"),
                                                          ("0x" + h_victim.hex().removeprefix("0x"), "victim"),
                                                          ("0x" + h_back.hex().removeprefix("0x"), "backrun")]
        assert bot.address.lower() in alert.attackers and attacker.lower() in alert.attackers
        assert alert.victims == [victim.lower()]
        assert alert.profit.token == WETH_ADDRESS and alert.profit.amount > 0 and alert.profit.eth > 0
        assert alert.victim_loss is not None and alert.victim_loss.amount > 0
        # the victim got what the rule says minus its loss: its clean quote
        victim_swap = next(s for s in decoded.swaps if s.transaction_position == 1)
        assert victim_swap.amount_out + alert.victim_loss.amount == quote


@pytest.mark.anvil
def test_cl_pool_speaks_v3_and_a_jit_fill_is_detected_from_traces_and_logs(anvil):
    """CLPool has V3's interface: its swaps, mints, burns and collects decode from calls and from
    events alike, and liquidity added before a swap and removed after it is a JIT sandwich."""
    from mevwatch.sim.market import FULL_RANGE

    w3 = Web3(HTTPProvider(anvil.http_url))
    m = deploy_market(w3, seed=3, n_tokens=1)
    pool, tok = m.cl_pool, m.cl_token
    trader, jitter = w3.eth.accounts[2], w3.eth.accounts[3]
    fund(w3, m, trader, 100 * 10**18, {tok: 10**30})
    jit = deploy(w3, "JitBot", sender=jitter)
    wait_receipt(w3, m.weth.functions.mint(jit.address, 10**24).transact({"from": m.deployer}))
    wait_receipt(w3, tok.functions.mint(jit.address, 10**33).transact({"from": m.deployer}))
    l_before = pool.functions.liquidity().call()
    assert l_before > 0 and pool.functions.sqrtPriceX96().call() > 0

    fee = lambda tip: {"maxFeePerGas": 200 * 10**9, "maxPriorityFeePerGas": tip, "gas": 600_000}  # noqa: E731
    w3.provider.make_request("evm_setAutomine", [False])
    h_add = jit.functions.add(pool.address, -60, 60, 3 * l_before).transact({"from": jitter, **fee(30 * 10**9)})
    swap = m.cl_router.functions.exactInputSingle((m.weth.address, tok.address, 3000, trader, 2**40, 5 * 10**18, 1, 0))
    h_swap = swap.transact({"from": trader, **fee(5 * 10**9)})
    h_rem = jit.functions.remove(pool.address, -60, 60, 3 * l_before).transact({"from": jitter, **fee(1 * 10**9)})
    w3.provider.make_request("evm_mine", [])
    rs = [w3.eth.get_transaction_receipt(h) for h in (h_add, h_swap, h_rem)]
    assert [r["status"] for r in rs] == [1, 1, 1] and [r["transactionIndex"] for r in rs] == [0, 1, 2]
    assert pool.functions.liquidity().call() == l_before  # the JIT position is gone again

    block = block_from_node(anvil.http_url, rs[0]["blockNumber"])
    by_traces = BlockDecoder().decode(block)
    block.has_traces = False
    by_logs = BlockDecoder().decode(block)
    for decoded in (by_traces, by_logs):
        (s,) = decoded.swaps
        assert (s.protocol, s.pool, s.token_in, s.token_out, s.amount_in) == (
            "uniswap_v3", pool.address.lower(), WETH_ADDRESS, tok.address.lower(), 5 * 10**18)
        kinds = sorted(lc.kind for lc in decoded.liquidity)
        assert kinds == ["add", "collect", "remove"]
        (alert,) = [a for a in detect_block(decoded) if a.kind == "jit_sandwich"]
        hx = lambda h: "0x" + h.hex().removeprefix("0x")  # noqa: E731
        assert [(t.hash, t.role) for t in alert.txs] == [(hx(h_add), "liquidity_add"), (hx(h_swap), "victim"),
                                                          (hx(h_rem), "liquidity_remove")]
        assert jit.address.lower() in alert.attackers
    # the JIT position earned 3/4 of the 0.3% fee on the WETH it took in
    collected = [lc for lc in by_logs.liquidity if lc.kind == "collect"][0]
    burned = [lc for lc in by_logs.liquidity if lc.kind == "remove"][0]
    weth_is0 = pool.functions.token0().call().lower() == WETH_ADDRESS
    fee_weth = (collected.amount0 - burned.amount0) if weth_is0 else (collected.amount1 - burned.amount1)
    assert abs(fee_weth - 5 * 10**18 * 3 // 1000 * 3 // 4) <= 10**6
    assert FULL_RANGE[0] < -60 < 60 < FULL_RANGE[1]
