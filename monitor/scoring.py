"""The scorer extension point: what the engine asks of a model (the graph model is one scorer).

A scorer sees the same message sequence as the rules and decides only by it (never by how the
messages were batched or polled), so a replay and the live daemon score alike:

- ``on_pending(p, rule_alerts)``: a pending transaction and the alerts the mempool rules raised on
  it. The scorer fuses its verdict into those alerts (in place: ``score``, ``detector``,
  ``model_hash``) and returns the alerts only it sees (``detector = "gnn"``), each once.
- ``before_block()``: a block is about to be processed: the last chance to raise what the
  mempool window shows (returns model-only alerts).
- ``on_blocks([(decoded, alerts), ...])``: included blocks and the block rules' alerts: fuse in
  place (several blocks may come at once: a replay batches its forward passes).

A scorer never removes a rule alert (docs/gnn.md).
"""

from __future__ import annotations

from typing import Protocol

from mevwatch.monitor.alerts import Alert
from mevwatch.monitor.types import DecodedBlock
from mevwatch.monitor.types import PendingTx


class Scorer(Protocol):
    @property
    def model_hash(self) -> str | None: ...

    @property
    def device(self) -> str: ...

    def on_pending(self, p: PendingTx, rule_alerts: list[Alert]) -> list[Alert]: ...

    def before_block(self) -> list[Alert]: ...

    def on_blocks(self, items: list[tuple[DecodedBlock, list[Alert]]]) -> None: ...
