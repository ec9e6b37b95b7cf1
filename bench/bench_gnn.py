"""GNN scorer (issue 5), part 1: transaction-graph build time (models/graph.py) on the recorded
mainnet blocks (decoded once; only the graph build is timed). Target: at most 2 ms for a
300-transaction block. Model inference latency is added when the model lands.

Run: .venv/bin/python bench/bench_gnn.py
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import write_section  # noqa: E402

from models.graph import block_graph  # noqa: E402
from monitor.decode import BlockDecoder  # noqa: E402
from streams.files import read_mev_inspect  # noqa: E402

DATA = Path(os.environ.get("MEVWATCH_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")) / "mainnet-traces"
REPS = 200


def main() -> None:
    dec = BlockDecoder()
    blocks = []
    for path in sorted(DATA.glob("*.json.gz")):  # the recorded blocks (not the expected-result files)
        blocks.append(dec.decode(read_mev_inspect(path, 1)))
    rows = []
    for db in sorted(blocks, key=lambda d: len(d.block.transactions)):
        times = []
        for _ in range(REPS):
            t = time.perf_counter()
            block_graph(db)
            times.append(time.perf_counter() - t)
        times.sort()
        rows.append((db.block.number, len(db.block.transactions), len(db.swaps), times[len(times) // 2], times[int(len(times) * 0.99)]))
    per_tx = sum(r[3] for r in rows) / sum(r[1] for r in rows)
    lines = "\n".join(f"| {n} | {t} | {s} | {p50 * 1e3:.2f} ms | {p99 * 1e3:.2f} ms |" for n, t, s, p50, p99 in rows)
    body = f"""
Graph build only (decoded blocks in memory), {REPS} builds per block, single thread, pure Python + numpy.

| block | transactions | swaps | p50 | p99 |
|---|---|---|---|---|
{lines}

Mean cost {per_tx * 1e6:.1f} µs per transaction: a 300-transaction block builds in about
**{per_tx * 300 * 1e3:.2f} ms** (target: at most 2 ms).
"""
    print(body)
    write_section("gnn", "python bench/bench_gnn.py", body)


if __name__ == "__main__":
    main()
