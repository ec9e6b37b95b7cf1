"""Sink: the webhook outbox (local SQLite; monitor/sinks/outbox.py). One message per subscriber and
alert stage, keyed ``{alert_id}-{version}``, so a batch written twice enqueues nothing new; the
deliverer (monitor/sinks/webhooks.py) sends them."""

from __future__ import annotations

from collections.abc import Callable

from mevwatch.monitor.batch import Batch
from mevwatch.monitor.config import WebhookSubscriber
from mevwatch.monitor.sinks.outbox import Outbox
from mevwatch.monitor.sinks.webhooks import outbox_items


class OutboxSink:
    name = "webhooks"
    health = None

    def __init__(self, outbox: Outbox, subscribers: list[WebhookSubscriber], on_enqueue: Callable[[], None] | None = None):
        self.outbox, self.subscribers, self.on_enqueue = outbox, subscribers, on_enqueue

    def write(self, batch: Batch) -> None:
        if not self.subscribers or not batch.alerts:
            return
        self.outbox.enqueue(outbox_items(self.subscribers, batch.alerts))
        if self.on_enqueue is not None:
            self.on_enqueue()

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass  # the outbox outlives the sink: the deliverer drains it at shutdown
