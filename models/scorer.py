"""The graph model in the pipeline: scores every block and every mempool window, and fuses its
verdict with the exact rules' alerts.

- Rule alerts get ``score`` = the model's mean probability of each attacker leg's role, its
  ``model_hash``, and ``detector = "both"`` when that score reaches the threshold (else ``rules``).
- Mempool windows: a pair of pending transactions the model marks front-run and back-run (both
  at or above the threshold) from one sender or to one contract, with the transactions it marks
  victims seen before the front-run, becomes a ``sandwich_attempt`` with ``detector = "gnn"``
  (``both`` when the mempool rule raised the same attempt). This is what the rules miss: a
  sandwich across two pools through a bot contract, whose legs the calldata decoder cannot read.
The model is loaded once; ``device`` auto picks CUDA when there is one.

In the engine (monitor/scoring.py's protocol) the mempool window is scored when a mempool rule
raises an alert (to fuse it at once), after every ``every`` new pending transactions, and before
each block: points fixed by the message sequence alone, so replays and the daemon agree.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from mevwatch.models.dataset import ROLES
from mevwatch.models.graph import block_graph, merge, pending_graph
from mevwatch.monitor.alerts import Alert, AlertTx
from mevwatch.monitor.log import get_logger

log = get_logger("mevwatch.gnn")
ROLE_IDX = {r: i for i, r in enumerate(ROLES)}
LEG_ROLE = {"frontrun": "frontrun", "backrun": "backrun", "victim": "victim", "arbitrage": "arbitrage",
            "liquidity_add": "frontrun", "liquidity_remove": "backrun", "displacer": "frontrun", "displaced": "victim"}


class Scorer:
    SEEN_MAX = 100_000  # model-only attempts remembered (each raised once); oldest forgotten first

    def __init__(self, path: Path | None = None, device: str = "auto", threshold: float = 0.9, window: int = 64,
                 every: int = 8, chain_id: int = 1):
        import torch

        from mevwatch.models import artifact

        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = device
        self.model, self.meta = artifact.load(path or artifact.DEFAULT, device)
        self.model_hash: str = self.meta["model_hash"]
        self.threshold, self.window, self.every, self.chain_id = threshold, window, every, chain_id
        self._pending: list[tuple[Any, list]] = []  # recent pending transactions and their decoded intents
        self._since = 0  # pending transactions since the window was last scored
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._torch = torch
        from mevwatch.monitor import metrics

        metrics.MODEL.info({"model_hash": self.model_hash, "device": device, "detector": "rules+gnn"})
        self._latency = metrics.GNN_LATENCY.labels(device)
        log.info("graph model loaded", model_hash=self.model_hash, device=device)

    def _probs(self, g) -> np.ndarray:
        from mevwatch.models.model import to_data

        with self._torch.no_grad():
            logits = self.model(*to_data(g, self.device))
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
        g = pending_graph(window[-self.window:])
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
        for (_db, alerts), pr in zip(items, probs):
            self.fuse(alerts, pr)

    def _score_window(self, rule_alerts: list[Alert]) -> list[Alert]:
        """Fuse the mempool rules' new alerts and return the attempts only the model sees (each once)."""
        self._since = 0
        order, probs = self.score_window(self._pending)
        self.fuse(rule_alerts, probs)
        for a in rule_alerts:
            self._remember(a.alert_id)
        out = []
        for a in self.attempts(self._pending[-self.window:], order, probs, self.chain_id):
            if a.alert_id not in self._seen:
                self._remember(a.alert_id)
                out.append(a)
        return out

    def _remember(self, alert_id: str) -> None:
        self._seen[alert_id] = None
        if len(self._seen) > self.SEEN_MAX:
            self._seen.popitem(last=False)

    def fuse(self, alerts: list[Alert], probs: dict[str, np.ndarray]) -> None:
        """Score the rules' alerts with the model (in place); every alert names the model."""
        for a in alerts:
            a.model_hash = self.model_hash
            legs = [probs[t.hash][ROLE_IDX[LEG_ROLE[t.role]]] for t in a.txs
                    if t.hash in probs and LEG_ROLE.get(t.role) in ("frontrun", "backrun", "arbitrage")]
            if not legs:
                continue
            a.score = round(float(np.mean(legs)), 6)
            a.detector = "both" if a.score >= self.threshold else "rules"

    def attempts(self, window: list[tuple[Any, list]], order: list[str], probs: dict[str, np.ndarray], chain_id: int) -> list[Alert]:
        """Sandwich attempts the model sees in a mempool window."""
        by_hash = {p.hash: p for p, _i in window}
        fr, br, vi = ROLE_IDX["frontrun"], ROLE_IDX["backrun"], ROLE_IDX["victim"]
        fronts = [h for h in order if probs[h][fr] >= self.threshold]
        backs = [h for h in order if probs[h][br] >= self.threshold]
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
    return Scorer(g.model, device or settings.device, g.threshold, g.window, chain_id=settings.chain_id)
