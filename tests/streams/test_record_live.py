"""`mevwatch record` from a live anvil, then `mevwatch replay` of the recording."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.anvil


def exe() -> str:
    return str(Path(sys.executable).with_name("mevwatch"))


def test_record_then_replay(anvil, rpc, tmp_path):
    out = tmp_path / "rec.jsonl"
    me = rpc("eth_accounts")[2]

    def drive() -> None:
        # record subscribes to heads and pending transactions, then writes the node's head block: once the
        # file holds it, record is following (its start-up takes seconds on a loaded machine; a fixed
        # wait of 2 s lost the first transaction in a CI run)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (out.exists() and out.stat().st_size):
            time.sleep(0.1)
        for i in range(3):
            rpc("eth_sendTransaction", {"from": me, "to": me, "value": hex(i + 1)})
            time.sleep(0.2)
            rpc("evm_mine")
            time.sleep(0.2)

    t = threading.Thread(target=drive)
    t.start()
    r = subprocess.run([exe(), "record", "--rpc", anvil.ws_url, "--out", str(out), "--blocks", "4", "--duration", "60"],
                       capture_output=True, text=True, timeout=120)
    t.join()
    assert r.returncode == 0, r.stderr
    assert "recorded 4 blocks, 3 pending txs" in r.stderr
    schemas = [json.loads(x)["schema"] for x in out.read_text().splitlines()]
    assert schemas.count("mevwatch.block.v1") == 4 and schemas.count("mevwatch.pending.v1") == 3
    rep = subprocess.run([exe(), "replay", str(out), "--out", str(tmp_path / "alerts.jsonl")], capture_output=True, text=True, timeout=120)
    assert rep.returncode == 0, rep.stderr
    assert "pending / reverts" in rep.stderr and "3 / 0" in rep.stderr
    again = subprocess.run([exe(), "record", "--rpc", anvil.ws_url, "--out", str(out), "--blocks", "1"],
                           capture_output=True, text=True, timeout=60)
    assert again.returncode == 2 and "--append" in again.stderr  # an existing recording is never overwritten
