"""Sandwich exposure of a pending swap on any route of constant-product and concentrated-liquidity
pools, from the state a simulation of the swap itself shows (issue 17; docs/detection.md,
"Exposure by simulation").

The node runs the pending transaction as it is against the current state (streams/exposure_sim.py,
``eth_simulateV1``: any router, multi-hop routes included) and its event logs are decoded like a
block's. Every hop then gives the state before the victim's swap:

- a constant-product pair (Uniswap V2 and forks): the reserves after the swap (its ``Sync``) less
  what the victim put in, plus what it took out; fee 0.3%.
- a concentrated-liquidity pool (Uniswap V3 and the lab's CL pool): within the active range it is a
  constant-product pool on virtual reserves ``x = L * 2^96 / sqrtP``, ``y = L * sqrtP / 2^96`` (from
  the ``Swap`` event's price and liquidity after the swap), less the victim's net input (after the
  pool's fee, read from the pool) plus its output.

Each hop's model is checked against the simulation: replaying the victim's own amounts through the
models must give the simulated output of every hop within ``MODEL_TOLERANCE`` (a V3 swap that
crossed an initialized tick, a fork with another fee, or an unknown venue fails the check and the
route gets no estimate; the reason is returned).

A sandwicher attacks one hop k: hops before it are untouched, so the victim reaches hop k with its
simulated amount; the victim's floor on hop k is the least hop-k output that the later hops still
turn into ``amount_out_min``. :meth:`Hop.sandwich` then gives the best front-run on hop k (as
``monitor.detect.pending.sandwich_exposure`` does for a pair, with a concentrated pool's fee kept
out of its liquidity). The estimate is the hop where the victim loses most (its loss measured in the
route's final token, through the later hops).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from mevwatch.monitor.money import argmax_unimodal, v2_amount_out
from mevwatch.monitor.types import PendingTx, Swap

Q96 = 1 << 96
V2_FEE_BPS = 30
MODEL_TOLERANCE = 1e-4  # relative: the CL formulas round differently from constant product on virtual reserves
CONSTANT_PRODUCT = "constant_product"
CONCENTRATED = "concentrated_in_range"


@dataclass(slots=True)
class Hop:
    pool: str
    model: str  # CONSTANT_PRODUCT | CONCENTRATED
    token_in: str
    token_out: str
    amount_in: int  # the victim's, as simulated
    amount_out: int
    reserve_in: int  # before the victim's swap (virtual for a concentrated pool)
    reserve_out: int
    fee_bps: int

    def out(self, amount: int, reserve_in: int | None = None, reserve_out: int | None = None) -> int:
        return v2_amount_out(amount, self.reserve_in if reserve_in is None else reserve_in,
                             self.reserve_out if reserve_out is None else reserve_out, self.fee_bps)

    def swap(self, amount: int, reserve_in: int, reserve_out: int) -> tuple[int, int, int]:
        """(output, reserve_in after, reserve_out after) of a swap of ``amount`` on the given state: a
        pair keeps its fee in its reserves, a concentrated pool accrues it outside its liquidity."""
        got = self.out(amount, reserve_in, reserve_out)
        added = amount if self.model == CONSTANT_PRODUCT else amount - amount * self.fee_bps // 10_000
        return got, reserve_in + added, reserve_out - got

    def sandwich(self, amount_in: int, floor: int) -> tuple[int, int, int] | None:
        """(best front-run, the sandwicher's profit, the victim's loss on this hop) against the victim's
        ``amount_in`` with its output floor ``floor``, or None when no front-run profits."""
        r_in, r_out = self.reserve_in, self.reserve_out
        clean = self.out(amount_in)
        if amount_in <= 0 or clean < floor:
            return None

        def victim(f: int) -> tuple[int, int, int, int]:
            got, ri, ro = self.swap(f, r_in, r_out)
            v, ri, ro = self.swap(amount_in, ri, ro)
            return got, v, ri, ro

        def profit(f: int) -> int:
            got, _, ri, ro = victim(f)
            back, _, _ = self.swap(got, ro, ri)
            return back - f

        lo, hi = 0, r_in * 4
        if victim(hi)[1] >= floor:
            lo = hi
        else:
            while hi - lo > 1:  # the largest front-run that keeps the victim at or above its floor
                mid = (lo + hi) // 2
                if victim(mid)[1] >= floor:
                    lo = mid
                else:
                    hi = mid
        if lo <= 0:
            return None
        best = argmax_unimodal(profit, 0, lo)
        p = profit(best)
        return (best, p, clean - victim(best)[1]) if p > 0 else None

    def to_json(self) -> dict:
        return {"pool": self.pool, "model": self.model, "token_in": self.token_in, "token_out": self.token_out,
                "amount_in": str(self.amount_in), "amount_out": str(self.amount_out),
                "reserves_in_out": [str(self.reserve_in), str(self.reserve_out)], "fee_bps": self.fee_bps}


class ExposureOracle(Protocol):
    """Simulates a pending transaction on a node (streams/exposure_sim.py's ``NodeExposure``)."""

    method: str  # the evidence's exposure_method
    last_block: int | None  # the block the last simulation ran on

    def hops(self, p: PendingTx, recipient: str | None = None) -> tuple[list[Hop] | None, str]:
        """The route's hops with their state before the swap and the node method, or None and why not."""
        ...


@dataclass(slots=True)
class RouteExposure:
    hop: int  # index of the attacked hop
    frontrun_in: int  # in the attacked hop's input token
    profit: int  # the sandwicher's, in the attacked hop's input token
    victim_loss: int  # in the route's final token
    victim_out_clean: int  # the route's output without an attack (the simulation's)


def hop_from_swap(s: Swap, fee_ppm: int | None) -> Hop | str:
    """The state before the victim's swap ``s`` (a decoded swap of the simulation), or why not."""
    if s.protocol == "uniswap_v2" and s.reserves_after is not None:
        r_in, r_out = s.reserves_after
        return Hop(s.pool, CONSTANT_PRODUCT, s.token_in, s.token_out, s.amount_in, s.amount_out,
                   r_in - s.amount_in, r_out + s.amount_out, V2_FEE_BPS)
    if s.protocol == "uniswap_v3" and s.sqrt_price_x96 and s.liquidity:
        if fee_ppm is None or fee_ppm % 100 or not 0 <= fee_ppm < 1_000_000:
            return f"pool {s.pool}: fee {fee_ppm} not readable in basis points"
        p, liq = s.sqrt_price_x96, s.liquidity
        x, y = liq * Q96 // p, liq * p // Q96  # virtual token0, token1 after the swap
        net = s.amount_in - s.amount_in * fee_ppm // 1_000_000
        zero_for_one = s.token_in < s.token_out  # token0 sorts first
        r_in_after, r_out_after = (x, y) if zero_for_one else (y, x)
        return Hop(s.pool, CONCENTRATED, s.token_in, s.token_out, s.amount_in, s.amount_out,
                   r_in_after - net, r_out_after + s.amount_out, fee_ppm // 100)
    return f"pool {s.pool}: no state model for {s.protocol}"


def check_models(hops: list[Hop]) -> float | str:
    """The largest relative error of the hop models on the victim's own amounts, or why they fail."""
    worst = 0.0
    for h in hops:
        if h.reserve_in <= 0 or h.reserve_out <= 0:
            return f"pool {h.pool}: no positive state before the swap"
        got = h.out(h.amount_in)
        err = abs(got - h.amount_out) / max(1, h.amount_out)
        if err > MODEL_TOLERANCE:
            return f"pool {h.pool}: the {h.model} model gives {got}, the simulation {h.amount_out}"
        worst = max(worst, err)
    return worst


def _through(hops: list[Hop], amount: int) -> int:
    for h in hops:
        amount = h.out(amount)
    return amount


def route_exposure(hops: list[Hop], amount_out_min: int) -> RouteExposure | None:
    """The most damaging sandwich on one hop of the route, or None when none profits."""
    if not hops:
        return None
    clean_final = hops[-1].amount_out
    best: RouteExposure | None = None
    for k, h in enumerate(hops):
        later = hops[k + 1:]
        # the least hop-k output the later hops still turn into amount_out_min (monotone: bisection)
        lo, hi = 0, h.amount_out
        if _through(later, hi) < amount_out_min:
            continue  # the route misses its floor even unattacked: it would revert
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if _through(later, mid) >= amount_out_min:
                hi = mid
            else:
                lo = mid
        floor_k = hi if amount_out_min > 0 else 0
        found = h.sandwich(h.amount_in, floor_k)
        if found is None:
            continue
        front, profit, hop_loss = found
        clean_k = h.out(h.amount_in)
        loss = _through(later, clean_k) - _through(later, clean_k - hop_loss)
        if best is None or loss > best.victim_loss:
            best = RouteExposure(k, front, profit, loss, clean_final)
    return best
