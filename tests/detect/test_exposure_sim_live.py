"""Exposure of pending swaps by simulation on a node (streams/exposure_sim.py, monitor/detect/exposure.py),
checked on a real anvil running the lab: a pending swap on the lab's concentrated-liquidity pool and a
two-hop route through the router are simulated as they are, the estimate's best front-run is then
really executed before the victim (and the back-run after it), and the victim's output and the
sandwicher's profit must be what the estimate said."""

from __future__ import annotations

import time

import pytest

from services import Anvil
from mevwatch.monitor.detect.pending import MempoolWatcher
from mevwatch.monitor.types import PendingTx
from mevwatch.sim.contracts import wait_receipt
from mevwatch.sim.market import fund
from mevwatch.sim.runner import Lab
from mevwatch.streams.exposure_sim import NodeExposure
from mevwatch.streams.simulate import http_request

pytestmark = [pytest.mark.anvil]
CHAIN = 31337
REL = 1e-4  # the CL pool's formulas round differently from constant product on virtual reserves


def pending(who: str, fn, hash_byte: int) -> PendingTx:
    return PendingTx(CHAIN, "0x" + f"{hash_byte:02x}" * 32, who.lower(), fn.address.lower(), 0, fn._encode_transaction_data(),
                     0, 600_000, None, 10**11, 2 * 10**9, 2, time.time_ns(), "test")


def balance(token, who: str) -> int:
    return token.functions.balanceOf(who).call()


def close(a: int, b: int, rel: float = REL) -> bool:
    return abs(a - b) <= rel * max(abs(a), abs(b), 1)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    node = Anvil(tmp_path_factory.mktemp("anvil"), chain_id=CHAIN).start()
    try:
        lab = Lab(node.http_url, node.ws_url, seed=4)
        lab.setup()
        m = lab.market
        victim, attacker = lab.traders[0], lab.traders[1]
        for who in (victim, attacker):
            fund(lab.w3, m, who, 10_000 * 10**18, {t: 10**30 for t in m.tokens})
        yield node, lab, victim, attacker
    finally:
        node.stop()


def estimate(node, p: PendingTx):
    watcher = MempoolWatcher(chain_id=CHAIN)
    oracle = NodeExposure(http_request(node.http_url), CHAIN)
    watcher.exposure_oracle = oracle
    alerts = watcher.on_pending(p)
    return alerts, watcher, oracle


def snapshot(lab) -> str:
    return lab.w3.provider.make_request("evm_snapshot", [])["result"]


def revert(lab, snap: str) -> None:
    assert lab.w3.provider.make_request("evm_revert", [snap])["result"]


def test_a_pending_cl_pool_swap_is_estimated_and_the_estimate_holds_when_executed(lab):
    node, lab, victim, attacker = lab
    m, w3 = lab.market, lab.w3
    weth, tok = m.weth, m.cl_token
    amount = 3 * 10**18
    quote = m.cl_router.functions.exactInputSingle((weth.address, tok.address, 3000, victim, 2**40, amount, 0, 0))
    (hops, _), = [NodeExposure(http_request(node.http_url), CHAIN).hops(pending(victim, quote, 1))]
    clean = hops[-1].amount_out
    min_out = clean * 99 // 100  # 1% slippage allowed
    fn = m.cl_router.functions.exactInputSingle((weth.address, tok.address, 3000, victim, 2**40, amount, min_out, 0))
    alerts, watcher, oracle = estimate(node, pending(victim, fn, 2))
    (a,) = alerts
    ev = a.evidence
    assert (a.kind, a.stage, a.pools, a.victims) == ("exposed_swap", "pending", [m.cl_pool.address.lower()], [victim.lower()])
    assert ev["exposure_method"] == "simulation" and ev["node_method"] == "eth_simulateV1" and oracle.simulations == 1
    assert ev["simulated_on_block"] in (w3.eth.block_number, w3.eth.block_number + 1)  # clients number it latest or latest + 1
    assert [h["model"] for h in ev["hops"]] == ["concentrated_in_range"] and ev["hops"][0]["fee_bps"] == 30
    assert int(ev["expected_out_without_attack"]) == clean and ev["slippage_tolerance"] == pytest.approx(0.01, abs=1e-8)
    front_in = int(ev["best_frontrun_in"])
    assert front_in > 0 and a.profit.token == weth.address.lower() and a.profit.amount > 0
    assert a.victim_loss.token == tok.address.lower() and 0 < a.victim_loss.amount <= clean - min_out

    snap = snapshot(lab)
    try:  # the estimated sandwich, executed: front-run, the victim's own transaction, back-run
        tok0, weth0 = balance(tok, attacker), balance(weth, attacker)
        wait_receipt(w3, m.cl_router.functions.exactInputSingle(
            (weth.address, tok.address, 3000, attacker, 2**40, front_in, 0, 0)).transact({"from": attacker}))
        got = balance(tok, attacker) - tok0
        v0 = balance(tok, victim)
        r = wait_receipt(w3, fn.transact({"from": victim}))
        assert r["status"] == 1  # the victim still passes its floor
        victim_got = balance(tok, victim) - v0
        assert victim_got >= min_out and close(victim_got, clean - a.victim_loss.amount), (victim_got, clean, a.victim_loss.amount)
        wait_receipt(w3, m.cl_router.functions.exactInputSingle(
            (tok.address, weth.address, 3000, attacker, 2**40, got, 0, 0)).transact({"from": attacker}))
        profit = balance(weth, attacker) - weth0
        assert close(profit, a.profit.amount, 1e-3), (profit, a.profit.amount)
    finally:
        revert(lab, snap)


def test_a_two_hop_route_is_estimated_on_its_most_exposed_hop_and_the_estimate_holds(lab):
    node, lab, victim, attacker = lab
    m, w3 = lab.market, lab.w3
    a_tok, b_tok = m.tokens[0], m.tokens[1]
    path = [a_tok.address, m.weth.address, b_tok.address]
    amount = 2000 * 10**18
    probe = m.router.functions.swapExactTokensForTokens(amount, 0, path, victim, 2**40)
    hops, method = NodeExposure(http_request(node.http_url), CHAIN).hops(pending(victim, probe, 3))
    assert hops is not None and method == "eth_simulateV1" and len(hops) == 2, method
    clean = hops[-1].amount_out
    min_out = clean * 98 // 100
    fn = m.router.functions.swapExactTokensForTokens(amount, min_out, path, victim, 2**40)
    (a,), watcher, _ = estimate(node, pending(victim, fn, 4))
    ev = a.evidence
    assert [h["model"] for h in ev["hops"]] == ["constant_product", "constant_product"]
    assert a.tokens == [t.lower() for t in path] and ev["model_error"] < 1e-9  # V2 pairs: the model is exact
    k = ev["attacked_hop"]
    hop = ev["hops"][k]
    assert a.pools == [hop["pool"]]
    front_in = int(ev["best_frontrun_in"])

    snap = snapshot(lab)
    try:
        t_in = next(t for t in (a_tok, m.weth, b_tok) if t.address.lower() == hop["token_in"])
        t_out = next(t for t in (a_tok, m.weth, b_tok) if t.address.lower() == hop["token_out"])
        in0, out0 = balance(t_in, attacker), balance(t_out, attacker)
        wait_receipt(w3, m.router.functions.swapExactTokensForTokens(
            front_in, 0, [t_in.address, t_out.address], attacker, 2**40).transact({"from": attacker}))
        got = balance(t_out, attacker) - out0
        v0 = balance(b_tok, victim)
        assert wait_receipt(w3, fn.transact({"from": victim}))["status"] == 1
        victim_got = balance(b_tok, victim) - v0
        assert victim_got >= min_out and close(victim_got, clean - a.victim_loss.amount, 1e-9), (victim_got, clean, a.victim_loss)
        wait_receipt(w3, m.router.functions.swapExactTokensForTokens(
            got, 0, [t_out.address, t_in.address], attacker, 2**40).transact({"from": attacker}))
        assert balance(t_in, attacker) - in0 == a.profit.amount  # constant product: to the wei
    finally:
        revert(lab, snap)


def test_a_swap_that_fails_or_a_node_without_the_method_gives_no_estimate_and_a_reason(lab):
    node, lab, victim, _ = lab
    m = lab.market
    amount = 3 * 10**18
    impossible = m.cl_router.functions.exactInputSingle((m.weth.address, m.cl_token.address, 3000, victim, 2**40, amount, 10**40, 0))
    alerts, watcher, oracle = estimate(node, pending(victim, impossible, 5))
    assert alerts == [] and watcher.simulation_skips == {"the swap fails against the current state": 1}

    def no_method(method: str, params: list):
        from mevwatch.monitor.errors import NodeError
        raise NodeError(f"{method} failed: {{'code': -32601, 'message': 'Method not found'}}")

    missing = NodeExposure(no_method, CHAIN)
    fn = m.cl_router.functions.exactInputSingle((m.weth.address, m.cl_token.address, 3000, victim, 2**40, amount, 1, 0))
    for i in range(2):
        assert missing.hops(pending(victim, fn, 6 + i)) == (None, "the node does not serve eth_simulateV1")


def test_warming_up_from_the_bus_simulates_nothing_and_live_pending_swaps_do(lab):
    """A restarted detect member replays recent records to rebuild its state (Engine.warm): their
    alerts went out before, so no node simulation runs for them; the same swap live is simulated."""
    from mevwatch.monitor.engine import Batch, Engine

    node, lab, victim, _ = lab
    m = lab.market
    fn = m.cl_router.functions.exactInputSingle((m.weth.address, m.cl_token.address, 3000, victim, 2**40, 10**18, 1, 0))
    engine = Engine(chain_id=CHAIN)
    oracle = NodeExposure(http_request(node.http_url), CHAIN)
    engine.watcher.exposure_oracle = oracle
    engine.warm(pending(victim, fn, 9))
    assert oracle.simulations == 0 and engine.watcher.exposure_oracle is oracle
    batch = engine.feed([(None, pending(victim, fn, 10))], Batch())
    assert oracle.simulations == 1 and [e.alert.kind for e in batch.alerts] == ["exposed_swap"]
