"""`mevwatch db query`: SQL against the evidence store, read-only, on both backends (embedded chDB and
clickhouse-server 18.16), and every example query of docs/store.md runs there as documented."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXE = str(Path(sys.executable).with_name("mevwatch"))


def mevwatch(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([EXE, *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def documented_queries() -> list[str]:
    text = (REPO / "docs" / "store.md").read_text()
    block = text.split("## Example queries", 1)[1].split("```sql", 1)[1].split("```", 1)[0]
    out = []
    for q in re.split(r";\s*\n", block):
        sql = "\n".join(ln for ln in q.splitlines() if ln.strip() and not ln.strip().startswith("--")).rstrip(";")
        if sql:
            out.append(sql)  # the statement without its comment line (a leading "--" reads as an option)
    return out


@pytest.fixture(params=["chdb", "server"])
def filled(request, tmp_path, traces_dir):
    """A store with the shared mainnet blocks replayed into it: (extra args naming it, working folder)."""
    args: list[str] = []
    if request.param == "server":
        ch = request.getfixturevalue("clickhouse")
        args = ["--clickhouse", ch.url(f"q_{uuid.uuid4().hex[:8]}")]
    r = mevwatch("replay", str(traces_dir), "--store", *args, "-q", "--out", str(tmp_path / "a.jsonl"), cwd=tmp_path)
    assert r.returncode in (0, 1), r.stderr  # 1: a non-block file of the folder named as rejected
    return args, tmp_path


def test_documented_queries_run_on_both_backends(filled):
    args, cwd = filled
    queries = documented_queries()
    assert len(queries) >= 4
    for q in queries:
        r = mevwatch("db", "query", q, *args, "--format", "json", cwd=cwd)
        assert r.returncode == 0, (q, r.stderr)
    r = mevwatch("db", "query", "SELECT kind, count() AS n FROM alerts FINAL GROUP BY kind ORDER BY kind", *args,
                 "--format", "json", cwd=cwd)
    rows = [json.loads(x) for x in r.stdout.splitlines()]
    assert {x["kind"]: int(x["n"]) for x in rows} == {"arbitrage": 20, "backrun": 3, "liquidation": 12, "sandwich": 7}, rows
    # USD values stored (docs/alerts.md, Amounts): the shared blocks mostly have a stablecoin price
    r = mevwatch("db", "query", "SELECT countIf(profit_usd IS NOT NULL) AS priced, count() AS n FROM alerts FINAL",
                 *args, "--format", "json", cwd=cwd)
    (row,) = [json.loads(x) for x in r.stdout.splitlines()]
    assert int(row["priced"]) >= 20, row


def test_queries_are_read_only_and_values_are_data(filled):
    args, cwd = filled
    r = mevwatch("db", "query", "DROP TABLE alerts", *args, cwd=cwd)
    assert r.returncode == 1 and "readonly" in r.stderr.lower() and "Traceback" not in r.stderr, r.stderr
    r = mevwatch("db", "query", "SELECT count() AS n FROM alerts", *args, "--format", "tsv", cwd=cwd)
    assert r.returncode == 0 and r.stdout.splitlines()[0] == "n" and int(r.stdout.splitlines()[1]) > 0, r.stdout
    # a value with terminal control characters and markup is printed escaped, never interpreted
    r = mevwatch("db", "query", "SELECT '[red]x[/red]\\x1B[2J' AS s, length(s) AS n", *args, cwd=cwd)
    assert r.returncode == 0 and " 16 " in r.stdout, r.stdout  # the ESC is in the value (12 + 1 + 3 characters)
    assert "\x1b" not in r.stdout and "[red]x[/red]" in r.stdout, r.stdout
