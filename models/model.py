"""The model: heterogeneous message passing over transaction graphs (PyTorch Geometric).

Per node type a linear encoder to ``hidden`` dimensions; ``layers`` rounds of ``HeteroConv``
with one GraphSAGE convolution per edge type, in both directions (every relation gets a
reverse twin, so a pool hears from the transactions that trade in it and tells them about the
others); a per-transaction head gives role logits (benign, frontrun, backrun, victim,
arbitrage). Schema-1 edge features are not read by this model (SAGE ignores them); node
features carry counts and sizes. Deterministic under a seed (CPU; see :func:`seed_all`).
"""

from __future__ import annotations

import torch
from torch import nn
from torch_geometric.nn import HeteroConv, SAGEConv

from mevwatch.models.dataset import ROLES
from mevwatch.models.graph import EDGE_TYPES, NODE_FEATURES, NODE_TYPES, TxGraph

ALL_EDGES = tuple(EDGE_TYPES) + tuple((d, f"rev_{r}", s) for s, r, d in EDGE_TYPES)


def seed_all(seed: int) -> None:
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def to_data(g: TxGraph, device: str | torch.device = "cpu") -> tuple[dict, dict]:
    """(x_dict, edge_index_dict) with reverse edges, on ``device``."""
    x = {k: torch.from_numpy(v).to(device) for k, v in g.x.items()}
    ei = {}
    for (s, r, d), e in g.edge_index.items():
        t = torch.from_numpy(e).to(device)
        ei[(s, r, d)] = t
        ei[(d, f"rev_{r}", s)] = t.flip(0)
    return x, ei


class MevGNN(nn.Module):
    arch = "gnn"

    def __init__(self, hidden: int = 48, layers: int = 2):
        super().__init__()
        self.hidden, self.layers = hidden, layers
        self.enc = nn.ModuleDict({k: nn.Linear(len(NODE_FEATURES[k]), hidden) for k in NODE_TYPES})
        self.convs = nn.ModuleList(
            HeteroConv({et: SAGEConv((hidden, hidden), hidden) for et in ALL_EDGES}, aggr="sum") for _ in range(layers))
        self.head = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.ReLU(), nn.Linear(hidden, len(ROLES)))

    def forward(self, x: dict, edge_index: dict) -> torch.Tensor:
        h = {k: torch.relu(self.enc[k](v)) for k, v in x.items()}
        h0 = h["tx"]
        for conv in self.convs:
            # node types without incoming edges in this graph keep their state
            out = conv(h, {k: v for k, v in edge_index.items() if v.numel()})
            h = {k: torch.relu(out[k]) + h[k] if k in out else h[k] for k in h}
        return self.head(torch.cat([h["tx"], h0], dim=1))


class TxMLP(nn.Module):
    """The per-transaction baseline of ``mevwatch eval``: the same role head on each transaction's own
    features (the ``tx`` node's), no edges, no neighbours. Whatever it matches, the graph adds nothing."""

    arch = "mlp"

    def __init__(self, hidden: int = 48, layers: int = 2):
        super().__init__()
        self.hidden, self.layers = hidden, layers
        dims = [len(NODE_FEATURES["tx"])] + [hidden] * layers
        mods: list[nn.Module] = []
        for a, b in zip(dims, dims[1:]):
            mods += [nn.Linear(a, b), nn.ReLU()]
        self.body = nn.Sequential(*mods)
        self.head = nn.Linear(hidden, len(ROLES))

    def forward(self, x: dict, edge_index: dict) -> torch.Tensor:  # noqa: ARG002 - edges unused on purpose
        return self.head(self.body(x["tx"]))


ARCHS = {"gnn": MevGNN, "mlp": TxMLP}


def ablate(x: dict, columns: list[str]) -> dict:
    """``x`` with the named ``tx`` feature columns zeroed (a model trained without them: its
    metadata's ``ablate`` list, applied in training and at every inference)."""
    if not columns:
        return x
    idx = [NODE_FEATURES["tx"].index(c) for c in columns]
    tx = x["tx"].clone()
    tx[:, idx] = 0.0
    return {**x, "tx": tx}
