"""Route exposure arithmetic (monitor/detect/exposure.py) and hostile node answers to the exposure
simulation (streams/exposure_sim.py). The estimates are checked against the real contracts on anvil
in test_exposure_sim_live.py; here: the search agrees with an exhaustive one, a single pair agrees
with the blocks model to the wei, and a broken node gives a reason, never a crash or a number."""

from __future__ import annotations

import time

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
    return PendingTx(1, "0x" + "01" * 32, A, B, 0, "0x12345678", 0, 300_000, None, 10**11, 10**9, 2, time.time_ns(), "test")


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


W = "0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2"
SYNC = "0x1c411e9a96e071241c2f21f7726b17ae89e3cab4c78be50e062b03a9fffbbad1"
V2_SWAP = "0xd78ad95fa46c994b6551d0da85fc275fe613ce37657fb8d5e3d130840159d822"


def _word(x: int | str) -> str:
    return ("0" * 24 + x[2:]) if isinstance(x, str) else f"{x:064x}"


def route_logs(tokens: list[str], amounts: list[int], moved: list[int], reserves: int = 10**30) -> list[dict]:
    """The logs of a V2 route through one pair per hop (pair k trades tokens[k] -> tokens[k+1]): the
    transfers move ``moved[k]`` into pair k, while its Sync and Swap events claim ``amounts[k]``."""
    logs = []
    user = "0x" + "ee" * 20
    for k in range(len(tokens) - 1):
        pair = "0x" + f"{k + 1:040x}"
        t_in, t_out = tokens[k], tokens[k + 1]
        a_in = amounts[k]
        a_out = v2_amount_out(a_in, reserves, reserves)
        zero_in = t_in < t_out
        logs.append({"address": t_in, "topics": [TRANSFER, "0x" + _word(user), "0x" + _word(pair)], "data": "0x" + _word(moved[k])})
        logs.append({"address": t_out, "topics": [TRANSFER, "0x" + _word(pair), "0x" + _word(user)],
                     "data": "0x" + _word(min(moved[k], a_out))})
        r_in, r_out = reserves + a_in, reserves - a_out
        logs.append({"address": pair, "topics": [SYNC], "data": "0x" + _word(r_in if zero_in else r_out) + _word(r_out if zero_in else r_in)})
        amounts_word = (_word(a_in) + _word(0) + _word(0) + _word(a_out)) if zero_in else (_word(0) + _word(a_in) + _word(a_out) + _word(0))
        logs.append({"address": pair, "topics": [V2_SWAP, "0x" + _word(user), "0x" + _word(user)], "data": "0x" + amounts_word})
    return logs


def simulated(logs: list[dict]):
    return lambda m, p: [{"number": "0x10", "calls": [{"status": "0x1", "logs": logs}]}]


def test_a_fake_pool_claiming_more_than_its_transfers_moved_gives_no_estimate():
    """Anyone can deploy a contract that emits a pair's Sync and Swap with any amounts; the token
    contracts' Transfer logs say what moved. An event claiming 5e28 WETH over 1 wei moved is refused."""
    honest = NodeExposure(simulated(route_logs([W, B], [10**18], [10**18])))
    hops, how = honest.hops(pending_tx())
    assert hops is not None and how == "eth_simulateV1" and honest.last_block == 16 and hops[0].amount_in == 10**18
    forged, why = NodeExposure(simulated(route_logs([W, B], [5 * 10**28], [1]))).hops(pending_tx())
    assert forged is None and why == "a pool's event claims more than its token transfers moved"


def test_long_routes_stale_transactions_and_a_failing_node_are_not_simulated():
    tokens = ["0x" + f"{0xa0 + k:02x}" * 20 for k in range(10)]
    long_route = NodeExposure(simulated(route_logs(tokens, [10**18] * 9, [10**18] * 9)))
    assert long_route.hops(pending_tx()) == (None, "a route of more than 8 swaps")
    old = pending_tx()
    old.first_seen_ns -= 31 * 10**9
    assert NodeExposure(simulated([])).hops(old)[1] == "seen too long ago: the node's state has moved on"

    from mevwatch.monitor.errors import NodeError

    calls = []

    def failing(method: str, params: list):
        calls.append(method)
        raise NodeError(f"{method} failed: timed out")

    node = NodeExposure(failing)
    for _ in range(3):
        assert node.hops(pending_tx()) == (None, "eth_simulateV1 failed")
    assert node.hops(pending_tx()) == (None, "paused after node errors") and len(calls) == 3
    assert node.unsupported is None  # errors pause it; only "method not found" turns it off
