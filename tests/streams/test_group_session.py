"""A detect member that dies without leaving its group (SIGKILL, a lost machine) has its partitions
given to the others after ``kafka.session_timeout_s``, not after kafka-python's 45 s default."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
import uuid

import pytest

from mevwatch.streams import bus as busmod

pytestmark = pytest.mark.kafka

SESSION_S = 6.0  # the broker's smallest allowed (group.min.session.timeout.ms)

MEMBER = textwrap.dedent("""
    import sys, time
    from mevwatch.streams import bus as busmod
    bus = busmod.KafkaBus(sys.argv[1], topic_prefix=sys.argv[2], create_topics=False, session_timeout_s=float(sys.argv[4]))
    c = bus.replica_consumer([busmod.MEMPOOL], sys.argv[3])
    told = False
    while True:
        c.poll(timeout_ms=100)
        if c.owned() and not told:
            print("owns", len(c.owned()), flush=True)
            told = True
""")


def test_a_killed_member_is_replaced_within_the_session_timeout(kafka):
    prefix, group = f"gs{uuid.uuid4().hex[:6]}", f"g{uuid.uuid4().hex[:6]}"
    bus = busmod.KafkaBus(kafka.bootstrap, partitions=6, topic_prefix=prefix, session_timeout_s=SESSION_S)
    other = subprocess.Popen([sys.executable, "-c", MEMBER, kafka.bootstrap, prefix, group, str(SESSION_S)],
                             stdout=subprocess.PIPE, text=True)
    mine = None
    try:
        assert other.stdout is not None
        assert other.stdout.readline().startswith("owns")  # the other member joined first: it owns all six
        mine = bus.replica_consumer([busmod.MEMPOOL], group)
        deadline = time.monotonic() + 60
        while not mine.owned() and time.monotonic() < deadline:
            mine.poll(timeout_ms=100)  # joined: the group shares the partitions between the two
        assert 0 < len(mine.owned() or ()) < 6, mine.owned()
        other.send_signal(signal.SIGKILL)  # gone without leaving the group
        other.wait(10)
        killed = time.monotonic()
        while len(mine.owned() or ()) < 6 and time.monotonic() < killed + 60:
            mine.poll(timeout_ms=100)
        took = time.monotonic() - killed
        assert len(mine.owned() or ()) == 6, mine.owned()
        # dropped once its session expired (plus a rebalance), far sooner than kafka-python's 45 s default
        assert took < SESSION_S + 8, f"took {took:.1f} s to take over the killed member's partitions"
    finally:
        if other.poll() is None:
            other.kill()
        if mine is not None:
            mine.close()
        bus.close()


def test_the_group_settings_follow_the_session_timeout():
    assert busmod.group_timeouts(10.0) == {"session_timeout_ms": 10_000, "heartbeat_interval_ms": 3_333}
    assert busmod.group_timeouts(6.0)["heartbeat_interval_ms"] * 3 <= 6_000
