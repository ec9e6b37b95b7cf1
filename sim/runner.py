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

    def __init__(self, http_url: str, ws_url: str, *, seed: int = 0, attacks: bool = True, n_tokens: int = 2):
        self.w3 = Web3(HTTPProvider(http_url))
        self.ws_url = ws_url
        self.seed = seed
        self.attacks_on = attacks
        self.n_tokens = n_tokens
        self.rng = random.Random(seed)
        self.market: Market | None = None

    def setup(self) -> None:
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
                if rnd in self.answers:
                    sent.append(self.solver.claim(self.answers[rnd], rnd))
                honest += len(sent)
                feed.wait(lambda ms: set(sent) <= {m.hash for m in ms if isinstance(m, PendingTx)})
                if self.attacks_on:
                    self.bot.split = rnd % 2 == 1
                    snap = feed.snapshot()
                    included = {t.hash for m in snap if isinstance(m, Block) for t in m.transactions}
                    pending = [m for m in snap if isinstance(m, PendingTx) and m.hash not in included]
                    new = self.bot.react(pending) + self.copier.react(pending) + self.jit.react(pending)
                    mine = {t["hash"] for a in new for t in a.txs if t["role"] not in ("victim", "displaced")}
                    feed.wait(lambda ms: mine <= {m.hash for m in ms if isinstance(m, PendingTx)})
                head = w3.eth.block_number
                w3.provider.make_request(RPCEndpoint("evm_mine"), [])
                feed.wait(lambda ms: any(isinstance(m, Block) and m.number == head + 1 for m in ms))
                for a in self.bot.attacks + self.arbitrageur.attacks + self.copier.attacks + self.jit.attacks:
                    if a.block_number is None:
                        settle(w3, a)
                done = rnd + 1
                if on_round is not None:
                    on_round(rnd, feed.snapshot())
        except KeyboardInterrupt:
            interrupted = True  # Ctrl-C: stop after the last whole round, keep what ran
        finally:
            feed.stop()
        attacks = sorted((a for a in self.bot.attacks + self.arbitrageur.attacks + self.copier.attacks + self.jit.attacks if a.outcome is not None),
                         key=lambda a: (a.block_number or 0, a.attack_id))
        return LabResult(self.seed, done, attacks, feed.snapshot(), honest, interrupted)
