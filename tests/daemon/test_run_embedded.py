"""`mevwatch run` on embedded defaults (in-process bus, chDB): follows anvil while the lab's bots
attack, writes alerts with their evidence, exits cleanly on SIGTERM, and a restart continues
from the next block: no gap, no duplicate."""

from __future__ import annotations

import time

import pytest

from harness import Daemon, start_on_lab, wait_until
from services import Anvil
from mevwatch.monitor.store.store import open_store
from mevwatch.sim.runner import Lab
from conftest import Rpc

pytestmark = [pytest.mark.anvil]


def test_run_embedded_defaults_and_restart(tmp_path):
    node = Anvil(tmp_path / "anvil", chain_id=31337).start()
    rpc = Rpc(node.http_url)
    daemon = Daemon(tmp_path, kafka=None, clickhouse=None, confirmations=2, role="all", rpc=node.ws_url)
    try:
        lab = Lab(node.http_url, node.ws_url, seed=4)
        start_on_lab(daemon, lab, rpc)
        first = int(rpc("eth_blockNumber"), 16)
        lab.run(6)
        time.sleep(3)
        assert daemon.terminate() == 0, daemon.tail()  # SIGTERM: drain and exit cleanly
        mid = int(rpc("eth_blockNumber"), 16)
        for _ in range(3):
            rpc("evm_mine")  # mined while the daemon is down
        daemon.start()
        wait_until(lambda: daemon.get("/readyz")[0] == 200, 60, "the restarted daemon", daemon.tail)
        rpc("evm_mine")
        time.sleep(3)
        head = int(rpc("eth_blockNumber"), 16)
        assert daemon.terminate() == 0, daemon.tail()
    finally:
        if daemon.proc and daemon.proc.poll() is None:
            daemon.kill()
        node.stop()
    store = open_store(None, tmp_path / "data" / "chdb")
    try:
        numbers = [int(r[0]) for r in store.backend.query("SELECT block_number FROM blocks ORDER BY block_number")]
        assert numbers == list(range(first, head + 1)), "every block exactly once, across the restart"
        assert mid < head
        kinds = {r[0]: int(r[1]) for r in store.backend.query("SELECT kind, count() FROM alerts FINAL GROUP BY kind")}
        # block rules and mempool rules both ran (which pending kinds depends on the seed's attacks:
        # the mempool rule does not see sandwiches across two pools)
        assert kinds.get("sandwich", 0) >= 1 and kinds.get("sandwich_attempt", 0) + kinds.get("exposed_swap", 0) >= 1, kinds
        pending = store.backend.query("SELECT count() FROM alerts FINAL WHERE version = 1")
        assert int(pending[0][0]) >= 1  # raised at the pending stage and never included: version 1
        assert store.count("alerts") == store.count("evidence")
        stages = {r[0] for r in store.backend.query("SELECT stage FROM alerts FINAL WHERE kind = 'sandwich'")}
        assert stages == {"final"}  # head moved >= 2 blocks past every lab block
        assert store.count("pending_txs") > 0 and store.count("pending_fates") > 0
    finally:
        store.close()
