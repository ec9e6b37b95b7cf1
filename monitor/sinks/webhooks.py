"""Webhook subscribers: which events each one gets, and the deliverer that sends them.

Body (Standard Webhooks' recommended shape): ``{"type": "mev.sandwich.included",
"timestamp": "<RFC 3339>", "data": <the alert record, docs/alerts.md>}``; event types
``mev.<kind>.<stage>`` and ``mev.alert.retracted``. Headers ``webhook-id`` (stable per
alert stage, so receivers can de-duplicate), ``webhook-timestamp``,
``webhook-signature`` (monitor/sinks/signing.py).

Delivery: at most ``concurrency`` requests in flight; a 2xx delivers; 410 Gone disables
the endpoint (its queued messages wait, ``mevwatch webhooks enable URL`` resumes them);
a ``Retry-After`` pauses the whole endpoint for that long;
anything else (network error, timeout, 429, 5xx, other 4xx) retries after
``backoff_base_s * 2**attempt`` with full jitter in [50%, 100%], capped at
``backoff_max_s``, never sooner than the receiver's ``Retry-After``; after
``max_attempts`` the message is a dead letter.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import threading
import time
from dataclasses import dataclass

import orjson

from mevwatch.monitor import metrics
from mevwatch.monitor.alerts import AlertEvent
from mevwatch.monitor.config import WebhookDelivery, WebhookSubscriber
from mevwatch.monitor.errors import DeliveryError
from mevwatch.monitor.log import get_logger
from mevwatch.monitor.retry import policy
from mevwatch.monitor.sinks import signing, ssrf
from mevwatch.monitor.sinks.outbox import Outbox, OutboxMessage

log = get_logger("mevwatch.webhooks")


def wants(sub: WebhookSubscriber, ev: AlertEvent) -> bool:
    a = ev.alert
    if sub.kinds and a.kind not in sub.kinds:
        return False
    if sub.stages and a.stage not in sub.stages:
        return False
    if a.score < sub.min_score:
        return False
    if sub.addresses:
        watched = {x.lower() for x in sub.addresses}
        named = {x.lower() for x in (*a.attackers, *a.victims, *a.pools, *a.tokens)}
        if not watched & named:
            return False
    return True


def payload(ev: AlertEvent) -> bytes:
    return orjson.dumps({"type": ev.event_type, "timestamp": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                         "data": ev.alert.to_json()}, option=orjson.OPT_SORT_KEYS)


def outbox_items(subs: list[WebhookSubscriber], events: list[AlertEvent]) -> list[tuple[str, str, str, bytes]]:
    items = []
    for ev in events:
        body = None
        for sub in subs:
            if wants(sub, ev):
                body = body or payload(ev)
                items.append((ev.event_id, sub.url, ev.event_type, body))
    return items


def retry_after_s(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


@dataclass
class DeliveryStats:
    delivered: int = 0
    failed_attempts: int = 0
    dead: int = 0
    disabled: int = 0
    by_status: dict[str, int] | None = None

    def count(self, status: str) -> None:
        if self.by_status is None:
            self.by_status = {}
        self.by_status[status] = self.by_status.get(status, 0) + 1


class Deliverer:
    """Sends due outbox messages from a background thread (its own asyncio loop)."""

    def __init__(self, outbox: Outbox, subscribers: list[WebhookSubscriber], settings: WebhookDelivery):
        self.outbox = outbox
        self.settings = settings
        self.subs = {s.url: s for s in subscribers}
        self._secrets = {s.url: s.secret_values() for s in subscribers}
        for s in subscribers:
            ssrf.check_url(s.url, allow_private=settings.allow_private)
        self.stats = DeliveryStats()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.on_result = None  # optional callback(status_label, seconds) for metrics
        self._gone: set[str] = set(outbox.disabled())
        self._paused: dict[str, float] = {}  # endpoint -> monotonic time its Retry-After ends

    # --- lifecycle -----------------------------------------------------------------------------
    def start(self) -> Deliverer:
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), name="webhooks", daemon=True)
        self._thread.start()
        return self

    def wake(self) -> None:
        self._wake.set()

    def stop(self, drain_s: float = 10.0) -> None:
        """Stop after trying, for up to ``drain_s``, to deliver what is due now."""
        deadline = time.monotonic() + drain_s
        while time.monotonic() < deadline and self.outbox.due(1):
            self._wake.set()
            time.sleep(0.05)
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(15)

    # --- the loop ----------------------------------------------------------------------------------
    async def _main(self) -> None:
        import aiohttp

        conn = aiohttp.TCPConnector(resolver=ssrf.guarded_resolver(self.settings.allow_private),
                                    limit=self.settings.concurrency)
        timeout = aiohttp.ClientTimeout(total=self.settings.timeout_s)
        sem = asyncio.Semaphore(self.settings.concurrency)
        inflight: set[int] = set()
        tasks: set[asyncio.Task] = set()
        async with aiohttp.ClientSession(connector=conn, timeout=timeout) as http:
            last_depth = 0.0
            while not self._stop.is_set():
                now = time.monotonic()
                if now - last_depth > 1.0:
                    metrics.OUTBOX_DEPTH.set(self.outbox.depth())
                    last_depth = now
                due = [m for m in self.outbox.due(self.settings.concurrency * 4)
                       if m.id not in inflight and self._paused.get(m.endpoint, 0.0) <= now]
                for m in due:
                    if m.endpoint not in self.subs:
                        self.outbox.failed(m.id, None, "endpoint no longer configured", None)
                        continue
                    inflight.add(m.id)
                    t = asyncio.create_task(self._send(http, sem, m))
                    t.add_done_callback(lambda _t, i=m.id: inflight.discard(i))  # type: ignore[misc]  # default-arg capture
                    tasks.add(t)
                    t.add_done_callback(tasks.discard)
                if not due:
                    nxt = self.outbox.next_due_in()
                    wait = 0.5 if nxt is None else min(0.5, max(0.01, nxt))
                    await asyncio.to_thread(self._wake.wait, wait)
                    self._wake.clear()
                else:
                    await asyncio.sleep(0.01)
            if tasks:
                await asyncio.wait(tasks, timeout=self.settings.timeout_s)

    async def _send(self, http, sem: asyncio.Semaphore, m: OutboxMessage) -> None:
        async with sem:
            if m.endpoint in self._gone:
                return  # disabled while this one waited; the outbox holds it as 'disabled'
            status: int | None = None
            retry_after = None
            t0 = time.perf_counter()
            try:
                ssrf.check_url(m.endpoint, allow_private=self.settings.allow_private)
                hdrs = signing.headers(self._secrets[m.endpoint], m.event_id, int(time.time()), m.payload)
                async with http.post(m.endpoint, data=m.payload, headers=hdrs, allow_redirects=False) as resp:
                    status = resp.status
                    retry_after = retry_after_s(resp.headers.get("Retry-After"))
                    await resp.read()
                error = f"HTTP {status}"
            except DeliveryError as exc:
                error = str(exc)
            except Exception as exc:  # noqa: BLE001 - network errors, timeouts: retry
                error = f"{type(exc).__name__}: {exc}"[:300]
            elapsed = time.perf_counter() - t0
            label = f"{status}" if status is not None else "error"
            self.stats.count(label)
            metrics.WEBHOOKS.labels(metrics.delivery_status(status)).inc()
            metrics.WEBHOOK_LATENCY.observe(elapsed)
            if self.on_result is not None:
                self.on_result(label, elapsed)
            if status is not None and 200 <= status < 300:
                self.outbox.delivered(m.id, status)
                self.stats.delivered += 1
                return
            if status == 410:
                self.outbox.failed(m.id, status, "410 Gone: endpoint disabled", time.time())
                self.outbox.disable(m.endpoint, "answered 410 Gone")
                self._gone.add(m.endpoint)
                self.stats.disabled += 1
                log.warning("webhook endpoint disabled (410 Gone)", endpoint=m.endpoint)
                return
            self.stats.failed_attempts += 1
            attempts = m.attempts + 1
            if attempts >= self.settings.max_attempts:
                self.outbox.failed(m.id, status, error, None)
                self.stats.dead += 1
                log.warning("webhook dead letter", endpoint=m.endpoint, event_id=m.event_id, attempts=attempts, error=error)
                return
            backoff = policy("webhook").scaled(self.settings.backoff_base_s, self.settings.backoff_max_s)
            delay = backoff.delay(attempts)
            metrics.RETRIES.labels(backoff.name).inc()
            if retry_after is not None:  # the receiver asked for a pause: hold the whole endpoint
                delay = max(delay, min(retry_after, self.settings.backoff_max_s))
                self._paused[m.endpoint] = time.monotonic() + min(retry_after, self.settings.backoff_max_s)
            self.outbox.failed(m.id, status, error, time.time() + delay)
