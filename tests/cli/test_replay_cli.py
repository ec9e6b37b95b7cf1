"""`mevwatch replay` as a user runs it: real files in, alerts JSONL out."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from mevwatch.streams.envelope import encode_block
from mevwatch.streams.mevinspect import parse_block

pytestmark = pytest.mark.fast


def mevwatch(*args, cwd=None):
    exe = Path(sys.executable).with_name("mevwatch")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, cwd=cwd, timeout=300)


@pytest.fixture(scope="module")
def blocks_only(traces_dir, tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("blocks")
    for p in traces_dir.glob("*.json.gz"):
        shutil.copy(p, d / p.name)
    return d


def lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def test_replay_finds_the_sandwich_and_is_deterministic(blocks_only, tmp_path):
    out1, out2 = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    r1 = mevwatch("replay", str(blocks_only), "--out", str(out1))
    assert r1.returncode == 0, r1.stderr
    assert "blocks" in r1.stderr and "17" in r1.stderr and "sandwich" in r1.stderr
    r2 = mevwatch("replay", str(blocks_only), "--out", str(out2), "--workers", "1", "-q")
    assert r2.returncode == 0 and r2.stderr == ""
    assert out1.read_bytes() == out2.read_bytes()
    alerts = lines(out1)
    sandwich = [a for a in alerts if a["kind"] == "sandwich" and a["block_number"] == 12775690]
    assert len(sandwich) == 1
    a = sandwich[0]
    weth = "0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2"
    assert a["profit"] == {"token": weth, "amount": "49991481915322274", "eth": 0.0499914819153, "usd": a["profit"]["usd"],
                           "by_token": {weth: "49991481915322274"}}
    assert a["profit"]["usd"] == pytest.approx(0.0499914819153 * a["evidence"]["valuation"]["usd_per_eth"], rel=1e-9)
    assert set(a) >= {"alert_id", "kind", "stage", "chain_id", "block_number", "block_hash", "txs", "attackers", "victims",
                      "pools", "tokens", "profit", "victim_loss", "gas_cost_wei", "detector", "score", "model_hash", "evidence"}


def test_stdout_output(blocks_only):
    r = mevwatch("replay", str(blocks_only / "12775690.json.gz"), "--out", "-", "-q")
    assert r.returncode == 0
    kinds = [json.loads(x)["kind"] for x in r.stdout.splitlines()]
    assert "sandwich" in kinds


def test_bad_files_are_named_and_the_rest_is_processed(blocks_only, tmp_path):
    d = tmp_path / "mixed"
    d.mkdir()
    shutil.copy(blocks_only / "12775690.json.gz", d)
    (d / "99999999.json.gz").write_bytes(b"\x1f\x8b not really gzip")
    (d / "99999998.json").write_text('{"block_number": 5, "traces": [{"action": 7}]}')
    (d / "99999997.json").write_text("{ truncated")
    out, dead = tmp_path / "out.jsonl", tmp_path / "dead.jsonl"
    r = mevwatch("replay", str(d), "--out", str(out), "--dead-letter", str(dead), "--workers", "1")
    assert r.returncode == 1
    assert "99999999.json.gz" in r.stderr and "corrupt gzip" in r.stderr
    assert "99999998.json" in r.stderr and "traces[0]" in r.stderr
    assert "99999997.json" in r.stderr and "malformed JSON" in r.stderr
    assert any(a["kind"] == "sandwich" for a in lines(out))
    assert len(lines(dead)) == 3


def test_jsonl_recording_replays_to_the_same_alerts(blocks_only, tmp_path):
    rec = tmp_path / "rec.jsonl"
    with open(rec, "wb") as fh:
        for p in sorted(blocks_only.glob("*.json.gz")):
            fh.write(encode_block(parse_block(json.loads(gzip.open(p).read()))) + b"\n")
        fh.write(b'{"schema": "mevwatch.block.v1", "chain_id": 1}\n')  # bad line: named, skipped
        fh.write(b"not json\n")
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    assert mevwatch("replay", str(blocks_only), "--out", str(a), "-q").returncode == 0
    r = mevwatch("replay", str(rec), "--out", str(b))
    assert r.returncode == 1
    assert "rec.jsonl at line 18" in r.stderr.replace("\n", " ") or "line 18" in r.stderr
    assert "line 19" in r.stderr
    assert [orjson.loads(x) for x in a.read_bytes().splitlines()] == [orjson.loads(x) for x in b.read_bytes().splitlines()]


def test_a_recording_replays_under_its_own_chain_id(blocks_only, tmp_path):
    """Without --chain-id, the replay runs under the chain id the recording's messages carry (pending
    alerts too: the engine's), so it gives what `--chain-id 5` gives, the live run's alerts and ids."""
    rec = tmp_path / "rec.jsonl"
    with open(rec, "wb") as fh:
        for p in sorted(blocks_only.glob("*.json.gz"))[:6]:
            fh.write(encode_block(parse_block(json.loads(gzip.open(p).read()), chain_id=5)) + b"\n")
    own, given = tmp_path / "own.jsonl", tmp_path / "given.jsonl"
    assert mevwatch("replay", str(rec), "--out", str(own), "-q").returncode == 0
    assert mevwatch("--chain-id", "5", "replay", str(rec), "--out", str(given), "-q").returncode == 0
    a = lines(own)
    assert a and {x["chain_id"] for x in a} == {5}
    assert a == lines(given)
    from mevwatch.streams.files import discover, recording_chain_id

    assert recording_chain_id(discover([blocks_only, rec])) == 5  # the first recording's, past mev-inspect files
    assert recording_chain_id(discover([blocks_only])) is None


def test_usage_errors():
    r = mevwatch("replay")
    assert r.returncode == 2 and "give files" in r.stderr
    r = mevwatch("replay", "/nonexistent/path")
    assert r.returncode == 2 and "/nonexistent/path" in r.stderr
    r = mevwatch("replay", "x.json", "--rpc", "http://127.0.0.1:1", "--from", "1", "--to", "2")
    assert r.returncode == 2 and "not both" in r.stderr
    r = mevwatch("--help")
    assert r.returncode == 0 and "replay" in r.stdout
