"""GNN scorer (issue 5): transaction-graph build time (models/graph.py) and graph build +
inference of the shipped model (models/default/model.pt) on the recorded mainnet blocks (decoded
once). Targets: graph build at most 2 ms and build + inference p99 at most 10 ms on CPU for a
300-transaction block. With a CUDA device (the `device` tool) the same runs on it too.

Run: .venv/bin/python bench/bench_gnn.py
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import write_section  # noqa: E402

from mevwatch.models.graph import block_graph  # noqa: E402
from mevwatch.monitor.decode import BlockDecoder  # noqa: E402
from mevwatch.streams.files import read_mev_inspect  # noqa: E402

DATA = Path(os.environ.get("MEVWATCH_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")) / "mainnet-traces"
REPS = 200


def inference(blocks) -> str:
    try:
        import torch
    except ImportError:
        return "\n(graph model not installed: no inference figures; pip install '.[gnn]')\n"
    from mevwatch.models.scorer import Scorer

    out = []
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for dev in devices:
        torch.set_num_threads(1)
        sc = Scorer(device=dev, model_alerts="all")  # block alerts included: the full per-block cost
        rows = []
        for db in sorted(blocks, key=lambda d: len(d.block.transactions)):
            for _ in range(5):
                sc.score_block(db)  # warm up
            times = []
            for _ in range(REPS):
                t = time.perf_counter()
                sc.score_block(db)
                if dev == "cuda":
                    torch.cuda.synchronize()
                times.append(time.perf_counter() - t)
            times.sort()
            rows.append((db.block.number, len(db.block.transactions), times[len(times) // 2], times[int(len(times) * 0.99)]))
        name = torch.cuda.get_device_name(0) if dev == "cuda" else "CPU, 1 thread"
        near = [r for r in rows if 200 <= r[1] <= 450]
        worst = max(r[3] for r in near) if near else float("nan")
        out.append(f"\n**Graph build + inference, {name}** (model {sc.model_hash[:18]}..., {REPS} runs per block):\n\n"
                   "| block | transactions | p50 | p99 |\n|---|---|---|---|\n"
                   + "\n".join(f"| {n} | {t} | {p50 * 1e3:.2f} ms | {p99 * 1e3:.2f} ms |" for n, t, p50, p99 in rows)
                   + f"\n\nWorst p99 over the 200-450-transaction blocks: **{worst * 1e3:.2f} ms** (target: at most 10 ms).\n")
    return "".join(out)


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
    infer = inference(blocks)
    lines = "\n".join(f"| {n} | {t} | {s} | {p50 * 1e3:.2f} ms | {p99 * 1e3:.2f} ms |" for n, t, s, p50, p99 in rows)
    body = f"""
Graph build only (decoded blocks in memory), {REPS} builds per block, single thread, pure Python + numpy.

| block | transactions | swaps | p50 | p99 |
|---|---|---|---|---|
{lines}

Mean cost {per_tx * 1e6:.1f} µs per transaction: a 300-transaction block builds in about
**{per_tx * 300 * 1e3:.2f} ms** (target: at most 2 ms).
{infer}
"""
    print(body)
    write_section("gnn", "python bench/bench_gnn.py", body)


if __name__ == "__main__":
    main()
