"""Pending-stage rules: ``exposed_swap`` and ``sandwich_attempt``.

:class:`MempoolWatcher` keeps the constant-product reserves seen in included blocks
and the intents of pending router calls (``monitor.decode.pending``).

- ``exposed_swap``: a pending single-pool V2 swap whose slippage limit leaves a
  sandwicher a profit. From the pool's last known reserves, the largest front-run
  that still lets the victim's swap through is found by bisection, then the most
  profitable front-run up to it; profit (in the input token) and the victim's loss
  at that front-run are the estimate. Multi-hop paths and V3 pools are not
  estimated (the reserves of every hop, or ticks, would be needed).
Which pool a router call trades on: what that router's included swaps used for the same
pair (learnt from blocks), else the CREATE2 address from a known router's factory, else the
only pool seen for the pair.

- ``sandwich_attempt``: pending swaps F, V, B on the same pool where V is someone
  else's, F trades the same way as V and outbids it, B (same sender as F, or the same
  bot contract driven by another account) trades the other way and is priced under V,
  and F was first seen after V.

Pending alerts carry ``stage = pending`` and no block.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from eth_hash.auto import keccak

from mevwatch.monitor.alerts import Alert, AlertTx
from mevwatch.monitor.decode.pending import IntendedSwap, pending_intents
from mevwatch.monitor.detect.exposure import ExposureOracle, check_models, route_exposure
from mevwatch.monitor.chains import native_wrapper
from mevwatch.monitor.money import argmax_unimodal, eth_only, v2_amount_out, valued
from mevwatch.monitor.types import ETH_ADDRESS, ZERO_ADDRESS, DecodedBlock
from mevwatch.monitor.types import PendingTx

# router -> (factory, init code hash) of the constant-product pairs it trades on
ROUTER_FACTORIES: dict[str, tuple[str, str]] = {
    "0x7a250d5630b4cf539739df2c5dacb4c659f2488d": ("0x5c69bee701ef814a2b6a3edd4b1652cb9cc5aa6f", "0x96e8ac4277198ff8b6f785478aa9a39f403cb768dd02cbee326c3e7da348845f"),
    "0x68b3465833fb72a70ecdf485e0e4c7bd8665fc45": ("0x5c69bee701ef814a2b6a3edd4b1652cb9cc5aa6f", "0x96e8ac4277198ff8b6f785478aa9a39f403cb768dd02cbee326c3e7da348845f"),
    "0x3fc91a3afd70395cd496c647d5a6cc9d4b2b7fad": ("0x5c69bee701ef814a2b6a3edd4b1652cb9cc5aa6f", "0x96e8ac4277198ff8b6f785478aa9a39f403cb768dd02cbee326c3e7da348845f"),
    "0xd9e1ce17f2641f24ae83637ab66a2cca9c378b9f": ("0xc0aee478e3658e2610c5f7a4a2e1777ce9e4f2ac", "0xe18a34eb0e04b04f7a0ac29a6e80748dca96319b42c54d679cb821dca90c6303"),
}


def pair_address(factory: str, init_code_hash: str, token_a: str, token_b: str) -> str:
    """The CREATE2 address of a V2 pair (two keccaks: remembered, up to ``_PAIRS_MAX`` pairs; past that
    the first remembered is forgotten, one per new pair, rather than all at once)."""
    key = (factory, init_code_hash, token_a, token_b)
    addr = _PAIRS.get(key)
    if addr is None:
        if len(_PAIRS) >= _PAIRS_MAX:
            del _PAIRS[next(iter(_PAIRS))]
        addr = _PAIRS[key] = _pair_address(factory, init_code_hash, token_a, token_b)
    return addr


_PAIRS: dict[tuple[str, str, str, str], str] = {}
_PAIRS_MAX = 100_000


def _pair_address(factory: str, init_code_hash: str, token_a: str, token_b: str) -> str:
    t0, t1 = sorted((token_a.lower(), token_b.lower()))
    salt = keccak(bytes.fromhex(t0[2:] + t1[2:]))
    raw = keccak(b"\xff" + bytes.fromhex(factory[2:]) + salt + bytes.fromhex(init_code_hash[2:]))
    return "0x" + raw[12:].hex()


@dataclass(slots=True)
class Reserves:
    token0: str
    token1: str
    reserve0: int
    reserve1: int

    def of(self, token_in: str) -> tuple[int, int]:
        return (self.reserve0, self.reserve1) if token_in == self.token0 else (self.reserve1, self.reserve0)


@dataclass(slots=True)
class Exposure:
    frontrun_in: int
    profit: int
    victim_loss: int
    victim_out_clean: int


def sandwich_exposure(amount_in: int, min_out: int, reserve_in: int, reserve_out: int, fee_bps: int = 30) -> Exposure | None:
    """Best sandwich against an exact-input V2 swap, or None if no front-run profits."""
    if amount_in <= 0 or reserve_in <= 0 or reserve_out <= 0:
        return None
    clean = v2_amount_out(amount_in, reserve_in, reserve_out, fee_bps)
    if clean < min_out:
        return None  # would revert even without a front-run

    def victim_out(a: int) -> int:
        got = v2_amount_out(a, reserve_in, reserve_out, fee_bps)
        return v2_amount_out(amount_in, reserve_in + a, reserve_out - got, fee_bps)

    def profit(a: int) -> int:
        got = v2_amount_out(a, reserve_in, reserve_out, fee_bps)
        v = v2_amount_out(amount_in, reserve_in + a, reserve_out - got, fee_bps)
        return v2_amount_out(got, reserve_out - got - v, reserve_in + a + amount_in, fee_bps) - a

    lo, hi = 0, reserve_in * 4
    if victim_out(hi) >= min_out:
        lo = hi
    else:
        while hi - lo > 1:  # largest front-run that keeps the victim at or above min_out
            mid = (lo + hi) // 2
            if victim_out(mid) >= min_out:
                lo = mid
            else:
                hi = mid
    a_max = lo
    if a_max <= 0:
        return None
    best = argmax_unimodal(profit, 0, a_max)  # profit is unimodal in the front-run size
    p = profit(best)
    if p <= 0:
        return None
    return Exposure(best, p, clean - victim_out(best), clean)


def _same_attacker(f: _Intent, b: _Intent) -> bool:
    """Same sender, or the same (non-router) contract driven for both legs."""
    if f.tx.from_address == b.tx.from_address:
        return True
    return bool(f.swap.extra.get("direct")) and f.tx.to_address == b.tx.to_address


def priority_fee(p: PendingTx, base_fee: int | None) -> int:
    if p.max_priority_fee_per_gas is not None:
        if base_fee is not None and p.max_fee_per_gas is not None:
            return max(0, min(p.max_priority_fee_per_gas, p.max_fee_per_gas - base_fee))
        return p.max_priority_fee_per_gas
    gp = p.gas_price or 0
    return gp - base_fee if base_fee is not None else gp


@dataclass(slots=True)
class _Intent:
    tx: PendingTx
    swap: IntendedSwap
    pool: str
    seq: int = 0  # arrival order

    @property
    def dir(self) -> tuple[str, ...]:
        return tuple(self.swap.path[:2])

    @property
    def rev(self) -> tuple[str, ...]:
        return tuple(self.swap.path[1::-1])


class _PoolIntents:
    """The live intents of one pool, indexed so that the attempt rule only looks at candidates:
    by direction, and by direction and sender / target contract (an attacker's legs)."""

    def __init__(self) -> None:
        self.all: dict[int, _Intent] = {}
        self.by_dir: dict[tuple[str, ...], dict[int, _Intent]] = {}
        self.by_from: dict[tuple[str, ...], dict[str, dict[int, _Intent]]] = {}
        self.by_to: dict[tuple[str, ...], dict[str, dict[int, _Intent]]] = {}

    def __len__(self) -> int:
        return len(self.all)

    def add(self, it: _Intent) -> None:
        d = it.dir
        self.all[it.seq] = it
        self.by_dir.setdefault(d, {})[it.seq] = it
        self.by_from.setdefault(d, {}).setdefault(it.tx.from_address, {})[it.seq] = it
        self.by_to.setdefault(d, {}).setdefault(it.tx.to_address or "", {})[it.seq] = it

    def remove(self, it: _Intent) -> None:
        if self.all.pop(it.seq, None) is None:
            return
        d = it.dir
        self.by_dir.get(d, {}).pop(it.seq, None)
        for index, key in ((self.by_from, it.tx.from_address), (self.by_to, it.tx.to_address or "")):
            group = index.get(d, {}).get(key)
            if group is not None:
                group.pop(it.seq, None)
                if not group:
                    del index[d][key]

    def back_legs(self, f: _Intent) -> list[_Intent]:
        """Intents trading the other way for the same attacker as ``f`` (see :func:`_same_attacker`)."""
        r = f.rev
        out = dict(self.by_from.get(r, {}).get(f.tx.from_address, {}))
        if f.swap.extra.get("direct"):
            out.update(self.by_to.get(r, {}).get(f.tx.to_address or "", {}))
        out.pop(f.seq, None)
        return list(out.values())

    def front_legs(self, b: _Intent) -> list[_Intent]:
        """Intents ``f`` for which ``b`` is a back leg."""
        d = tuple(reversed(b.dir))
        out = {k: f for k, f in self.by_from.get(d, {}).get(b.tx.from_address, {}).items() if f.rev == b.dir}
        out.update({k: f for k, f in self.by_to.get(d, {}).get(b.tx.to_address or "", {}).items()
                    if f.swap.extra.get("direct") and f.rev == b.dir})
        out.pop(b.seq, None)
        return list(out.values())

    def with_back_legs(self, d: tuple[str, ...]) -> list[_Intent]:
        """Intents trading direction ``d`` whose attacker also trades the other way here."""
        r = tuple(reversed(d))
        out: dict[int, _Intent] = {}
        f_from, b_from = self.by_from.get(d, {}), self.by_from.get(r, {})
        for addr in f_from.keys() & b_from.keys():
            out.update(f_from[addr])
        f_to, b_to = self.by_to.get(d, {}), self.by_to.get(r, {})
        for to in f_to.keys() & b_to.keys():
            out.update({k: f for k, f in f_to[to].items() if f.swap.extra.get("direct")})
        return list(out.values())


REPORTED_CAP = 200_000  # alert ids remembered against raising one twice (a pending tx lives far shorter)


def report_once(reported: dict[str, None], alert: Alert) -> list[Alert]:
    """``[alert]`` the first time its id is seen, else ``[]``; ``reported`` keeps insertion order and
    forgets the oldest ids past :data:`REPORTED_CAP` (bounded memory). Shared by the mempool rules."""
    if alert.alert_id in reported:
        return []
    reported[alert.alert_id] = None
    while len(reported) > REPORTED_CAP:
        del reported[next(iter(reported))]
    return [alert]


class MempoolWatcher:
    """Pending-stage detection. Feed it included blocks (``observe_block``) and pending txs (``on_pending``)."""

    def __init__(self, chain_id: int = 1, min_profit_wei: int = 0):
        self.chain_id = chain_id
        self.min_profit_wei = min_profit_wei
        # the chain's wrapped native token: the known one, then the one the engine's decoder names on
        # every block it observes (the native_wrapper setting; monitor/chains.py)
        self.native_wrapper = native_wrapper(chain_id)
        self.reserves: dict[str, Reserves] = {}
        self.pools_by_pair: dict[tuple[str, str], set[str]] = {}
        self.intents: dict[str, _PoolIntents] = {}  # pool -> live intents
        self._seq = 0
        self.by_hash: dict[str, list[_Intent]] = {}
        self.routers: dict[str, tuple[str, str]] = dict(ROUTER_FACTORIES)
        # learnt from included blocks: (router, token pair) -> the pool that router's swaps used
        self.router_pools: dict[tuple[str, tuple[str, str]], str] = {}
        self.base_fee: int | None = None
        # estimates exposure where the reserves from blocks cannot (V3 pools, multi-hop routes, pairs
        # not yet seen) by simulating the pending swap on a node (streams/exposure_sim.py); None: off
        self.exposure_oracle: ExposureOracle | None = None
        self.simulation_skips: dict[str, int] = {}  # why the exposure oracle gave no estimate, counted
        self.reported: dict[str, None] = {}  # alert ids raised (insertion order; the oldest go past REPORTED_CAP)

    def register_router(self, router: str, factory: str, init_code_hash: str) -> None:
        self.routers[router.lower()] = (factory.lower(), init_code_hash.lower())

    # --- state from included blocks -------------------------------------------------------
    def observe_block(self, db: DecodedBlock) -> None:
        self.base_fee = db.block.base_fee_per_gas
        self.native_wrapper = db.native_wrapper
        v2 = [s for s in db.swaps if s.protocol == "uniswap_v2"]
        if not v2:
            self._forget_mined(db)
            return
        to_of = {tx.hash: tx.to_address for tx in db.block.transactions}
        for s in v2:
            pair = (s.token_in, s.token_out) if s.token_in < s.token_out else (s.token_out, s.token_in)
            if s.reserves_after is not None:
                r_in, r_out = s.reserves_after
                self.reserves[s.pool] = Reserves(pair[0], pair[1], *((r_in, r_out) if pair[0] == s.token_in else (r_out, r_in)))
                self.pools_by_pair.setdefault(pair, set()).add(s.pool)
            router = to_of.get(s.transaction_hash)
            if router is not None and s.sender == router:
                self.router_pools[(router, pair)] = s.pool
        self._forget_mined(db)

    def _forget_mined(self, db: DecodedBlock) -> None:
        if self.by_hash:  # intents of pending transactions this block mined
            for tx in db.block.transactions:
                self.forget(tx.hash)

    def expire(self, before_ns: int) -> int:
        """Forget the intents of transactions first seen before ``before_ns`` (never mined); how many."""
        old = [h for h, its in self.by_hash.items() if its and its[0].tx.first_seen_ns < before_ns]
        for h in old:
            self.forget(h)
        return len(old)

    def forget(self, tx_hash: str) -> None:
        for it in self.by_hash.pop(tx_hash, ()):
            live = self.intents.get(it.pool)
            if live is not None:
                live.remove(it)
                if not live:
                    del self.intents[it.pool]

    def _pool_for(self, s: IntendedSwap) -> str | None:
        if s.pool is not None:
            res = self.reserves.get(s.pool)
            if res is None:
                return None
            if len(s.path) == 1:  # a direct pair trade: the other token is the output
                s.path.append(res.token1 if s.path[0] == res.token0 else res.token0)
            return s.pool
        if s.protocol != "uniswap_v2" or len(s.path) < 2:
            return None
        a, b = s.path[0], s.path[1]
        learnt = self.router_pools.get((s.router, tuple(sorted((a, b)))))  # type: ignore[arg-type]
        if learnt is not None:
            return learnt
        factory = self.routers.get(s.router)
        if factory is not None:
            return pair_address(factory[0], factory[1], a, b)
        pools = self.pools_by_pair.get(tuple(sorted((a, b))), set())  # type: ignore[arg-type]
        return next(iter(pools)) if len(pools) == 1 else None

    # --- pending ------------------------------------------------------------------------------
    def on_pending(self, p: PendingTx) -> list[Alert]:
        swaps = pending_intents(p.hash, p.to_address, p.input, p.value)
        if not swaps:
            return []
        alerts: list[Alert] = []
        if p.replaces:
            self.forget(p.replaces)
        modelled = False
        for s in swaps:
            pool = self._pool_for(s)
            if pool is None:
                continue
            self._seq += 1
            it = _Intent(p, s, pool, self._seq)
            exposed = self._exposed(it)
            modelled = modelled or exposed is not None
            alerts.extend(exposed or ())
            alerts.extend(self._attempts(it))
            self.intents.setdefault(pool, _PoolIntents()).add(it)
            self.by_hash.setdefault(p.hash, []).append(it)
        if self.exposure_oracle is not None and not modelled and len(swaps) == 1:
            alerts.extend(self._simulated(p, swaps[0], self.exposure_oracle))
        return alerts

    def _eth(self, token: str, amount: int) -> float | None:
        return eth_only(token, amount, self.native_wrapper)

    def _exposed(self, it: _Intent) -> list[Alert] | None:
        """The exposure alert from the reserves seen in blocks ([] when not exposed); None when this
        model cannot estimate the swap (no reserves known, a route, an exact-output swap)."""
        s = it.swap
        if s.extra.get("direct"):
            return []  # a bot's own leg, not a user's swap
        res = self.reserves.get(it.pool)
        if res is None or len(s.path) != 2 or s.exact != "in" or s.amount_in is None or s.amount_out_min is None:
            return None
        r_in, r_out = res.of(s.token_in)
        exp = sandwich_exposure(s.amount_in, s.amount_out_min, r_in, r_out)
        if exp is None:
            return []
        if s.token_in in (self.native_wrapper, ETH_ADDRESS) and exp.profit < self.min_profit_wei:
            return []
        alert = Alert(
            kind="exposed_swap", stage="pending", chain_id=self.chain_id, block_number=None, block_hash=None,
            txs=[AlertTx(it.tx.hash, None, "victim")], attackers=[], victims=[it.tx.from_address], pools=[it.pool],
            tokens=list(s.path), profit=valued({s.token_in: exp.profit}, self._eth),
            victim_loss=valued({s.token_out: exp.victim_loss}, self._eth), gas_cost_wei=None,
            evidence={
                "router": s.router, "amount_in": str(s.amount_in), "amount_out_min": str(s.amount_out_min),
                "reserves_in_out": [str(r_in), str(r_out)], "expected_out_without_attack": str(exp.victim_out_clean),
                # exact in integers, then 9 decimals: 0.003, never 0.0030000000000000027
                "slippage_tolerance": (round((exp.victim_out_clean - s.amount_out_min) * 10**9 // exp.victim_out_clean / 10**9, 9)
                                       if exp.victim_out_clean else None),
                "best_frontrun_in": str(exp.frontrun_in), "first_seen_ns": it.tx.first_seen_ns,
            },
        )
        return self._once(alert)

    def _simulated(self, p: PendingTx, s: IntendedSwap, oracle: ExposureOracle) -> list[Alert]:
        """Exposure by simulating the pending swap on a node (monitor/detect/exposure.py)."""
        if s.extra.get("direct") or s.exact != "in" or s.amount_in is None or s.amount_out_min is None:
            return []
        hops, method = oracle.hops(p, s.recipient if s.recipient not in (None, ZERO_ADDRESS) else p.from_address)
        if hops is None:
            return self._skip(method)
        if not 0 < hops[0].amount_in <= s.amount_in:
            return self._skip("the simulated route takes other than the call's input")
        wrap = self.native_wrapper
        ends = tuple(wrap if t == ETH_ADDRESS else t for t in (s.token_in, s.token_out))
        if (hops[0].token_in, hops[-1].token_out) != ends:
            return self._skip("the simulated route trades other tokens than the call names")
        err = check_models(hops)
        if isinstance(err, str):
            return self._skip(err)
        exp = route_exposure(hops, s.amount_out_min)
        if exp is None:
            return []
        hop = hops[exp.hop]
        if hop.token_in in (self.native_wrapper, ETH_ADDRESS) and exp.profit < self.min_profit_wei:
            return []
        clean = exp.victim_out_clean
        alert = Alert(
            kind="exposed_swap", stage="pending", chain_id=self.chain_id, block_number=None, block_hash=None,
            txs=[AlertTx(p.hash, None, "victim")], attackers=[], victims=[p.from_address], pools=[hop.pool],
            tokens=[hops[0].token_in] + [h.token_out for h in hops], profit=valued({hop.token_in: exp.profit}, self._eth),
            victim_loss=valued({hops[-1].token_out: exp.victim_loss}, self._eth), gas_cost_wei=None,
            evidence={
                "router": s.router, "amount_in": str(s.amount_in), "amount_out_min": str(s.amount_out_min),
                "expected_out_without_attack": str(clean),
                "slippage_tolerance": (round(max(0, clean - s.amount_out_min) * 10**9 // clean / 10**9, 9) if clean else None),
                "best_frontrun_in": str(exp.frontrun_in), "exposure_method": oracle.method, "node_method": method,
                "attacked_hop": exp.hop, "hops": [h.to_json() for h in hops], "model_error": round(err, 9),
                "simulated_on_block": oracle.last_block,
                "first_seen_ns": p.first_seen_ns,
            },
        )
        return self._once(alert)

    def _skip(self, why: str) -> list[Alert]:
        """Count why a simulation gave no estimate (``simulation_skips``; addresses and numbers masked)."""
        key = re.sub(r"0x[0-9a-fA-F]+|\d+", "N", why.split(": ", 1)[-1] if why.startswith("pool ") else why)[:80]
        self.simulation_skips[key] = self.simulation_skips.get(key, 0) + 1
        return []

    def _attempts(self, new: _Intent) -> list[Alert]:
        """Every (front-run F, victim V, back-run B) among the pool's live intents and ``new`` that
        has ``new`` as one of its legs, in arrival order. Only candidates are visited (an attacker's
        legs come from the indexes), so the cost grows with the pool's intents, not their cube."""
        live = self.intents.get(new.pool)
        if not live:
            return []
        base = self.base_fee
        fee: dict[int, int] = {}

        def prio(x: _Intent) -> int:
            if x.seq not in fee:
                fee[x.seq] = priority_fee(x.tx, base)
            return fee[x.seq]

        def victims(f: _Intent) -> list[_Intent]:
            same = list(live.by_dir.get(f.dir, {}).values()) + ([new] if new.dir == f.dir else [])
            return [v for v in same if v is not f and v.tx.from_address != f.tx.from_address
                    and f.tx.first_seen_ns >= v.tx.first_seen_ns and prio(f) > prio(v)]

        live.add(new)  # the indexes see it as a leg too; removed again below (on_pending adds it for good)
        try:
            found: dict[tuple[int, int, int], tuple[_Intent, _Intent, _Intent]] = {}
            backs = live.back_legs(new)  # new as the front-run
            if backs:
                for v in victims(new):
                    for b in backs:
                        if prio(b) < prio(v):
                            found[(new.seq, v.seq, b.seq)] = (new, v, b)
            for f in live.with_back_legs(new.dir):  # new as the victim
                if f is new or f.tx.from_address == new.tx.from_address or f.tx.first_seen_ns < new.tx.first_seen_ns \
                        or prio(f) <= prio(new):
                    continue
                for b in live.back_legs(f):
                    if prio(b) < prio(new):
                        found[(f.seq, new.seq, b.seq)] = (f, new, b)
            for f in live.front_legs(new):  # new as the back-run
                for v in victims(f):
                    if prio(new) < prio(v):
                        found[(f.seq, v.seq, new.seq)] = (f, v, new)
        finally:
            live.remove(new)
        alerts = []
        for key in sorted(found):
            f, v, b = found[key]
            alerts.extend(self._once(self._attempt_alert(f, v, b)))
        return alerts

    def _attempt_alert(self, f: _Intent, v: _Intent, b: _Intent) -> Alert:
        base = self.base_fee
        return Alert(
            kind="sandwich_attempt", stage="pending", chain_id=self.chain_id, block_number=None, block_hash=None,
            txs=[AlertTx(f.tx.hash, None, "frontrun"), AlertTx(v.tx.hash, None, "victim"), AlertTx(b.tx.hash, None, "backrun")],
            attackers=[f.tx.from_address], victims=[v.tx.from_address], pools=[f.pool], tokens=list(f.swap.path[:2]),
            profit=None, victim_loss=None, gas_cost_wei=None,
            evidence={
                "priority_fees": {"frontrun": str(priority_fee(f.tx, base)), "victim": str(priority_fee(v.tx, base)),
                                  "backrun": str(priority_fee(b.tx, base))},
                "first_seen_ns": {"frontrun": f.tx.first_seen_ns, "victim": v.tx.first_seen_ns, "backrun": b.tx.first_seen_ns},
                "victim_amount_in": str(v.swap.amount_in), "victim_amount_out_min": str(v.swap.amount_out_min),
            },
        )

    def _once(self, alert: Alert) -> list[Alert]:
        return report_once(self.reported, alert)
