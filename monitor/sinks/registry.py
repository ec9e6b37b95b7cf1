"""Which sinks a run writes to, in which order: the ``sinks`` setting names them.

Each entry is a registered name or ``package.module:factory`` (a plug-in, imported at start-up).
A factory takes the :class:`SinkContext` and returns a sink, or None when the run does not have
what it needs (no store, no webhook subscribers). Built-in names, in their default order:

- ``webhooks``: the webhook outbox (only with subscribers configured),
- ``clickhouse``: alerts, evidence, swaps, pending transactions and fates,
- ``alerts_topic``: ``mevwatch.alerts.v1`` (the daemon only: never during demo or replay),
- ``checkpoint``: the processed-block rows (keep it last).

A new sink is one module plus one entry in the config (docs/development.md).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mevwatch.monitor.errors import ConfigError
from mevwatch.monitor.sinks.base import Sink


@dataclass
class SinkContext:
    settings: Any = None
    bus: Any = None  # streams.bus.Bus
    store: Any = None  # monitor.store.store.AlertStore
    outbox: Any = None  # monitor.sinks.outbox.Outbox
    on_outbox: Callable[[], None] | None = None
    publish_alerts: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


SinkFactory = Callable[[SinkContext], Sink | None]
DEFAULT_SINKS = ("webhooks", "clickhouse", "alerts_topic", "checkpoint")


def _webhooks(ctx: SinkContext) -> Sink | None:
    from mevwatch.monitor.sinks.webhook_outbox import OutboxSink

    subs = ctx.settings.webhooks if ctx.settings is not None else []
    return OutboxSink(ctx.outbox, subs, ctx.on_outbox) if ctx.outbox is not None and subs else None


def _clickhouse(ctx: SinkContext) -> Sink | None:
    from mevwatch.monitor.store.sink import StoreSink

    return StoreSink(ctx.store) if ctx.store is not None else None


def _alerts_topic(ctx: SinkContext) -> Sink | None:
    from mevwatch.monitor.sinks.alerts_topic import AlertsTopicSink

    kafka = getattr(ctx.settings, "kafka", None)
    timeout = kafka.flush_timeout_s if kafka is not None else 30.0
    return AlertsTopicSink(ctx.bus, timeout) if ctx.bus is not None and ctx.publish_alerts else None


def _checkpoint(ctx: SinkContext) -> Sink | None:
    from mevwatch.monitor.store.sink import CheckpointSink

    return CheckpointSink(ctx.store) if ctx.store is not None else None


SINKS: dict[str, SinkFactory] = {"webhooks": _webhooks, "clickhouse": _clickhouse, "alerts_topic": _alerts_topic,
                                 "checkpoint": _checkpoint}


def register_sink(name: str, factory: SinkFactory) -> None:
    if name in SINKS:
        raise ValueError(f"a sink named {name!r} is already registered")
    SINKS[name] = factory


def factory_for(entry: str) -> SinkFactory:
    if entry in SINKS:
        return SINKS[entry]
    if ":" in entry:
        module, _, attr = entry.partition(":")
        try:
            return getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"sinks: cannot load {entry!r}: {exc}") from None
    raise ConfigError(f"sinks: unknown sink {entry!r}; known: {', '.join(SINKS)} or package.module:factory")


def build_sinks(names: list[str] | tuple[str, ...], ctx: SinkContext) -> list[Sink]:
    out = []
    for entry in names:
        sink = factory_for(entry)(ctx)
        if sink is not None:
            out.append(sink)
    return out
