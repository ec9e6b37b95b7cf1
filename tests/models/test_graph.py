"""Transaction graphs (models/graph.py) from real decoded mainnet blocks and a real lab mempool."""

from __future__ import annotations

import numpy as np
import pytest

from mevwatch.models.graph import EDGE_FEATURES, EDGE_TYPES, NODE_FEATURES, SCHEMA_VERSION, block_graph, log_amount, pending_graph
from mevwatch.monitor.detect import detect_block


def check_shapes(g) -> None:
    assert g.schema_version == SCHEMA_VERSION
    for kind, cols in NODE_FEATURES.items():
        assert g.x[kind].shape == (g.num_nodes(kind), len(cols)) and g.x[kind].dtype == np.float32
        assert np.isfinite(g.x[kind]).all()
    for et in EDGE_TYPES:
        ei = g.edge_index[et]
        assert ei.shape[0] == 2 and ei.dtype == np.int64
        if ei.shape[1]:
            assert ei[0].max() < g.num_nodes(et[0]) and ei[1].max() < g.num_nodes(et[2])
        if et[1] in EDGE_FEATURES:
            assert g.edge_attr[et].shape == (ei.shape[1], len(EDGE_FEATURES[et[1]]))
            assert ((g.edge_attr[et] >= 0) & (g.edge_attr[et] <= 1)).all()


@pytest.mark.fast
def test_block_graph_of_a_real_sandwich_block(decode_block):
    db = decode_block(12775690)
    g = block_graph(db)
    check_shapes(g)
    assert g.tx_hashes == [t.hash for t in db.block.transactions] and g.num_nodes("tx") == len(db.block.transactions)
    assert g.num_nodes("pool") == len({s.pool for s in db.swaps})
    assert g.edge_index[("tx", "sells_into", "pool")].shape[1] == len(db.swaps)
    assert g.edge_index[("tx", "next", "tx")].shape[1] == len(db.block.transactions) - 1
    # the sandwich's front-run, victims and back-run all trade in one pool node
    (alert,) = [a for a in detect_block(db) if a.kind == "sandwich"]
    idx = {h: i for i, h in enumerate(g.tx_hashes)}
    ei = g.edge_index[("tx", "sells_into", "pool")]
    pools_of = {t.hash: set(ei[1][ei[0] == idx[t.hash]].tolist()) for t in alert.txs}
    assert set.intersection(*pools_of.values()), pools_of
    # deterministic
    g2 = block_graph(db)
    for k in g.x:
        assert np.array_equal(g.x[k], g2.x[k])
    for et in EDGE_TYPES:
        assert np.array_equal(g.edge_index[et], g2.edge_index[et])


@pytest.mark.fast
def test_every_recorded_block_builds(decode_block, all_block_numbers):
    for n in all_block_numbers:
        check_shapes(block_graph(decode_block(n)))


@pytest.mark.fast
def test_log_amount_scale():
    assert log_amount(0) == 0.0 and log_amount(2**256 - 1) == pytest.approx(1.0, abs=1e-9)
    assert 0 < log_amount(10**18) < log_amount(10**24) < 1


@pytest.mark.anvil
def test_pending_window_graph_from_the_lab(lab_messages):
    from mevwatch.monitor.decode.pending import decode_pending
    from mevwatch.monitor.types import PendingTx

    pending = [m for m in lab_messages if isinstance(m, PendingTx)][:200]
    window = [(p, decode_pending(p.to_address, p.input, p.value)) for p in pending]
    g = pending_graph(window)
    check_shapes(g)
    assert g.num_nodes("tx") == len(pending) and g.meta["kind"] == "pending"
    assert (g.x["tx"][:, NODE_FEATURES["tx"].index("pending")] == 1).all()
    swaps = sum(len(i) for _p, i in window)
    assert swaps > 10 and g.edge_index[("tx", "sells", "token")].shape[1] == swaps
    # first-seen order
    order = sorted(pending, key=lambda p: (p.first_seen_ns, p.hash))
    assert g.tx_hashes == [p.hash for p in order]
