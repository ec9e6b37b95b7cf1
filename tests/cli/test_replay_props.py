"""Property tests (hypothesis): malformed blocks in every input format of `mevwatch replay`
(mev-inspect .json and .json.gz, JSONL recordings .jsonl and .jsonl.gz, truncated gzip) never
stop the run. For any mutation, at any place in a block (a value of any JSON type or size, or a
key removed):

- no exception escapes (the command: exit 0 or 1, never a traceback);
- every block is either replayed or rejected, never both, never lost: each rejection names the
  file (and, in a recording, the line) of a broken block, and the dead-letter file holds them all;
- every alert of the intact blocks is still written, byte for byte; when every broken block is
  rejected, the output is exactly that of the intact blocks alone.

Recordings are validated strictly: a value replaced by one of another JSON type is always a
rejection that names the field (or the object holding it). Each test stays under ~20 s (few
examples of a handful of real mainnet blocks; no deadline)."""

from __future__ import annotations

import copy
import functools
import gzip
import io
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from conftest import raw_block
from mevwatch.monitor.cli.output import write_dead_letters
from mevwatch.monitor.replay import replay_files
from mevwatch.streams.envelope import encode_block
from mevwatch.streams.mevinspect import parse_block

pytestmark = pytest.mark.fast

REPO = Path(__file__).resolve().parents[2]
GOOD = (12498502, 12775690)  # an arbitrage, a sandwich: their alerts must survive
SPARE = (12674514, 11935012, 13666184)  # small blocks that get broken, renumbered to lie between the two
# no shrinking: a failing example is reported as drawn (its draws are printed), within the test timeout
PHASES = (Phase.explicit, Phase.reuse, Phase.generate)
PROPS = settings(max_examples=20, deadline=None, phases=PHASES,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

HOSTILE = st.one_of(
    st.none(), st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**300),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["0x", "0xzz", "0xa9059cbbZZ", "0x" + "f" * 81, "-1", "12", "\u202e", "[/x]", "\x1b[2J", "0x" + "00" * 20]),
    st.lists(st.one_of(st.integers(-3, 2**65), st.text(max_size=3)), max_size=3),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
)


@functools.cache
def _raws() -> dict[int, dict]:
    """The mev-inspect blocks; the spare ones numbered 12600000 + i (in chain order between the intact ones)."""
    out = {n: raw_block(n) for n in GOOD + SPARE}
    for i, n in enumerate(SPARE):
        out[n]["block_number"] = 12_600_000 + i
        for t in out[n]["traces"]:
            t["block_number"] = 12_600_000 + i
    return out


@functools.cache
def _envelopes() -> dict[int, dict]:
    return {n: orjson.loads(encode_block(parse_block(b))) for n, b in _raws().items()}


def raw(n: int) -> dict:
    return copy.deepcopy(_raws()[n])


def envelope(n: int) -> dict:
    return copy.deepcopy(_envelopes()[n])


def _mutate(data: st.DataObject, obj: Any) -> tuple[tuple, Any, bool]:
    """Break ``obj`` in place at a path hypothesis picks: (path, the value before, removed?)."""
    path: tuple = ()
    node = obj
    while True:
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        key = data.draw(st.sampled_from(keys), label="key")
        child = node[key]
        if isinstance(child, (dict, list)) and child and data.draw(st.booleans(), label="deeper"):
            path, node = path + (key,), child
            continue
        before = copy.deepcopy(child)
        if isinstance(node, dict) and data.draw(st.integers(0, 9), label="remove") == 0:
            del node[key]
            return path + (key,), before, True
        node[key] = data.draw(HOSTILE, label="value")
        return path + (key,), before, False


def _kind(v: Any) -> str:
    return {bool: "bool", int: "number", float: "number", str: "string", list: "array", dict: "object"}.get(type(v), "null")


def _rendered(path: tuple) -> str:
    out = ""
    for k in path:
        out += f"[{k}]" if isinstance(k, int) else (f".{k}" if out else k)
    return out


def _lines(data: bytes) -> list[bytes]:
    return [x for x in data.splitlines() if x.strip()]


def _dump(obj: Any) -> str:
    return json.dumps(obj)  # the standard library: integers of any size, NaN and Infinity as they come


def _write(path: Path, text: str) -> None:
    path.write_bytes(gzip.compress(text.encode()) if path.name.endswith(".gz") else text.encode())


def _replay(paths: list[Path], workers: int = 1) -> tuple[Any, bytes, list[dict]]:
    buf = io.BytesIO()
    summary = replay_files(paths, out=buf, workers=workers)  # never raises: that is the first property
    with tempfile.TemporaryDirectory() as d:
        dead = Path(d) / "dead.jsonl"
        write_dead_letters(summary.problems, dead)
        letters = [json.loads(x) for x in dead.read_text().splitlines()]
    return summary, buf.getvalue(), letters


@functools.cache
def intact_output() -> bytes:
    """What the intact blocks alone write (the baseline every run must keep)."""
    with tempfile.TemporaryDirectory() as d:
        files = []
        for n in GOOD:
            files.append(Path(d) / f"{n}.json")
            _write(files[-1], _dump(raw(n)))
        return _replay(files)[1]


@PROPS
@given(data=st.data(), gz=st.booleans(), broken=st.integers(1, 3))
def test_mev_inspect_files_one_broken_block_costs_one_file(data, gz, broken):
    with tempfile.TemporaryDirectory() as d:
        files, bad = [], set()
        order = [GOOD[0], *SPARE[:broken], GOOD[1]]  # broken blocks between the intact ones
        for i, n in enumerate(order):
            obj = raw(n)
            if n in SPARE:
                _mutate(data, obj)
            f = Path(d) / f"{i:02d}-{n}.json{'.gz' if gz else ''}"
            _write(f, _dump(obj))
            files.append(f)
            if n in SPARE:
                bad.add(str(f))
        summary, out, letters = _replay(files)
    rejected = [x["source"] for x in letters]
    assert len(rejected) == len(set(rejected)) and set(rejected) <= bad, letters  # only broken files, each once
    assert summary.blocks == len(order) - len(rejected)
    assert all(x["reason"] for x in letters)
    assert set(_lines(intact_output())) <= set(_lines(out))  # every alert of the intact blocks
    if len(rejected) == len(bad):
        assert out == intact_output()


@PROPS
@given(data=st.data(), gz=st.booleans(), broken=st.integers(1, 3))
def test_recording_lines_one_broken_block_costs_one_line_and_names_the_field(data, gz, broken):
    order = [GOOD[0], *SPARE[:broken], GOOD[1]]
    lines, changes = [], {}
    for i, n in enumerate(order):
        obj = envelope(n)
        if n in SPARE:
            changes[i + 1] = _mutate(data, obj)
        lines.append(_dump(obj))
    with tempfile.TemporaryDirectory() as d:
        rec = Path(d) / f"rec.jsonl{'.gz' if gz else ''}"
        _write(rec, "\n".join(lines) + "\n")
        summary, out, letters = _replay([rec])
    named = {x["position"]: x for x in letters}
    assert len(named) == len(letters) and all(x["source"] == str(rec) for x in letters), letters
    assert set(named) <= {f"line {k}" for k in changes}, letters
    assert summary.blocks == len(order) - len(letters)
    for k, (path, before, removed) in changes.items():
        letter = named.get(f"line {k}")
        assert letter is None or letter["raw"].rstrip("\n") == lines[k - 1]  # the line itself, for a look later
        if removed or before is None:
            continue  # a removed optional field, or null made a value: may be valid
        value = json.loads(lines[k - 1])
        for key in path:
            value = value[key]
        if value is None:
            continue  # a value made null: valid where the field is optional
        if isinstance(before, str) and isinstance(value, int) and not isinstance(value, bool):
            continue  # quantities (values, fees) are decimal strings or integers: may be valid
        if _kind(value) == _kind(before):
            continue  # same type: may be valid (another string, a number in range)
        assert letter is not None, (path, before, value)  # another JSON type: always a rejection
        field = re.match(r"field '([^']*)'", letter["reason"])
        where = _rendered(path)
        assert (field and where.startswith(field.group(1))) or str(path[0]) in letter["reason"], (where, letter["reason"])
    assert set(_lines(intact_output())) <= set(_lines(out))
    if len(letters) == len(changes):
        assert out == intact_output()


@settings(max_examples=10, deadline=None, phases=PHASES)
@given(cut=st.floats(0.0, 0.999), name=st.sampled_from(["rec.jsonl.gz", "blk.json.gz"]))
def test_truncated_gzip_costs_only_what_is_missing(cut, name):
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / name
        if name.endswith(".jsonl.gz"):
            body = gzip.compress(("\n".join(_dump(envelope(n)) for n in SPARE) + "\n").encode())
        else:
            body = gzip.compress(_dump(raw(SPARE[0])).encode())
        p.write_bytes(body[: int(len(body) * cut)])
        good = [Path(d) / f"{n}.json" for n in GOOD]
        for f, n in zip(good, GOOD):
            _write(f, _dump(raw(n)))
        summary, out, letters = _replay([good[0], p, good[1]])
    assert letters and all(x["source"] == str(p) for x in letters), letters  # the cut file, named
    assert set(_lines(intact_output())) <= set(_lines(out))
    if name.endswith(".jsonl.gz"):
        assert len(letters) == 1 and letters[0]["position"].startswith("after line")  # the lines before the cut stand
    else:
        assert summary.blocks == 2 and len(letters) == 1


@settings(max_examples=4, deadline=None, phases=PHASES, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_the_command_never_shows_a_traceback(data, tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    inputs = d / "in"
    inputs.mkdir()
    _write(inputs / "0.json.gz", _dump(raw(GOOD[0])))
    spare = raw(SPARE[0])
    _mutate(data, spare)
    _write(inputs / "1.json", _dump(spare))
    rec = [envelope(n) for n in (SPARE[1], GOOD[1])]
    _mutate(data, rec[0])
    _write(inputs / "2.jsonl.gz", "\n".join(_dump(x) for x in rec) + "\n")
    other = envelope(SPARE[2])
    _mutate(data, other)
    _write(inputs / "3.jsonl", _dump(other) + "\n")
    out, dead = d / "alerts.jsonl", d / "dead.jsonl"
    r = subprocess.run([sys.executable, "-m", "mevwatch.monitor.cli", "--log-level", "WARNING", "replay", str(inputs),
                        "--workers", "2", "--out", str(out), "--dead-letter", str(dead)],
                       capture_output=True, text=True, cwd=REPO, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert "Traceback" not in r.stderr, r.stderr
    n = len(dead.read_text().splitlines())
    assert r.returncode == (1 if n else 0), r.stderr
    row = next(line for line in r.stderr.splitlines() if "rejected inputs" in line)
    assert (f"{n} (all in" if n else "none") in row, r.stderr
    kinds = {orjson.loads(x)["kind"] for x in _lines(out.read_bytes())}
    assert "sandwich" in kinds  # the intact mainnet block's alert
