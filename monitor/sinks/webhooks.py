"""Webhook subscribers: which events each one gets, and the deliverer that sends them.

Body (Standard Webhooks' recommended shape): ``{"type": "mev.sandwich.included",
"timestamp": "<RFC 3339>", "data": <the alert record, docs/alerts.md>}``; event types
``mev.<kind>.<stage>`` and ``mev.alert.retracted``. Headers ``webhook-id`` (stable per
alert stage, so receivers can de-duplicate), ``webhook-timestamp``,
``webhook-signature`` (monitor/sinks/signing.py).

Delivery: at most ``concurrency`` requests in flight in all, and at most
``endpoint_concurrency`` to any one endpoint, so a slow endpoint holds only its own slots;
due messages are taken round-robin across endpoints (``Outbox.due``). A response body is
read only up to :data:`RESPONSE_BODY_CAP` bytes (and for at most :data:`RESPONSE_BODY_S`
seconds) and the connection dropped when more follows: a receiver cannot make the deliverer
hold its body. A 2xx delivers; 410 Gone disables
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
from mevwatch.monitor.kinds import Detector
from mevwatch.monitor.log import get_logger
from mevwatch.monitor.retry import policy
from mevwatch.monitor.sinks import signing, ssrf
from mevwatch.monitor.sinks.outbox import Outbox, OutboxMessage

log = get_logger("mevwatch.webhooks")

RESPONSE_BODY_CAP = 64 * 1024  # bytes of a response body ever read; the rest is never received
RESPONSE_BODY_S = 2.0  # seconds to read that much once the status is in; then the status stands


def wants(sub: WebhookSubscriber, ev: AlertEvent) -> bool:
    a = ev.alert
    if sub.kinds and a.kind not in sub.kinds:
        return False
    if sub.stages and a.stage not in sub.stages:
        return False
    if a.detector == Detector.GNN and a.score < sub.min_score:
        # min_score filters what the model raised alone; a rule alert is an exact match whose score is
        # the model's confirmation (docs/alerts.md), and a low one must not silently drop it
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


def sample_event() -> AlertEvent:
    """The event ``mevwatch webhooks test`` sends: a sandwich alert record of the real shape (docs/alerts.md)
    with made-up hashes and addresses."""
    from mevwatch.monitor.alerts import Alert, AlertTx

    h = [f"0x{c * 64}" for c in "abc"]
    alert = Alert(kind="sandwich", stage="included", chain_id=1, block_number=1, block_hash="0x" + "0" * 64,
                  txs=[AlertTx(h[0], 0, "frontrun"), AlertTx(h[1], 1, "victim"), AlertTx(h[2], 2, "backrun")],
                  attackers=["0x" + "a" * 40], victims=["0x" + "b" * 40], pools=["0x" + "c" * 40],
                  tokens=["0x" + "d" * 40], profit=None, victim_loss=None, gas_cost_wei=None,
                  evidence={"test": True}, score=1.0)
    return AlertEvent(alert, 0)


TEST_EVENT_TYPE = "mev.test"


def sample_payload() -> bytes:
    """Body of a test delivery: type ``mev.test``, data a sample alert record."""
    return orjson.dumps({"type": TEST_EVENT_TYPE, "timestamp": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                         "data": sample_event().alert.to_json()}, option=orjson.OPT_SORT_KEYS)


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


def _printable(raw: bytes, n: int = 200) -> str:
    """The start of a receiver's answer for an error message: control characters never pass."""
    text = raw[:n * 4].decode("utf-8", "replace")[:n]
    return "".join(c if c.isprintable() else "?" for c in text).strip()


async def _read_capped(resp, cap: int) -> bytes:
    buf = bytearray()
    while len(buf) < cap:
        chunk = await resp.content.read(cap - len(buf))
        if not chunk:
            break
        buf += chunk
    return bytes(buf)


@dataclass
class Attempt:
    """What one POST got: the status (None: no answer) and the error text for a non-2xx."""

    status: int | None
    error: str
    retry_after: float | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


async def post(http, url: str, secrets: list[str], msg_id: str, body: bytes, allow_private: bool) -> Attempt:
    """One signed POST of ``body`` (Standard Webhooks headers, monitor/sinks/signing.py), its answer's
    body read up to :data:`RESPONSE_BODY_CAP`; never raises."""
    status: int | None = None
    retry_after = None
    t0 = time.perf_counter()
    try:
        ssrf.check_url(url, allow_private=allow_private)
        hdrs = signing.headers(secrets, msg_id, int(time.time()), body)
        async with http.post(url, data=body, headers=hdrs, allow_redirects=False) as resp:
            status = resp.status
            retry_after = retry_after_s(resp.headers.get("Retry-After"))
            try:  # the status is in; the body is read only for an error message (and to reuse the connection)
                head = await asyncio.wait_for(_read_capped(resp, RESPONSE_BODY_CAP), RESPONSE_BODY_S)
            except Exception:  # noqa: BLE001 - a slow or broken body does not change the answer
                head = b""
            if not resp.content.at_eof():
                resp.close()  # more follows: drop the connection rather than receive it
        snippet = "" if 200 <= status < 300 else _printable(head)
        error = f"HTTP {status}" + (f": {snippet}" if snippet else "")
    except DeliveryError as exc:
        error = str(exc)
    except Exception as exc:  # noqa: BLE001 - network errors, timeouts: retry
        error = f"{type(exc).__name__}: {exc}"[:300]
    return Attempt(status, error, retry_after, time.perf_counter() - t0)


def send_test(sub: WebhookSubscriber, settings: WebhookDelivery) -> tuple[str, Attempt]:
    """Send one signed test event (``mev.test``, a fresh ``webhook-id``) to ``sub`` now, outside the
    outbox, exactly as deliveries are sent; returns (webhook-id, what the endpoint answered)."""
    import uuid

    secrets = sub.secret_values()
    msg_id = f"test-{uuid.uuid4().hex}"
    body = sample_payload()

    async def main() -> Attempt:
        import aiohttp

        conn = aiohttp.TCPConnector(resolver=ssrf.guarded_resolver(settings.allow_private), limit=1)
        async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=settings.timeout_s)) as http:
            return await post(http, sub.url, secrets, msg_id, body, settings.allow_private)

    return msg_id, asyncio.run(main())


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
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._kick: asyncio.Event | None = None  # set on wake() and whenever a delivery ends
        self.on_result = None  # optional callback(status_label, seconds) for metrics
        self._gone: set[str] = set(outbox.disabled())
        self._paused: dict[str, float] = {}  # endpoint -> monotonic time its Retry-After ends

    # --- lifecycle -----------------------------------------------------------------------------
    def start(self) -> Deliverer:
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), name="webhooks", daemon=True)
        self._thread.start()
        return self

    def wake(self) -> None:
        loop, kick = self._loop, self._kick
        if loop is not None and kick is not None:
            try:
                loop.call_soon_threadsafe(kick.set)
            except RuntimeError:  # the loop has ended
                pass

    def stop(self, drain_s: float = 10.0) -> None:
        """Stop after trying, for up to ``drain_s``, to deliver what is due now."""
        deadline = time.monotonic() + drain_s
        while time.monotonic() < deadline and self.outbox.due(1):
            self.wake()
            time.sleep(0.05)
        self._stop.set()
        self.wake()
        if self._thread is not None:
            self._thread.join(15)

    # --- the loop ----------------------------------------------------------------------------------
    async def _main(self) -> None:
        import aiohttp

        self._loop, self._kick = asyncio.get_running_loop(), asyncio.Event()
        total, per_endpoint = self.settings.concurrency, self.settings.endpoint_concurrency
        conn = aiohttp.TCPConnector(resolver=ssrf.guarded_resolver(self.settings.allow_private), limit=total, limit_per_host=0)
        timeout = aiohttp.ClientTimeout(total=self.settings.timeout_s)
        inflight: dict[int, str] = {}  # message id -> endpoint
        tasks: set[asyncio.Task] = set()

        def done(task: asyncio.Task, msg_id: int) -> None:
            inflight.pop(msg_id, None)
            tasks.discard(task)
            self._kick.set()  # type: ignore[union-attr]  # set above

        async with aiohttp.ClientSession(connector=conn, timeout=timeout) as http:
            last_depth = 0.0
            while not self._stop.is_set():
                self._kick.clear()
                now = time.monotonic()
                if now - last_depth > 1.0:
                    metrics.OUTBOX_DEPTH.set(self.outbox.depth())
                    self._gone = set(self.outbox.disabled())  # `mevwatch webhooks enable/disable` from another process
                    last_depth = now
                busy: dict[str, int] = {}
                for ep in inflight.values():
                    busy[ep] = busy.get(ep, 0) + 1
                paused = {ep for ep, until in self._paused.items() if until > now}
                skip = paused | {ep for ep, n in busy.items() if n >= per_endpoint}
                free = total - len(inflight)
                due = [] if free <= 0 else self.outbox.due(free, per_endpoint=per_endpoint, skip_endpoints=skip, skip_ids=inflight)
                for m in due:
                    if m.endpoint not in self.subs:
                        self.outbox.failed(m.id, None, "endpoint no longer configured", None)
                        continue
                    if busy.get(m.endpoint, 0) >= per_endpoint or len(inflight) >= total:
                        continue
                    busy[m.endpoint] = busy.get(m.endpoint, 0) + 1
                    inflight[m.id] = m.endpoint
                    t = asyncio.create_task(self._send(http, m))
                    tasks.add(t)
                    t.add_done_callback(lambda task, i=m.id: done(task, i))  # type: ignore[misc]  # default-arg capture
                if due:
                    await asyncio.sleep(0)  # let the new requests start, then look again
                    continue
                # nothing to start now: wait for wake(), a delivery's end, the next retry or the end of a pause
                wait = 0.5
                if free > 0:
                    nxt = self.outbox.next_due_in()
                    if nxt is not None:
                        wait = min(wait, max(0.005, nxt))
                    ends = [until - now for until in self._paused.values() if until > now]
                    if ends:
                        wait = min(wait, max(0.005, min(ends)))
                try:
                    await asyncio.wait_for(self._kick.wait(), wait)
                except asyncio.TimeoutError:
                    pass
            if tasks:
                await asyncio.wait(tasks, timeout=self.settings.timeout_s)

    async def _send(self, http, m: OutboxMessage) -> None:
        if m.endpoint in self._gone:
            if m.endpoint in self.outbox.disabled():
                return  # disabled while this one waited; the outbox holds it as 'disabled'
            self._gone.discard(m.endpoint)  # enabled again meanwhile
        a = await post(http, m.endpoint, self._secrets[m.endpoint], m.event_id, m.payload, self.settings.allow_private)
        status, error, retry_after = a.status, a.error, a.retry_after
        label = f"{status}" if status is not None else "error"
        self.stats.count(label)
        metrics.WEBHOOKS.labels(metrics.delivery_status(status)).inc()
        metrics.WEBHOOK_LATENCY.observe(a.seconds)
        if self.on_result is not None:
            self.on_result(label, a.seconds)
        if a.ok:
            self.outbox.delivered(m.id, status)  # type: ignore[arg-type]  # ok: status is an int
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
