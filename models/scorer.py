"""The graph model in the pipeline: scores every block and every mempool window, and fuses its
verdict with the exact rules' alerts.

- Rule alerts get ``score`` = the model's mean probability of each attacker leg's role, its
  ``model_hash``, and ``detector = "both"`` when that score reaches the threshold (else ``rules``).
- Mempool windows: a pair of pending transactions the model marks front-run and back-run (both
  at or above the threshold) from one sender or to one contract, with the transactions it marks
  victims seen before the front-run, becomes a ``sandwich_attempt`` with ``detector = "gnn"``
  (``both`` when the mempool rule raised the same attempt). This is what the rules miss: a
  sandwich across two pools through a bot contract, whose legs the calldata decoder cannot read.
- Which of these model-only alerts are raised follows ``model_alerts`` (``gnn.model_alerts``):
  ``pending`` (the default: mempool attempts only), ``all``, ``none``. The default comes from
  docs/model-eval/lab-v2.md: in blocks, on bots training never saw, the model's own alerts added
  false positives and no attack the rules missed.
- Blocks (``model_alerts: all``): the same pairing over a block's transactions (front-run and back-run marked, from one
  sender or to one contract, victims marked between them) becomes a ``sandwich`` with
  ``detector = "gnn"``, and a transaction marked arbitrage an ``arbitrage``, when no rule alert
  already names those legs. Both through the plausibility guard (:func:`plausible_attacker`): an
  attacker role needs a matching leg (a sandwich's other side) or, alone, at least two swaps, and
  a transaction with no swap and no transfer of value is never an attacker.
- Rule alerts are scored by the model's probability of the role the training labels gave their
  legs: a ``backrun`` alert's leg (an arbitrage right behind its target; recorded blocks label it
  arbitrage) by p(arbitrage), a sandwich's back-run by p(backrun).
- ``explain``: when set (a callable), every scored block and mempool window writes one record per
  transaction (block, hash, position, each role's probability, the alerts that used it) for audit
  (``mevwatch replay --gnn --explain FILE``).
The model is loaded once; ``device`` auto picks CUDA when there is one.

In the engine (monitor/scoring.py's protocol) the mempool window is scored when a mempool rule
raises an alert (to fuse it at once), after every ``every`` new pending transactions, and before
each block: points fixed by the message sequence alone, so replays and the daemon agree.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from pathlib import Path
from collections.abc import Callable
from typing import Any

import numpy as np

from mevwatch.models.dataset import ROLES
from mevwatch.models.graph import block_graph, merge, pending_graph
from mevwatch.monitor import chains
from mevwatch.monitor.alerts import Alert, AlertTx
from mevwatch.monitor.log import get_logger

log = get_logger("mevwatch.gnn")
ROLE_IDX = {r: i for i, r in enumerate(ROLES)}
LEG_ROLE = {"frontrun": "frontrun", "backrun": "backrun", "victim": "victim", "arbitrage": "arbitrage",
            "liquidity_add": "frontrun", "liquidity_remove": "backrun", "displacer": "frontrun", "displaced": "victim"}
ATTACKER_LEGS = ("frontrun", "backrun", "arbitrage")


def leg_role(kind: str, role: str) -> str | None:
    """The model role a rule alert's leg is scored by: the role its training label has. A ``backrun``
    alert is an arbitrage right behind its target, labelled arbitrage in training (models/dataset.py)."""
    if kind == "backrun" and role == "backrun":
        return "arbitrage"
    return LEG_ROLE.get(role)


def tx_facts(decoded) -> dict[str, tuple[int, int]]:
    """Per transaction of a decoded block: (swaps, transfers of value: token transfers, plus one for
    ETH sent with the call)."""
    facts = {t.hash: (0, 1 if t.value else 0) for t in decoded.block.transactions}
    for sw in decoded.swaps:
        n, v = facts.get(sw.transaction_hash, (0, 0))
        facts[sw.transaction_hash] = (n + 1, v)
    for tr in decoded.transfers:
        n, v = facts.get(tr.transaction_hash, (0, 0))
        facts[tr.transaction_hash] = (n, v + 1)
    return facts


def plausible_attacker(role: str, swaps: int, transfers: int, matched: bool) -> bool:
    """The plausibility guard for a model-only alert's attacker leg (docs/gnn.md): a transaction with
    no swap and no transfer of value is never an attacker; a front-run or back-run needs its
    matching leg; an arbitrage (a leg standing alone) needs at least two swaps."""
    if swaps == 0 and transfers == 0:
        return False
    if role in ("frontrun", "backrun"):
        return matched
    return swaps >= 2


class Scorer:
    SEEN_MAX = 100_000  # model-only attempts remembered (each raised once); oldest forgotten first

    def __init__(self, path: Path | None = None, device: str = "auto", threshold: float = 0.9, window: int = 64,
                 every: int = 8, chain_id: int = 1, model_alerts: str = "pending"):
        import torch

        from mevwatch.models import artifact

        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = device
        self.model, self.meta = artifact.load(path or artifact.DEFAULT, device)
        self.model_hash: str = self.meta["model_hash"]
        self.threshold, self.window, self.every, self.chain_id = threshold, window, every, chain_id
        self.native_wrapper: str | None = None  # the engine's (Engine.share_wrapper); None: the chain's known one
        if model_alerts not in ("all", "pending", "none"):
            raise ValueError(f"model_alerts must be all, pending or none, not {model_alerts!r}")
        self.model_alerts = model_alerts  # which model-only alerts it raises (gnn.model_alerts)
        self._pending: list[tuple[Any, list]] = []  # recent pending transactions and their decoded intents
        self._since = 0  # pending transactions since the window was last scored
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._torch = torch
        self.explain: Callable[[dict], None] | None = None  # audit records (see the module doc)
        self._windows = 0
        from mevwatch.monitor import metrics

        metrics.MODEL.info({"model_hash": self.model_hash, "device": device, "detector": "rules+gnn"})
        self._latency = metrics.GNN_LATENCY.labels(device)
        log.info("graph model loaded", model_hash=self.model_hash, device=device)

    def _probs(self, g) -> np.ndarray:
        from mevwatch.models.model import ablate, infer, to_data

        with self._torch.no_grad():
            x, ei = to_data(g, self.device)
            logits = infer(self.model, ablate(x, self.meta.get("ablate", [])), ei)
            return self._torch.softmax(logits, dim=1).cpu().numpy()

    def score_block(self, decoded) -> dict[str, np.ndarray]:
        t = time.perf_counter()
        g = block_graph(decoded)
        p = self._probs(g) if g.tx_hashes else np.zeros((0, len(ROLES)))
        self._latency.observe(time.perf_counter() - t)
        return dict(zip(g.tx_hashes, p))

    def score_blocks(self, decoded: list) -> list[dict[str, np.ndarray]]:
        """Several blocks in one forward pass (replays, or a detect process catching up)."""
        t = time.perf_counter()
        graphs = [block_graph(d) for d in decoded]
        big = merge(graphs)
        p = self._probs(big) if big.tx_hashes else np.zeros((0, len(ROLES)))
        self._latency.observe(time.perf_counter() - t)
        out, i = [], 0
        for g in graphs:
            n = len(g.tx_hashes)
            out.append(dict(zip(g.tx_hashes, p[i:i + n])))
            i += n
        return out

    def score_window(self, window: list[tuple[Any, list]]) -> tuple[list, dict[str, np.ndarray]]:
        t = time.perf_counter()
        g = pending_graph(window[-self.window:], native_wrapper=chains.native_wrapper(self.chain_id, self.native_wrapper))
        p = self._probs(g) if g.tx_hashes else np.zeros((0, len(ROLES)))
        self._latency.observe(time.perf_counter() - t)
        return g.tx_hashes, dict(zip(g.tx_hashes, p))

    # --- the engine's scorer protocol (monitor/scoring.py) -----------------------------------
    def on_pending(self, p: Any, rule_alerts: list[Alert]) -> list[Alert]:
        from mevwatch.monitor.decode.pending import decode_pending

        self._pending.append((p, decode_pending(p.to_address, p.input, p.value)))
        if len(self._pending) > 4 * self.window:
            self._pending = self._pending[-self.window:]
        self._since += 1
        if rule_alerts or self._since >= self.every:
            return self._score_window(rule_alerts)
        return []

    def before_block(self) -> list[Alert]:
        return self._score_window([]) if self._since else []

    def on_blocks(self, items: list[tuple[Any, list[Alert]]]) -> None:
        if self._pending:  # the window holds what is still pending
            mined = {t.hash for db, _a in items for t in db.block.transactions}
            self._pending = [w for w in self._pending if w[0].hash not in mined]
        probs = self.score_blocks([db for db, _a in items]) if len(items) > 1 else [self.score_block(items[0][0])] if items else []
        for (db, alerts), pr in zip(items, probs):
            self.fuse(alerts, pr)
            if self.model_alerts == "all":
                alerts += self.block_alerts(db, pr, alerts)  # the engine's list: they go on as included alerts
            if self.explain is not None:
                self._explain_block(db, pr, alerts)

    def _score_window(self, rule_alerts: list[Alert]) -> list[Alert]:
        """Fuse the mempool rules' new alerts and return the attempts only the model sees (each once)."""
        self._since = 0
        order, probs = self.score_window(self._pending)
        self.fuse(rule_alerts, probs)
        for a in rule_alerts:
            self._remember(a.alert_id)
        out = []
        mine = self.attempts(self._pending[-self.window:], order, probs, self.chain_id) if self.model_alerts != "none" else []
        for a in mine:
            if a.alert_id not in self._seen:
                self._remember(a.alert_id)
                out.append(a)
        self._windows += 1
        if self.explain is not None:
            used = self._used(rule_alerts + out)
            for i, h in enumerate(order):
                self.explain(self._record(None, h, i, probs[h], used.get(h, []), stage="pending", window=self._windows))
        return out

    def _remember(self, alert_id: str) -> None:
        self._seen[alert_id] = None
        if len(self._seen) > self.SEEN_MAX:
            self._seen.popitem(last=False)

    def fuse(self, alerts: list[Alert], probs: dict[str, np.ndarray]) -> None:
        """Score the rules' alerts with the model (in place); every alert names the model."""
        for a in alerts:
            a.model_hash = self.model_hash
            roles = [(t.hash, leg_role(a.kind, t.role)) for t in a.txs]
            legs = [probs[h][ROLE_IDX[r]] for h, r in roles if h in probs and r in ATTACKER_LEGS]
            if not legs:
                continue
            a.score = round(float(np.mean(legs)), 6)
            a.detector = "both" if a.score >= self.threshold else "rules"

    def attempts(self, window: list[tuple[Any, list]], order: list[str], probs: dict[str, np.ndarray], chain_id: int) -> list[Alert]:
        """Sandwich attempts the model sees in a mempool window."""
        by_hash = {p.hash: p for p, _i in window}
        fr, br, vi = ROLE_IDX["frontrun"], ROLE_IDX["backrun"], ROLE_IDX["victim"]
        # the guard, as far as the mempool shows it: a leg calls a contract or carries value (its
        # transfers are not known before inclusion); the pairing below is the matching leg
        acts = {h for h in order if len(by_hash[h].input) >= 10 or by_hash[h].value}
        fronts = [h for h in order if probs[h][fr] >= self.threshold and h in acts]
        backs = [h for h in order if probs[h][br] >= self.threshold and h in acts]
        out = []
        used: set[str] = set()
        pos = {h: i for i, h in enumerate(order)}
        for f in fronts:
            pf = by_hash[f]
            for b in backs:  # the nearest back-run after it from the same sender or to the same contract
                pb = by_hash[b]
                if b in used or pos[b] <= pos[f] or not (pb.from_address == pf.from_address or (pb.to_address and pb.to_address == pf.to_address)):
                    continue
                before = order[: order.index(f)]
                victims = [h for h in before if probs[h][vi] >= self.threshold][-3:]
                if not victims:
                    continue
                used.add(b)
                score = float(min(probs[f][fr], probs[b][br]))
                txs = [AlertTx(f, None, "frontrun")] + [AlertTx(v, None, "victim") for v in victims] + [AlertTx(b, None, "backrun")]
                out.append(Alert(
                    kind="sandwich_attempt", stage="pending", chain_id=chain_id, block_number=None, block_hash=None, txs=txs,
                    attackers=sorted({pf.from_address, pb.from_address} | ({pf.to_address} if pf.to_address == pb.to_address and pf.to_address else set())),
                    victims=sorted({by_hash[v].from_address for v in victims}), pools=[], tokens=[], profit=None,
                    victim_loss=None, gas_cost_wei=None,
                    evidence={"model": {"frontrun_p": round(float(probs[f][fr]), 6), "backrun_p": round(float(probs[b][br]), 6),
                                        "victim_p": [round(float(probs[v][vi]), 6) for v in victims]},
                              "window": len(order), "first_seen_ns": by_hash[f].first_seen_ns},
                    detector="gnn", score=round(score, 6), model_hash=self.model_hash))
                break
        return out


    def block_alerts(self, decoded, probs: dict[str, np.ndarray], rule_alerts: list[Alert]) -> list[Alert]:
        """Model-only alerts in an included block (see the module doc), each through the guard."""
        b = decoded.block
        claimed = {t.hash for a in rule_alerts for t in a.txs if t.role != "victim"}
        facts = tx_facts(decoded)
        txs = [t for t in b.transactions if t.hash in probs and t.hash not in claimed]
        fr, br, vi, ar = (ROLE_IDX[r] for r in ("frontrun", "backrun", "victim", "arbitrage"))
        th = self.threshold

        def ok(t, role: str, matched: bool) -> bool:
            return plausible_attacker(role, *facts.get(t.hash, (0, 0)), matched=matched)

        out: list[Alert] = []
        used: set[str] = set()
        fronts = [t for t in txs if probs[t.hash][fr] >= th]
        backs = [t for t in txs if probs[t.hash][br] >= th]
        for f in fronts:
            for bk in backs:  # the nearest back-run after it, from the same sender or to the same contract
                if bk.hash in used or bk.position <= f.position or not (
                        bk.from_address == f.from_address or (bk.to_address and bk.to_address == f.to_address)):
                    continue
                victims = [t for t in b.transactions if f.position < t.position < bk.position
                           and t.hash in probs and probs[t.hash][vi] >= th and t.from_address != f.from_address]
                if not victims or not (ok(f, "frontrun", True) and ok(bk, "backrun", True)):
                    continue
                used |= {f.hash, bk.hash}
                score = float(min(probs[f.hash][fr], probs[bk.hash][br]))
                out.append(Alert(
                    kind="sandwich", stage="included", chain_id=b.chain_id, block_number=b.number, block_hash=b.hash,
                    txs=[AlertTx(f.hash, f.position, "frontrun"), *(AlertTx(v.hash, v.position, "victim") for v in victims),
                         AlertTx(bk.hash, bk.position, "backrun")],
                    attackers=sorted({f.from_address, bk.from_address}), victims=sorted({v.from_address for v in victims}),
                    pools=[], tokens=[], profit=None, victim_loss=None, gas_cost_wei=None,
                    evidence={"model": {"frontrun_p": round(float(probs[f.hash][fr]), 6), "backrun_p": round(float(probs[bk.hash][br]), 6),
                                        "victim_p": [round(float(probs[v.hash][vi]), 6) for v in victims]}},
                    detector="gnn", score=round(score, 6), model_hash=self.model_hash))
                break
        for t in txs:
            p = float(probs[t.hash][ar])
            if t.hash in used or p < th or not ok(t, "arbitrage", False):
                continue
            out.append(Alert(
                kind="arbitrage", stage="included", chain_id=b.chain_id, block_number=b.number, block_hash=b.hash,
                txs=[AlertTx(t.hash, t.position, "arbitrage")], attackers=[t.from_address], victims=[], pools=[], tokens=[],
                profit=None, victim_loss=None, gas_cost_wei=None,
                evidence={"model": {"arbitrage_p": round(p, 6)}, "swaps": facts[t.hash][0]},
                detector="gnn", score=round(p, 6), model_hash=self.model_hash))
        return out

    # --- audit records ----------------------------------------------------------------------
    @staticmethod
    def _used(alerts: list[Alert]) -> dict[str, list[str]]:
        """tx hash -> the alerts that read its probabilities (a rule alert's attacker legs, every
        transaction of a model-only alert)."""
        out: dict[str, list[str]] = {}
        for a in alerts:
            for t in a.txs:
                if a.detector == "gnn" or leg_role(a.kind, t.role) in ATTACKER_LEGS:
                    out.setdefault(t.hash, []).append(a.alert_id)
        return out

    def _record(self, block: int | None, tx: str, position: int, p: np.ndarray, alerts: list[str], **extra: Any) -> dict:
        return {"block": block, "tx": tx, "position": position, **extra,
                "probs": {r: round(float(x), 6) for r, x in zip(ROLES, p)}, "used": bool(alerts), "alerts": alerts,
                "model_hash": self.model_hash}

    def _explain_block(self, decoded, probs: dict[str, np.ndarray], alerts: list[Alert]) -> None:
        assert self.explain is not None
        used = self._used(alerts)
        for t in decoded.block.transactions:
            if t.hash in probs:
                self.explain(self._record(decoded.block.number, t.hash, t.position, probs[t.hash], used.get(t.hash, []), stage="included"))


def explain_file(path: Path) -> Callable[[dict], None]:
    """An ``explain`` callable writing one JSON line per record to ``path`` (line-buffered: every
    record is in the file once written, however the process ends)."""
    import json

    fh = open(path, "w", buffering=1)  # noqa: SIM115 (lives as long as the scorer)

    def write(rec: dict) -> None:
        fh.write(json.dumps(rec, sort_keys=True) + "\n")

    return write


def model_off_reason(settings: Any) -> str | None:
    """Why the graph model is off under these settings (None: it is on). The same answer for every
    entry point: ``run``, ``demo`` and ``replay`` all follow ``gnn.enabled`` (on by default where the
    gnn extra is installed); ``replay --gnn/--no-gnn`` overrides it for one replay."""
    if not settings.gnn.enabled:
        return "gnn.enabled is false"
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        return "the gnn extra is not installed"
    return None


def load_scorer(settings: Any, device: str | None = None) -> Scorer | None:
    """The scorer the settings ask for; None (exact rules only) when off or torch is not installed."""
    g = settings.gnn
    if not g.enabled:
        return None
    try:
        import torch  # noqa: F401
    except ImportError:
        log.info("graph model off: install the gnn extra (pip install 'mevwatch[gnn]') to score with it")
        return None
    return Scorer(g.model, device or settings.device, g.threshold, g.window, chain_id=settings.chain_id, model_alerts=g.model_alerts)
