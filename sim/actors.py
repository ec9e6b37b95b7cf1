"""The lab's actors. Honest traders send router swaps; the sandwich bot watches the real
mempool (pending transactions over WebSocket, via streams.node.NodeSource) and attacks the
swaps whose slippage limit leaves it a profit. Every attack is recorded as ground truth.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from mevwatch.monitor.decode.pending import decode_pending
from mevwatch.monitor.types import WETH_ADDRESS
from mevwatch.sim.market import Market
from mevwatch.monitor.types import PendingTx

GWEI = 10**9


@dataclass
class Attack:
    attack_id: str
    kind: str  # sandwich
    variant: str  # classic | split_accounts | multi_victim | two_pool
    txs: list[dict]  # {"hash", "role"}
    pool: str
    expected_profit_wei: int
    block_number: int | None = None
    outcome: str | None = None  # landed | failed (a victim that reverted, legs out of order)
    pools: list[str] = field(default_factory=list)  # every pool attacked (two_pool: both)
    family: str | None = None  # lab v2: the bot family (sim/families.py); None in the classic lab

    def to_json(self) -> dict:
        out = {"attack_id": self.attack_id, "kind": self.kind, "variant": self.variant, "txs": self.txs,
               "pool": self.pool, "pools": self.pools or [self.pool], "expected_profit_wei": str(self.expected_profit_wei),
               "block_number": self.block_number, "outcome": self.outcome}
        if self.family is not None:
            out["family"] = self.family
        return out


def best_front(run, hi: int, tol: int) -> tuple[int, int] | None:
    """(front-run size, profit) of the most profitable front-run no larger than the largest one
    every victim still accepts (binary search to ``tol``); ``run(a)`` -> (victims pass, profit).
    None when even no front-run lets them pass."""
    from mevwatch.monitor.money import argmax_unimodal

    if not run(0)[0]:
        return None
    lo = hi if run(hi)[0] else 0
    while hi - lo > tol:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if run(mid)[0] else (lo, mid)
    a = argmax_unimodal(lambda x: run(x)[1], 0, lo)
    return a, run(a)[1]


def _tx_params(tip: int, gas: int = 400_000) -> dict:
    # anvil orders its pool by max fee per gas (ties by arrival), so every actor's max fee
    # is a fixed headroom plus its tip: ordering by max fee is then ordering by tip.
    return {"maxFeePerGas": 100 * GWEI + tip, "maxPriorityFeePerGas": tip, "gas": gas}


class HonestTraders:
    """Accounts that buy and sell lab tokens through the router with varied sizes and slippage."""

    cross_share = 0.2  # share of trades from one lab token to another, through WETH (two pools)
    cl_share = 0.15  # share of trades in the concentrated-liquidity pool
    gas_range: tuple[int, int] | None = None  # lab v2: gas limits drawn from this range (else 400k each)

    def _params(self, tip: int) -> dict:
        return _tx_params(tip) if self.gas_range is None else _tx_params(tip, self.rng.randint(*self.gas_range))

    def cl_trade(self, who: str) -> str:
        """A WETH <-> token swap in the CL pool through the CL router (V3's exactInputSingle)."""
        m, rng = self.m, self.rng
        pool = m.cl_pool
        buy = rng.random() < 0.6
        sqrt_p = pool.functions.sqrtPriceX96().call()
        weth_is0 = pool.functions.token0().call().lower() == WETH_ADDRESS
        tok_per_weth = (sqrt_p * sqrt_p) >> 192 if weth_is0 else (1 << 192) // max(1, sqrt_p * sqrt_p)
        amount = rng.randint(1, 60) * 10**17  # 0.1 .. 6 WETH worth
        t_in, t_out = (m.weth.address, m.cl_token.address) if buy else (m.cl_token.address, m.weth.address)
        if not buy:
            amount = amount * max(1, tok_per_weth)
        tip = rng.randint(1, 4) * GWEI
        params = (t_in, t_out, 3000, who, 2**40, amount, 0, 0)  # no slippage limit: JIT does not need one
        fn = m.cl_router.functions.exactInputSingle(params)
        return "0x" + fn.transact({"from": who, **self._params(tip)}).hex().removeprefix("0x")

    def __init__(self, w3, market: Market, accounts: list[str], rng: random.Random):
        self.w3, self.m, self.accounts, self.rng = w3, market, accounts, rng

    def cross_trade(self, who: str) -> str:
        """Token A -> WETH -> token B through the router: one swap in each of two pools."""
        m, rng = self.m, self.rng
        a, b = rng.sample(m.tokens, 2)
        ra_w, ra_t = _weth_reserves(m.pair(a))
        rb_w, rb_t = _weth_reserves(m.pair(b))
        amount = rng.randint(1, 40) * 10**17 * ra_t // ra_w  # worth 0.1 .. 4 WETH
        mid = amount * 997 * ra_w // (ra_t * 1000 + amount * 997)
        quote = mid * 997 * rb_t // (rb_w * 1000 + mid * 997)
        slippage_bps = rng.choice([30, 50, 100, 300, 500])
        min_out = quote * (10_000 - slippage_bps) // 10_000
        tip = rng.randint(1, 4) * GWEI
        fn = m.router.functions.swapExactTokensForTokens(amount, min_out, [a.address, m.weth.address, b.address], who, 2**40)
        return "0x" + fn.transact({"from": who, **self._params(tip)}).hex().removeprefix("0x")

    def round(self, n: int) -> list[str]:
        """``n`` swaps by ``n`` different traders (one trader never buys and sells around someone
        else in one block, which would be a sandwich by any definition)."""
        return [self.trade(who) for who in self.rng.sample(self.accounts, min(n, len(self.accounts)))]

    def trade(self, who: str) -> str:
        m, rng = self.m, self.rng
        if m.cl_pool is not None and rng.random() < self.cl_share:
            return self.cl_trade(who)
        if len(m.tokens) > 1 and rng.random() < self.cross_share:
            return self.cross_trade(who)
        tok = rng.choice(m.tokens)
        buy = rng.random() < 0.6
        pair = m.pair(tok)
        r0, r1, _ = pair.functions.getReserves().call()
        weth_is0 = pair.functions.token0().call().lower() == WETH_ADDRESS
        r_weth, r_tok = (r0, r1) if weth_is0 else (r1, r0)
        if buy:
            amount = rng.randint(1, 40) * 10**17  # 0.1 .. 4 WETH
            path, r_in, r_out = [m.weth.address, tok.address], r_weth, r_tok
        else:
            amount = rng.randint(1, 40) * 10**17 * r_tok // r_weth
            path, r_in, r_out = [tok.address, m.weth.address], r_tok, r_weth
        quote = amount * 997 * r_out // (r_in * 1000 + amount * 997)
        slippage_bps = rng.choice([10, 30, 50, 100, 300, 500])
        min_out = quote * (10_000 - slippage_bps) // 10_000
        deadline = 2**40  # fixed, so the same seed signs the same transactions
        tip = rng.randint(1, 4) * GWEI
        fn = m.router.functions.swapExactTokensForTokens(amount, min_out, path, who, deadline)
        return "0x" + fn.transact({"from": who, **self._params(tip)}).hex().removeprefix("0x")


class SandwichBot:
    """Sizes a front-run inside the victim's slippage, outbids it, and back-runs under it.

    ``split`` makes it send the back-run from a second operator account of the same bot
    contract (an attacker split over accounts)."""

    def __init__(self, w3, market: Market, bot, operators: list[str], *, split: bool = False,
                 min_profit_wei: int = 10**15, max_in_wei: int = 30 * 10**18):
        self.w3, self.m, self.bot, self.operators = w3, market, bot, operators
        self.split = split
        self.min_profit_wei = min_profit_wei
        self.max_in_wei = max_in_wei
        self.attacks: list[Attack] = []
        self.seen: set[str] = set()
        self._nonce: dict[str, int] = {}

    def _next_nonce(self, who: str) -> int:
        if who not in self._nonce:
            self._nonce[who] = self.w3.eth.get_transaction_count(who, "pending")
        n = self._nonce[who]
        self._nonce[who] = n + 1
        return n

    def react(self, pending: list[PendingTx]) -> list[Attack]:
        """Look at newly seen pending txs and sandwich the most profitable pool: all its exposed
        victims at once when there are several. One attack per block (with more, anvil's fee
        ordering and the bot's nonce order collide). Returns the new attacks."""
        router = self.m.router.address.lower()
        ops = {o.lower() for o in self.operators}
        by_pool: dict[str, list[tuple[PendingTx, object]]] = {}
        cross: list[tuple[PendingTx, object]] = []
        for p in pending:
            if p.hash in self.seen or p.to_address != router or p.from_address in ops:
                continue
            self.seen.add(p.hash)
            for intent in decode_pending(p.to_address, p.input, p.value):
                if intent.exact == "in" and len(intent.path) == 2 and intent.token_in == WETH_ADDRESS and intent.token_out in self.m.pairs:
                    by_pool.setdefault(intent.token_out, []).append((p, intent))
                    break
                if (intent.exact == "in" and len(intent.path) == 3 and intent.path[1] == WETH_ADDRESS
                        and intent.token_in in self.m.pairs and intent.token_out in self.m.pairs):
                    cross.append((p, intent))
                    break
        best = None
        for tok_addr, victims in by_pool.items():
            # the pool runs them by max fee (= headroom + tip), ties in arrival order
            victims.sort(key=lambda v: (-(v[0].max_priority_fee_per_gas or 0), v[0].first_seen_ns))
            plan = self._plan(tok_addr, victims)
            if plan is not None and (best is None or plan[3] > best[3]):
                best = plan
        best_cross = None
        for victim in cross:
            plan2 = self._plan_two_pool(victim)
            if plan2 is not None and (best_cross is None or plan2[2] > best_cross[2]):
                best_cross = plan2
        if best_cross is not None and (best is None or best_cross[2] > best[3]):
            attack = self._send_two_pool(*best_cross)
            self.attacks.append(attack)
            return [attack]
        if best is None:
            return []
        attack = self._send(*best)
        self.attacks.append(attack)
        return [attack]

    def _plan(self, tok_addr: str, victims: list) -> tuple | None:
        """(token, victims, front-run size, profit) of the best sandwich around ``victims``, or None."""
        from mevwatch.monitor.money import v2_amount_out

        pair = self.m.pairs[tok_addr]
        r0, r1, _ = pair.functions.getReserves().call()
        weth_is0 = pair.functions.token0().call().lower() == WETH_ADDRESS
        r_weth, r_tok = (r0, r1) if weth_is0 else (r1, r0)
        legs = [(i.amount_in, i.amount_out_min) for _p, i in victims]

        def run(a: int) -> tuple[bool, int]:
            rin, rout = r_weth, r_tok
            got = v2_amount_out(a, rin, rout)
            rin, rout = rin + a, rout - got
            for amount, min_out in legs:
                out = v2_amount_out(amount, rin, rout)
                if out < min_out:
                    return False, 0
                rin, rout = rin + amount, rout - out
            return True, v2_amount_out(got, rout, rin) - a

        best = best_front(run, self.max_in_wei, 10**12)
        if best is None or best[1] < self.min_profit_wei:
            return None
        return tok_addr, victims, best[0], best[1]

    def _send(self, tok_addr: str, victims: list, front_in: int, profit: int) -> Attack:
        w3, m = self.w3, self.m
        pair = m.pairs[tok_addr]
        r0, r1, _ = pair.functions.getReserves().call()
        weth_is0 = pair.functions.token0().call().lower() == WETH_ADDRESS
        r_weth, r_tok = (r0, r1) if weth_is0 else (r1, r0)
        bought = front_in * 997 * r_tok // (r_weth * 1000 + front_in * 997)
        tips = [p.max_priority_fee_per_gas or GWEI for p, _i in victims]
        front_from = self.operators[0]
        back_from = self.operators[1] if self.split and len(self.operators) > 1 else self.operators[0]
        h_front = self.bot.functions.leg(pair.address, m.weth.address, front_in, 0).transact(
            {"from": front_from, "nonce": self._next_nonce(front_from), **_tx_params(max(tips) + 10 * GWEI)})
        h_back = self.bot.functions.leg(pair.address, w3.to_checksum_address(tok_addr), bought, 0).transact(
            {"from": back_from, "nonce": self._next_nonce(back_from), **_tx_params(max(min(tips) // 2, 1))})
        hx = lambda h: "0x" + h.hex().removeprefix("0x")  # noqa: E731
        variant = "multi_victim" if len(victims) > 1 else "split_accounts" if back_from != front_from else "classic"
        return Attack(
            attack_id=f"sandwich-{len(self.attacks)}-{victims[0][0].hash[2:10]}", kind="sandwich", variant=variant,
            txs=[{"hash": hx(h_front), "role": "frontrun"}] + [{"hash": p.hash, "role": "victim"} for p, _i in victims]
            + [{"hash": hx(h_back), "role": "backrun"}],
            pool=pair.address.lower(), expected_profit_wei=profit,
        )


    # --- across two pools: a token A -> WETH -> token B victim -----------------------------------
    def _plan_two_pool(self, victim: tuple) -> tuple | None:
        """(victim, front-run size in token A, profit in WETH) of the best two-pool sandwich, or None.

        The front-run takes the victim's path (A -> WETH in A's pool, WETH -> B in B's pool), the
        back-run the reverse one; both pools are sandwiched at once, by the bot contract."""
        from mevwatch.monitor.money import v2_amount_out

        p, intent = victim
        ra_w, ra_t = _weth_reserves(self.m.pairs[intent.token_in])
        rb_w, rb_t = _weth_reserves(self.m.pairs[intent.token_out])

        def run(a: int) -> tuple[bool, int]:
            aw, at_, bw, bt = ra_w, ra_t, rb_w, rb_t
            w = v2_amount_out(a, at_, aw)
            at_, aw = at_ + a, aw - w
            got_b = v2_amount_out(w, bw, bt)
            bw, bt = bw + w, bt - got_b
            vw = v2_amount_out(intent.amount_in, at_, aw)
            at_, aw = at_ + intent.amount_in, aw - vw
            vout = v2_amount_out(vw, bw, bt)
            if vout < intent.amount_out_min:
                return False, 0
            bw, bt = bw + vw, bt - vout
            w2 = v2_amount_out(got_b, bt, bw)
            bt, bw = bt + got_b, bw - w2
            back = v2_amount_out(w2, aw, at_)
            return True, (back - a) * ra_w // ra_t  # profit in token A, valued in WETH

        hi = self.max_in_wei * ra_t // ra_w
        best = best_front(run, hi, max(10**12, hi // 10**9))
        if best is None or best[1] < self.min_profit_wei:
            return None
        return victim, best[0], best[1]

    def _send_two_pool(self, victim: tuple, front_in: int, profit: int) -> Attack:
        w3, m = self.w3, self.m
        p, intent = victim
        pool_a, pool_b, bought = two_pool_bought(m, intent, front_in)
        tip = p.max_priority_fee_per_gas or GWEI
        front_from = self.operators[0]
        back_from = self.operators[1] if self.split and len(self.operators) > 1 else self.operators[0]
        cs = w3.to_checksum_address
        h_front = self.bot.functions.route([pool_a.address, pool_b.address], cs(intent.token_in), front_in, 0).transact(
            {"from": front_from, "nonce": self._next_nonce(front_from), **_tx_params(tip + 10 * GWEI, 600_000)})
        h_back = self.bot.functions.route([pool_b.address, pool_a.address], cs(intent.token_out), bought, 0).transact(
            {"from": back_from, "nonce": self._next_nonce(back_from), **_tx_params(max(tip // 2, 1), 600_000)})
        hx = lambda h: "0x" + h.hex().removeprefix("0x")  # noqa: E731
        return Attack(
            attack_id=f"sandwich-{len(self.attacks)}-{p.hash[2:10]}", kind="sandwich", variant="two_pool",
            txs=[{"hash": hx(h_front), "role": "frontrun"}, {"hash": p.hash, "role": "victim"}, {"hash": hx(h_back), "role": "backrun"}],
            pool=pool_a.address.lower(), expected_profit_wei=profit, pools=[pool_a.address.lower(), pool_b.address.lower()],
        )


class JitProvider:
    """Just-in-time liquidity: sees a large pending swap for the CL pool, adds liquidity in a
    tick range right before it (higher tip) and removes it with the fees right after (lower
    tip), from its own contract."""

    RANGE = (-60, 60)  # a narrow range around the price (a label here: CLPool keeps positions in range)

    def __init__(self, w3, market: Market, bot, operator: str, *, min_in_weth: int = 2 * 10**18, multiple: int = 4):
        self.w3, self.m, self.bot, self.operator = w3, market, bot, operator
        self.min_in_weth, self.multiple = min_in_weth, multiple
        self.attacks: list[Attack] = []
        self.seen: set[str] = set()
        self._nonce: int | None = None

    def _next_nonce(self) -> int:
        if self._nonce is None:
            self._nonce = self.w3.eth.get_transaction_count(self.operator, "pending")
        n = self._nonce
        self._nonce += 1
        return n

    def react(self, pending: list[PendingTx]) -> list[Attack]:
        m = self.m
        if m.cl_pool is None:
            return []
        router = m.cl_router.address.lower()
        best = None
        for p in pending:
            if p.hash in self.seen or p.to_address != router:
                continue
            self.seen.add(p.hash)
            for intent in decode_pending(p.to_address, p.input, p.value):
                if intent.exact == "in" and intent.amount_in is not None:  # exact-output swaps have no amount_in
                    weth_in = intent.amount_in if intent.token_in == WETH_ADDRESS else self._to_weth(intent.amount_in)
                    if weth_in >= self.min_in_weth and (best is None or weth_in > best[1]):
                        best = (p, weth_in)
                break
        if best is None:
            return []
        p, _ = best
        liquidity = self.multiple * m.cl_pool.functions.liquidity().call()  # most of the fee
        tip = p.max_priority_fee_per_gas or GWEI
        lo, hi = self.RANGE
        h_add = self.bot.functions.add(m.cl_pool.address, lo, hi, liquidity).transact(
            {"from": self.operator, "nonce": self._next_nonce(), **_tx_params(tip + 10 * GWEI, 500_000)})
        h_rem = self.bot.functions.remove(m.cl_pool.address, lo, hi, liquidity).transact(
            {"from": self.operator, "nonce": self._next_nonce(), **_tx_params(max(tip // 2, 1), 500_000)})
        hx = lambda h: "0x" + h.hex().removeprefix("0x")  # noqa: E731
        attack = Attack(
            attack_id=f"jit-{len(self.attacks)}-{p.hash[2:10]}", kind="jit", variant="jit_liquidity",
            txs=[{"hash": hx(h_add), "role": "liquidity_add"}, {"hash": p.hash, "role": "victim"},
                 {"hash": hx(h_rem), "role": "liquidity_remove"}],
            pool=m.cl_pool.address.lower(), expected_profit_wei=0,
        )
        self.attacks.append(attack)
        return [attack]

    def _to_weth(self, amount_tok: int) -> int:
        pool = self.m.cl_pool
        sqrt_p = pool.functions.sqrtPriceX96().call()
        weth_is0 = pool.functions.token0().call().lower() == WETH_ADDRESS
        return (amount_tok << 192) // max(1, sqrt_p * sqrt_p) if weth_is0 else (amount_tok * sqrt_p * sqrt_p) >> 192


def _best_cycle(r_in_a: int, r_out_a: int, r_in_b: int, r_out_b: int) -> tuple[int, int]:
    """(amount, profit) of the most profitable buy-on-A, sell-on-B round trip (0, 0 if none)."""
    from mevwatch.monitor.money import argmax_unimodal, v2_amount_out

    def profit(x: int) -> int:
        return v2_amount_out(v2_amount_out(x, r_in_a, r_out_a), r_out_b, r_in_b) - x

    best = argmax_unimodal(profit, 0, r_in_a // 2)
    p = profit(best)
    return (best, p) if p > 0 else (0, 0)


class Arbitrageur:
    """Closes WETH price gaps between the two venues with one atomic two-pair cycle (``Bot.arb``)."""

    def __init__(self, w3, market: Market, bot, operator: str, *, min_profit_wei: int = 10**15):
        self.w3, self.m, self.bot, self.operator = w3, market, bot, operator
        self.min_profit_wei = min_profit_wei
        self.attacks: list[Attack] = []

    def act(self) -> list[Attack]:
        new: list[Attack] = []
        for tok_addr, pair_a in self.m.pairs.items():
            pair_b = self.m.pairs_b.get(tok_addr)
            if pair_b is None:
                continue
            (wa, ta), (wb, tb) = _weth_reserves(pair_a), _weth_reserves(pair_b)
            # WETH -> token on the venue where the token is cheaper, back on the other
            amount_ab, profit_ab = _best_cycle(wa, ta, wb, tb)
            amount_ba, profit_ba = _best_cycle(wb, tb, wa, ta)
            if max(profit_ab, profit_ba) < self.min_profit_wei:
                continue
            buy, sell, amount, profit = (pair_a, pair_b, amount_ab, profit_ab) if profit_ab >= profit_ba else (pair_b, pair_a, amount_ba, profit_ba)
            h = self.bot.functions.arb(buy.address, sell.address, self.m.weth.address, amount).transact(
                {"from": self.operator, **_tx_params(2 * GWEI)})
            new.append(Attack(f"arbitrage-{len(self.attacks) + len(new)}-{tok_addr[2:10]}", "arbitrage", "cross_venue",
                              [{"hash": "0x" + h.hex().removeprefix("0x"), "role": "arbitrage"}], buy.address.lower(), profit))
        self.attacks.extend(new)
        return new


def two_pool_bought(m: Market, intent, front_in: int) -> tuple:
    """(pool A, pool B, token B bought) of a two-pool front-run of ``front_in`` token A along the
    victim's path A -> WETH -> B."""
    pool_a, pool_b = m.pairs[intent.token_in], m.pairs[intent.token_out]
    ra_w, ra_t = _weth_reserves(pool_a)
    rb_w, rb_t = _weth_reserves(pool_b)
    w = front_in * 997 * ra_w // (ra_t * 1000 + front_in * 997)
    return pool_a, pool_b, w * 997 * rb_t // (rb_w * 1000 + w * 997)


def _weth_reserves(pair) -> tuple[int, int]:
    r0, r1, _ = pair.functions.getReserves().call()
    return (r0, r1) if pair.functions.token0().call().lower() == WETH_ADDRESS else (r1, r0)


class Solver:
    """An honest user who solved a bounty puzzle and claims it."""

    def __init__(self, w3, bounty, account: str, rng: random.Random):
        self.w3, self.bounty, self.account, self.rng = w3, bounty, account, rng

    def claim(self, answer: bytes, rnd: int) -> str:
        fn = self.bounty.functions.claim(answer, rnd)
        return "0x" + fn.transact({"from": self.account, **_tx_params(self.rng.randint(1, 3) * GWEI, 200_000)}).hex().removeprefix("0x")


class Copier:
    """Displacement front-runner: replays any pending bounty claim's calldata, with a higher tip."""

    def __init__(self, w3, bounty, account: str):
        self.w3, self.bounty, self.account = w3, bounty, account
        self.attacks: list[Attack] = []
        self.seen: set[str] = set()

    def react(self, pending: list[PendingTx]) -> list[Attack]:
        new: list[Attack] = []
        target = self.bounty.address.lower()
        for p in pending:
            if p.hash in self.seen or p.to_address != target or p.from_address == self.account.lower():
                continue
            self.seen.add(p.hash)
            h = self.w3.eth.send_transaction({"from": self.account, "to": self.bounty.address, "data": p.input,
                                              **_tx_params((p.max_priority_fee_per_gas or GWEI) + 5 * GWEI, 200_000)})
            new.append(Attack(f"displacement-{len(self.attacks) + len(new)}-{p.hash[2:10]}", "frontrun_displacement",
                              "copied_call", [{"hash": "0x" + h.hex().removeprefix("0x"), "role": "displacer"},
                                              {"hash": p.hash, "role": "displaced"}], target, 0))
        self.attacks.extend(new)
        return new
