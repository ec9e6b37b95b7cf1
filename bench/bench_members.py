"""Pending transactions through detection with 1 and with 3 detect members (issue 19's targets:
>= 20,000 tx/s, p99 first sight -> committed alert < 50 ms at 1,000 tx/s offered).

Each member is a process running the detect role's `DetectWorker` on a real Kafka broker (6 mempool
partitions): envelope decode, fates, order-flow sightings, every mempool rule, the sinks (here one
that records the rows it is given), then the offset commit. Members read every partition (the
whole state, docs/operations.md "Several detect members") and write what they own.

- throughput: a producer process publishes N pending transactions (built from the real
  mainnet transactions of ../shared, each with its own hash) as fast as it can; a member's rate =
  N / (its first record -> its N-th record processed); with 3 members, the slowest member's. Twice:
  while the producer publishes, and with all N published before the members start (a backlog).
- latency: the producer offers 1,000 tx/s for 20 s, stamping first_seen_ns at send; for every
  pending row a member writes (its own partitions), latency = the moment its step returned (the row
  in the sinks, its offsets' commit sent: the commit is asynchronous, streams/bus.py ReplicaConsumer)
  - first_seen_ns; percentiles over all members' rows.

Run: .venv/bin/python bench/bench_members.py  (starts its own broker on 127.0.0.1)
"""

from __future__ import annotations

import multiprocessing as mp
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # the service harness
from _report import write_section  # noqa: E402
from bench_bus import templates  # noqa: E402

from services import Kafka  # noqa: E402
from mevwatch.streams import bus as busmod  # noqa: E402
from mevwatch.streams import envelope  # noqa: E402

N = 100_000
RATE, SECONDS = 1_000, 20


def producer(bootstrap: str, prefix: str, n: int, rate: float | None, ready) -> None:
    b = busmod.KafkaBus(bootstrap, create_topics=False, topic_prefix=prefix)
    tpl = templates()
    ready.set()
    start = time.perf_counter()
    for i in range(n):
        p = tpl[i % len(tpl)]
        p.hash = p.hash[:-8] + f"{i:08x}"  # a transaction of its own each time
        p.first_seen_ns = time.time_ns()
        b.produce(busmod.MEMPOOL, p.from_address.encode(), envelope.encode_pending(p))
        if rate is not None:
            wait = start + (i + 1) / rate - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
    b.flush(120)
    b.close()


class Rows:
    name = "rows"
    health = None

    def __init__(self) -> None:
        self.first_seen: list[int] = []

    def write(self, batch) -> None:
        self.first_seen += [r[5] for r in batch.pending]

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def member(bootstrap: str, prefix: str, group: str, n: int, joined, go, results) -> None:
    from mevwatch.monitor.pipeline import DetectWorker, settle_for_latency
    from mevwatch.monitor.sinks.base import SinkChain

    bus = busmod.KafkaBus(bootstrap, create_topics=False, topic_prefix=prefix)
    rows = Rows()
    w = DetectWorker(bus, SinkChain([rows]), chain_id=1, confirmations=12, group=group)
    settle_for_latency()  # as the daemon does once its worker is set up
    while not w.consumer.owned():  # joined the group (its share decided once all have)
        w.step(timeout_ms=100)
    joined.release()
    go.wait()
    lat: list[float] = []
    first = last = None
    deadline = time.monotonic() + 600
    while w.engine.counts.pending < n and time.monotonic() < deadline:
        seen = len(rows.first_seen)
        w.step(timeout_ms=100)
        now = time.time_ns()
        if w.engine.counts.pending and first is None:
            first = time.perf_counter()
        last = time.perf_counter()
        lat += [(now - fs) / 1e6 for fs in rows.first_seen[seen:]]
    for _ in range(20):  # the rest of its own rows
        seen = len(rows.first_seen)
        w.step(timeout_ms=50)
        now = time.time_ns()
        lat += [(now - fs) / 1e6 for fs in rows.first_seen[seen:]]
    results.put((w.engine.counts.pending, (last - first) if first and last else None, lat, len(rows.first_seen)))
    w.close()
    bus.close()


def run(bootstrap: str, members: int, n: int, rate: float | None, backlog: bool = False) -> tuple[list[float], list[float], int]:
    """``backlog``: the producer publishes all ``n`` before the members start reading (a member catching up;
    the producer no longer shares the cores with them)."""
    prefix = f"bm{uuid.uuid4().hex[:6]}"
    busmod.ensure_topics(bootstrap, 6, 1, prefix=prefix)
    ctx = mp.get_context("spawn")
    joined, go, results, ready = ctx.Semaphore(0), ctx.Event(), ctx.Queue(), ctx.Event()
    group = f"g{uuid.uuid4().hex[:6]}"
    procs = [ctx.Process(target=member, args=(bootstrap, prefix, group, n, joined, go, results)) for _ in range(members)]
    for p in procs:
        p.start()
    for _ in procs:
        joined.acquire(timeout=120)
    time.sleep(3.0)  # the group settles on its final assignment
    prod = ctx.Process(target=producer, args=(bootstrap, prefix, n, rate, ready))
    prod.start()
    ready.wait(60)
    if backlog:
        prod.join(600)
    go.set()
    got = [results.get(timeout=900) for _ in procs]
    prod.join(60)
    for p in procs:
        p.join(60)
    assert all(g[0] == n for g in got), [g[0] for g in got]
    assert sum(g[3] for g in got) == n, "every pending row written by exactly one member"
    return [n / g[1] for g in got if g[1]], [x for g in got for x in g[2]], sum(g[3] for g in got)


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        k = Kafka(Path(tmp) / "kafka").start()
        try:
            lines = ["| members | throughput while the producer publishes as fast as it can (N = 100,000) | throughput "
                     "catching up a backlog of N | p50 / p99 first sight -> in the sinks at 1,000 tx/s | rows written |",
                     "|---|---|---|---|---|"]

            def rate(rates: list[float]) -> str:  # the slowest member's, and each one's
                return f"**{min(rates):,.0f} tx/s** (per member: {', '.join(f'{r:,.0f}' for r in rates)})"

            for members in (1, 3):
                live, _lat, _rows = run(k.bootstrap, members, N, None)
                behind, _lat, _rows = run(k.bootstrap, members, N, None, backlog=True)
                _r, lat, rows = run(k.bootstrap, members, RATE * SECONDS, RATE)
                lines.append(f"| {members} | {rate(live)} | {rate(behind)} | "
                             f"{statistics.median(lat):.1f} / **{pct(lat, 0.99):.1f} ms** | {rows:,} |")
                print(lines[-1], flush=True)
        finally:
            k.stop()
    body = "\n".join(lines) + (
        "\n\nEvery member reads and runs every pending transaction (the whole state: that is how 3 members "
        "raise exactly what one raises), so a member's rate is the single-process rate and does not grow with "
        "members; the members share the writing (each writes its own partitions' rows: the last column sums to "
        "every transaction once) and take over a lost member's partitions. On this 2-core machine the member "
        "processes, the producer and the broker share two cores: in the first column the producer (kafka-python, "
        "publishing as fast as it can) takes much of one; in the second it has finished before the members start, "
        "as when members catch up after an outage (ingest runs elsewhere in a deployment). Targets: >= 20,000 tx/s; "
        "p99 < 50 ms.")
    write_section("Detect members: pending transactions through detection",
                  ".venv/bin/python bench/bench_members.py", body)


if __name__ == "__main__":
    main()
