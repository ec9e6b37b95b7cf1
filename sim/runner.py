"""Runs the lab on an anvil node, round by round, on the real mempool.

Each round: honest traders send router swaps; the lab waits until its WebSocket mempool
feed (streams.node.NodeSource, the same source mevwatch ingests from) has shown them; the
sandwich bot reacts to what it saw; once the feed has shown the bot's transactions too, the
lab mines one block. Mining on the lab's signal (rather than a timer) makes a seed's ground
truth reproducible: same seed, same transactions, same attacks.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from web3 import HTTPProvider, Web3
from web3.types import RPCEndpoint

from mevwatch.monitor.types import Block
from mevwatch.sim.actors import Arbitrageur, Attack, Copier, HonestTraders, JitProvider, SandwichBot, Solver
from mevwatch.sim.contracts import deploy, wait_receipt
from mevwatch.sim.market import Market, deploy_market, fund
from mevwatch.monitor.types import Message, PendingTx
from mevwatch.streams.node import NodeSource


class Feed:
    """NodeSource in a background thread; everything it emits, in order."""

    def __init__(self, ws_url: str):
        self.source = NodeSource(ws_url, reconnect_max_s=1.0, confirmations=0)
        self.messages: list[Message] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None

    def _emit(self, m: Message) -> None:
        with self._lock:
            self.messages.append(m)

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._task = task = self._loop.create_task(self.source.run(self._emit))
        try:
            self._loop.run_until_complete(task)
        except BaseException:  # noqa: BLE001 - cancelled on stop
            pass

    def start(self) -> Feed:
        self._thread.start()
        deadline = time.monotonic() + 20
        while self.source.follower is None and time.monotonic() < deadline:
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.source.stop()
        if self._loop is not None and self._task is not None:
            self._loop.call_soon_threadsafe(self._task.cancel)
        self._thread.join(10)

    def snapshot(self) -> list[Message]:
        with self._lock:
            return list(self.messages)

    def wait(self, pred: Callable[[list[Message]], bool], timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred(self.snapshot()):
                return
            time.sleep(0.01)
        raise TimeoutError("the lab's mempool feed did not show the expected messages in time")


def settle(w3, attack: Attack) -> None:
    """Record where the attack landed and whether it is a sandwich: all three transactions
    succeeded, in one block, victim between the legs (``landed``); otherwise ``failed``."""
    rs = [w3.eth.get_transaction_receipt(t["hash"]) for t in attack.txs]
    attack.block_number = rs[0]["blockNumber"]
    if attack.kind == "arbitrage":  # one transaction: it landed when it did not revert (no profit)
        attack.outcome = "landed" if rs[0]["status"] == 1 else "failed"
        return
    if attack.kind == "frontrun_displacement":  # the copy won, the original reverted, copy first
        copy, original = rs
        attack.outcome = "landed" if (copy["status"] == 1 and original["status"] == 0 and copy["blockNumber"] == original["blockNumber"]
                                      and copy["transactionIndex"] < original["transactionIndex"]) else "failed"
        return
    same_block = len({r["blockNumber"] for r in rs}) == 1
    idx = [r["transactionIndex"] for r in rs]
    ordered = idx[0] < min(idx[1:-1]) and idx[-1] > max(idx[1:-1])  # front first, back last
    attack.outcome = "landed" if all(r["status"] == 1 for r in rs) and same_block and ordered else "failed"


@dataclass
class LabResult:
    seed: int
    blocks: int
    attacks: list[Attack]
    messages: list[Message] = field(default_factory=list)
    honest_txs: int = 0
    interrupted: bool = False


class Lab:
    """Accounts (anvil's defaults, 12 of them): 0 deploys, 1-4 trade honestly, 5 solves bounty
    puzzles, 6-7 operate the sandwich bot, 8 operates the arbitrageur's bot, 9 copies pending
    claims, 10 provides just-in-time liquidity in the CL pool."""

    BOUNTY_EVERY = 4  # a bounty claim in every 4th round

    # lab v2 (families given): anvil's accounts come from the seed (export passes ACCOUNTS_V2 and
    # the seed); 0 deployer, 1-4 traders, 5 solver, 6 arbitrageur, then per attack family
    # MAX_OPERATORS operators, then one account per honest family
    ACCOUNTS_V2 = 40
    MAX_OPERATORS = 5

    def __init__(self, http_url: str, ws_url: str, *, seed: int = 0, attacks: bool = True, n_tokens: int = 2,
                 families: list | None = None, ranges: str = "train"):
        self.families = list(families or [])
        self.ranges = ranges
        if self.families and n_tokens < 3:
            n_tokens = 3  # room for a market maker's two pools and multi-pool honest traders
        self.w3 = Web3(HTTPProvider(http_url))
        self.ws_url = ws_url
        self.seed = seed
        self.attacks_on = attacks
        self.n_tokens = n_tokens
        self.rng = random.Random(seed)
        self.market: Market | None = None

    def setup(self) -> None:
        if self.families:
            return self._setup_v2()
        w3 = self.w3
        w3.provider.make_request(RPCEndpoint("evm_setAutomine"), [True])
        m = self.market = deploy_market(w3, seed=self.seed, n_tokens=self.n_tokens)
        accts: list[str] = list(w3.eth.accounts)  # web3 types accounts as a 1-tuple
        self.traders = accts[1:5]
        for t in self.traders:
            fund(w3, m, t, 500 * 10**18, {tok: 10**30 for tok in m.tokens})
        ops = accts[6:8]
        self.bot_contract = deploy(w3, "Bot", sender=ops[0])
        wait_receipt(w3, self.bot_contract.functions.setOperator(ops[1], True).transact({"from": ops[0]}))
        wait_receipt(w3, m.weth.functions.mint(self.bot_contract.address, 5_000 * 10**18).transact({"from": m.deployer}))
        for tok in m.tokens:
            wait_receipt(w3, tok.functions.mint(self.bot_contract.address, 10**30).transact({"from": m.deployer}))
        self.honest = HonestTraders(w3, m, self.traders, self.rng)
        self.bot = SandwichBot(w3, m, self.bot_contract, ops)
        arb_op = accts[8]
        arb_bot = deploy(w3, "Bot", sender=arb_op)
        wait_receipt(w3, m.weth.functions.mint(arb_bot.address, 5_000 * 10**18).transact({"from": m.deployer}))
        self.arbitrageur = Arbitrageur(w3, m, arb_bot, arb_op)
        self.bounty = deploy(w3, "Bounty", sender=m.deployer)
        self.answers: dict[int, bytes] = {}
        for rnd in range(0, 10_000, self.BOUNTY_EVERY):
            if rnd > 400:
                break
            answer = self.rng.getrandbits(256).to_bytes(32, "big")
            self.answers[rnd] = answer
            wait_receipt(w3, self.bounty.functions.post(rnd, w3.keccak(answer)).transact({"from": m.deployer, "value": 10**17}))
        self.solver = Solver(w3, self.bounty, accts[5], self.rng)
        self.copier = Copier(w3, self.bounty, accts[9])
        jit_op = accts[10]
        jit_bot = deploy(w3, "JitBot", sender=jit_op)
        wait_receipt(w3, m.weth.functions.mint(jit_bot.address, 100_000 * 10**18).transact({"from": m.deployer}))
        wait_receipt(w3, m.cl_token.functions.mint(jit_bot.address, 10**33).transact({"from": m.deployer}))
        self.jit = JitProvider(w3, m, jit_bot, jit_op)
        w3.provider.make_request(RPCEndpoint("evm_setAutomine"), [False])

    def _setup_v2(self) -> None:
        """Lab v2: the families' bots and look-alikes (sim/families.py) on fresh accounts."""
        from mevwatch.sim.families import FamilyBot, LookAlikes, draw

        w3 = self.w3
        w3.provider.make_request(RPCEndpoint("evm_setAutomine"), [True])
        m = self.market = deploy_market(w3, seed=self.seed, n_tokens=self.n_tokens)
        accts: list[str] = list(w3.eth.accounts)
        self.traders = accts[1:5]
        for t in self.traders:
            fund(w3, m, t, 500 * 10**18, {tok: 10**30 for tok in m.tokens})
        self.honest = HonestTraders(w3, m, self.traders, self.rng)
        self.honest.gas_range = (150_000, 500_000)
        arb_bot = deploy(w3, "Bot", sender=accts[6])
        wait_receipt(w3, m.weth.functions.mint(arb_bot.address, 5_000 * 10**18).transact({"from": m.deployer}))
        self.arbitrageur = Arbitrageur(w3, m, arb_bot, accts[6])
        self.family_bots: list[FamilyBot] = []
        nxt = 7
        for fam in (f for f in self.families if f.role == "attack"):
            pool = accts[nxt:nxt + self.MAX_OPERATORS]
            nxt += self.MAX_OPERATORS
            lo, hi = fam.ranges(self.ranges)["operators"]
            ops = pool[: max(1, min(len(pool), round(draw(self.rng, (lo, hi)))))]
            if fam.name == "router_eoa":
                bot = None
                fund(w3, m, ops[0], 5_000 * 10**18, {tok: 10**30 for tok in m.tokens})
            else:
                bot = deploy(w3, "PackedBot" if fam.name == "packed_bot" else "Bot", sender=ops[0])
                for o in ops[1:]:
                    wait_receipt(w3, bot.functions.setOperator(o, True).transact({"from": ops[0]}))
                wait_receipt(w3, m.weth.functions.mint(bot.address, 5_000 * 10**18).transact({"from": m.deployer}))
                for tok in m.tokens:
                    wait_receipt(w3, tok.functions.mint(bot.address, 10**30).transact({"from": m.deployer}))
            self.family_bots.append(FamilyBot(w3, m, fam, self.ranges, bot, ops, self.rng))
        honest_accounts: dict[str, str] = {}
        mm_bot = None
        for fam in (f for f in self.families if f.role == "honest"):
            who = honest_accounts[fam.name] = accts[nxt]
            nxt += 1
            if fam.name == "mm_opaque":
                mm_bot = deploy(w3, "PackedBot", sender=who)
                wait_receipt(w3, m.weth.functions.mint(mm_bot.address, 5_000 * 10**18).transact({"from": m.deployer}))
                for tok in m.tokens:
                    wait_receipt(w3, tok.functions.mint(mm_bot.address, 10**30).transact({"from": m.deployer}))
            else:
                fund(w3, m, who, 500 * 10**18, {tok: 10**30 for tok in m.tokens})
        self.lookalikes = LookAlikes(w3, m, self.families, self.ranges, honest_accounts, mm_bot, self.rng)
        self.bounty = None
        w3.provider.make_request(RPCEndpoint("evm_setAutomine"), [False])

    def _attackers(self) -> list:
        if self.families:
            return [a for b in self.family_bots for a in b.attacks] + self.arbitrageur.attacks
        return self.bot.attacks + self.arbitrageur.attacks + self.copier.attacks + self.jit.attacks

    def run(self, blocks: int, on_round: Callable[[int, list[Message]], None] | None = None) -> LabResult:
        if self.market is None:
            self.setup()
        w3 = self.w3
        feed = Feed(self.ws_url).start()
        honest = 0
        interrupted = False
        done = 0
        try:
            for rnd in range(blocks):
                arbs = self.arbitrageur.act() if self.attacks_on else []
                sent = self.honest.round(self.rng.randint(1, 4))
                sent += [a.txs[0]["hash"] for a in arbs]
                if self.families:
                    sent += self.lookalikes.round()
                elif rnd in self.answers:
                    sent.append(self.solver.claim(self.answers[rnd], rnd))
                honest += len(sent)
                feed.wait(lambda ms: set(sent) <= {m.hash for m in ms if isinstance(m, PendingTx)})
                if self.attacks_on and (not self.families or self.family_bots):
                    snap = feed.snapshot()
                    included = {t.hash for m in snap if isinstance(m, Block) for t in m.transactions}
                    pending = [m for m in snap if isinstance(m, PendingTx) and m.hash not in included]
                    if self.families:  # the attack families take turns (one attack a block, as in the classic lab)
                        new = self.family_bots[rnd % len(self.family_bots)].react(pending)
                    else:
                        self.bot.split = rnd % 2 == 1
                        new = self.bot.react(pending) + self.copier.react(pending) + self.jit.react(pending)
                    mine = {t["hash"] for a in new for t in a.txs if t["role"] not in ("victim", "displaced")}
                    feed.wait(lambda ms: mine <= {m.hash for m in ms if isinstance(m, PendingTx)})
                head = w3.eth.block_number
                w3.provider.make_request(RPCEndpoint("evm_mine"), [])
                feed.wait(lambda ms: any(isinstance(m, Block) and m.number == head + 1 for m in ms))
                for a in self._attackers():
                    if a.block_number is None:
                        settle(w3, a)
                done = rnd + 1
                if on_round is not None:
                    on_round(rnd, feed.snapshot())
        except KeyboardInterrupt:
            interrupted = True  # Ctrl-C: stop after the last whole round, keep what ran
        finally:
            feed.stop()
        attacks = sorted((a for a in self._attackers() if a.outcome is not None),
                         key=lambda a: (a.block_number or 0, a.attack_id))
        return LabResult(self.seed, done, attacks, feed.snapshot(), honest, interrupted)
