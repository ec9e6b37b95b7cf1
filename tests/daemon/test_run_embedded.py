"""`mevwatch run` on embedded defaults (in-process bus, chDB): follows anvil while the lab's bots
attack, writes alerts with their evidence, exits cleanly on SIGTERM, and a restart continues
from the next block: no gap, no duplicate."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from harness import Daemon, start_on_lab, wait_until
from services import Anvil
from mevwatch.monitor.store.endpoint import endpoint_file
from mevwatch.monitor.store.store import open_store
from mevwatch.sim.runner import Lab
from conftest import Rpc

pytestmark = [pytest.mark.anvil]
EXE = str(Path(sys.executable).with_name("mevwatch"))


def db_query(daemon: Daemon, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([EXE, "--config", str(daemon.config), "db", "query", *args], capture_output=True, text=True,
                          timeout=120, cwd=daemon.tmp)


def queried_while_running(daemon: Daemon, tmp_path) -> None:
    """`mevwatch db query` while the daemon holds the embedded store: through the daemon, read-only."""
    held = endpoint_file(tmp_path / "data" / "chdb")
    assert held.exists() and (held.stat().st_mode & 0o777) == 0o600
    r = db_query(daemon, "SELECT kind, count() AS n FROM alerts FINAL GROUP BY kind ORDER BY kind", "--format", "json")
    assert r.returncode == 0, r.stderr
    kinds = {json.loads(x)["kind"]: int(json.loads(x)["n"]) for x in r.stdout.splitlines()}
    assert kinds.get("sandwich", 0) >= 1, kinds
    for sql, why in [("INSERT INTO alerts (alert_id) VALUES ('x')", "only SELECT"),
                     ("SELECT 1; DROP TABLE alerts", "one statement"),
                     ("SELECT * FROM file('/etc/passwd', 'LineAsString')", "reaches outside the store"),
                     ("SELECT file('/etc/passwd')", "reaches outside the store"),
                     ("SELECT count() FROM system.numbers", "Limit for rows"),
                     ("SELECT 1 SETTINGS readonly = 0", "SETTINGS")]:
        r = db_query(daemon, sql)
        assert r.returncode != 0 and why in r.stderr and "Traceback" not in r.stderr, (sql, r.stderr)
    # the token is required: a request without it is refused
    url = json.loads(held.read_text())["url"]
    req = urllib.request.Request(url, data=b"SELECT 1", method="POST")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    assert e.value.code == 401
    assert daemon.get("/readyz")[0] == 200, daemon.tail()  # still writing


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
        queried_while_running(daemon, tmp_path)
        assert daemon.terminate() == 0, daemon.tail()  # SIGTERM: drain and exit cleanly
        assert not endpoint_file(tmp_path / "data" / "chdb").exists()  # removed at a clean stop
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
