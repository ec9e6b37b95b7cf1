"""Transaction graphs for the GNN scorer (issue 5): one heterogeneous graph per block, and one
per sliding window of pending transactions, built from mevwatch's decoded objects.

Plain numpy (no torch needed to build or test them); :meth:`TxGraph.to_heterodata` hands one to
PyTorch Geometric. Feature schema version :data:`SCHEMA_VERSION`; every column is listed in
:data:`NODE_FEATURES` and :data:`EDGE_FEATURES` (docs/gnn.md), and a change to any of them must
bump the version, since a trained model is only valid for the schema it was trained on.

Nodes: ``tx``, ``account``, ``pool``, ``token``. Edges (source type, relation, target type):

- ``(account, sends, tx)``: the transaction's sender;
- ``(tx, sells_into, pool)`` / ``(pool, pays_out, tx)``: a swap's input into and output out of a
  pool, with the log-scaled amount and the direction (is the token the pool's lower address);
- ``(tx, sells, token)`` / ``(tx, buys, token)``: the same swap on the token side (the only
  swap edges of pending transactions, whose pool may be unknown);
- ``(tx, next, tx)``: order within the block (pending: first-seen order);
- ``(tx, same_sender, tx)``: consecutive transactions of one sender;
- ``(account, transfers, account)``: token flow between accounts (log-scaled amount).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mevwatch.monitor.types import WETH_ADDRESS, DecodedBlock

SCHEMA_VERSION = 1
NODE_TYPES = ("tx", "account", "pool", "token")
NODE_FEATURES = {
    "tx": ("position_frac", "log_tip_gwei", "log_gas_used", "success", "n_swaps", "n_transfers", "n_liquidity",
           "pending", "log_value_eth", "to_is_pool_or_router"),
    "account": ("n_sent", "n_transfers_in", "n_transfers_out", "is_swap_recipient"),
    "pool": ("n_swaps", "v2", "v3", "other_protocol"),
    "token": ("is_weth", "n_swaps"),
}
EDGE_TYPES = (
    ("account", "sends", "tx"),
    ("tx", "sells_into", "pool"),
    ("pool", "pays_out", "tx"),
    ("tx", "sells", "token"),
    ("tx", "buys", "token"),
    ("tx", "next", "tx"),
    ("tx", "same_sender", "tx"),
    ("account", "transfers", "account"),
)
EDGE_FEATURES = {
    "sells_into": ("log_amount", "token_is_lower"),
    "pays_out": ("log_amount", "token_is_lower"),
    "sells": ("log_amount",),
    "buys": ("log_amount",),
    "transfers": ("log_amount",),
}
_LN2_256 = 256 * math.log(2)


def log_amount(x: int) -> float:
    """Raw token amounts (up to 2**256) on a 0..1 log scale."""
    return math.log1p(x) / _LN2_256 if x > 0 else 0.0


@dataclass
class TxGraph:
    """One graph: node features, edges, edge features, and which transaction each tx node is."""

    x: dict[str, np.ndarray]
    edge_index: dict[tuple[str, str, str], np.ndarray]
    edge_attr: dict[tuple[str, str, str], np.ndarray]
    tx_hashes: list[str]
    schema_version: int = SCHEMA_VERSION
    meta: dict[str, Any] = field(default_factory=dict)

    def num_nodes(self, kind: str) -> int:
        return int(self.x[kind].shape[0])

    def to_heterodata(self):
        """The same graph as a ``torch_geometric.data.HeteroData`` (needs the ``gnn`` extra)."""
        import torch
        from torch_geometric.data import HeteroData

        d = HeteroData()
        for k, v in self.x.items():
            d[k].x = torch.from_numpy(v)
        for et, ei in self.edge_index.items():
            d[et].edge_index = torch.from_numpy(ei)
            if et in self.edge_attr:
                d[et].edge_attr = torch.from_numpy(self.edge_attr[et])
        return d


class _Builder:
    def __init__(self, native_wrapper: str = WETH_ADDRESS) -> None:
        self.wrapper = native_wrapper  # the chain's wrapped native token: the token feature "is WETH"
        self.ids: dict[str, dict[str, int]] = {k: {} for k in NODE_TYPES}
        self.edges: dict[tuple[str, str, str], list[tuple[int, int]]] = {et: [] for et in EDGE_TYPES}
        self.eattr: dict[tuple[str, str, str], list[tuple[float, ...]]] = {et: [] for et in EDGE_TYPES if et[1] in EDGE_FEATURES}
        self.acc: dict[str, list[list[float]]] = {k: [] for k in NODE_TYPES}

    def node(self, kind: str, key: str) -> int:
        idx = self.ids[kind].get(key)
        if idx is None:
            idx = self.ids[kind][key] = len(self.acc[kind])
            self.acc[kind].append([0.0] * len(NODE_FEATURES[kind]))
        return idx

    def edge(self, et: tuple[str, str, str], a: int, b: int, *attr: float) -> None:
        self.edges[et].append((a, b))
        if et in self.eattr:
            self.eattr[et].append(attr)

    def swap(self, t: int, pool: str | None, token_in: str, token_out: str, amount_in: int, amount_out: int,
             protocol: str | None) -> None:
        ti, to = self.node("token", token_in), self.node("token", token_out)
        self.edge(("tx", "sells", "token"), t, ti, log_amount(amount_in))
        self.edge(("tx", "buys", "token"), t, to, log_amount(amount_out))
        for tok, i in ((token_in, ti), (token_out, to)):
            f = self.acc["token"][i]
            f[0] = 1.0 if tok == self.wrapper else 0.0
            f[1] += 1
        if pool is not None:
            p = self.node("pool", pool)
            lower_in = 1.0 if token_in < token_out else 0.0
            self.edge(("tx", "sells_into", "pool"), t, p, log_amount(amount_in), lower_in)
            self.edge(("pool", "pays_out", "tx"), p, t, log_amount(amount_out), 1.0 - lower_in)
            f = self.acc["pool"][p]
            f[0] += 1
            proto = protocol or ""
            f[1], f[2] = float(proto.endswith("v2")), float(proto.endswith("v3"))
            f[3] = float(not (f[1] or f[2]))
        self.acc["tx"][t][4] += 1

    def order_edges(self, senders: list[str]) -> None:
        last_by: dict[str, int] = {}
        for i, s in enumerate(senders):
            if i:
                self.edge(("tx", "next", "tx"), i - 1, i)
            if s in last_by:
                self.edge(("tx", "same_sender", "tx"), last_by[s], i)
            last_by[s] = i

    def finish(self, tx_hashes: list[str], meta: dict[str, Any]) -> TxGraph:
        x = {k: np.asarray(v, dtype=np.float32).reshape(len(v), len(NODE_FEATURES[k])) for k, v in self.acc.items()}
        for k in ("n_sent", "n_transfers_in", "n_transfers_out"):  # counts on a log scale
            j = NODE_FEATURES["account"].index(k)
            x["account"][:, j] = np.log1p(x["account"][:, j])
        for kind, col in (("pool", 0), ("token", 1)):
            x[kind][:, col] = np.log1p(x[kind][:, col])
        for col in (4, 5, 6):
            x["tx"][:, col] = np.log1p(x["tx"][:, col])
        ei = {et: np.asarray(e, dtype=np.int64).reshape(-1, 2).T.copy() for et, e in self.edges.items()}
        ea = {et: np.asarray(a, dtype=np.float32).reshape(len(a), len(EDGE_FEATURES[et[1]])) for et, a in self.eattr.items()}
        return TxGraph(x, ei, ea, tx_hashes, meta=meta)


def _tip_gwei(effective: int | None, max_prio: int | None, base_fee: int | None) -> float:
    if max_prio is not None:
        return max_prio / 1e9
    if effective is not None and base_fee is not None:
        return max(0, effective - base_fee) / 1e9
    return 0.0


def block_graph(db: DecodedBlock, pools_and_routers: frozenset[str] = frozenset()) -> TxGraph:
    """The graph of one decoded block (transactions in block order)."""
    b = _Builder(db.native_wrapper)
    block = db.block
    n = max(1, len(block.transactions))
    tx_index: dict[str, int] = {}
    senders = []
    swap_pools = {s.pool for s in db.swaps}
    for tx in block.transactions:
        t: int | None = b.node("tx", tx.hash)
        assert t is not None
        tx_index[tx.hash] = t
        f = b.acc["tx"][t]
        f[0] = tx.position / n
        f[1] = math.log1p(_tip_gwei(tx.effective_gas_price, tx.max_priority_fee_per_gas, block.base_fee_per_gas))
        f[2] = math.log1p((tx.gas_used or 0) / 1e5)
        f[3] = 1.0 if tx.success else 0.0
        f[8] = math.log1p(tx.value / 1e18)
        f[9] = 1.0 if tx.to_address is not None and (tx.to_address in swap_pools or tx.to_address in pools_and_routers) else 0.0
        a = b.node("account", tx.from_address)
        b.acc["account"][a][0] += 1
        b.edge(("account", "sends", "tx"), a, t)
        senders.append(tx.from_address)
    for s in db.swaps:
        t = tx_index.get(s.transaction_hash)
        if t is None:
            continue
        b.swap(t, s.pool, s.token_in, s.token_out, s.amount_in, s.amount_out, s.protocol)
        r = b.node("account", s.recipient)
        b.acc["account"][r][3] = 1.0
    for tr in db.transfers:
        t = tx_index.get(tr.transaction_hash)
        if t is not None:
            b.acc["tx"][t][5] += 1
        fa, ta = b.node("account", tr.from_address), b.node("account", tr.to_address)
        b.acc["account"][fa][2] += 1
        b.acc["account"][ta][1] += 1
        b.edge(("account", "transfers", "account"), fa, ta, log_amount(tr.amount))
    for lc in db.liquidity:
        t = tx_index.get(lc.transaction_hash)
        if t is not None:
            b.acc["tx"][t][6] += 1
    b.order_edges(senders)
    return b.finish([tx.hash for tx in block.transactions], {"block_number": block.number, "kind": "block"})


def pending_graph(window: list[tuple[Any, list[Any]]], pool_of=None, native_wrapper: str = WETH_ADDRESS) -> TxGraph:
    """The graph of a window of pending transactions, in first-seen order: ``window`` holds
    (PendingTx, its decoded swap intents from monitor.decode.pending); ``pool_of(intent)``
    names the pool a one-hop intent trades in, when the router's factory is known."""
    b = _Builder(native_wrapper)
    senders = []
    window = sorted(window, key=lambda w: (w[0].first_seen_ns, w[0].hash))
    for p, intents in window:
        t = b.node("tx", p.hash)
        f = b.acc["tx"][t]
        f[1] = math.log1p((p.max_priority_fee_per_gas or 0) / 1e9)
        f[2] = math.log1p((p.gas or 0) / 1e5)
        f[3] = 1.0
        f[7] = 1.0
        f[8] = math.log1p((p.value or 0) / 1e18)
        f[9] = 1.0 if intents else 0.0
        a = b.node("account", p.from_address)
        b.acc["account"][a][0] += 1
        b.edge(("account", "sends", "tx"), a, t)
        senders.append(p.from_address)
        for it in intents:
            pool = pool_of(it) if pool_of is not None and len(it.path) == 2 else None
            b.swap(t, pool, it.token_in, it.token_out, it.amount_in or 0, it.amount_out_min or 0, "uniswap_v2" if pool else None)
    n = max(1, len(window))
    for i in range(len(window)):
        b.acc["tx"][i][0] = i / n
    b.order_edges(senders)
    return b.finish([p.hash for p, _i in window], {"kind": "pending", "size": len(window)})


def merge(graphs: list[TxGraph]) -> TxGraph:
    """Several graphs as one disconnected graph (node indices offset per type): one forward pass
    scores a batch of blocks. Transactions keep their order; ``tx_hashes`` is the concatenation."""
    x = {k: np.concatenate([g.x[k] for g in graphs]) if graphs else np.zeros((0, len(NODE_FEATURES[k])), np.float32)
         for k in NODE_TYPES}
    offsets = {k: 0 for k in NODE_TYPES}
    ei: dict[tuple[str, str, str], list[np.ndarray]] = {et: [] for et in EDGE_TYPES}
    ea: dict[tuple[str, str, str], list[np.ndarray]] = {et: [] for et in EDGE_TYPES if et[1] in EDGE_FEATURES}
    for g in graphs:
        for et in EDGE_TYPES:
            e = g.edge_index[et].copy()
            e[0] += offsets[et[0]]
            e[1] += offsets[et[2]]
            ei[et].append(e)
            if et in ea:
                ea[et].append(g.edge_attr[et])
        for k in NODE_TYPES:
            offsets[k] += g.num_nodes(k)
    return TxGraph(
        x,
        {et: np.concatenate(v, axis=1) if v else np.zeros((2, 0), np.int64) for et, v in ei.items()},
        {et: np.concatenate(v) if v else np.zeros((0, len(EDGE_FEATURES[et[1]])), np.float32) for et, v in ea.items()},
        [h for g in graphs for h in g.tx_hashes], meta={"kind": "batch", "graphs": len(graphs)})
