"""``mevwatch webhooks`` through the installed command line: test deliveries, unknown endpoints, and
status commands that never create an outbox."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from standardwebhooks import Webhook
from webhook_receivers import AiohttpReceiver

from mevwatch.monitor.sinks.outbox import Outbox

pytestmark = pytest.mark.fast
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
UNKNOWN = "https://hooks.example.org/never-configured"


def mevwatch(cwd, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mevwatch.monitor.cli", *args], capture_output=True, text=True, timeout=120, cwd=cwd)


def config(tmp_path, *urls: str, secret: str = SECRET) -> str:
    hooks = "".join(f"  - url: {u}\n    secrets: [{secret}]\n" for u in urls)
    path = tmp_path / "mevwatch.yaml"
    path.write_text(f"webhooks:\n{hooks}webhook_delivery: {{allow_private: true, timeout_s: 5}}\n" if urls else "{}\n")
    return str(path)


def one_line_error(r: subprocess.CompletedProcess, code: int, *words: str) -> None:
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert r.stderr.startswith("error: ") and all(w in r.stderr.replace("\n", "") for w in words), r.stderr


def test_status_does_not_create_an_outbox(tmp_path):
    r = mevwatch(tmp_path, "webhooks", "status")
    assert r.returncode == 0 and "no webhook outbox at .mevwatch/outbox.sqlite" in r.stdout, (r.stdout, r.stderr)
    r = mevwatch(tmp_path, "webhooks", "requeue")
    assert r.returncode == 0 and "0 dead letters" in r.stderr, r.stderr
    assert list(tmp_path.iterdir()) == [], "a status command created files"


@pytest.mark.parametrize("command", ["enable", "disable", "test"])
def test_an_endpoint_never_configured_is_a_clean_error(tmp_path, command):
    cfg = config(tmp_path, "https://hooks.example.org/configured")
    r = mevwatch(tmp_path, "--config", cfg, "webhooks", command, UNKNOWN)
    one_line_error(r, 2, UNKNOWN, "is not a configured webhook endpoint")
    assert not (tmp_path / ".mevwatch").exists()
    # with an outbox that has never heard of it either
    Outbox(tmp_path / ".mevwatch" / "outbox.sqlite").close()
    r = mevwatch(tmp_path, "--config", cfg, "webhooks", command, UNKNOWN)
    one_line_error(r, 2, "is not a configured webhook endpoint")
    r = mevwatch(tmp_path, "--config", cfg, "webhooks", "requeue", "--endpoint", UNKNOWN)
    one_line_error(r, 2, "is not a configured webhook endpoint")


def test_disable_and_enable_a_configured_endpoint(tmp_path):
    url = "https://hooks.example.org/h"
    cfg = config(tmp_path, url)
    r = mevwatch(tmp_path, "--config", cfg, "webhooks", "enable", url)
    assert r.returncode == 0 and "is not disabled" in r.stderr, r.stderr
    assert not (tmp_path / ".mevwatch").exists()
    r = mevwatch(tmp_path, "--config", cfg, "webhooks", "disable", url)
    assert r.returncode == 0 and "disabled" in r.stderr, r.stderr
    ob = Outbox(tmp_path / ".mevwatch" / "outbox.sqlite")
    assert url in ob.disabled()
    ob.enqueue([("e1", url, "t", b"{}")])
    assert ob.due(10) == []  # held
    ob.close()
    r = mevwatch(tmp_path, "webhooks", "status")  # without --config: the outbox knows the endpoint
    assert r.returncode == 0 and "disabled" in r.stdout, r.stdout
    r = mevwatch(tmp_path, "webhooks", "enable", url)
    assert r.returncode == 0 and "enabled" in r.stderr and "1 messages queued again" in r.stderr, r.stderr
    ob = Outbox(tmp_path / ".mevwatch" / "outbox.sqlite")
    assert url not in ob.disabled() and [m.event_id for m in ob.due(10)] == ["e1"]


def test_webhooks_test_sends_a_signed_sample_event(tmp_path):
    got: list[tuple[dict, dict]] = []

    async def hook(request):
        from aiohttp import web

        body = await request.read()
        got.append((dict(request.headers), Webhook(SECRET).verify(body, dict(request.headers))))  # raises on a bad signature
        return web.Response(status=204)

    async def broken(request):
        from aiohttp import web

        return web.Response(status=500, text="\x1b[31mreceiver [bold]exploded[/bold]")

    ok, bad = AiohttpReceiver(hook).start(), AiohttpReceiver(broken).start()
    try:
        cfg = config(tmp_path, ok.url(), bad.url())
        t0 = time.time()
        r = mevwatch(tmp_path, "--config", cfg, "webhooks", "test", ok.url())
        r2 = mevwatch(tmp_path, "--config", cfg, "webhooks", "test", bad.url())
    finally:
        ok.stop()
        bad.stop()
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert f"{ok.url()} answered HTTP 204" in r.stdout and "mev.test" in r.stdout, r.stdout
    headers, event = got[0]
    assert headers["webhook-id"].startswith("test-") and headers["webhook-id"] in r.stdout
    assert abs(int(headers["webhook-timestamp"]) - t0) < 60
    assert event["type"] == "mev.test"
    assert {"alert_id", "kind", "stage", "txs", "attackers", "evidence"} <= set(event["data"])  # a real alert record's shape
    one_line_error(r2, 1, bad.url(), "HTTP 500", "receiver [bold]exploded")
    assert "\x1b" not in r2.stderr
    assert not (tmp_path / ".mevwatch").exists()  # a test event is not queued


def test_webhooks_test_honours_the_ssrf_guard(tmp_path):
    path = tmp_path / "mevwatch.yaml"
    path.write_text(f"webhooks:\n  - url: http://127.0.0.1:9/h\n    secrets: [{SECRET}]\n")
    r = mevwatch(tmp_path, "--config", str(path), "webhooks", "test", "http://127.0.0.1:9/h")
    one_line_error(r, 1, "non-public address", "allow_private")
