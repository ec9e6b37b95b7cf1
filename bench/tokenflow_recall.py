"""Transfers-only decoding against the full decoders, through the block rules, on real blocks:
how many of the attacks the full rules find does the token-flow mode recover (same kind, same
transactions), and what does it raise that the full rules do not.

    python bench/tokenflow_recall.py [DIR ...]   (default: ../shared/data/mainnet-traces)

Writes a table to stdout; docs/detection.md ("Transfers only") holds the figures."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

from mevwatch.monitor.decode.tokenflow import make_decoder
from mevwatch.monitor.engine import analyse
from mevwatch.streams.files import discover, read_mev_inspect

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "mainnet-traces"


def key(a) -> tuple[str, tuple[str, ...]]:
    return a.kind, tuple(sorted(t.hash for t in a.txs))


def main(dirs: list[Path]) -> int:
    files = [p for p, f in discover(dirs or [DEFAULT]) if f == "mev-inspect" and ".expected" not in p.name]
    full_d, flow_d = make_decoder("full"), make_decoder("transfers")
    found, missed, extra = Counter(), Counter(), Counter()
    for path in files:
        block = read_mev_inspect(path)
        full = {key(a) for a in analyse(full_d, block).alerts}
        flow = {key(a) for a in analyse(flow_d, read_mev_inspect(path)).alerts}
        for k in full:
            (found if k in flow else missed)[k[0]] += 1
        for k in flow - full:
            extra[k[0]] += 1
    kinds = sorted(set(found) | set(missed) | set(extra))
    print(f"{len(files)} blocks")
    print("| kind | full rules | recovered from transfers | recall | only in transfers mode |")
    print("|---|---|---|---|---|")
    for k in kinds:
        n = found[k] + missed[k]
        print(f"| {k} | {n} | {found[k]} | {found[k] / n:.2f} | {extra[k]} |" if n else f"| {k} | 0 | 0 | - | {extra[k]} |")
    n, f = sum(found.values()) + sum(missed.values()), sum(found.values())
    print(f"| all | {n} | {f} | {f / n:.2f} | {sum(extra.values())} |" if n else "| all | 0 | 0 | - | - |")
    return 0


if __name__ == "__main__":
    sys.exit(main([Path(a) for a in sys.argv[1:]]))
