"""The model: heterogeneous message passing over transaction graphs (PyTorch Geometric).

Per node type a linear encoder to ``hidden`` dimensions; ``layers`` rounds of ``HeteroConv``
with one GraphSAGE convolution per edge type, in both directions (every relation gets a
reverse twin, so a pool hears from the transactions that trade in it and tells them about the
others); a per-transaction head gives role logits (benign, frontrun, backrun, victim,
arbitrage). Schema-1 edge features are not read by this model (SAGE ignores them); node
features carry counts and sizes. Deterministic under a seed (CPU; see :func:`seed_all`).
"""

from __future__ import annotations

from typing import Any

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


def infer(model: nn.Module, x: dict, edge_index: dict) -> torch.Tensor:
    """The model's logits for inference (no gradients). A :class:`MevGNN` runs :func:`_gnn_infer`: its forward
    pass as the same tensor operations in the same order without PyTorch Geometric's per-call machinery
    (argument routing, size checks, hooks), so on a CPU the logits are bitwise those of ``model(x, edge_index)``
    (tests/models/test_model.py checks it on every shared block, a batched graph, a block missing relations and
    another model's weights) at about three quarters of the CPU time of a block's forward pass (docs/benchmarks.md,
    gnn). On CUDA, scatter_add_ is not bitwise reproducible in either path. Training keeps the module's forward."""
    with torch.no_grad():
        if type(model) is MevGNN:
            return _gnn_infer(model, x, edge_index)
        return model(x, edge_index)


def _gnn_infer(model: MevGNN, x: dict, edge_index: dict) -> torch.Tensor:
    # HeteroConv: every relation in ALL_EDGES order (its module dict's), its SAGEConv (mean aggregation of the
    # sources' states into each destination: PyG's scatter "mean"; lin_l of that plus lin_r of the destination's
    # state), the relations into one node type summed as PyG's group("sum") does (stack, then sum).
    # The in-degree counts and the expanded index depend on the edges alone: computed once for every layer.
    h = {k: torch.relu(model.enc[k](v)) for k, v in x.items()}
    h0 = h["tx"]
    present = []
    for et in ALL_EDGES:
        e = edge_index.get(et)
        if e is None or not e.numel():
            continue
        n = h[et[2]].size(0)
        count = h[et[0]].new_zeros(n)
        count.scatter_add_(0, e[1], h[et[0]].new_ones(e.size(1)))
        present.append((et, e[0], e[1].view(-1, 1).expand(e.size(1), model.hidden), count.clamp(min=1).view(-1, 1), n))
    for conv in model.convs:
        outs: dict[str, list[torch.Tensor]] = {}
        for et, src, index, count, n in present:
            sage: Any = conv.convs[et]  # type: ignore[index]  # PyG's module dict takes edge-type tuples
            xd = h[et[2]]
            msg = h[et[0]].index_select(0, src)
            agg = msg.new_zeros((n, msg.size(1))).scatter_add_(0, index, msg)
            agg = agg / count.expand_as(agg)
            outs.setdefault(et[2], []).append(sage.lin_l(agg) + sage.lin_r(xd))
        summed = {d: v[0] if len(v) == 1 else torch.stack(v, dim=0).sum(dim=0) for d, v in outs.items()}
        h = {k: torch.relu(summed[k]) + h[k] if k in summed else h[k] for k in h}
    return model.head(torch.cat([h["tx"], h0], dim=1))


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
