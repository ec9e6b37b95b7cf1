"""Sinks over the evidence store: the alert, swap, pending and fate rows (:class:`StoreSink`), and
the processed-block checkpoints (:class:`CheckpointSink`, written after every other sink: a
checkpoint row says its block reached all of them; ``mevwatch run`` resumes from it)."""

from __future__ import annotations

import time

from mevwatch.monitor import metrics
from mevwatch.monitor.batch import Batch
from mevwatch.monitor.errors import StoreError
from mevwatch.monitor.log import get_logger
from mevwatch.monitor.store.store import PENDING_KEEP_S, AlertStore

log = get_logger("mevwatch.store")

EXPIRE_EVERY_S = 3600.0  # how often StoreSink deletes pending rows older than PENDING_KEEP_S (docs/store.md)


def _timed(store: AlertStore, batch: Batch, block_times: dict[str, int] | None = None) -> None:
    t = time.perf_counter()
    try:
        store.write(batch, block_times)
    except StoreError:
        metrics.CH_FAILURES.inc()
        raise
    metrics.CH_INSERT.observe(time.perf_counter() - t)


class StoreSink:
    name = "clickhouse"
    health = "store"

    def __init__(self, store: AlertStore, keep_pending_s: int = PENDING_KEEP_S):
        self.store = store
        self.keep_pending_s = keep_pending_s
        self._expired_at = 0.0

    def write(self, batch: Batch) -> None:
        rows = Batch(alerts=batch.alerts, swaps=batch.swaps, pending=batch.pending, fates=batch.fates)
        if len(rows):
            # the alerts' block times (the block rows themselves go to the checkpoint sink, after every sink)
            _timed(self.store, rows, {r[1]: int(r[3]) for r in batch.blocks if r[5]})
        if batch.pending and time.monotonic() - self._expired_at > EXPIRE_EVERY_S:
            self._expired_at = time.monotonic()
            try:  # upkeep: a refused or failed delete must never stop detection (the next hour tries again)
                self.store.expire_pending(self.keep_pending_s)
            except Exception as exc:  # noqa: BLE001
                log.warning("expiring old pending rows failed; retried in an hour", error=str(exc)[:300])

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
