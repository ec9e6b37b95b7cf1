"""Lab v2: bot families and honest look-alikes as configurable strategies (docs/lab.md, "Families").

A family is a named strategy whose parameters are drawn per run (and per attack) from ranges.
Every family has two sets of ranges: ``train`` and ``heldout``; the held-out ranges lie outside the
training ones, so an evaluation run (``mevwatch sim export --family NAME --ranges heldout``) meets
margins, gas limits and operator counts no training run had. Training and evaluation also use
disjoint families (:data:`TRAIN_FAMILIES`, :data:`HELDOUT_FAMILIES`; ``mevwatch eval`` refuses an
overlap), and every run gets fresh accounts and contract addresses from its seed (anvil's accounts
come from a mnemonic derived from the seed).

Attack families (sandwiches; the planner is the lab's bot, :class:`~mevwatch.sim.actors.SandwichBot`):

- ``abi_bot``: a bot contract with an ABI (``leg``/``route`` of contracts/src/Bot.sol), several
  operator accounts; two-pool sandwiches through ``route``.
- ``router_eoa``: an account (no contract) that sandwiches through the public router: its legs are
  ordinary, decodable router swaps.
- ``packed_bot``: a bot contract with no ABI (contracts/src/PackedBot.sol: packed bytes, no
  selector), driven by several operators; no calldata decoder reads its legs.

Honest look-alikes (no attack; every transaction is benign):

- ``high_tip``: a trader whose router swaps carry large tips (what a front-run's tip looks like).
- ``multi_tx``: a trader who sends two or three swaps in one block with varied tips.
- ``mm_opaque``: a market maker rebalancing through its own packed-calldata contract: two opaque
  calls in one block (a buy in one pool, a sell in another), tips drawn at random, so they are
  sometimes ordered around someone's swap exactly as a sandwich's legs are.

The one exception to "outside": ``mm_opaque``'s tips straddle the honest victims' (1-4 gwei) in both
sets, wider when held out; tips on one side only would never order its calls around a victim, which
is what makes it a look-alike.

Parameters of the sandwich families: ``margin_gwei`` (front-run tip above the highest victim tip),
``under_frac`` (the back-run's tip below the lowest victim tip, as a share of it), ``gas`` (gas
limit of the legs), ``operators`` (accounts driving the bot; each leg's sender drawn among them).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from mevwatch.monitor.errors import InputError
from mevwatch.sim.actors import GWEI, Attack, SandwichBot, _tx_params

Ranges = dict[str, tuple[float, float]]


@dataclass(frozen=True)
class Family:
    name: str
    role: str  # attack | honest
    doc: str
    train: Ranges
    heldout: Ranges

    def ranges(self, which: str) -> Ranges:
        return self.train if which == "train" else self.heldout


_SANDWICH_TRAIN: Ranges = {"margin_gwei": (2.0, 20.0), "under_frac": (0.3, 0.7), "gas": (300_000, 700_000), "operators": (1, 2)}
# held out: exact fees (a front-run a wei to half a gwei above, a back-run a hair below), gas limits
# far above any training one, more operators
_SANDWICH_HELDOUT: Ranges = {"margin_gwei": (1e-9, 0.5), "under_frac": (1e-9, 0.05), "gas": (800_000, 1_500_000), "operators": (3, 5)}

FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family("abi_bot", "attack", "sandwiches through a bot contract with an ABI (leg/route)", _SANDWICH_TRAIN, _SANDWICH_HELDOUT),
    Family("router_eoa", "attack", "sandwiches from an account through the public router", _SANDWICH_TRAIN, _SANDWICH_HELDOUT),
    Family("packed_bot", "attack", "sandwiches through a bot contract with packed, selector-less calldata", _SANDWICH_TRAIN, _SANDWICH_HELDOUT),
    Family("high_tip", "honest", "router swaps with large tips", {"tip_gwei": (8.0, 40.0), "share": (0.3, 0.6)},
           {"tip_gwei": (45.0, 150.0), "share": (0.3, 0.6)}),
    Family("multi_tx", "honest", "two or three swaps by one trader in one block", {"tip_gwei": (1.0, 15.0), "share": (0.3, 0.6)},
           {"tip_gwei": (16.0, 40.0), "share": (0.3, 0.6)}),
    Family("mm_opaque", "honest", "a market maker's two opaque calls per block (a buy and a sell in different pools)",
           {"tip_gwei": (1.0, 6.0), "share": (0.4, 0.8)}, {"tip_gwei": (0.5, 12.0), "share": (0.4, 0.8)}),
)}
TRAIN_FAMILIES = ("abi_bot", "router_eoa", "high_tip", "multi_tx")
HELDOUT_FAMILIES = ("packed_bot", "mm_opaque")


def parse_families(names: list[str]) -> list[Family]:
    """The families named (``train`` / ``heldout`` stand for the default sets); a clear error otherwise."""
    out: list[Family] = []
    for raw in names:
        for name in (n.strip() for n in raw.split(",") if n.strip()):
            group = {"train": TRAIN_FAMILIES, "heldout": HELDOUT_FAMILIES}.get(name)
            for n in group or (name,):
                if n not in FAMILIES:
                    raise InputError(f"unknown lab family {n!r}; known: {', '.join(FAMILIES)} (or train, heldout)")
                if FAMILIES[n] not in out:
                    out.append(FAMILIES[n])
    return out


def draw(rng: random.Random, rng_range: tuple[float, float]) -> float:
    lo, hi = rng_range
    return rng.uniform(lo, hi)


def packed_call(pairs: list[str], token_in: str, amount: int) -> str:
    """PackedBot's calldata: pools, input token, amount (contracts/src/PackedBot.sol)."""
    body = bytes([len(pairs)]) + b"".join(bytes.fromhex(p[2:]) for p in pairs) + bytes.fromhex(token_in[2:]) + amount.to_bytes(16, "big")
    return "0x" + body.hex()


class FamilyBot(SandwichBot):
    """The lab's sandwich planner with a family's encoding, tips, gas and operators."""

    def __init__(self, w3: Any, market: Any, family: Family, ranges: str, bot: Any, operators: list[str], rng: random.Random):
        super().__init__(w3, market, bot, operators)
        self.family, self.r, self.rng = family, family.ranges(ranges), rng
        self.gas = int(draw(rng, self.r["gas"]))
        if family.name == "router_eoa":  # the router checks nothing of the caller; one account
            self.operators = operators[:1]

    def _tips(self, tips: list[int]) -> tuple[int, int]:
        front = max(tips) + max(1, int(draw(self.rng, self.r["margin_gwei"]) * GWEI))
        back = max(1, min(tips) - max(1, int(min(tips) * draw(self.rng, self.r["under_frac"]))))
        return front, back

    def _senders(self) -> tuple[str, str]:
        return self.rng.choice(self.operators), self.rng.choice(self.operators)

    def _call(self, who: str, tip: int, pairs: list[Any], path: list[str], amount: int) -> Any:
        """One leg: ``amount`` of ``path[0]`` through ``pairs`` (the pools of ``path``)."""
        params = {"from": who, "nonce": self._next_nonce(who), **_tx_params(tip, self.gas)}
        cs = self.w3.to_checksum_address
        if self.family.name == "router_eoa":
            return self.m.router.functions.swapExactTokensForTokens(amount, 0, [cs(t) for t in path], who, 2**40).transact(params)
        if self.family.name == "packed_bot":
            data = packed_call([p.address.lower() for p in pairs], path[0].lower(), amount)
            return self.w3.eth.send_transaction({**params, "to": self.bot.address, "data": data})
        if len(pairs) == 1:
            return self.bot.functions.leg(pairs[0].address, cs(path[0]), amount, 0).transact(params)
        return self.bot.functions.route([p.address for p in pairs], cs(path[0]), amount, 0).transact(params)

    def _attack(self, variant: str, front: Any, back: Any, victims: list[str], pools: list[str], profit: int) -> Attack:
        hx = lambda h: "0x" + h.hex().removeprefix("0x")  # noqa: E731
        a = Attack(
            attack_id=f"{self.family.name}-{len(self.attacks)}-{victims[0][2:10]}", kind="sandwich", variant=variant,
            txs=[{"hash": hx(front), "role": "frontrun"}] + [{"hash": v, "role": "victim"} for v in victims]
            + [{"hash": hx(back), "role": "backrun"}], pool=pools[0], expected_profit_wei=profit, pools=pools if len(pools) > 1 else [],
            family=self.family.name)
        return a

    def _send(self, tok_addr: str, victims: list, front_in: int, profit: int) -> Attack:
        from mevwatch.sim.actors import _weth_reserves

        m = self.m
        pair = m.pairs[tok_addr]
        r_weth, r_tok = _weth_reserves(pair)
        bought = front_in * 997 * r_tok // (r_weth * 1000 + front_in * 997)
        t_front, t_back = self._tips([p.max_priority_fee_per_gas or GWEI for p, _i in victims])
        f_from, b_from = self._senders()
        weth = m.weth.address.lower()
        h_front = self._call(f_from, t_front, [pair], [weth, tok_addr], front_in)
        h_back = self._call(b_from, t_back, [pair], [tok_addr, weth], bought)
        variant = "multi_victim" if len(victims) > 1 else "split_accounts" if b_from != f_from else "classic"
        return self._attack(variant, h_front, h_back, [p.hash for p, _i in victims], [pair.address.lower()], profit)

    def _send_two_pool(self, victim: tuple, front_in: int, profit: int) -> Attack:
        from mevwatch.sim.actors import two_pool_bought

        m = self.m
        p, intent = victim
        pool_a, pool_b, bought = two_pool_bought(m, intent, front_in)
        t_front, t_back = self._tips([p.max_priority_fee_per_gas or GWEI])
        f_from, b_from = self._senders()
        weth = m.weth.address.lower()
        h_front = self._call(f_from, t_front, [pool_a, pool_b], [intent.token_in, weth, intent.token_out], front_in)
        h_back = self._call(b_from, t_back, [pool_b, pool_a], [intent.token_out, weth, intent.token_in], bought)
        return self._attack("two_pool", h_front, h_back, [p.hash], [pool_a.address.lower(), pool_b.address.lower()], profit)


class LookAlikes:
    """The honest look-alike families' traffic for one round (every transaction benign)."""

    def __init__(self, w3: Any, market: Any, families: list[Family], ranges: str, accounts: dict[str, str],
                 mm_bot: Any, rng: random.Random):
        self.w3, self.m, self.rng, self.accounts, self.mm_bot = w3, market, rng, accounts, mm_bot
        self.families = [(f, f.ranges(ranges)) for f in families if f.role == "honest"]
        self._nonce: dict[str, int] = {}

    def _params(self, who: str, tip: int, gas: int) -> dict:
        """Explicit nonces: several transactions of one account in one block must not replace each other."""
        if who not in self._nonce:
            self._nonce[who] = self.w3.eth.get_transaction_count(who, "pending")
        n = self._nonce[who]
        self._nonce[who] = n + 1
        return {"from": who, "nonce": n, **_tx_params(tip, gas)}

    def _swap(self, who: str, tok: Any, buy: bool, tip: int) -> str:
        from mevwatch.sim.actors import _weth_reserves

        m = self.m
        r_w, r_t = _weth_reserves(m.pair(tok))
        amount = self.rng.randint(1, 30) * 10**17
        path = [m.weth.address, tok.address] if buy else [tok.address, m.weth.address]
        if not buy:
            amount = amount * r_t // r_w
        fn = m.router.functions.swapExactTokensForTokens(amount, 0, path, who, 2**40)
        return "0x" + fn.transact(self._params(who, tip, self.rng.randint(150_000, 500_000))).hex().removeprefix("0x")

    def round(self) -> list[str]:
        sent: list[str] = []
        for f, r in self.families:
            if self.rng.random() >= draw(self.rng, r["share"]):
                continue
            who = self.accounts[f.name]
            tip = lambda: max(1, int(draw(self.rng, r["tip_gwei"]) * GWEI))  # noqa: E731
            if f.name == "high_tip":
                sent.append(self._swap(who, self.rng.choice(self.m.tokens), self.rng.random() < 0.6, tip()))
            elif f.name == "multi_tx":  # same direction every time: buying (or selling) several, never around anyone
                buy = self.rng.random() < 0.5
                toks = self.rng.sample(self.m.tokens, len(self.m.tokens))[: self.rng.randint(2, 3)]
                # one sender's later nonces never bid more (anvil's fee ordering would drop them)
                for tok, t in zip(toks, sorted((tip() for _ in toks), reverse=True)):
                    sent.append(self._swap(who, tok, buy, t))
            elif f.name == "mm_opaque":
                a, b = self.rng.sample(self.m.tokens, 2)
                weth = self.m.weth.address.lower()
                tips = sorted((tip(), tip()), reverse=True)  # the later nonce never bids more (as any sender's)
                for (tok, buy), t in zip(((a, True), (b, False)), tips):
                    from mevwatch.sim.actors import _weth_reserves

                    r_w, r_t = _weth_reserves(self.m.pair(tok))
                    amount = self.rng.randint(1, 20) * 10**17
                    path = [weth, tok.address.lower()] if buy else [tok.address.lower(), weth]
                    if not buy:
                        amount = amount * r_t // r_w
                    data = packed_call([self.m.pair(tok).address.lower()], path[0], amount)
                    h = self.w3.eth.send_transaction({"to": self.mm_bot.address, "data": data,
                                                      **self._params(who, t, self.rng.randint(150_000, 400_000))})
                    sent.append("0x" + h.hex().removeprefix("0x"))
        return sent
