"""One bad block costs one block on the paths beyond plain files: `replay --store` (embedded chDB),
`replay --rpc` (a local JSON-RPC node serving real mainnet blocks, some of them broken) and
`replay --gnn`; the summary and the exit code say how many inputs were rejected, and the summary
says only what really reached the store."""

from __future__ import annotations

import copy
import gzip
import io
import json
import os
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import orjson
import pytest

from conftest import raw_block
from mevwatch.monitor.errors import StoreError
from mevwatch.monitor.replay import replay_files
from mevwatch.monitor.store.store import open_store
from mevwatch.streams.envelope import encode_block
from mevwatch.streams.mevinspect import parse_block

pytestmark = pytest.mark.fast

REPO = Path(__file__).resolve().parents[2]
SANDWICH = 12775690
OTHERS = (12498502, 13179291)


def _cli(*args: str, env: dict[str, str] | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mevwatch.monitor.cli", "--log-level", "WARNING", "replay", *args],
                          capture_output=True, text=True, cwd=REPO, timeout=timeout,
                          env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})


def _letters(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def _alerts(data: bytes) -> list[dict]:
    return [orjson.loads(x) for x in data.splitlines() if x.strip()]


def _envelope(number: int, **change) -> dict:
    obj = orjson.loads(encode_block(parse_block(raw_block(number))))
    obj.update(change)
    return obj


# --- the store ----------------------------------------------------------------------------------

def test_store_rejects_the_block_it_cannot_hold_and_stores_the_rest(tmp_path):
    bad = _envelope(OTHERS[1])
    bad["transactions"][0]["transaction_index"] = 2**32  # past the store's UInt32 column: a named rejection
    rec = tmp_path / "rec.jsonl"
    rec.write_text("\n".join(json.dumps(b) for b in (_envelope(OTHERS[0]), bad, _envelope(SANDWICH))) + "\n")
    out, dead, chdb = tmp_path / "alerts.jsonl", tmp_path / "dead.jsonl", tmp_path / "chdb"
    r = _cli(str(rec), "--store", "--out", str(out), "--dead-letter", str(dead), env={"MEVWATCH_CLICKHOUSE__DATA_DIR": str(chdb)})
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    [letter] = _letters(dead)
    assert letter["source"] == str(rec) and letter["position"] == "line 2", letter
    assert "transactions[0].transaction_index" in letter["reason"] and "2^32" in letter["reason"], letter
    assert any(a["kind"] == "sandwich" for a in _alerts(out.read_bytes()))
    store = open_store(None, chdb, migrate=False)
    try:
        blocks = sorted(int(x[0]) for x in store.backend.query("SELECT DISTINCT block_number FROM blocks"))
        stages = dict(store.backend.query("SELECT alert_id, stage FROM alerts FINAL"))
    finally:
        store.close()
    assert blocks == [OTHERS[0], SANDWICH]
    lines = _alerts(out.read_bytes())
    assert set(stages) == {a["alert_id"] for a in lines} and set(stages.values()) == {"final"}
    events = len(lines) + len(stages)  # each alert's lines (no final one) and its final stage
    flat = " ".join(r.stderr.split())
    assert f"stored {events} alert stage events" in flat and "2 blocks" in flat, r.stderr  # what is really there
    # without the store the same block is rejected too: validation names it before any sink
    assert _cli(str(rec), "--out", str(tmp_path / "plain.jsonl"), "-q").returncode == 1


def test_store_summary_says_nothing_was_stored_when_nothing_was(tmp_path):
    rec = tmp_path / "rec.jsonl"
    rec.write_text(json.dumps(_envelope(SANDWICH, block_number=-1)) + "\n")
    r = _cli(str(rec), "--store", "--out", str(tmp_path / "a.jsonl"), env={"MEVWATCH_CLICKHOUSE__DATA_DIR": str(tmp_path / "chdb")})
    assert r.returncode == 1, r.stderr
    assert "stored nothing in" in r.stderr and "stored 0" not in r.stderr, r.stderr
    assert "block_number" in r.stderr


class RefusingStore:
    """A real chDB store that refuses every write holding a row of block ``refuse`` (as a server
    refuses a value its column cannot hold)."""

    def __init__(self, store, refuse: int):
        self.store, self.refuse, self.refused = store, refuse, 0

    def write(self, batch, block_times=None) -> None:
        numbers = {r[0] for r in batch.blocks} | {r[0] for r in batch.swaps} | {e.alert.block_number for e in batch.alerts}
        if self.refuse in numbers:
            self.refused += 1
            raise StoreError(f"Code: 53. DB::Exception: Type mismatch in a row of block {self.refuse}")
        self.store.write(batch, block_times)

    def __getattr__(self, name):
        return getattr(self.store, name)


@pytest.mark.parametrize("refuse", [SANDWICH, OTHERS[0]])
def test_a_write_the_store_refuses_costs_only_the_blocks_it_refuses(traces_dir, tmp_path, refuse):
    files = [traces_dir / f"{n}.json.gz" for n in (OTHERS[0], SANDWICH, OTHERS[1])]
    store = open_store(None, tmp_path / "chdb")
    try:
        shim = RefusingStore(store, refuse)
        out, events = io.BytesIO(), []
        summary = replay_files(files, out=out, workers=1, store=shim, on_event=events.append)
        assert shim.refused >= 2  # the whole batch, then that block alone
        [p] = summary.problems
        assert p.source == str(traces_dir / f"{refuse}.json.gz")
        assert "the store refused this block's rows" in p.reason and "Type mismatch" in p.reason, p.reason
        assert "its alerts are in the output" in p.reason
        assert sorted(int(x[0]) for x in store.backend.query("SELECT DISTINCT block_number FROM blocks")) == \
            sorted(n for n in (OTHERS[0], SANDWICH, OTHERS[1]) if n != refuse)
        kept = [e for e in events if e.alert.block_number != refuse]
        assert summary.stored["alerts"] == len(kept) and summary.stored["blocks"] == 2
        in_store = {int(x[0]) for x in store.backend.query("SELECT DISTINCT block_number FROM alerts")}
        assert in_store == {e.alert.block_number for e in kept}
        if refuse == SANDWICH:
            assert all(e.alert.kind != "sandwich" for e in kept) and any(a["kind"] == "sandwich" for a in _alerts(out.getvalue()))
    finally:
        store.close()


# --- a node ---------------------------------------------------------------------------------------

def _rpc_block(number: int, served_as: int) -> tuple[dict, list, list]:
    """A real mainnet block as a node serves it: the block with transactions, receipts, trace_block."""
    raw = raw_block(number)
    b = parse_block(raw)
    block = {"number": hex(served_as), "hash": f"0x{served_as:064x}", "parentHash": f"0x{served_as - 1:064x}",
             "timestamp": hex(1_625_000_000 + served_as % 1000), "miner": "0x" + "11" * 20, "baseFeePerGas": "0x0",
             "transactions": [{"hash": t.hash, "transactionIndex": hex(t.position), "from": t.from_address or "0x" + "00" * 20,
                               "to": t.to_address, "input": t.input, "value": hex(t.value), "nonce": hex(i)}
                              for i, t in enumerate(b.transactions)]}
    receipts = [{"transactionHash": t.hash, "gasUsed": hex(t.gas_used or 21000), "effectiveGasPrice": hex(t.effective_gas_price or 1),
                 "status": "0x1", "logs": []} for t in b.transactions]
    traces = raw["traces"]
    return block, receipts, traces


class FakeNode:
    """A JSON-RPC node over HTTP on 127.0.0.1 that serves the given blocks (by number)."""

    def __init__(self, blocks: dict[int, tuple[dict, list, list]]):
        node = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                req = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                body = json.dumps(node.answer(req)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.blocks = blocks
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, req: dict) -> dict:
        method, params = req["method"], req.get("params", [])
        n = int(params[0], 16) if params and isinstance(params[0], str) and params[0].startswith("0x") else None
        if method == "eth_chainId":
            return {"jsonrpc": "2.0", "id": req["id"], "result": "0x1"}
        found = self.blocks.get(n) if n is not None else None
        if method == "eth_getBlockByNumber":
            result = found[0] if found else None
        elif method == "eth_getBlockReceipts":
            result = found[1] if found else None
        elif method == "trace_block":
            result = found[2] if found else None
        else:
            return {"jsonrpc": "2.0", "id": req["id"], "error": {"code": -32601, "message": f"the method {method} does not exist"}}
        return {"jsonrpc": "2.0", "id": req["id"], "result": result}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_rpc_replay_rejects_the_broken_blocks_of_a_range_and_replays_the_rest(tmp_path):
    first = 20_000_000
    blocks = {first + i: _rpc_block(n, first + i) for i, n in enumerate((OTHERS[0], OTHERS[1], OTHERS[1], OTHERS[1], SANDWICH))}
    too_big = copy.deepcopy(blocks[first + 1])
    too_big[0]["timestamp"] = hex(2**64)  # a number beyond the 64-bit columns
    blocks[first + 1] = too_big
    blocks[first + 2][0]["transactions"][0]["input"] = "0xa9059cbb" + "zz" * 64  # ERC-20 transfer calldata, not hex
    del blocks[first + 3][0]["hash"]  # not a block answer at all
    node = FakeNode(blocks)
    try:
        out, dead = tmp_path / "alerts.jsonl", tmp_path / "dead.jsonl"
        r = _cli("--rpc", node.url, "--from", str(first), "--to", str(first + 4), "--out", str(out), "--dead-letter", str(dead),
                 timeout=180)
    finally:
        node.close()
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    letters = {x["position"]: x for x in _letters(dead)}
    assert set(letters) == {f"block {first + k}" for k in (1, 2, 3)}, letters
    assert all(x["source"] == node.url for x in letters.values())
    assert "timestamp" in letters[f"block {first + 1}"]["reason"]
    assert "transactions[0].input" in letters[f"block {first + 2}"]["reason"]
    assert letters[f"block {first + 2}"]["raw"]  # the block as checked, for a look later
    assert "malformed answer from the node" in letters[f"block {first + 3}"]["reason"]
    assert any(a["kind"] == "sandwich" and a["block_number"] == first + 4 for a in _alerts(out.read_bytes()))
    flat = " ".join(r.stderr.split())
    assert "2 (" in flat and "rejected inputs" in flat and "3 (all in" in flat, r.stderr


# --- the graph model ------------------------------------------------------------------------------

def test_gnn_replay_rejects_non_hex_transfer_calldata_in_every_format(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("torch_geometric")
    d = tmp_path / "in"
    d.mkdir()
    good = raw_block(SANDWICH)
    bad = raw_block(OTHERS[0])
    call = next(t for t in bad["traces"] if t.get("type") == "call" and t.get("transaction_hash"))
    call["action"]["input"] = "0xa9059cbb" + "zz" * 64
    (d / "1.json.gz").write_bytes(gzip.compress(json.dumps(good).encode()))
    (d / "2.json").write_text(json.dumps(bad))
    env_bad = _envelope(OTHERS[1])
    env_bad["transactions"][1]["input"] = "0xa9059cbb" + "zz" * 64
    lines = [json.dumps(env_bad), json.dumps(_envelope(OTHERS[0]))]
    (d / "3.jsonl").write_text("\n".join(lines) + "\n")
    with gzip.open(d / "4.jsonl.gz", "wt") as fh:
        fh.write("\n".join(lines) + "\n")
    out, dead = tmp_path / "alerts.jsonl", tmp_path / "dead.jsonl"
    r = _cli(str(d), "--gnn", "--device", "cpu", "--out", str(out), "--dead-letter", str(dead))
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    letters = sorted((Path(x["source"]).name, x["position"], x["reason"]) for x in _letters(dead))
    assert [(n, p) for n, p, _ in letters] == [("2.json", "transaction 0 trace 0"), ("3.jsonl", "line 1"), ("4.jsonl.gz", "line 1")], letters
    assert "input" in letters[0][2] and "transactions[1].input" in letters[1][2] and "transactions[1].input" in letters[2][2]
    alerts = _alerts(out.read_bytes())
    assert any(a["kind"] == "sandwich" and a["block_number"] == SANDWICH for a in alerts)
    assert all(a.get("model_hash") for a in alerts)  # scored by the model


# --- the summary and the exit code ----------------------------------------------------------------

def test_summary_and_exit_code_count_the_rejected_inputs(traces_dir, tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    shutil.copy(traces_dir / f"{SANDWICH}.json.gz", d)
    (d / "1.json").write_text("{ truncated")
    (d / "rec.jsonl").write_text('{"schema": "mevwatch.block.v1"}\nnot json\n')
    dead = tmp_path / "dead.jsonl"
    r = _cli(str(d), "--out", str(tmp_path / "a.jsonl"), "--dead-letter", str(dead))
    assert r.returncode == 1
    row = next(line for line in r.stderr.splitlines() if "rejected inputs" in line)
    assert "3 (all in" in row, r.stderr
    assert len(_letters(dead)) == 3
    q = _cli(str(d), "--out", str(tmp_path / "b.jsonl"), "-q")
    assert q.returncode == 1 and q.stderr.strip() == "3 rejected inputs", q.stderr
    ok = _cli(str(d / f"{SANDWICH}.json.gz"), "--out", str(tmp_path / "c.jsonl"))
    assert ok.returncode == 0
    assert "none" in next(line for line in ok.stderr.splitlines() if "rejected inputs" in line)
