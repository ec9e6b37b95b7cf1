"""Sharded backfill (`mevwatch replay ... --shard i/K`, monitor/shard.py): K shard processes into one
ClickHouse write exactly the rows one process writes, for a node's block range (a real anvil
running the lab, three processes at once) and for the shared mainnet files; a shard stopped midway
resumes from its checkpoint in the store and still writes the same rows."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from services import Anvil
from mevwatch.monitor import replay as replay_mod
from mevwatch.monitor.replay import replay_files
from mevwatch.monitor.replay_rpc import replay_rpc
from mevwatch.monitor.shard import Shard, ShardError, parse_shard
from mevwatch.monitor.store.store import open_store
from mevwatch.sim.runner import Lab
from mevwatch.streams.simulate import http_request

EXE = str(Path(sys.executable).with_name("mevwatch"))
# every row of the tables a replay writes, under FINAL, less the write times (updated_at, processed_at)
TABLES = {
    "alerts": "alert_id, version, stage, kind, chain_id, block_number, block_hash, detector, score, attackers, victims, "
              "pools, tokens, profit_token, profit_amount, profit_eth, victim_loss_token, victim_loss_amount, "
              "victim_loss_eth, gas_cost_wei, first_seen_ns, order_flow, profit_usd, victim_loss_usd",
    "alert_txs": "alert_id, tx_hash, role, position, version, mempool, lead_ms",
    "evidence": "alert_id, version, stage, evidence, record, proof, batch_id",
    "blocks": "block_number, block_hash, parent_hash, block_time, tx_count, canonical, version, swap_calls_decoded, "
              "swap_calls_undecoded, decode_coverage, chain_id",
    "swaps": "block_number, block_hash, tx_hash, ord, protocol, pool, sender, recipient, tx_from, token_in, token_out, "
             "amount_in, amount_out, version, chain_id",
}


def rows(url: str, tmp: Path) -> dict[str, list]:
    store = open_store(url, tmp, migrate=False)
    try:
        return {t: store.backend.query(f"SELECT {cols} FROM {t} FINAL ORDER BY {cols}") for t, cols in TABLES.items()}
    finally:
        store.close()


def test_shard_values():
    assert parse_shard("2/3") == Shard(2, 3)
    for bad in ("3/3", "-1/3", "1", "a/b", "1/0", "0/3/4"):
        with pytest.raises(ShardError):
            parse_shard(bad)
    # contiguous slices that cover the range once, however it divides
    for k in (1, 2, 3, 7, 40):
        got = [Shard(i, k).block_range(100, 130) for i in range(k)]
        blocks = [n for r in got if r is not None for n in range(r[0], r[1] + 1)]
        assert blocks == list(range(100, 131))
    assert Shard(0, 40).block_range(100, 130) is None  # more shards than blocks: some have none


@pytest.fixture(scope="module")
def lab_chain(tmp_path_factory):
    """A real anvil that ran the lab: sandwiches and arbitrages over more blocks than three shards of
    the confirmation depth (12), so alerts sit near every shard's edge."""
    d = tmp_path_factory.mktemp("shards")
    node = Anvil(d / "anvil", chain_id=31337).start()
    try:
        lab = Lab(node.http_url, node.ws_url, seed=6)
        lab.setup()
        request = http_request(node.http_url)
        first = int(request("eth_blockNumber", []), 16) + 1
        lab.run(40)
        last = int(request("eth_blockNumber", []), 16)
        yield node.http_url, first, last
    finally:
        node.stop()


@pytest.mark.anvil
def test_three_shard_processes_write_one_runs_rows(lab_chain, clickhouse, tmp_path):
    url, first, last = lab_chain
    base = [EXE, "replay", "--rpc", url, "--from", str(first), "--to", str(last), "--no-gnn", "-q", "--reexecute", "off"]
    one = subprocess.run([*base, "--clickhouse", clickhouse.url("shard_one"), "--out", str(tmp_path / "one.jsonl")],
                         capture_output=True, text=True, timeout=600)
    assert one.returncode == 0, one.stderr
    procs = [subprocess.Popen([*base, "--clickhouse", clickhouse.url("shard_three"), "--shard", f"{i}/3", "--checkpoint", "job-a",
                               "--out", str(tmp_path / f"s{i}.jsonl")], stderr=subprocess.PIPE, text=True) for i in range(3)]
    for p in procs:
        _, stderr = p.communicate(timeout=600)
        assert p.returncode == 0, stderr
    whole, sharded = rows(clickhouse.url("shard_one"), tmp_path), rows(clickhouse.url("shard_three"), tmp_path)
    assert len(whole["blocks"]) == last - first + 1
    final = [r for r in whole["alerts"] if r[2] == "final"]
    assert sum(1 for r in final if r[3] == "sandwich") >= 3, [r[3] for r in final]
    assert len(final) == len(whole["alerts"]), "recorded history is settled: every alert final"
    for table in TABLES:
        assert sharded[table] == whole[table], table
    # alerts of blocks within the confirmation depth of a shard's end were settled by that shard: same versions anyway
    edges = [Shard(i, 3).block_range(first, last) for i in range(3)]
    assert any(e is not None and e[1] - 12 < r[5] <= e[1] for r in final for e in edges[:2])
    # the output lines of the shards are the whole run's lines
    lines = sorted(x for i in range(3) for x in (tmp_path / f"s{i}.jsonl").read_bytes().splitlines())
    assert lines == sorted((tmp_path / "one.jsonl").read_bytes().splitlines())
    # each shard's checkpoint says it is done; running it again fetches nothing
    again = subprocess.run([*base, "--clickhouse", clickhouse.url("shard_three"), "--shard", "1/3", "--checkpoint", "job-a",
                            "--out", str(tmp_path / "again.jsonl")], capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and (tmp_path / "again.jsonl").read_bytes() == b"", again.stderr
    # a file shard of a recording is refused by name
    rec = tmp_path / "r.jsonl"
    rec.write_text("")
    bad = subprocess.run([EXE, "replay", str(rec), "--shard", "0/2"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "r.jsonl" in bad.stderr and "recording" in bad.stderr, bad.stderr
    bad = subprocess.run([*base, "--shard", "3/3"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "0 to K-1" in bad.stderr, bad.stderr


class Crash(Exception):
    pass


@pytest.mark.anvil
def test_a_shard_stopped_midway_resumes_from_its_checkpoint(lab_chain, clickhouse, tmp_path, monkeypatch):
    url, first, last = lab_chain
    whole = open_store(clickhouse.url("resume_one"), tmp_path)
    replay_rpc(url, first, last, store=whole, reexecute="off")
    whole.close()
    monkeypatch.setattr(replay_mod, "STORE_BATCH_BLOCKS", 4)  # a checkpoint every 4 blocks
    store = open_store(clickhouse.url("resume_two"), tmp_path)
    seen: list[int] = []

    def crash_after_25(n: int) -> None:
        seen.append(n)
        if len(seen) == 25:
            raise Crash

    with pytest.raises(Crash):
        replay_rpc(url, first, last, store=store, reexecute="off", checkpoint="job-b", on_block=crash_after_25)
    (done,), = store.backend.query("SELECT max(done_below) FROM replay_progress WHERE name = 'job-b'")
    # below the last write, less the blocks whose alerts were still open (within the confirmation depth)
    assert first < done <= first + 24, (first, done)
    starts: list[tuple[int, int]] = []
    summary = replay_rpc(url, first, last, store=store, reexecute="off", checkpoint="job-b", on_start=lambda a, b: starts.append((a, b)))
    assert starts == [(done, last)] and summary.blocks == last - done + 1
    store.close()
    assert rows(clickhouse.url("resume_two"), tmp_path) == rows(clickhouse.url("resume_one"), tmp_path)


def test_file_shards_write_one_runs_rows(traces_dir, clickhouse, tmp_path):
    whole = open_store(clickhouse.url("files_one"), tmp_path)
    replay_files([traces_dir], store=whole, workers=1)
    whole.close()
    shards = open_store(clickhouse.url("files_three"), tmp_path)
    counts = [replay_files([traces_dir], store=shards, workers=1, shard=Shard(i, 3)).blocks for i in range(3)]
    shards.close()
    assert sum(counts) == 17 and min(counts) >= 5, counts
    got, want = rows(clickhouse.url("files_three"), tmp_path), rows(clickhouse.url("files_one"), tmp_path)
    assert len(want["alerts"]) >= 30
    for table in TABLES:
        assert got[table] == want[table], table
