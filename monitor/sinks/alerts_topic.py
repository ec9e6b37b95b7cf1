"""Sink: the alerts topic (``mevwatch.alerts.v1``, keyed by alert id). At least once: a consumer
de-duplicates on ``(alert_id, version)``; docs/envelopes.md describes the message."""

from __future__ import annotations

import orjson

from mevwatch.monitor import metrics
from mevwatch.monitor.alerts import AlertEvent
from mevwatch.monitor.batch import Batch
from mevwatch.monitor.errors import BusError
from mevwatch.streams import bus as busmod


def alert_message(ev: AlertEvent) -> bytes:
    return orjson.dumps({"type": ev.event_type, "version": ev.version, "first_seen_ns": ev.first_seen_ns,
                         "data": ev.alert.to_json()}, option=orjson.OPT_SORT_KEYS)


class AlertsTopicSink:
    name = "alerts_topic"
    health = "bus"

    def __init__(self, bus: busmod.Bus, flush_timeout_s: float = 30.0):
        self.bus, self.flush_timeout_s = bus, flush_timeout_s

    def write(self, batch: Batch) -> None:
        if not batch.alerts:
            return
        try:
            for ev in batch.alerts:
                self.bus.produce(busmod.ALERTS, ev.alert.alert_id.encode(), alert_message(ev))
            self.bus.flush(self.flush_timeout_s)
        except BusError:
            metrics.PRODUCE_ERRORS.inc()
            raise

    def flush(self) -> None:
        self.bus.flush(self.flush_timeout_s)

    def close(self) -> None:
        pass  # the bus belongs to the process
