"""The sink extension point: every place a :class:`~monitor.batch.Batch` goes.

A sink writes a whole batch idempotently (writing the same batch twice leaves what one write
leaves: rows are versioned, outbox messages keyed by ``(alert, version)``, topic consumers
de-duplicate on it), so the engine can retry after any failure. A sink that is down raises an
error with ``retriable = True`` (or a :class:`~monitor.errors.BusError`); :class:`SinkChain`
then waits by the ``sink`` retry policy (monitor/retry.py) while the bus offsets stay where they
are. Any other error propagates: the process stops without committing, and the records come again.

The chain writes the sinks in order and only then may the caller commit its offsets. Built-in
order (monitor/sinks/registry.py): webhook outbox, ClickHouse, the alerts topic, the processed-block
checkpoint (last: a checkpoint says everything before it reached every other sink).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

from mevwatch.monitor import retry
from mevwatch.monitor.batch import Batch
from mevwatch.monitor.errors import BusError
from mevwatch.monitor.log import get_logger

log = get_logger("mevwatch.sinks")


@runtime_checkable
class Sink(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def health(self) -> str | None:  # the /readyz flag this sink's outages clear ("store", "bus"), or None
        ...

    def write(self, batch: Batch) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


def retriable(exc: BaseException) -> bool:
    return (isinstance(exc, BusError) and getattr(exc, "retriable", True)) or bool(getattr(exc, "retriable", False))


class SinkChain:
    """Writes each batch to every sink in order, retrying one that is down."""

    def __init__(self, sinks: Sequence[Sink], *, stop: threading.Event | None = None, health=None):
        self.sinks = list(sinks)
        self.stop = stop or threading.Event()
        self.health = health
        self.failures: dict[str, int] = {s.name: 0 for s in self.sinks}
        self.after_sink: Callable[[str], None] | None = None  # called with each sink's name once it took a batch (fault tests)

    def write(self, batch: Batch) -> bool:
        """Deliver ``batch`` to every sink; False when stopped before all took it (do not commit)."""
        for sink in self.sinks:
            if not self._write(sink, batch):
                return False
            if self.after_sink is not None:
                self.after_sink(sink.name)
        return True

    def _write(self, sink: Sink, batch: Batch) -> bool:
        def on_retry(exc: BaseException, wait_s: float) -> None:
            self.failures[sink.name] = self.failures.get(sink.name, 0) + 1
            if self.health is not None:
                if sink.health:
                    setattr(self.health, f"{sink.health}_ok", False)
                self.health.last_error = str(exc)
                self.health.beat = time.monotonic()  # backing off is not being stuck
            log.warning(f"{sink.name} unavailable; holding offsets and retrying", error=str(exc)[:300],
                        retry_in_s=round(wait_s, 2))

        try:
            retry.call(lambda: sink.write(batch), policy="sink", retry_if=retriable, stop=self.stop, on_retry=on_retry)
        except retry.Stopped:
            return False
        if self.health is not None and sink.health:
            setattr(self.health, f"{sink.health}_ok", True)
        return True

    def flush(self) -> None:
        for s in self.sinks:
            s.flush()

    def close(self) -> None:
        for s in self.sinks:
            try:
                s.close()
            except Exception as exc:  # noqa: BLE001 - closing one sink must not keep the others open
                log.warning("closing a sink failed", sink=s.name, error=repr(exc)[:200])

    def find(self, name: str) -> Sink | None:
        return next((s for s in self.sinks if s.name == name), None)
