"""Delivery under hostile or slow receivers, against real local servers: response bodies are read only
up to a small cap, and each endpoint has its own slots, so a slow one cannot delay the others."""

from __future__ import annotations

import asyncio
import time
import tracemalloc

import aiohttp  # noqa: F401 - imported before tracemalloc starts: the import is not the deliverer's memory
import pytest
from webhook_receivers import AiohttpReceiver, EndlessBodyReceiver

from mevwatch.monitor.config import WebhookDelivery, WebhookSubscriber
from mevwatch.monitor.sinks.outbox import Outbox
from mevwatch.monitor.sinks.webhooks import RESPONSE_BODY_S, Deliverer

pytestmark = pytest.mark.fast
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
GiB = 1 << 30
MiB = 1 << 20


def _wait(pred, timeout: float, step: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()


def _row(ob: Outbox, event_id: str) -> tuple:
    return ob._db.execute("SELECT status, attempts, last_status, last_error FROM messages WHERE event_id = ?", (event_id,)).fetchone()


@pytest.mark.parametrize(("status", "chunk", "pause", "expect"), [
    (200, 64 * 1024, 0.005, "delivered"),  # 2 GiB declared, streamed at ~13 MB/s until the client leaves
    (503, 64 * 1024, 0.005, "dead"),       # the same body behind an error: the status and a short snippet are recorded
    (200, 1, 0.5, "delivered"),            # a body trickled a few bytes at a time: the status stands after RESPONSE_BODY_S
], ids=["2xx-2GiB", "503-2GiB", "trickle"])
def test_a_huge_or_endless_response_body_is_never_read_past_the_cap(tmp_path, status, chunk, pause, expect):
    rx = EndlessBodyReceiver(status=status, declared=2 * GiB, chunk=chunk, pause=pause).start()
    url = rx.url()
    ob = Outbox(tmp_path / "o.sqlite")
    ob.enqueue([("evt-1", url, "mev.sandwich.included", b'{"type":"mev.sandwich.included"}')])
    tracemalloc.start()
    t0 = time.monotonic()
    # timeout_s far beyond the test: reading the whole body (as before) would still be going when the test gives up
    d = Deliverer(ob, [WebhookSubscriber(url=url, secrets=[SECRET])],
                  WebhookDelivery(allow_private=True, timeout_s=120, max_attempts=1)).start()
    try:
        assert _wait(lambda: _row(ob, "evt-1")[0] != "pending", RESPONSE_BODY_S + 8), \
            f"no outcome recorded after {time.monotonic() - t0:.1f} s: the deliverer is still reading the body"
        recorded = time.monotonic()
        assert _wait(lambda: rx.closed_at, 5), "the deliverer kept the connection open"
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        d.stop(0)
        rx.stop()
    state, attempts, last_status, last_error = _row(ob, "evt-1")
    assert (state, attempts, last_status) == (expect, 1, rx.status)
    assert rx.requests == 1
    # the client hung up once it had its answer: the server handed at most a few socket buffers' worth
    assert rx.sent[0] < 32 * MiB, f"{rx.sent[0] / MiB:.0f} MiB of body sent before the deliverer closed"
    assert rx.closed_at[0] - recorded < 3
    assert peak < 24 * MiB, f"python memory peaked at {peak / MiB:.0f} MiB while a 2 GiB body was offered"
    if chunk == 1:
        assert RESPONSE_BODY_S - 0.5 <= recorded - t0 < RESPONSE_BODY_S + 5
    if expect == "dead":  # the error names the status and the start of the body, escape characters made harmless
        assert last_error.startswith("HTTP 503: ?[2Jzzz") and len(last_error) <= 220 and "\x1b" not in last_error


def test_a_slow_endpoint_cannot_delay_another(tmp_path):
    """One endpoint takes 3 s per request with 40 messages queued (the oldest); another answers at once:
    its first delivery comes within a second, and the slow one never holds more than its own slots."""
    state = {"slow_now": 0, "slow_max": 0, "slow_hits": 0}
    fast_hits: list[float] = []

    async def slow(request):
        await request.read()
        state["slow_hits"] += 1
        state["slow_now"] += 1
        state["slow_max"] = max(state["slow_max"], state["slow_now"])
        try:
            await asyncio.sleep(3)
        finally:
            state["slow_now"] -= 1
        from aiohttp import web
        return web.Response(status=204)

    async def fast(request):
        await request.read()
        fast_hits.append(time.monotonic())
        from aiohttp import web
        return web.Response(status=204)

    rs, rf = AiohttpReceiver(slow).start(), AiohttpReceiver(fast).start()
    subs = [WebhookSubscriber(url=rs.url(), secrets=[SECRET]), WebhookSubscriber(url=rf.url(), secrets=[SECRET])]
    ob = Outbox(tmp_path / "o.sqlite")
    ob.enqueue([(f"slow-{i}", rs.url(), "t", b"{}") for i in range(40)])
    time.sleep(0.01)
    ob.enqueue([("fast-0", rf.url(), "t", b"{}")])  # queued after all 40: oldest-first would serve it last
    settings = WebhookDelivery(allow_private=True, timeout_s=10)
    assert (settings.concurrency, settings.endpoint_concurrency) == (8, 4)  # the defaults this test is about
    t0 = time.monotonic()
    d = Deliverer(ob, subs, settings).start()
    try:
        assert _wait(lambda: fast_hits, 5)
        first_fast = fast_hits[0] - t0
        # more fast messages while the slow endpoint is still busy: each goes out at once too
        ob.enqueue([(f"fast-{i}", rf.url(), "t", b"{}") for i in range(1, 6)])
        t1 = time.monotonic()
        d.wake()
        assert _wait(lambda: len(fast_hits) == 6, 5)
        more_fast = fast_hits[-1] - t1
        assert _wait(lambda: state["slow_hits"] >= settings.endpoint_concurrency, 2)
    finally:
        d.stop(0)
        rs.stop()
        rf.stop()
    assert first_fast < 1.0, f"the fast endpoint's first delivery took {first_fast:.2f} s"
    assert more_fast < 1.0, f"later fast deliveries took {more_fast:.2f} s"
    assert state["slow_max"] == settings.endpoint_concurrency  # its own slots, all used, never more
    assert ob.summary()[rf.url()] == {"delivered": 6}


def test_due_is_fair_across_endpoints_and_skips_what_it_is_told(tmp_path):
    ob = Outbox(tmp_path / "o.sqlite")
    ob.enqueue([(f"a{i}", "https://a", "t", b"{}") for i in range(40)])
    ob.enqueue([(f"b{i}", "https://b", "t", b"{}") for i in range(3)])
    ob.enqueue([("c0", "https://c", "t", b"{}")])
    got = [m.event_id for m in ob.due(8, per_endpoint=2)]
    assert got == ["a0", "b0", "c0", "a1", "b1"]  # round-robin, at most 2 each: c's one message is not behind a's 40
    assert [m.event_id for m in ob.due(2, per_endpoint=2)] == ["a0", "b0"]
    ids = {m.event_id: m.id for m in ob.due(100)}
    assert [m.event_id for m in ob.due(8, per_endpoint=2, skip_ids=[ids["a0"], ids["b0"]])] == ["a1", "b1", "c0", "a2", "b2"]
    assert [m.event_id for m in ob.due(8, per_endpoint=2, skip_endpoints={"https://a", "https://c"})] == ["b0", "b1"]
    ob.disable("https://b", "test")
    assert {m.endpoint for m in ob.due(100)} == {"https://a", "https://c"}
    ob.failed(ids["c0"], 500, "HTTP 500", time.time() + 60)
    assert "c0" not in [m.event_id for m in ob.due(100)]
    assert 59 < ob.next_due_in() <= 60  # the next retry ahead, not the due messages already returned
    assert "c0" in [m.event_id for m in ob.due(100, now=time.time() + 61)]


def test_due_stays_cheap_with_a_large_backlog(tmp_path):
    ob = Outbox(tmp_path / "o.sqlite")
    ob.enqueue([(f"e{i}", f"https://ep{i % 3}", "t", b"x" * 200) for i in range(60_000)])
    ob.enqueue([("lone", "https://lone", "t", b"{}")])
    t0 = time.perf_counter()
    for _ in range(20):
        got = ob.due(8, per_endpoint=4)
    per_call = (time.perf_counter() - t0) / 20
    assert "lone" in [m.event_id for m in got][:4]
    assert per_call < 0.01, f"due() took {per_call * 1000:.1f} ms with 60,000 queued"
