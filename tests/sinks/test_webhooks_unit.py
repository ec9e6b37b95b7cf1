"""Webhook signing, filters, the SSRF guard, the outbox, and delivery against a real local receiver."""

from __future__ import annotations

import time

import pytest
from standardwebhooks import Webhook

from mevwatch.monitor.alerts import Alert, AlertEvent, AlertTx
from mevwatch.monitor.config import WebhookDelivery, WebhookSubscriber
from mevwatch.monitor.errors import DeliveryError
from mevwatch.monitor.sinks import signing, ssrf
from mevwatch.monitor.sinks.outbox import Outbox
from mevwatch.monitor.sinks.webhooks import Deliverer, outbox_items, payload, retry_after_s, wants

pytestmark = pytest.mark.fast
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def alert(kind="sandwich", stage="included", score=1.0, attacker="0xaa", detector="rules") -> Alert:
    return Alert(kind=kind, stage=stage, chain_id=1, block_number=7, block_hash="0x07",
                 txs=[AlertTx("0x01", 0, "frontrun"), AlertTx("0x02", 1, "victim"), AlertTx("0x03", 2, "backrun")],
                 attackers=[attacker], victims=["0xbb"], pools=["0xcc"], tokens=["0xdd"], profit=None, victim_loss=None,
                 gas_cost_wei=None, evidence={}, score=score, detector=detector)


def test_signature_verifies_with_the_reference_library_and_rotation():
    body = payload(AlertEvent(alert(), 18))
    ts = int(time.time())
    old = "whsec_" + "b2xkLXNlY3JldC1rZXktYnl0ZXM="
    hdrs = signing.headers([old, SECRET], "msg_1", ts, body)
    assert len(hdrs["webhook-signature"].split()) == 2
    for s in (SECRET, old):  # a receiver holding either secret accepts the message
        assert Webhook(s).verify(body, hdrs)["data"]["kind"] == "sandwich"
    tampered = body.replace(b"sandwich", b"sandwicH", 1)
    with pytest.raises(Exception):
        Webhook(SECRET).verify(tampered, hdrs)
    assert signing.verify(SECRET, "msg_1", ts, body, hdrs["webhook-signature"])
    assert not signing.verify(SECRET, "msg_2", ts, body, hdrs["webhook-signature"])


# Header values made by the hand-written HMAC signer this module had before it signed with the
# standardwebhooks library: the library-based signer must give exactly these for the same inputs.
ROTATION = [SECRET, "whsec_b2xkLXNlY3JldC1rZXktYnl0ZXM=", "raw secret: not base64 \u00e9\u20ac"]
SIGNED_BEFORE = [
    (ROTATION[:1], "msg_1", 1700000000, b'{"kind":"sandwich"}', "v1,AKbG1jGi2urBRdVc/xWfQTwbB77benKhNAp3iz4N+ag="),
    (ROTATION[:2], "msg_2", 1700000001,
     b'{"type":"mev.alert.included","data":{"kind":"sandwich","v":"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"}}',
     "v1,m/2yHX8w8lQovUnCrK5iM7YjUqiFFZq1Kmc9CsC/ot8= v1,n4jQNId9tKbiq+t81x72K8cJa6glreQQ6661uOpgkHc="),
    (ROTATION[2:], "evt_0123456789abcdef", 1, b"{}", "v1,kdZot0fhY6w7tkSm4hl6e2g1qbcAT8+W2w2A4bIYJY0="),
    (ROTATION, "a.b.c", 4102444800, b"",
     "v1,oIyVPSUHc2Fp5i9NEoCzvXiNMJLENJIG8IYXWIVz4tY= v1,y1jU0qfshn5A4JJEwTX5w/8CZHQ6sG60rtwGG5fumUk= "
     "v1,rOYsB//tGcejJbgRw7WH6FSZIacroleF5KjiZ7BlwZo="),
]


@pytest.mark.parametrize("secrets,msg_id,ts,body,expect", SIGNED_BEFORE)
def test_library_signer_gives_the_same_headers_as_before(secrets, msg_id, ts, body, expect):
    hdrs = signing.headers(secrets, msg_id, ts, body)
    assert hdrs == {"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": expect,
                    "content-type": "application/json", "user-agent": "mevwatch-webhooks/1"}
    for s in secrets:
        assert signing.verify(s, msg_id, ts, body, expect)


def test_bad_secrets_and_bodies_are_refused():
    for bad in ("whsec_not base64!", "", "whsec_"):
        with pytest.raises(DeliveryError):
            signing.headers([SECRET, bad], "msg_1", 1700000000, b"{}")
    with pytest.raises(DeliveryError, match="UTF-8"):
        signing.headers([SECRET], "msg_1", 1700000000, b"\xff{}")


def test_filters_by_kind_stage_score_and_address():
    sub = WebhookSubscriber(url="https://example.org/h", secrets=[SECRET], kinds=["sandwich"], stages=["final"],
                            min_score=0.5, addresses=["0xAA"])
    assert wants(sub, AlertEvent(alert(stage="final"), 1))
    assert not wants(sub, AlertEvent(alert(stage="included"), 1))
    assert not wants(sub, AlertEvent(alert(kind="arbitrage", stage="final"), 1))
    assert not wants(sub, AlertEvent(alert(stage="final", score=0.4, detector="gnn"), 1))
    # a rule alert the model scored low (a back-run it reads as another role) is still sent
    assert wants(sub, AlertEvent(alert(stage="final", score=0.009, detector="rules"), 1))
    assert not wants(sub, AlertEvent(alert(stage="final", attacker="0xee"), 1))
    ev = AlertEvent(alert(stage="retracted"), 4)
    assert ev.event_type == "mev.alert.retracted"
    assert len(outbox_items([sub, WebhookSubscriber(url="https://x.org", secrets=[SECRET])], [ev])) == 1


@pytest.mark.parametrize("url", ["http://127.0.0.1/h", "http://10.1.2.3/h", "http://169.254.169.254/latest", "http://[::1]/h",
                                 "http://192.168.0.1/", "http://100.64.0.1/", "http://[::ffff:127.0.0.1]/", "http://0.0.0.0/",
                                 "http://localhost/h"])
def test_ssrf_guard_refuses_non_public_targets(url):
    with pytest.raises(DeliveryError):
        ssrf.check_url(url, allow_private=False, resolve=True)
    ssrf.check_url(url, allow_private=True)


def test_ssrf_guard_refuses_bad_schemes_and_credentials():
    for url in ("file:///etc/passwd", "gopher://x/", "https://user:pw@example.org/"):
        with pytest.raises(DeliveryError):
            ssrf.check_url(url, allow_private=True)
    ssrf.check_url("https://93.184.215.14/hook", allow_private=False)


def test_deliverer_refuses_private_target_unless_configured(tmp_path):
    with pytest.raises(DeliveryError, match="allow_private"):
        Deliverer(Outbox(tmp_path / "o.sqlite"), [WebhookSubscriber(url="http://127.0.0.1:9/h", secrets=[SECRET])], WebhookDelivery())


def test_retry_after_parses_seconds_and_dates():
    assert retry_after_s("7") == 7.0
    from email.utils import formatdate

    assert 8 <= retry_after_s(formatdate(time.time() + 10, usegmt=True)) <= 10
    assert retry_after_s("soon") is None


def test_outbox_survives_reopen_and_deduplicates(tmp_path):
    ob = Outbox(tmp_path / "o.sqlite")
    assert ob.enqueue([("e1", "https://a", "t", b"{}"), ("e2", "https://a", "t", b"{}")]) == 2
    assert ob.enqueue([("e1", "https://a", "t", b"{}")]) == 0  # a replayed event is not queued twice
    ob.close()
    ob = Outbox(tmp_path / "o.sqlite")
    assert ob.depth() == 2
    m = ob.due(10)[0]
    ob.failed(m.id, 500, "HTTP 500", None)
    assert ob.dead_letters()[0][0] == m.event_id
    assert ob.requeue_dead() == 1 and ob.depth() == 2


def test_delivery_retries_honours_retry_after_and_410_disables(tmp_path):
    """A real aiohttp receiver: 503 with Retry-After, then 204; a second endpoint answers 410."""
    import asyncio
    import threading

    from aiohttp import web

    from services import free_port

    port = free_port()
    hits: dict[str, list[float]] = {"ok": [], "gone": []}
    verified: list[str] = []

    async def ok(request):
        hits["ok"].append(time.monotonic())
        body = await request.read()  # a receiver using the reference library accepts every delivery
        verified.append(Webhook(SECRET).verify(body, dict(request.headers))["type"])
        if len(hits["ok"]) == 1:
            return web.Response(status=503, headers={"Retry-After": "1"})
        return web.Response(status=204)

    async def gone(request):
        hits["gone"].append(time.monotonic())
        return web.Response(status=410)

    ready = threading.Event()

    def serve():
        async def main():
            app = web.Application()
            app.router.add_post("/ok", ok)
            app.router.add_post("/gone", gone)
            r = web.AppRunner(app)
            await r.setup()
            await web.TCPSite(r, "127.0.0.1", port).start()
            ready.set()
            await asyncio.sleep(30)
        asyncio.run(main())

    threading.Thread(target=serve, daemon=True).start()
    ready.wait(5)
    base = f"http://127.0.0.1:{port}"
    subs = [WebhookSubscriber(url=f"{base}/ok", secrets=[SECRET]), WebhookSubscriber(url=f"{base}/gone", secrets=[SECRET])]
    ob = Outbox(tmp_path / "o.sqlite")
    ob.enqueue(outbox_items(subs[:1], [AlertEvent(alert(), 10)]))
    ob.enqueue(outbox_items(subs[1:], [AlertEvent(alert(), 10), AlertEvent(alert(stage="final"), 11)]))
    d = Deliverer(ob, subs, WebhookDelivery(allow_private=True, backoff_base_s=0.01, concurrency=1)).start()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and ob.summary().get(f"{base}/ok", {}).get("delivered", 0) < 1:
        time.sleep(0.05)
    ob.enqueue(outbox_items(subs[:1], [AlertEvent(alert(stage="final"), 11)]))
    while time.monotonic() < deadline and ob.summary().get(f"{base}/ok", {}).get("delivered", 0) < 2:
        time.sleep(0.05)
    d.stop(1)
    summary = ob.summary()
    assert summary[f"{base}/ok"] == {"delivered": 2}
    assert verified == ["mev.sandwich.included"] * 2 + ["mev.sandwich.final"]  # the 503'd one, its retry, the final
    assert hits["ok"][1] - hits["ok"][0] >= 0.95  # waited for Retry-After, not the 10 ms backoff
    assert f"{base}/gone" in ob.disabled()
    assert len(hits["gone"]) == 1  # disabled after the first 410: the second message is held, not sent
    assert ob.enable(f"{base}/gone") == 2
