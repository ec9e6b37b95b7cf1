"""Labelled graphs for training and evaluation.

- Lab datasets (``mevwatch sim export`` folders: recording.jsonl + labels.jsonl): one block graph
  per recorded block and one pending graph per mempool window (the transactions first seen since
  the previous block, plus those still pending), each transaction labelled with its ground-truth
  role. Exact ground truth, disguised attacks included.
- Recorded mainnet blocks (mev-inspect files): block graphs labelled by the exact rules' alerts
  (weak labels: what the rules find, nothing they miss).

Roles (the model's classes): benign, frontrun, backrun, victim, arbitrage. The lab's other roles
map onto them: a JIT add is a front-run leg, its remove a back-run leg; a displacement copy is a
front-run and the copied transaction its victim.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mevwatch.models.graph import TxGraph, block_graph, pending_graph
from mevwatch.monitor.decode import BlockDecoder
from mevwatch.monitor.engine import analyse
from mevwatch.monitor.kinds import BLOCK_KINDS, Kind, TxRole
from mevwatch.monitor.types import Block

ROLES = ("benign", "frontrun", "backrun", "victim", "arbitrage")
ROLE_OF: dict[str, int] = {TxRole.FRONTRUN: 1, TxRole.BACKRUN: 2, TxRole.VICTIM: 3, TxRole.ARBITRAGE: 4, TxRole.LIQUIDITY_ADD: 1,
           TxRole.LIQUIDITY_REMOVE: 2, TxRole.DISPLACER: 1, TxRole.DISPLACED: 3}


@dataclass
class Sample:
    graph: TxGraph
    y: np.ndarray  # role index per tx node
    source: str
    variants: dict[str, str] = field(default_factory=dict)  # tx hash -> attack variant (lab)


def _labels(path: Path) -> tuple[dict[str, int], dict[str, str]]:
    roles: dict[str, int] = {}
    variants: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        a = json.loads(line)
        for t in a["txs"]:
            if t["role"] in ROLE_OF:
                roles[t["hash"]] = ROLE_OF[t["role"]]
                variants[t["hash"]] = a["variant"]
    return roles, variants


def _y(g: TxGraph, roles: dict[str, int]) -> np.ndarray:
    return np.asarray([roles.get(h, 0) for h in g.tx_hashes], dtype=np.int64)


def lab_samples(folder: Path, *, pending: bool = True, decoders: str = "full") -> list[Sample]:
    """Block and mempool-window graphs of one lab export, labelled from its ground truth;
    ``decoders`` as the engine's setting (``transfers``: block graphs from token transfers only)."""
    from mevwatch.monitor.decode.pending import decode_pending
    from mevwatch.streams import envelope
    from mevwatch.monitor.types import PendingTx

    folder = Path(folder)
    from mevwatch.monitor.decode.tokenflow import make_decoder

    roles, variants = _labels(folder / "labels.jsonl")
    decoder = make_decoder(decoders)
    out: list[Sample] = []
    waiting: dict[str, tuple] = {}
    for line in (folder / "recording.jsonl").read_bytes().splitlines():
        msg = envelope.decode(line, source=str(folder))
        if isinstance(msg, PendingTx):
            waiting[msg.hash] = (msg, decode_pending(msg.to_address, msg.input, msg.value))
        elif isinstance(msg, Block):
            if pending and waiting:
                g = pending_graph(list(waiting.values()))
                out.append(Sample(g, _y(g, roles), f"{folder.name}:pending:{msg.number}", variants))
            for tx in msg.transactions:
                waiting.pop(tx.hash, None)
            g = block_graph(decoder.decode(msg))
            out.append(Sample(g, _y(g, roles), f"{folder.name}:block:{msg.number}", variants))
    return out


def mainnet_samples(paths: list[Path], decoders: str = "full") -> list[Sample]:
    """Recorded mainnet blocks, labelled by the exact rules with every decoder (weak labels); the
    graphs built with ``decoders`` (``transfers``: what a model for unknown protocols sees)."""
    from mevwatch.monitor.decode.tokenflow import make_decoder
    from mevwatch.streams.files import read_mev_inspect

    decoder = BlockDecoder()
    graph_decoder = make_decoder(decoders) if decoders != "full" else None
    out = []
    for p in paths:
        block = read_mev_inspect(p, 1)
        done = analyse(decoder, block)  # the engine's decode -> block rules
        db = done.decoded
        roles: dict[str, int] = {}
        for a in done.alerts:
            if a.kind in BLOCK_KINDS:
                for t in a.txs:
                    r = TxRole.ARBITRAGE if a.kind == Kind.BACKRUN and t.role == TxRole.BACKRUN else t.role
                    if r in ROLE_OF:
                        roles[t.hash] = ROLE_OF[r]
        g = block_graph(db if graph_decoder is None else graph_decoder.decode(block))
        out.append(Sample(g, _y(g, roles), f"mainnet:{db.block.number}"))
    return out


def load(paths: list[Path], weak_repeat: int = 1, decoders: str = "full") -> list[Sample]:
    """Every sample under ``paths``: lab exports (folders with labels.jsonl) and mev-inspect blocks
    (the latter ``weak_repeat`` times: a few real blocks among hundreds of lab graphs)."""
    samples: list[Sample] = []
    for p in map(Path, paths):
        if (p / "labels.jsonl").exists():
            samples += lab_samples(p, decoders=decoders)
        elif p.is_dir():
            samples += mainnet_samples(sorted(p.glob("*.json.gz")), decoders) * weak_repeat
        elif p.name.endswith(".json.gz"):
            samples += mainnet_samples([p], decoders) * weak_repeat
        else:
            from mevwatch.monitor.errors import InputError

            raise InputError(f"{p}: neither a lab export (labels.jsonl) nor recorded blocks (*.json.gz)")
    return samples
