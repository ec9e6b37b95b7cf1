"""Where a detect member's latency goes (issue 19: p99 first sight -> committed alert < 50 ms at 1,000 tx/s).

One member (bench_members.py's set-up: a real broker, 6 mempool partitions, a producer process offering
1,000 tx/s) with the reorder window at 20 ms (shipped) and at 5 ms, alternated, after a discarded warm-up run. Per run: first sight -> in the sinks
(what bench_members reports: the step that wrote the row returned, its offsets' commit sent), the bus
alone (record's CreateTime -> the member's poll returned it: producer linger, broker, fetch) and the
time the member spends in the offset commit per step (asynchronous: sending it; the broker answers
while the member works).

Run: .venv/bin/python bench/bench_member_latency.py  (starts its own broker on 127.0.0.1; about 2 minutes)
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # the service harness
import bench_members as bm  # noqa: E402
from _report import write_section  # noqa: E402

N = 10_000
WINDOWS = (20, 5, 20, 5)  # alternated: the machine's speed drifts between runs


def member(bootstrap: str, prefix: str, group: str, n: int, joined, go, results) -> None:
    import mevwatch.monitor.pipeline as pipeline
    from mevwatch.monitor.sinks.base import SinkChain

    pipeline.REORDER_MS = int(os.environ["BENCH_REORDER_MS"])
    bus = bm.busmod.KafkaBus(bootstrap, create_topics=False, topic_prefix=prefix)
    rows = bm.Rows()
    w = pipeline.DetectWorker(bus, SinkChain([rows]), chain_id=1, confirmations=12, group=group)
    pipeline.settle_for_latency()  # as the daemon does once its worker is set up
    while not w.consumer.owned():
        w.step(timeout_ms=100)
    transport: list[float] = []
    commits: list[float] = []
    poll, commit = w.consumer.poll, w._commit

    def timed_poll(*a, **k):
        recs = poll(*a, **k)
        now = time.time() * 1000
        transport.extend(now - r.timestamp_ms for r in recs)
        return recs

    def timed_commit() -> None:
        t = time.perf_counter()
        commit()
        commits.append((time.perf_counter() - t) * 1000)

    w.consumer.poll, w._commit = timed_poll, timed_commit  # type: ignore[method-assign]
    joined.release()
    go.wait()
    lat: list[float] = []
    deadline = time.monotonic() + 600
    while w.engine.counts.pending < n and time.monotonic() < deadline:
        seen = len(rows.first_seen)
        w.step(timeout_ms=100)
        now = time.time_ns()
        lat += [(now - fs) / 1e6 for fs in rows.first_seen[seen:]]
    results.put((w.engine.counts.pending, 1.0, (lat, transport, commits), len(rows.first_seen)))
    w.close()
    bus.close()


def main() -> None:
    from services import Kafka

    lines = ["| reorder window | first sight -> in the sinks p50 / p90 / p99 | bus alone (CreateTime -> polled) p50 / p99 | member time in the commit p50 / p99 |",
             "|---|---|---|---|"]
    bm.member = member
    with tempfile.TemporaryDirectory() as tmp:
        k = Kafka(Path(tmp) / "kafka").start()
        try:
            os.environ["BENCH_REORDER_MS"] = "20"
            bm.run(k.bootstrap, 1, 2_000, bm.RATE)  # warm-up, not reported: a fresh broker (JVM) is slow at first
            for window in WINDOWS:
                os.environ["BENCH_REORDER_MS"] = str(window)
                _r, parts, _rows = bm.run(k.bootstrap, 1, N, bm.RATE)
                lat, transport, commits = parts  # run() flattens each member's (lat, transport, commits)
                lines.append(f"| {window} ms{' (shipped)' if window == 20 else ''} | {statistics.median(lat):.1f} / {bm.pct(lat, 0.9):.1f} / "
                             f"**{bm.pct(lat, 0.99):.1f} ms** | {statistics.median(transport):.1f} / {bm.pct(transport, 0.99):.1f} ms | "
                             f"{statistics.median(commits):.1f} / {bm.pct(commits, 0.99):.1f} ms |")
                print(lines[-1], flush=True)
        finally:
            k.stop()
    body = "\n".join(lines) + f"\n\nOne member, {N:,} pending transactions offered at {bm.RATE:,} tx/s, rows kept in memory (no ClickHouse)."
    write_section("Detect member latency: where it goes", ".venv/bin/python bench/bench_member_latency.py", body)


if __name__ == "__main__":
    main()
