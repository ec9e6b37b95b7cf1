"""Detection engine speed and memory on the recorded mainnet blocks (issue 3 targets).

1. decode + detect from already-parsed blocks, one core: target >= 1,000 blocks/s
2. full replay including gzip and JSON parsing (mevwatch replay's engine): >= 200 blocks/s
3. memory while replaying the fixtures 10,000 blocks long: flat
4. where the time goes (cProfile, top functions)

Run: .venv/bin/python bench/bench_detect.py   (uses the installed, compiled package)
"""

from __future__ import annotations

import cProfile
import gc
import io
import pstats
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import write_section  # noqa: E402

import mevwatch.monitor.decode.block  # noqa: E402
from mevwatch.monitor.decode import BlockDecoder  # noqa: E402
from mevwatch.monitor.detect import detect_block  # noqa: E402
from mevwatch.monitor.replay import replay_files  # noqa: E402
from mevwatch.streams.files import read_mev_inspect  # noqa: E402

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "mainnet-traces"


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    files = sorted(DATA.glob("*.json.gz"))
    blocks = [read_mev_inspect(p) for p in files]
    compiled = mevwatch.monitor.decode.block.__file__.endswith(".so")
    dec = BlockDecoder()

    # 1. decode + detect, already parsed, one process
    rates = []
    for _ in range(5):
        gc.collect()
        t = time.perf_counter()
        n = 0
        for _ in range(40):
            for b in blocks:
                detect_block(dec.decode(b))
                n += 1
        rates.append(n / (time.perf_counter() - t))
    decode_only = []
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(40):
            for b in blocks:
                dec.decode(b)
        decode_only.append(40 * len(blocks) / (time.perf_counter() - t))

    # 2. full replay from the .json.gz files, 2 workers and 1 worker
    reps = 30
    paths = files * reps

    def full(workers: int) -> float:
        s = replay_files(paths, workers=workers)
        return s.blocks / s.elapsed_s

    full2 = statistics.median(full(2) for _ in range(3))
    full1 = full(1)

    # 3. memory over 10,000+ blocks, one process
    long_paths = files * 590
    samples: list[tuple[int, float]] = []
    count = 0

    def on_block(_n: int) -> None:
        nonlocal count
        count += 1
        if count % 1000 == 0:
            samples.append((count, rss_mib()))

    start_rss = rss_mib()
    replay_files(long_paths, workers=1, on_block=on_block)

    # 4. profile
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(10):
        for b in blocks:
            detect_block(dec.decode(b))
    prof.disable()
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(8)
    top = [ln for ln in buf.getvalue().splitlines() if ln.strip() and ln.strip()[0].isdigit()][:8]

    body = f"""
Compiled with mypyc: {"yes" if compiled else "no (pure Python)"}. Input: the {len(files)} recorded mainnet blocks in
`shared/data/mainnet-traces` (about 1,060 traces and 230 transactions per block), repeated.

| measure | result | target |
|---|---|---|
| decode + detect, parsed blocks, 1 core (median of 5 x {40 * len(blocks)} blocks) | **{statistics.median(rates):,.0f} blocks/s** (min {min(rates):,.0f}) | >= 1,000 |
| decode only, 1 core | {statistics.median(decode_only):,.0f} blocks/s | |
| full replay incl. gunzip + JSON + parse, 2 workers ({len(paths)} blocks, median of 3) | **{full2:,.0f} blocks/s** | >= 200 |
| full replay, 1 worker | {full1:,.0f} blocks/s | |
| RSS replaying {len(long_paths):,} blocks (1 process) | start {start_rss:.0f} MiB; at 1,000 blocks {samples[0][1]:.0f} MiB; at {samples[-1][0]:,} blocks {samples[-1][1]:.0f} MiB | flat |

RSS every 1,000 blocks (MiB): {", ".join(f"{v:.0f}" for _, v in samples)}

mev-inspect-py on this machine class: 10 blocks/s (classify + detect, data preloaded; figure from the design card).

Where the time goes (cProfile, 10 x {len(blocks)} blocks, top functions by own time; compiled functions are not
broken down further by the profiler):

```
{chr(10).join(top)}
```
"""
    print(body)
    write_section("detect", "python bench/bench_detect.py", body)


if __name__ == "__main__":
    main()
