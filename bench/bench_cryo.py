"""Replay from a cryo parquet dataset vs from the gzip JSON (mev-inspect) originals, in one run.

Input: the recorded mainnet blocks in shared/data/mainnet-traces, repeated REPS times. The originals
are replayed as files (as bench_detect does); the parquet dataset holds the same blocks renumbered
consecutively (cryo holds one row per block number), written by the converter (streams/cryo.py) in
cryo's 1,000-block files. Measured: full replay (read + decode + detect, replay_files), and reading
alone (files -> Block objects).

Run: .venv/bin/python bench/bench_cryo.py [--reps N]   (needs pyarrow: the embedded extra; N defaults
to 30: 510 blocks; more amortise the worker processes' start and each worker's reading of a range)
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import write_section  # noqa: E402

from mevwatch.monitor.replay import PART_BLOCKS, replay_files  # noqa: E402
from mevwatch.streams.cryo import iter_cryo, write_cryo  # noqa: E402
from mevwatch.streams.files import read_mev_inspect  # noqa: E402

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "mainnet-traces"
REPS = 30
BASE = 20_000_000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=REPS, help="copies of the shared blocks (17 each)")
    reps = ap.parse_args().reps
    files = sorted(DATA.glob("*.json.gz"))
    originals = [read_mev_inspect(p) for p in files]
    paths = files * reps
    n = len(paths)
    with tempfile.TemporaryDirectory() as tmp:
        ds = Path(tmp) / "cryo"
        copies = (dataclasses.replace(b, number=BASE + k * len(originals) + i)
                  for k in range(reps) for i, b in enumerate(originals))
        t = time.perf_counter()
        written = write_cryo(copies, ds)
        write_s = time.perf_counter() - t
        size = sum(p.stat().st_size for p in ds.iterdir())
        gz_size = sum(p.stat().st_size for p in files) * reps

        def rate(fn) -> float:
            return statistics.median(fn() for _ in range(3))

        def read_json() -> float:
            t = time.perf_counter()
            for p in paths:
                read_mev_inspect(p)
            return n / (time.perf_counter() - t)

        def read_parquet() -> float:
            t = time.perf_counter()
            count = sum(1 for _ in iter_cryo([ds]))
            assert count == n
            return n / (time.perf_counter() - t)

        def full(inputs: list[Path], workers: int) -> float:
            s = replay_files(inputs, workers=workers)
            assert s.blocks == n and not s.problems, s.problems[:3]
            return s.blocks / s.elapsed_s

        r_json, r_pq = rate(read_json), rate(read_parquet)
        f_json2, f_json1 = rate(lambda: full(paths, 2)), rate(lambda: full(paths, 1))
        f_pq, f_pq2 = rate(lambda: full([ds], 1)), rate(lambda: full([ds], 2))

    body = f"""
Input: the {len(files)} recorded mainnet blocks in `shared/data/mainnet-traces` repeated {reps} times ({n} blocks;
about 1,060 traces and 230 transactions a block). The parquet copy ({written.blocks} blocks, renumbered
consecutively, {len(written.files)} files in cryo's 1,000-block ranges: blocks, transactions, traces) was written by
the converter in {write_s:.1f} s ({written.blocks / write_s:,.0f} blocks/s); {size / 2**20:.1f} MiB of zstd parquet
vs {gz_size / 2**20:.1f} MiB of gzip JSON. Medians of 3 runs.

| measure | gzip JSON (mev-inspect files) | cryo parquet |
|---|---|---|
| full replay (read + decode + detect, `replay_files`), 1 process | {f_json1:,.0f} blocks/s | **{f_pq:,.0f} blocks/s** |
| full replay, 2 worker processes (the replay default here; each cryo range cut in parts of {PART_BLOCKS} blocks) | {f_json2:,.0f} blocks/s | **{f_pq2:,.0f} blocks/s** |
| read only (files -> Block objects, no decode) | {r_json:,.0f} blocks/s | {r_pq:,.0f} blocks/s |
"""
    print(body)
    write_section("cryo", "python bench/bench_cryo.py" + (f" --reps {reps}" if reps != REPS else ""), body)


if __name__ == "__main__":
    main()
