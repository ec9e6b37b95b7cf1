"""cryo parquet datasets: the converter (`mevwatch export parquet`) and `mevwatch replay DIR` give the
same alerts as the originals; a bad row costs its block; a file that is not cryo's is a clean error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from mevwatch.monitor.errors import InputError  # noqa: E402
from mevwatch.monitor.replay import replay_files  # noqa: E402
from mevwatch.monitor.types import Block  # noqa: E402
from mevwatch.streams import envelope  # noqa: E402
from mevwatch.streams.cryo import iter_cryo, open_cryo, write_cryo  # noqa: E402
from mevwatch.streams.files import discover, read_mev_inspect, recording_chain_id  # noqa: E402

SANDWICH_BLOCK = 12775690  # the block with mev-inspect's expected sandwich


def mevwatch(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mevwatch.monitor.cli", *args], capture_output=True, text=True, timeout=300)


def alert_keys(path: Path) -> list[tuple]:
    return [(a["alert_id"], a["kind"], a["stage"], a["block_number"], json.dumps(a.get("profit"), sort_keys=True))
            for a in map(json.loads, path.read_text().splitlines())]


@pytest.fixture(scope="module")
def mainnet_files(traces_dir) -> list[Path]:
    files = sorted(traces_dir.glob("*.json.gz"))
    assert len(files) >= 17
    return files


@pytest.fixture(scope="module")
def mainnet_cryo(mainnet_files, tmp_path_factory) -> Path:
    """Every shared mainnet block, converted by the real command."""
    out = tmp_path_factory.mktemp("cryo") / "dataset"
    r = mevwatch("export", "parquet", *map(str, mainnet_files), "--out", str(out), "-q")
    assert r.returncode == 0, r.stderr
    return out


@pytest.fixture(scope="module")
def mainnet_alerts(mainnet_files, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("orig") / "alerts.jsonl"
    r = mevwatch("replay", *map(str, mainnet_files), "--out", str(out), "-q")
    assert r.returncode == 0, r.stderr
    return out


# --- (a) the shared mainnet blocks --------------------------------------------------------------------
@pytest.mark.fast
def test_mainnet_parquet_replays_to_the_same_alerts(mainnet_cryo, mainnet_alerts, mainnet_files, tmp_path):
    names = sorted(p.name for p in mainnet_cryo.iterdir())
    assert all(n.startswith("ethereum__") and n.endswith(".parquet") for n in names)
    assert {n.split("__")[1] for n in names} == {"blocks", "transactions", "traces"}  # mev-inspect blocks: traces, no logs
    out = tmp_path / "alerts.jsonl"
    r = mevwatch("replay", str(mainnet_cryo), "--out", str(out), "-q")
    assert r.returncode == 0, r.stderr
    want = alert_keys(mainnet_alerts)
    assert want, "the shared blocks raise alerts"
    assert any(k[1] == "sandwich" and k[3] == SANDWICH_BLOCK for k in want)
    assert alert_keys(out) == want
    assert out.read_bytes() == mainnet_alerts.read_bytes()  # the very same lines
    r = mevwatch("replay", "--format", "cryo", *map(str, sorted(mainnet_cryo.iterdir())), "--out", str(out), "-q")
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == mainnet_alerts.read_bytes()


@pytest.mark.fast
def test_mainnet_blocks_round_trip_exactly(mainnet_cryo, mainnet_files):
    want = {b.number: b for b in (read_mev_inspect(p) for p in mainnet_files)}
    got = list(iter_cryo([mainnet_cryo]))
    assert [n for _s, _p, b in got if isinstance(b, Block) for n in [b.number]] == sorted(want)
    for _source, _position, block in got:
        assert isinstance(block, Block)
        assert block == want[block.number]
        assert block.has_traces and not block.has_logs


@pytest.mark.fast
def test_discovery(mainnet_cryo):
    found = discover([mainnet_cryo])
    assert found and {f for _p, f in found} == {"cryo"}
    assert recording_chain_id(found) == 1


# --- (b) a lab recording (blocks with logs and traces) ------------------------------------------------
@pytest.mark.anvil
def test_lab_recording_parquet_replays_to_the_same_alerts(lab_messages, tmp_path):
    blocks = [m for m in lab_messages if isinstance(m, Block)]
    rec = tmp_path / "blocks.jsonl"
    rec.write_bytes(b"".join(envelope.encode(b) + b"\n" for b in blocks))
    ds = tmp_path / "lab"
    r = mevwatch("export", "parquet", str(rec), "--out", str(ds), "-q")
    assert r.returncode == 0, r.stderr
    assert {n.name.split("__")[1] for n in ds.iterdir()} == {"blocks", "transactions", "logs", "traces"}
    by_number = {b.number: b for b in blocks}  # a reorganised block: the later one, as the export keeps
    got = [b for _s, _p, b in iter_cryo([ds])]
    assert got == [by_number[n] for n in sorted(by_number)]
    a1, a2 = tmp_path / "a1.jsonl", tmp_path / "a2.jsonl"
    for src, out in ((rec, a1), (ds, a2)):
        # rules only: the model scores JSONL and parquet blocks in batches of other sizes, so its scores
        # may differ in the last rounded digit; this test is about the reader
        r = mevwatch("replay", str(src), "--no-gnn", "--out", str(out), "-q")
        assert r.returncode == 0, r.stderr
    assert alert_keys(a1), "the lab's sandwiches"
    if len(by_number) == len(blocks):  # no block given twice: the very same input
        assert a2.read_bytes() == a1.read_bytes()


@pytest.mark.fast
def test_logs_only_blocks_decode_from_logs(tmp_path, mainnet_files):
    """Without a traces file the blocks say so (has_traces False): decoded from logs, as for nodes without tracers."""
    block = read_mev_inspect(mainnet_files[0])
    block.has_traces, block.has_logs = False, True
    for tx in block.transactions:
        tx.traces = []
    write_cryo([block], tmp_path)
    assert {p.name.split("__")[1] for p in tmp_path.iterdir()} == {"blocks", "transactions", "logs"}
    [(_s, _p, got)] = list(iter_cryo([tmp_path]))
    assert isinstance(got, Block) and got == block and not got.has_traces


# --- (c) one bad row costs one block ------------------------------------------------------------------
def _copy(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for p in src.iterdir():
        (dst / p.name).write_bytes(p.read_bytes())
    return dst


def _file(ds: Path, dataset: str, number: int) -> Path:
    [p] = [p for p in ds.iterdir() if f"__{dataset}__" in p.name and number in range(
        int(p.stem.split("__")[-1].split("_to_")[0]), int(p.stem.split("__")[-1].split("_to_")[1]) + 1)]
    return p


def _replace(path: Path, column: str, fn) -> None:
    t = pq.read_table(path)
    i = t.column_names.index(column)
    t = t.set_column(i, column, fn(t.column(column)))
    pq.write_table(t, path)


def _replay(paths: list[Path], out: Path):
    with out.open("wb") as fh:
        return replay_files(paths, out=fh, workers=1)


@pytest.mark.fast
def test_a_bad_hash_costs_its_block(mainnet_cryo, mainnet_alerts, tmp_path):
    ds = _copy(mainnet_cryo, tmp_path / "ds")
    bad = _file(ds, "transactions", SANDWICH_BLOCK)
    _replace(bad, "transaction_hash", lambda c: pa.array([v[:31] if i == 3 else v for i, v in enumerate(c.to_pylist())], pa.binary()))
    s = _replay([ds], tmp_path / "a.jsonl")
    assert s.blocks == 16
    [p] = s.problems
    assert p.source == str(bad) and p.position.startswith(f"block {SANDWICH_BLOCK}, transactions row 3")
    assert "transaction_hash: 31 bytes, expected 32" in p.reason
    want = [k for k in alert_keys(mainnet_alerts) if k[3] != SANDWICH_BLOCK]
    assert alert_keys(tmp_path / "a.jsonl") == want


@pytest.mark.fast
def test_hex_strings_are_read_and_a_non_hex_one_costs_its_block(mainnet_cryo, mainnet_alerts, tmp_path):
    """cryo --hex writes 0x strings instead of binary: read as well; one that is not hex is named."""
    ds = _copy(mainnet_cryo, tmp_path / "ds")
    bad = _file(ds, "traces", SANDWICH_BLOCK)
    t = pq.read_table(bad)
    for name in t.column_names:
        if pa.types.is_binary(t.schema.field(name).type):
            vals = [None if v is None else "0x" + v.hex() for v in t.column(name).to_pylist()]
            if name == "action_to":
                vals[5] = "0xZZ" + vals[5][4:]
            t = t.set_column(t.column_names.index(name), name, pa.array(vals, pa.string()))
    pq.write_table(t, bad)
    s = _replay([ds], tmp_path / "a.jsonl")
    [p] = s.problems
    assert s.blocks == 16 and p.source == str(bad)
    assert p.position == f"block {SANDWICH_BLOCK}, traces row 5" and "action_to" in p.reason and "not hex" in p.reason
    # the same file with the digit fixed: the block is back, read from hex strings
    t = t.set_column(t.column_names.index("action_to"), "action_to",
                     pa.array([v if i != 5 else v.replace("0xZZ", "0x" + mainnet_first_byte(mainnet_cryo, i)) for i, v in
                               enumerate(t.column("action_to").to_pylist())], pa.string()))
    pq.write_table(t, bad)
    s = _replay([ds], tmp_path / "b.jsonl")
    assert not s.problems and s.blocks == 17
    assert alert_keys(tmp_path / "b.jsonl") == alert_keys(mainnet_alerts)


@pytest.mark.fast
def test_workers_share_a_range_and_give_what_one_process_gives(mainnet_files, tmp_path):
    """Replay workers cut a cryo range in parts (each reads the range once, assembles and decodes its share):
    the alerts and the problems are byte for byte those of one process, a bad row still costs only its block."""
    import dataclasses

    from mevwatch.monitor.replay import PART_BLOCKS, cryo_units

    originals = [read_mev_inspect(p) for p in mainnet_files]
    base, n = 20_000_000, 4 * len(originals)
    write_cryo((dataclasses.replace(b, number=base + k * len(originals) + i) for k in range(4) for i, b in enumerate(originals)),
               tmp_path / "ds")
    ds = tmp_path / "ds"
    cryo = open_cryo([ds])
    assert len(cryo.ranges) == 1 and len(cryo_units(cryo)) == -(-n // PART_BLOCKS) >= 4
    bad_block = base + n // 2 + 3  # inside a middle part
    bad = _file(ds, "transactions", bad_block)
    rows = pq.read_table(bad, columns=["block_number"]).column(0).to_pylist()
    row = rows.index(bad_block) + 1
    _replace(bad, "transaction_hash", lambda c: pa.array([v[:31] if i == row else v for i, v in enumerate(c.to_pylist())], pa.binary()))
    got = {}
    for w in (1, 2):
        with (tmp_path / f"w{w}.jsonl").open("wb") as fh:
            s = replay_files([ds], out=fh, workers=w)
        got[w] = (s.blocks, [(p.source, p.position, p.reason) for p in s.problems], (tmp_path / f"w{w}.jsonl").read_bytes())
    assert got[1] == got[2]
    blocks, problems, alerts = got[2]
    assert blocks == n - 1 and len(problems) == 1 and problems[0][1].startswith(f"block {bad_block}, transactions row")
    assert alerts.count(b"\n") > 20 and f'"block_number":{bad_block},'.encode() not in alerts
    # a file of the range that cannot be read: every part meets it, it is reported once, as one process does
    raw = bytearray(bad.read_bytes())
    raw[8:len(raw) // 2] = bytes(len(raw) // 2 - 8)  # the data pages zeroed, the footer (schema) intact
    bad.write_bytes(bytes(raw))
    got = {}
    for w in (1, 2):
        with open(os.devnull, "wb") as fh:
            s = replay_files([ds], out=fh, workers=w)
        got[w] = (s.blocks, [(p.source, p.position, p.reason) for p in s.problems])
    assert got[1] == got[2]
    assert got[2][0] == 0 and len(got[2][1]) == 1 and got[2][1][0][0] == str(bad) and "cannot read" in got[2][1][0][2]


def mainnet_first_byte(ds: Path, row: int) -> str:
    v = pq.read_table(_file(ds, "traces", SANDWICH_BLOCK), columns=["action_to"]).column(0)[row].as_py()
    return v[:1].hex()


@pytest.mark.fast
def test_a_negative_block_number_is_named(mainnet_cryo, tmp_path):
    ds = _copy(mainnet_cryo, tmp_path / "ds")
    bad = _file(ds, "blocks", SANDWICH_BLOCK)
    _replace(bad, "block_number", lambda c: pa.array([-1 for _ in c.to_pylist()], pa.int64()))
    s = _replay([ds], tmp_path / "a.jsonl")
    assert s.blocks == 16  # one block lost
    reasons = {(p.position, p.reason) for p in s.problems}
    assert ("block -1, blocks row 0", "block_number: -1 is out of range (0 to 2^64-1)") in reasons
    assert any(pos == f"block {SANDWICH_BLOCK}" and "no row in the blocks dataset" in why for pos, why in reasons)
    assert all(p.source.startswith(str(ds)) for p in s.problems)


@pytest.mark.fast
def test_cli_names_the_rejected_block(mainnet_cryo, tmp_path):
    ds = _copy(mainnet_cryo, tmp_path / "ds")
    _replace(_file(ds, "transactions", SANDWICH_BLOCK), "from_address",
             lambda c: pa.array([b"\x01" * 19 for _ in c.to_pylist()], pa.binary()))
    dead = tmp_path / "dead.jsonl"
    r = mevwatch("replay", str(ds), "--out", str(tmp_path / "a.jsonl"), "--dead-letter", str(dead))
    assert r.returncode == 1
    assert f"block {SANDWICH_BLOCK}" in r.stderr and "from_address: 19 bytes, expected 20" in r.stderr
    assert len(dead.read_text().splitlines()) == 1


# --- (d) a file that is not cryo's schema ---------------------------------------------------------------
@pytest.mark.fast
def test_a_missing_column_is_a_clean_error(mainnet_cryo, tmp_path):
    ds = _copy(mainnet_cryo, tmp_path / "ds")
    bad = _file(ds, "transactions", SANDWICH_BLOCK)
    pq.write_table(pq.read_table(bad).drop_columns(["transaction_hash"]), bad)
    r = mevwatch("replay", str(ds), "--out", str(tmp_path / "a.jsonl"))
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert bad.name in r.stderr and "missing column 'transaction_hash'" in r.stderr
    with pytest.raises(InputError, match="missing column 'transaction_hash'") as e:
        open_cryo([ds])
    assert e.value.source == str(bad)


@pytest.mark.fast
def test_other_files_are_clean_errors(mainnet_cryo, tmp_path):
    odd = tmp_path / "data.parquet"
    pq.write_table(pa.table({"x": [1]}), odd)
    r = mevwatch("replay", str(odd), "--out", str(tmp_path / "a.jsonl"))
    assert r.returncode == 2 and "not a cryo file name" in r.stderr and "Traceback" not in r.stderr
    ds = _copy(mainnet_cryo, tmp_path / "ds")
    _file(ds, "blocks", SANDWICH_BLOCK).unlink()
    with pytest.raises(InputError, match="has no blocks file"):
        open_cryo([ds])
    notparquet = tmp_path / "ethereum__blocks__1_to_2.parquet"
    notparquet.write_bytes(b"not parquet")
    with pytest.raises(InputError, match="not a parquet file"):
        open_cryo([notparquet])
    f = _file(ds, "transactions", SANDWICH_BLOCK)
    pq.write_table(pq.read_table(f).drop_columns(["value_string", "value_binary"]), f)
    with pytest.raises(InputError, match="value_f64, which is not exact"):
        open_cryo([ds])


@pytest.mark.fast
def test_without_pyarrow_the_error_names_the_extra(tmp_path):
    """In a fresh process where pyarrow cannot be imported (a compiled module keeps a module it has
    imported once, so this cannot be staged in a process that has already read parquet)."""
    code = ("import sys; sys.modules['pyarrow'] = None\n"
            "from mevwatch.monitor.errors import InputError\n"
            "from pathlib import Path\nfrom mevwatch.streams.cryo import open_cryo\n"
            "try:\n    open_cryo([Path(sys.argv[1])])\nexcept InputError as exc:\n    print(exc)\n")
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert "pip install 'mevwatch[embedded]'" in r.stdout, (r.stdout, r.stderr)


@pytest.mark.fast
def test_other_commands_do_not_import_pyarrow():
    code = "import sys, mevwatch.monitor.cli, mevwatch.monitor.replay, mevwatch.streams.files; print('pyarrow' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == "False", r.stderr


@pytest.mark.fast
def test_export_refuses_a_folder_with_parquet_and_names_bad_inputs(mainnet_cryo, mainnet_files, tmp_path):
    r = mevwatch("export", "parquet", str(mainnet_files[0]), "--out", str(mainnet_cryo))
    assert r.returncode == 2 and "already holds .parquet files" in r.stderr
    bad = tmp_path / "bad.json"
    bad.write_text("[1]")
    r = mevwatch("export", "parquet", str(mainnet_files[0]), str(bad), "--out", str(tmp_path / "out"))
    assert r.returncode == 1 and "bad.json" in r.stderr and "Traceback" not in r.stderr
    assert len(list((tmp_path / "out").iterdir())) == 3  # the good block: blocks, transactions, traces
