"""Sink: the alerts topic (``mevwatch.alerts.v1``, keyed by alert id). At least once: a consumer
de-duplicates on ``(alert_id, version)``; docs/envelopes.md describes the message."""

from __future__ import annotations

import orjson

from mevwatch.monitor import metrics
from mevwatch.monitor.alerts import AlertEvent
from mevwatch.monitor.batch import Batch
from mevwatch.monitor.errors import BusError, FlushTimeout
from mevwatch.streams import bus as busmod


def alert_message(ev: AlertEvent) -> bytes:
    return orjson.dumps({"type": ev.event_type, "version": ev.version, "first_seen_ns": ev.first_seen_ns,
                         "data": ev.alert.to_json()}, option=orjson.OPT_SORT_KEYS)


class AlertsTopicSink:
    name = "alerts_topic"
    health = "bus"

    def __init__(self, bus: busmod.Bus, flush_timeout_s: float = 30.0):
        self.bus, self.flush_timeout_s = bus, flush_timeout_s
        self._buffered: Batch | None = None  # produced, not yet acknowledged (a flush timed out)
        self._errors: list[Exception] = []  # this sink's refused records (the producer may be shared)

    def write(self, batch: Batch) -> None:
        """Produce the batch and wait for the broker's acknowledgements. A retry of the same batch
        after a flush timeout only waits again: its records are still buffered in the producer,
        and producing them again would put each alert event on the topic twice."""
        if not batch.alerts:
            return
        try:
            if self._buffered is not batch:
                for ev in batch.alerts:
                    self.bus.produce(busmod.ALERTS, ev.alert.alert_id.encode(), alert_message(ev), self._errors)
                self._buffered = batch
            self.bus.flush(self.flush_timeout_s, self._errors)
            self._buffered = None
        except FlushTimeout:
            metrics.PRODUCE_ERRORS.inc()
            raise
        except BusError:
            self._buffered = None  # refused records: the retry produces them again
            metrics.PRODUCE_ERRORS.inc()
            raise

    def flush(self) -> None:
        self.bus.flush(self.flush_timeout_s, self._errors)

    def close(self) -> None:
        pass  # the bus belongs to the process
