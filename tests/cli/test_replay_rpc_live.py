"""`mevwatch replay --rpc URL --from N --to M` against a real anvil."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.anvil


def test_replay_block_range_from_a_node(anvil, rpc, tmp_path):
    me = rpc("eth_accounts")[3]
    for i in range(3):
        rpc("eth_sendTransaction", {"from": me, "to": me, "value": hex(i + 1)})
        rpc("evm_mine")
    exe = str(Path(sys.executable).with_name("mevwatch"))
    r = subprocess.run([exe, "replay", "--rpc", anvil.http_url, "--from", "1", "--to", "3", "--out", str(tmp_path / "a.jsonl")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "3 (1..3)" in r.stderr and "transactions" in r.stderr
    assert "Unclosed" not in r.stderr, r.stderr  # the HTTP session is closed
    # --to past the head: the blocks that exist are replayed and summed up, the rest named as one rejection
    past = subprocess.run([exe, "replay", "--rpc", anvil.http_url, "--from", "1", "--to", "99", "--out", str(tmp_path / "b.jsonl"),
                           "--dead-letter", str(tmp_path / "dead.jsonl")], capture_output=True, text=True, timeout=120)
    assert past.returncode == 1 and "3 (1..3)" in past.stderr, past.stderr
    dead = (tmp_path / "dead.jsonl").read_text()
    assert "blocks 4..99" in dead and "stopped after block 3" in dead, dead
    assert (tmp_path / "b.jsonl").read_bytes() == (tmp_path / "a.jsonl").read_bytes()
    rev = subprocess.run([exe, "replay", "--rpc", anvil.http_url, "--from", "3", "--to", "1"], capture_output=True, text=True, timeout=60)
    assert rev.returncode == 2 and "before --from" in rev.stderr
