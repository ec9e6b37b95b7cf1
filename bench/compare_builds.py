"""Same-session comparison of two installed builds: decode + detect and replay rates on the recorded
mainnet blocks. This machine's speed drifts by tens of percent between minutes, so a regression is
judged only against another build measured right beside it, alternating.

Build each into its own folder (a worktree of the old commit for an old build):
    pip install --no-deps --no-build-isolation --target /tmp/new .
    git worktree add /tmp/oldsrc 381b5b7 && (cd /tmp/oldsrc && pip install --no-deps --target /tmp/old .)
then alternate:
    PYTHONPATH=/tmp/old python bench/compare_builds.py old-layout
    PYTHONPATH=/tmp/new python bench/compare_builds.py new
(``old-layout``: builds from before the ``mevwatch`` namespace, with top-level ``monitor``/``streams``.)
"""

from __future__ import annotations

import gc
import statistics
import sys
import time
from pathlib import Path

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "mainnet-traces"


def main() -> None:
    label = sys.argv[1] if len(sys.argv) > 1 else "build"
    if label == "old-layout":
        from monitor.decode import BlockDecoder  # type: ignore[import-not-found]
        from monitor.detect import detect_block  # type: ignore[import-not-found]
        from monitor.replay import replay_files  # type: ignore[import-not-found]
        from streams.files import read_mev_inspect  # type: ignore[import-not-found]
    else:
        import mevwatch.monitor.detect.pending  # noqa: F401 - the engine's import, outside the timed region
        from mevwatch.monitor.decode import BlockDecoder
        from mevwatch.monitor.detect import detect_block
        from mevwatch.monitor.replay import replay_files
        from mevwatch.streams.files import read_mev_inspect
    files = [p for p in sorted(DATA.glob("*.json.gz")) if "expected" not in p.name]
    blocks = [read_mev_inspect(p) for p in files]
    dec = BlockDecoder()
    rates = []
    for _ in range(3):
        gc.collect()
        t = time.perf_counter()
        for _ in range(20):
            for b in blocks:
                detect_block(dec.decode(b))
        rates.append(20 * len(blocks) / (time.perf_counter() - t))
    paths = files * 30

    def full(workers: int) -> float:
        s = replay_files(paths, workers=workers)
        return s.blocks / s.elapsed_s

    f2 = statistics.median(full(2) for _ in range(3))
    f1 = full(1)
    print(f"{label}: decode+detect {statistics.median(rates):.0f} blocks/s, replay 2 workers {f2:.0f} blocks/s, 1 worker {f1:.0f} blocks/s")


if __name__ == "__main__":
    main()
