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
    bad = subprocess.run([exe, "replay", "--rpc", anvil.http_url, "--from", "1", "--to", "99"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "no block 4" in bad.stderr
    rev = subprocess.run([exe, "replay", "--rpc", anvil.http_url, "--from", "3", "--to", "1"], capture_output=True, text=True, timeout=60)
    assert rev.returncode == 2 and "before --from" in rev.stderr
