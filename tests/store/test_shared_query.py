"""Queries through a running daemon (ChdbBackend.read_only_shared, the /query endpoint's client),
on a real chDB: one SELECT, nothing that reaches outside the store, bounded, and a failed query
never leaves anything behind for the daemon's next one."""

from __future__ import annotations

import os

import pytest

from mevwatch.monitor.errors import InputError, StoreError
from mevwatch.monitor.store import endpoint
from mevwatch.monitor.store.backend import ChdbBackend


@pytest.fixture(scope="module")
def chdb(tmp_path_factory):
    b = ChdbBackend(tmp_path_factory.mktemp("shared") / "chdb")
    b.execute("CREATE TABLE t (x UInt32, s String) ENGINE = MergeTree ORDER BY x")
    b.execute("INSERT INTO t VALUES (1, 'a'), (2, 'b')")
    yield b
    b.close()


@pytest.mark.parametrize("sql, why", [
    ("SELECT file('/etc/passwd')", "reaches outside the store"),  # a scalar function: readonly alone lets it read
    ("SELECT * FROM url('http://127.0.0.1:9/x', CSV, 'a String')", "reaches outside the store"),
    ("SELECT * FROM remote('127.0.0.1:9000', system.one)", "reaches outside the store"),
    ("SELECT 1; DROP TABLE t", "one statement"),
    ("INSERT INTO t VALUES (3, 'c')", "only SELECT"),
    ("SELECT 1 SETTINGS max_execution_time = 0", "SETTINGS"),
    ("SELECT 1) SETTINGS readonly = 0 --", "does not parse"),
])
def test_refused_before_running(chdb, sql, why):
    with pytest.raises(InputError, match=why):
        chdb.read_only_shared(sql)
    assert chdb.query("SELECT count() FROM t") == [[2]]  # the table is untouched


def test_bounded_and_nothing_left_behind_for_the_next_query(chdb):
    with pytest.raises(StoreError, match="TOO_MANY_ROWS|Limit for rows"):
        chdb.read_only_shared("SELECT count() FROM system.numbers")  # would run for ever
    with pytest.raises(StoreError, match="Limit for result"):
        chdb.read_only_shared("SELECT number FROM numbers(200000)")
    # chDB keeps a failed query's partial output for the next answer: the backend drains it
    assert chdb.query("SELECT count() FROM t") == [[2]]
    assert chdb.read_only_shared("SELECT x FROM t ORDER BY x") == (["x"], [[1], [2]])
    chdb.execute("INSERT INTO t VALUES (3, 'c')")  # the session stays writable for the daemon
    assert chdb.query("SELECT count() FROM t") == [[3]]


def test_the_client_trusts_only_a_private_file_naming_a_loopback_url(tmp_path):
    held = tmp_path / "chdb.query.json"
    endpoint.write(held, "http://127.0.0.1:9/query", "t0ken")
    assert (held.stat().st_mode & 0o777) == 0o600 and not list(tmp_path.glob("*.tmp"))
    with pytest.raises(StoreError, match="does not answer"):  # trusted, but nothing listens there
        endpoint.query(held, "SELECT 1", timeout=2)
    os.chmod(held, 0o644)
    with pytest.raises(StoreError, match="not a private file"):
        endpoint.query(held, "SELECT 1")
    endpoint.write(held, "http://203.0.113.7:8080/query", "t0ken")
    with pytest.raises(StoreError, match="not a loopback address"):
        endpoint.query(held, "SELECT 1")
    endpoint.remove(held, "other-token")  # another daemon's file is left alone
    assert held.exists()
    endpoint.remove(held, "t0ken")
    assert not held.exists()
