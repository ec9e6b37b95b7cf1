"""Shards of a replay (``mevwatch replay ... --shard i/K``): which part of the input shard ``i`` of ``K``
processes, so that K processes (a Kubernetes Indexed Job's pods, docs/operations.md "Sharded
backfill") together replay the input once.

- A node's block range ``N..M`` is cut into K contiguous slices of (almost) equal length: slice
  ``i`` is ``N + i*n//K .. N + (i+1)*n//K - 1`` with ``n = M - N + 1``.
- Files are cut the same way by their units in input order: one mev-inspect file (one block), one
  cryo range (the files of one block range). A JSONL recording is one ordered stream of events
  (pending transactions whose fates span blocks, reverts): it is never sharded.

Shards write exactly the rows one run writes because a replay of settled history numbers its
versions by block (monitor/lifecycle.py, ``final_by_block``): no version depends on the blocks a
process saw before or after.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from mevwatch.monitor.errors import MevwatchError

MAX_SHARDS = 100_000
T = TypeVar("T")


class ShardError(MevwatchError):
    """A ``--shard`` value that is not ``i/K`` with ``0 <= i < K``."""


@dataclass(frozen=True)
class Shard:
    index: int  # 0-based, as a Kubernetes Indexed Job's completion index
    count: int

    @property
    def label(self) -> str:
        return f"{self.index}/{self.count}"

    def bounds(self, n: int) -> tuple[int, int]:
        """[start, stop) of this shard's slice of ``n`` units."""
        return self.index * n // self.count, (self.index + 1) * n // self.count

    def block_range(self, first: int, last: int) -> tuple[int, int] | None:
        """This shard's blocks of ``first..last`` (inclusive), or None when it has none (K > blocks)."""
        lo, hi = self.bounds(last - first + 1)
        return (first + lo, first + hi - 1) if hi > lo else None

    def units(self, items: Sequence[T]) -> list[T]:
        lo, hi = self.bounds(len(items))
        return list(items[lo:hi])


def parse_shard(text: str) -> Shard:
    """``"i/K"`` (0 <= i < K) as a :class:`Shard`; ShardError naming the value otherwise."""
    parts = text.strip().split("/")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise ShardError(f"--shard must be i/K (this process's 0-based index i of K shards, e.g. 0/4), got {text[:40]!r}")
    i, k = (int(p) for p in parts)
    if not 1 <= k <= MAX_SHARDS:
        raise ShardError(f"--shard {text[:40]!r}: K must be 1 to {MAX_SHARDS:,}")
    if not 0 <= i < k:
        raise ShardError(f"--shard {text[:40]!r}: i must be 0 to K-1 ({k - 1}); a Kubernetes completion index is 0-based")
    return Shard(i, k)
