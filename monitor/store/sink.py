"""Sinks over the evidence store: the alert, swap, pending and fate rows (:class:`StoreSink`), and
the processed-block checkpoints (:class:`CheckpointSink`, written after every other sink: a
checkpoint row says its block reached all of them; ``mevwatch run`` resumes from it)."""

from __future__ import annotations

import time

from mevwatch.monitor import metrics
from mevwatch.monitor.batch import Batch
from mevwatch.monitor.errors import StoreError
from mevwatch.monitor.store.store import AlertStore


def _timed(store: AlertStore, batch: Batch) -> None:
    t = time.perf_counter()
    try:
        store.write(batch)
    except StoreError:
        metrics.CH_FAILURES.inc()
        raise
    metrics.CH_INSERT.observe(time.perf_counter() - t)


class StoreSink:
    name = "clickhouse"
    health = "store"

    def __init__(self, store: AlertStore):
        self.store = store

    def write(self, batch: Batch) -> None:
        rows = Batch(alerts=batch.alerts, swaps=batch.swaps, pending=batch.pending, fates=batch.fates)
        if len(rows):
            _timed(self.store, rows)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass  # the store is shared (attestation, queries): its owner closes it


class CheckpointSink:
    name = "checkpoint"
    health = "store"

    def __init__(self, store: AlertStore):
        self.store = store

    def write(self, batch: Batch) -> None:
        if batch.blocks:
            _timed(self.store, Batch(blocks=batch.blocks))

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass
