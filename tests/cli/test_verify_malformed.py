"""`mevwatch verify FILE` with malformed bundle fields: exit 2 ("could not check") with a one-line
reason naming the field, never a traceback or a usage box; the bundle is checked before any node is
asked (the attestation node configured here does not exist), so a bad field is reported as itself
rather than as an unreachable node. The same checks on a real chain: tests/attest/test_trust.py."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mevwatch.monitor.alerts import Alert, AlertTx, Amount
from mevwatch.monitor.attest import canonical, merkle

pytestmark = pytest.mark.fast

REPO = Path(__file__).resolve().parents[2]
REGISTRY = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
ATTESTER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


def _bundle() -> dict:
    a = Alert(kind="sandwich", stage="final", chain_id=31337, block_number=50, block_hash=f"0x{50:064x}",
              txs=[AlertTx(f"0x{1:062x}a1", 0, "frontrun"), AlertTx(f"0x{1:062x}b2", 1, "victim"), AlertTx(f"0x{1:062x}c3", 2, "backrun")],
              attackers=["0xa"], victims=["0xv"], pools=["0xp"], tokens=["0xt"], profit=Amount("0xweth", 10**18, 1.0),
              victim_loss=None, gas_cost_wei=21000, evidence={})
    record = a.to_json()
    leaf = "0x" + merkle.leaf_hash(canonical.alert_bytes(record)).hex()
    return {"alert": record, "proof": {"format": 2, "batch_id": 1, "root": leaf, "leaf": leaf, "index": 0, "size": 1, "path": [],
                                       "contract": REGISTRY, "chain_id": 31337, "attester": ATTESTER, "tx_hash": None,
                                       "from_block": 50, "to_block": 50, "model_hash": "0x" + "00" * 32}}


def _set(*path, value):
    def change(b: dict) -> None:
        node = b
        for k in path[:-1]:
            node = node[k]
        node[path[-1]] = value
    return change


CASES = [  # (name, change to the bundle, what the one line must say)
    ("proof is a list", _set("proof", value=[]), "the proof is not a JSON object"),
    ("root is a number", _set("proof", "root", value=123), "proof root must be a 0x-prefixed hex string of 32 bytes, got 123"),
    ("chain_id is text", _set("proof", "chain_id", value="abc"), "proof chain_id must be an integer, got 'abc'"),
    ("short root", lambda b: b["proof"].__setitem__("root", b["proof"]["root"][:-2]), "proof root is 31 bytes, not 32"),
    ("contract not an address", _set("proof", "contract", value="0x1234"), "proof contract '0x1234' is not an address"),
    ("contract a number", _set("proof", "contract", value=7), "proof contract 7 is not an address"),
    ("model hash not hex", _set("proof", "model_hash", value="0x" + "zz" * 32), "proof model_hash '0xzz"),
    ("model hash short", _set("proof", "model_hash", value="0x1234"), "proof model_hash is 2 bytes, not 32"),
    ("alert model hash not hex", _set("alert", "model_hash", value="0xnot-a-hash"), "the alert's model_hash"),
    ("index a fraction", _set("proof", "index", value=0.5), "proof index must be an integer"),
    ("path entry short", _set("proof", "path", value=["0x12"]), "proof path entry 0 is 1 bytes"),
    ("attester not an address", _set("proof", "attester", value="nope"), "proof attester 'nope' is not an address"),
    ("alert block number text", _set("alert", "block_number", value="abc"), "the alert's block_number must be a non-negative integer"),
    ("alert chain id text", _set("alert", "chain_id", value="abc"), "the alert's chain_id must be a non-negative integer"),
    ("alert stage a number", _set("alert", "stage", value=7), "the alert's stage must be a string, got 7"),
    ("alert txs a number", _set("alert", "txs", value=5), "the alert's txs must be a list"),
    ("alert tx position text", lambda b: b["alert"]["txs"][0].__setitem__("position", "x"), "the alert's txs[0] must be an object"),
]


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("verify")
    cfg = d / "verify.yaml"
    cfg.write_text(yaml.safe_dump({"chain_id": 31337, "data_dir": str(d / "data"),
                                   "attest": {"rpc": "http://127.0.0.1:9", "contract": REGISTRY, "trusted_attesters": [ATTESTER]}}))
    return cfg


def _verify(cfg: Path, target: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEVWATCH_")}
    return subprocess.run([sys.executable, "-m", "mevwatch.monitor.cli", "--config", str(cfg), "--log-level", "WARNING", "verify", target],
                          capture_output=True, text=True, cwd=REPO, timeout=120, env={**env, "PYTHONPATH": str(REPO)})


def _one_line_error(r: subprocess.CompletedProcess) -> str:
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and r.stdout == "", r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    return lines[0]


@pytest.mark.parametrize(("name", "change", "says"), CASES, ids=[c[0] for c in CASES])
def test_a_malformed_bundle_field_exits_2_with_one_line(config, tmp_path, name, change, says):
    b = copy.deepcopy(_bundle())
    change(b)
    f = tmp_path / "bundle.json"
    f.write_text(json.dumps(b))
    line = _one_line_error(_verify(config, str(f)))
    assert says in line, line


def test_a_file_that_is_no_bundle_exits_2_with_one_line(config, tmp_path):
    (tmp_path / "broken.json").write_text("{ not json")
    assert "is not JSON" in _one_line_error(_verify(config, str(tmp_path / "broken.json")))
    (tmp_path / "list.json").write_text("[1, 2]")
    assert "holds neither an alert record nor a proof bundle" in _one_line_error(_verify(config, str(tmp_path / "list.json")))
    assert "is neither a file nor an alert id" in _one_line_error(_verify(config, "no-such-thing"))


def test_a_well_formed_bundle_goes_on_to_the_node(config, tmp_path):
    f = tmp_path / "bundle.json"
    f.write_text(json.dumps(_bundle()))
    assert "attestation node unreachable" in _one_line_error(_verify(config, str(f)))  # the checks passed; the node is next
