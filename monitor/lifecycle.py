"""Alert stages over the life of the chain: pending -> included -> final, or retracted.

- ``pending``: raised by the mempool rules (version 1).
- ``included``: raised by the block rules when its block is processed.
- ``final``: its block is ``confirmations`` deep under the newest processed block.
- ``retracted``: its block left the canonical chain before it was final (a revert
  event, or a different block seen at a height already processed).

Final is final: a reorg deeper than ``confirmations`` leaves the alerts that were already final
as they are (their attestation commits to them; the same transactions mined again on the new
branch raise nothing again), retracts the open ones, logs one warning naming
the orphaned final heights and counts them in ``mevwatch_orphaned_final_blocks_total``: the
operator's ``node.confirmations`` is too low for that chain (docs/operations.md).

Every transition gets ``version = block_event << 3 | stage order`` (see
monitor/store/schema.py), where ``block_event`` is 1 + the offset of the blocks-topic
record that caused it. Offsets only grow, and a re-delivered record yields the same
version, so every sink can keep the newest row per alert and replays collapse.

Block-numbered versions (``final_by_block``; ``mevwatch replay`` of settled history: a node's block
range, mev-inspect files, cryo datasets): the block event of a block is its number, and an alert's
final transition gets the version of the block ``confirmations`` above its own, whatever was
processed after it. So a version depends on the alert's own block only, never on which blocks a
process saw before or after it, and K shards of a range write exactly the rows one run writes
(docs/operations.md, "Sharded backfill").

A block whose hash was already processed (a re-delivered record, or a block the
ingest role published twice across a restart) raises nothing again.
"""

from __future__ import annotations

from mevwatch.monitor import metrics
from mevwatch.monitor.alerts import Alert, AlertEvent, with_stage
from mevwatch.monitor.kinds import Stage
from mevwatch.monitor.types import Block

KEEP_HEIGHTS = 512
STAGE_ORDER = {Stage.PENDING: 1, Stage.INCLUDED: 2, Stage.FINAL: 3, Stage.RETRACTED: 4}
PENDING_VERSION = 1  # a pending alert precedes every block event
PROOF_VERSION_STEP = 2  # an evidence row carrying a proof: its final version + 2 (monitor/store/schema.py)


def version_of(block_event_offset: int, stage: str) -> int:
    """The version of a transition caused by the block event at ``block_event_offset``."""
    return ((block_event_offset + 1) << 3) | STAGE_ORDER[Stage(stage)]


def block_event_of(version: int) -> int:
    """The block event (offset + 1) a version was made at: the inverse of :func:`version_of`'s shift."""
    return version >> 3


def event_end(version: int) -> int:
    """The highest version any transition of ``version``'s block event can have (stage orders 1..7):
    everything at or below it was caused by that block event or an earlier one."""
    return (block_event_of(version) << 3) | 7


def proof_version(final_version: int) -> int:
    return final_version + PROOF_VERSION_STEP


class Lifecycle:
    def __init__(self, confirmations: int, final_by_block: bool = False):
        self.confirmations = confirmations
        self.final_by_block = final_by_block  # final version from the alert's own block (see the module doc)
        self.open: dict[str, Alert] = {}  # included, not yet final, by alert id
        self.heights: dict[int, str] = {}  # processed canonical blocks: number -> hash
        self.head: int | None = None
        self.retracted = 0
        self.finalized = 0
        self.orphaned_final = 0  # blocks that left the chain after they were final
        self.final_upto: int | None = None  # the highest height whose alerts were made final
        # alerts made final here, by id -> block height (the last KEEP_HEIGHTS heights): the same
        # transactions mined again on the branch that replaced a final block keep their alert id,
        # and a final alert is never included (or finalised) again
        self.final_ids: dict[str, int] = {}
        self.restored_unchecked: set[str] = set()  # restored alerts whose block has no checkpoint here

    def restore(self, open_alerts: list[Alert], blocks: list[tuple[int, str, bool]]) -> None:
        """State after a restart: alerts still awaiting finality and the recent processed blocks."""
        for a in open_alerts:
            self.open[a.alert_id] = with_stage(a, "included") if a.stage != "included" else a
        for number, h, canonical in blocks:
            if canonical:
                self.heights[number] = h
            elif self.heights.get(number) == h:
                del self.heights[number]
        if self.heights:
            self.head = max(self.heights)
            self.final_upto = self.head - self.confirmations
        self.restored_unchecked = {a.alert_id for a in self.open.values() if a.block_number is not None
                                   and self.heights.get(a.block_number) != (a.block_hash or "")}

    def seen(self, block: Block) -> bool:
        return block.hash is not None and self.heights.get(block.number) == block.hash

    def on_block(self, block: Block, alerts: list[Alert], offset: int) -> list[AlertEvent]:
        """Events for a newly processed canonical block (call only when not :meth:`seen`)."""
        events: list[AlertEvent] = []
        # a different block at a height we processed: everything from there up was orphaned
        # (settled history, final_by_block: blocks may come in any order, as files or shards hold them; only a
        # different block at the same height replaces one)
        stale = [n for n, h in self.heights.items() if (n == block.number if self.final_by_block else n >= block.number)
                 and h != block.hash]
        self._orphaned_final(stale)
        for n in sorted(stale, reverse=True):
            events += self._retract(n, self.heights.pop(n), offset)
        if self.restored_unchecked:  # restored open alerts of a block that was never checkpointed: now orphaned?
            gone = [aid for aid in self.restored_unchecked if (a := self.open.get(aid)) is not None
                    and a.block_number == block.number and (a.block_hash or "") != (block.hash or "")]
            for aid in gone:
                a = self.open.pop(aid)
                events.append(AlertEvent(with_stage(a, "retracted"), version_of(offset, "retracted")))
                self.retracted += 1
            self.restored_unchecked -= set(gone) | {a.alert_id for a in alerts}
        self.heights[block.number] = block.hash or ""
        self.head = block.number if self.head is None else max(block.number, self.head) if not stale else block.number
        inc = version_of(offset, "included")
        for a in alerts:
            if a.alert_id in self.final_ids:
                continue  # final is final (a reorg deeper than the confirmations mined it again)
            events.append(AlertEvent(a, inc))
            self.open[a.alert_id] = a
        if self.head is not None:
            horizon = self.head - self.confirmations
            self.final_upto = horizon if self.final_upto is None else max(self.final_upto, horizon)
            for aid, a in list(self.open.items()):
                if a.block_number is not None and a.block_number <= horizon:
                    del self.open[aid]
                    self.final_ids[aid] = a.block_number
                    events.append(AlertEvent(with_stage(a, "final"), self._final_version(a, offset)))
                    self.finalized += 1
        for n in [n for n in self.heights if n < block.number - KEEP_HEIGHTS]:
            del self.heights[n]
        if len(self.final_ids) > 4 * KEEP_HEIGHTS:  # bounded: forget finals far below the head
            low = block.number - KEEP_HEIGHTS
            self.final_ids = {aid: n for aid, n in self.final_ids.items() if n >= low}
        return events

    def settle(self, offset: int) -> list[AlertEvent]:
        """Every open alert final at block event ``offset``: recorded history is settled at its end
        (``mevwatch replay``; a live run never calls this)."""
        events = [AlertEvent(with_stage(a, "final"), self._final_version(a, offset)) for a in self.open.values()]
        self.finalized += len(events)
        self.open.clear()
        return events

    def _final_version(self, alert: Alert, offset: int) -> int:
        if self.final_by_block and alert.block_number is not None:
            return version_of(alert.block_number + self.confirmations, "final")
        return version_of(offset, "final")

    def on_revert(self, block_number: int, block_hash: str, offset: int) -> list[AlertEvent]:
        if self.heights.get(block_number) == block_hash:
            self._orphaned_final([block_number])
            del self.heights[block_number]
            if self.head is not None and block_number <= self.head:
                self.head = block_number - 1
        return self._retract(block_number, block_hash, offset)

    def _orphaned_final(self, numbers: list[int]) -> None:
        """Warn about orphaned heights that were already final (their alerts stay final)."""
        if self.final_upto is None or not numbers:
            return
        deep = sorted(n for n in numbers if n <= self.final_upto)
        self.final_upto = min(self.final_upto, min(numbers) - 1)  # the heights above are no longer final
        if deep:
            from mevwatch.monitor.log import get_logger

            self.orphaned_final += len(deep)
            metrics.ORPHANED_FINAL_BLOCKS.inc(len(deep))
            get_logger("mevwatch.lifecycle").warning(
                "reorg deeper than node.confirmations: blocks already final left the chain; their final alerts stay final",
                heights=f"{deep[0]}..{deep[-1]}", blocks=len(deep), confirmations=self.confirmations)

    def _retract(self, number: int, block_hash: str, offset: int) -> list[AlertEvent]:
        ver = version_of(offset, "retracted")
        out = []
        for aid, a in list(self.open.items()):
            if a.block_number == number and (a.block_hash or "") == block_hash:
                del self.open[aid]
                out.append(AlertEvent(with_stage(a, "retracted"), ver))
                self.retracted += 1
        return out
