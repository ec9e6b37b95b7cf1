"""Route exposure arithmetic (monitor/detect/exposure.py) and hostile node answers to the exposure
simulation (streams/exposure_sim.py). The estimates are checked against the real contracts on anvil
in test_exposure_sim_live.py; here: the search agrees with an exhaustive one, a single pair agrees
with the blocks model to the wei, and a broken node gives a reason, never a crash or a number."""

from __future__ import annotations

import pytest

from mevwatch.monitor.detect.exposure import CONCENTRATED, CONSTANT_PRODUCT, Hop, check_models, hop_from_swap, route_exposure
from mevwatch.monitor.detect.pending import sandwich_exposure
from mevwatch.monitor.money import v2_amount_out
from mevwatch.monitor.types import PendingTx, Swap
from mevwatch.streams.exposure_sim import NodeExposure

pytestmark = pytest.mark.fast
A, B, C = "0x" + "aa" * 20, "0x" + "bb" * 20, "0x" + "cc" * 20


def cp_hop(pool: str, t_in: str, t_out: str, amount_in: int, r_in: int, r_out: int) -> Hop:
    return Hop(pool, CONSTANT_PRODUCT, t_in, t_out, amount_in, v2_amount_out(amount_in, r_in, r_out), r_in, r_out, 30)


def test_one_pair_agrees_with_the_blocks_model_to_the_wei():
    h = cp_hop("0x01", A, B, 5 * 10**18, 1000 * 10**18, 2_000_000 * 10**18)
    floor = h.amount_out * 99 // 100
    got = route_exposure([h], floor)
    ref = sandwich_exposure(h.amount_in, floor, h.reserve_in, h.reserve_out)
    assert got is not None and ref is not None
    assert (got.hop, got.frontrun_in, got.profit, got.victim_loss) == (0, ref.frontrun_in, ref.profit, ref.victim_loss)


def test_a_route_is_attacked_where_the_victim_loses_most_and_its_floor_holds():
    """Exhaustive check on a small two-hop route: for each hop, every front-run size."""
    h1 = cp_hop("0x01", A, B, 1_000, 50_000, 40_000)
    h2 = cp_hop("0x02", B, C, h1.amount_out, 30_000, 90_000)
    floor = h2.amount_out * 95 // 100
    got = route_exposure([h1, h2], floor)
    assert got is not None

    def final(k: int, f: int) -> tuple[int, int]:
        """(the victim's final output, the sandwicher's profit) with a front-run f on hop k."""
        hops = [h1, h2]
        x = h1.amount_in
        profit = 0
        for j, h in enumerate(hops):
            ri, ro = h.reserve_in, h.reserve_out
            if j == k:
                g, ri, ro = h.swap(f, ri, ro)
                v, ri, ro = h.swap(x, ri, ro)
                back, _, _ = h.swap(g, ro, ri)
                profit = back - f
                x = v
            else:
                x = h.out(x)
        return x, profit

    best_loss = {}
    for k in (0, 1):
        feasible = [f for f in range(0, 4 * [h1, h2][k].reserve_in, 7) if final(k, f)[0] >= floor]
        best_f = max(feasible, key=lambda f: final(k, f)[1])
        best_loss[k] = h2.amount_out - final(k, best_f)[0], final(k, best_f)[1]
    k = max(best_loss, key=lambda j: best_loss[j][0])
    assert got.hop == k
    out, profit = final(k, got.frontrun_in)
    assert out >= floor and got.victim_loss == h2.amount_out - out and profit == got.profit
    assert got.profit >= best_loss[k][1] - 2  # the exhaustive search steps by 7: within its grid
    assert route_exposure([h1, h2], h2.amount_out + 1) is None  # a floor above the clean output: it reverts anyway


def test_the_models_are_checked_against_the_simulation():
    h = cp_hop("0x01", A, B, 1_000, 50_000, 40_000)
    assert check_models([h]) == 0.0
    h.amount_out += h.amount_out // 100  # a fork with another fee, or a pool crossing ticks
    assert "the constant_product model gives" in str(check_models([h]))
    v3 = Swap("uniswap_v3", "0x03", "0x" + "01" * 32, 0, 0, A, A, A, B, 10, 9, A, None, sqrt_price_x96=2**96, liquidity=10**6)
    assert "fee 3001 not readable" in str(hop_from_swap(v3, 3001)) and "fee None" in str(hop_from_swap(v3, None))
    hop = hop_from_swap(v3, 3000)
    assert isinstance(hop, Hop) and hop.model == CONCENTRATED and hop.fee_bps == 30
    curve = Swap("curve", "0x04", "0x" + "01" * 32, 0, 0, A, A, A, B, 10, 9, A, None)
    assert hop_from_swap(curve, None) == "pool 0x04: no state model for curve"


def pending_tx() -> PendingTx:
    return PendingTx(1, "0x" + "01" * 32, A, B, 0, "0x12345678", 0, 300_000, None, 10**11, 10**9, 2, 1, "test")


TRANSFER = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"


@pytest.mark.parametrize(("answer", "why"), [
    ([], "malformed answer"),
    ([{"calls": []}], "malformed answer"),
    ([{"calls": [{"status": "0x0", "logs": []}]}], "the swap fails against the current state"),
    ([{"calls": [{"status": "0x1", "logs": 5}]}], "malformed logs"),
    ([{"calls": [{"status": "0x1", "logs": [{"address": "0xzz", "topics": [], "data": "0x"}]}]}], "malformed logs"),
    ([{"calls": [{"status": "0x1", "logs": [{"address": A, "topics": [TRANSFER, 5], "data": "0x"}]}]}], "malformed logs"),
    ([{"calls": [{"status": "0x1", "logs": [{"address": A, "topics": [TRANSFER], "data": "-0x5"}]}]}], "malformed logs"),
    ([{"calls": [{"status": "0x1", "logs": []}]}], "no swap in the simulation's logs"),
    ("not a list", "malformed answer"),
])
def test_hostile_node_answers_give_a_reason_never_a_crash(answer, why):
    hops, reason = NodeExposure(lambda m, p: answer).hops(pending_tx())
    assert hops is None and why in reason


@pytest.mark.parametrize(("rpc", "exposure", "on"), [("http://127.0.0.1:1", "auto", True), ("http://127.0.0.1:1", "off", False),
                                                     (None, "auto", False)])
def test_the_detect_path_simulates_pending_swaps_when_it_has_a_node(rpc, exposure, on):
    """The daemon's and demo's detect wiring (monitor/pipeline.py detect_worker): node.exposure."""
    import threading

    from mevwatch.monitor.config import load_settings
    from mevwatch.monitor.pipeline import detect_worker
    from mevwatch.streams import bus as busmod

    settings = load_settings(node__rpc=rpc, node__exposure=exposure, gnn__enabled=False)
    worker = detect_worker(settings, busmod.InProcessBus(), None, stop=threading.Event(), scorers=[])
    assert isinstance(worker.engine.watcher.exposure_oracle, NodeExposure) is on
