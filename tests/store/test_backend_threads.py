"""Statements of different threads run side by side on both backends (monitor/store/backend.py
``_Pool``): the detect path's write does not wait for the attestation batcher's query in flight, on
a real chDB and a real ClickHouse server; what one thread writes, the others read at once; closing
waits for a statement in flight."""

from __future__ import annotations

import threading
import time

import pytest

from mevwatch.monitor.store.backend import CONNECTIONS, ChdbBackend, ServerBackend

SLOW_S = 1.5  # the "batcher query": sleep() holds its connection this long


@pytest.fixture(params=["chdb", "server"])
def backend(request, tmp_path):
    if request.param == "chdb":
        b = ChdbBackend(tmp_path / "chdb")
    else:
        ch = request.getfixturevalue("clickhouse")
        b = ServerBackend(ch.url(f"threads_{int(time.time() * 1000)}"))
    b.execute("CREATE TABLE IF NOT EXISTS t (x UInt32, s String) ENGINE = MergeTree ORDER BY x")
    yield b
    b.close()


def _slow_query_in_a_thread(b) -> tuple[threading.Thread, list[float]]:
    done: list[float] = []

    def slow() -> None:
        b.query(f"SELECT sleep({SLOW_S})")
        done.append(time.monotonic())

    th = threading.Thread(target=slow)
    th.start()
    time.sleep(0.3)  # the slow statement is running
    return th, done


def test_a_write_does_not_wait_for_another_threads_query(backend):
    th, slow_done = _slow_query_in_a_thread(backend)
    t0 = time.monotonic()
    backend.insert("t", ("x", "s"), [(1, "written while the query ran"), (2, "b")])
    rows = backend.query("SELECT x, s FROM t ORDER BY x")
    took = time.monotonic() - t0
    still_running = not slow_done
    th.join()
    assert rows == [[1, "written while the query ran"], [2, "b"]]  # written, and read back on any connection
    assert still_running and took < SLOW_S - 0.5, f"the write waited {took:.2f} s for the other thread's query"


def test_at_most_CONNECTIONS_open_and_the_rest_take_turns(backend):
    threads = [threading.Thread(target=backend.query, args=("SELECT sleep(0.3)",)) for _ in range(CONNECTIONS + 2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(backend._pool.opened) == CONNECTIONS
    assert backend.query("SELECT 1") == [[1]]


def test_close_waits_for_a_statement_in_flight(tmp_path):
    b = ChdbBackend(tmp_path / "chdb")
    th, slow_done = _slow_query_in_a_thread(b)
    b.close()
    assert slow_done, "close() returned while a statement was running on another session"
    th.join()


def test_a_read_only_statement_leaves_no_read_only_session_behind(tmp_path):
    """`mevwatch db query` runs the user's statement on a session set read-only; that session is closed
    afterwards, so a write of the same process (on whichever session) still works."""
    b = ChdbBackend(tmp_path / "chdb")
    try:
        th, _done = _slow_query_in_a_thread(b)  # a second session opens while the first is busy
        assert b.read_only("SELECT 41 + 1") == (["plus(41, 1)"], [[42]])
        th.join()
        b.execute("CREATE TABLE t (x UInt32) ENGINE = MergeTree ORDER BY x")
        for i in range(CONNECTIONS + 1):
            b.insert("t", ("x",), [(i,)])
        assert b.query("SELECT count() FROM t") == [[CONNECTIONS + 1]]
    finally:
        b.close()


def test_a_connection_that_fails_to_open_frees_its_slot_whatever_the_failure():
    """An interrupt while a further connection opens (KeyboardInterrupt, SystemExit) must not leave the slot
    counted as opening: closing would then wait for it forever."""
    from mevwatch.monitor.store.backend import _Pool

    made = []

    def make():
        if made:
            raise KeyboardInterrupt
        made.append(object())
        return made[-1]

    pool = _Pool(make, 2)
    with pool.take():  # the first connection is busy, so the next take opens another
        with pytest.raises(KeyboardInterrupt):
            with pool.take():
                pass
    closing = threading.Thread(target=pool.close_all, args=(lambda c: None,))
    closing.start()
    closing.join(2.0)
    assert not closing.is_alive(), "close_all waits for a connection that will never open"
